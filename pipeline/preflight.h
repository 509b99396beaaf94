// Preflight: what `novapulse run` needs from this machine before it starts,
// checked without starting anything, so that `check-config` fails where
// `run` would. The rule files load and build against the metric set; the
// http listen address binds now (the socket is closed at once); the TLS
// certificate and key are readable files; the checkpoint directory exists
// or can be created, and is writable; the dead-letter file's directory
// exists and the file can be written. Nothing is created or changed.
// Kafka and Alertmanager are not contacted: they may come up later, and
// `run` waits for them.
//
// Any thread; it reads the file system and binds a socket, so call it at
// start-up.
//   if (absl::Status s = CheckStartupResources(config); !s.ok()) return Die(s);
#ifndef NOVAPULSE_PIPELINE_PREFLIGHT_H_
#define NOVAPULSE_PIPELINE_PREFLIGHT_H_

#include "absl/status/status.h"
#include "pipeline/config.h"

namespace novapulse {

// OK, or every failure, one "config.key: reason" line each, joined by '\n'.
// `running`: the config of the service this one is to replace (a reload):
// the port it listens on is not bound again (see CheckListenAddress).
[[nodiscard]] absl::Status CheckStartupResources(const Config& config,
                                                 const Config* running = nullptr);

}  // namespace novapulse

#endif  // NOVAPULSE_PIPELINE_PREFLIGHT_H_
