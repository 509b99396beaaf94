// Config: the service configuration (configs/novapulse.yaml) as plain,
// validated data. Parsing is the only place that reads YAML; whatever is
// built from a Config takes it by const reference and never re-reads the file.
// Every error names file:line:column and the reason; secret values never
// appear in errors or in RedactedSummary(). Not tied to any thread: LoadConfig
// reads the process environment, so call it at start-up.
//
//   absl::StatusOr<Config> config = LoadConfig("configs/novapulse.yaml");
//   if (!config.ok()) return Die(config.status());
#ifndef NOVAPULSE_PIPELINE_CONFIG_H_
#define NOVAPULSE_PIPELINE_CONFIG_H_

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/log.h"
#include "pipeline/web_config.h"
#include "spec/plan.h"

namespace novapulse {

struct KafkaTopicsConfig {
  // The compiled-in NovaGift set's topics.
  std::string access_log = "novagift.access-log";
  std::string outbox = "novagift.outbox";
  // Under metrics.spec: the topic of each spec input the config names
  // (input name, topic); the others read the topic their spec gives.
  std::vector<std::pair<std::string, std::string>> inputs;
};

struct KafkaConfig {
  std::string brokers;  // required: "host:port[,host:port...]"
  std::string group_id = "novapulse";
  KafkaTopicsConfig topics;
  // Passed to librdkafka verbatim (security.protocol, sasl.*, ssl.*, ...), so
  // SASL/SSL need no code here.
  std::map<std::string, std::string> properties;
  int64_t max_message_bytes = 1048576;
  int64_t batch_size = 10000;
  absl::Duration batch_timeout = absl::Milliseconds(100);
  absl::Duration commit_interval = absl::Seconds(5);
};

struct HttpConfig {
  std::string listen = "127.0.0.1:9464";
  // TLS, client certificates, basic auth, headers and the rate limit: from
  // the http section's tls, basic_auth_users, headers and rate_limit keys,
  // or (never both) from a web config file in exporter-toolkit's format,
  // which the server reads again whenever it or a file it names changes.
  WebConfig web;
  std::string web_config_file;
  int64_t max_lag_ready = 10000;  // messages; /ready fails above it
};

struct PipelineConfig {
  int64_t threads = 0;  // 0: all cores
  int64_t series_limit = 10000;
  absl::Duration allowed_lateness = absl::Seconds(30);
  absl::Duration max_future = absl::Minutes(5);
};

// Stale-series expiry: a label set no event has updated for `expire_after`
// of event time leaves /metrics (0: never). Per family, `families`
// overrides the default.
struct MetricsConfig {
  // metrics.spec: the metric spec file, as written (relative to the working
  // directory, as rules.files are); empty: the compiled-in NovaGift set.
  std::string spec;
  // The spec, loaded and compiled by ParseConfig; null without one.
  std::shared_ptr<const spec::SpecPlan> plan;
  absl::Duration expire_after = absl::ZeroDuration();
  std::vector<std::pair<std::string, absl::Duration>> families;
  // The shortest positive expire_after, default or per family; infinite
  // when nothing expires.
  absl::Duration shortest() const {
    absl::Duration least = absl::InfiniteDuration();
    if (expire_after > absl::ZeroDuration()) least = expire_after;
    for (const auto& [name, after] : families) {
      if (after > absl::ZeroDuration()) least = std::min(least, after);
    }
    return least;
  }
  bool expires() const { return shortest() != absl::InfiniteDuration(); }
};

struct RulesConfig {
  std::vector<std::string> files;
  absl::Duration evaluation_interval = absl::Seconds(15);
  // The budget of the windows the rules read (kDefaultWindowMemoryBytes):
  // past it, new label sets fold into their family's __overflow__ series.
  int64_t window_memory_bytes = int64_t{128} << 20;
  // A label set first met in the stream starts at 0 in the windows at the
  // start of its first slot (see WindowHistory::set_zero_new_series).
  bool zero_new_series = false;
};

struct AlertmanagerConfig {
  std::vector<std::string> urls;
  absl::Duration resend_delay = absl::Minutes(1);
};

// Prometheus remote write of what /metrics serves (sinks/remote_write.h);
// no url: off.
struct RemoteWriteConfig {
  std::string url;  // http://HOST:PORT/PATH, e.g. Prometheus's /api/v1/write
  absl::Duration interval = absl::Seconds(15);
  absl::Duration timeout = absl::Seconds(30);
  int64_t max_samples_per_send = 10000;
  int64_t queue_samples = 2000000;
  // Added to every series that has no label of the name (as Prometheus's
  // external_labels): which novapulse pushed it.
  std::map<std::string, std::string> external_labels;
  // Sent with every request, e.g. X-Scope-OrgID for a multi-tenant receiver.
  std::map<std::string, std::string> headers;
  std::string bearer_token;  // Authorization: Bearer TOKEN
};

// Rejected records as JSON lines (sinks/dead_letter.h) to a file (`path`)
// or to a Kafka topic (`topic`, `run` only); no section: none.
struct DeadLetterConfig {
  std::string path;
  std::string topic;
  int64_t max_bytes = 100 << 20;  // the file is rotated before it grows past this
  int64_t keep = 3;               // rotated files kept: path.1 ... path.keep
};

// State checkpoints (pipeline/checkpoint.h); no dir: none. With a dir, offsets
// are committed only after a checkpoint that covers them.
struct CheckpointConfig {
  std::string dir;  // empty: no checkpoints
  absl::Duration interval = absl::Seconds(10);
};

struct Config {
  KafkaConfig kafka;
  HttpConfig http;
  PipelineConfig pipeline;
  MetricsConfig metrics;
  RulesConfig rules;
  AlertmanagerConfig alertmanager;
  RemoteWriteConfig remote_write;
  DeadLetterConfig dead_letter;
  CheckpointConfig checkpoint;
  LogConfig log;
};

// The topics `run` reads, by input number: the spec's inputs' (with
// kafka.topics' overrides) under metrics.spec, else the NovaGift topics.
std::vector<std::string> InputTopics(const Config& config);

// Reads and parses `path`; I/O errors name the path. `web_config_file`
// (the --web.config.file flag of run and check-config), when set, replaces
// http.web_config_file; an http section that sets tls, headers,
// basic_auth_users or rate_limit as well is an error.
[[nodiscard]] absl::StatusOr<Config> LoadConfig(const std::string& path,
                                                const std::string& web_config_file = "");

// Parses YAML text; `file_name` prefixes every error ("file:line:col: ...").
// ${VAR} and ${VAR:-default} in scalar values are expanded from the process
// environment before conversion; "$${" stands for a literal "${".
[[nodiscard]] absl::StatusOr<Config> ParseConfig(std::string_view yaml_text,
                                                 std::string_view file_name);

// A human-readable dump, one "section.key: value" per line. Kafka properties
// whose key contains password/secret/token/key and all password hashes are
// shown as "<redacted>".
std::string RedactedSummary(const Config& config);

// `novapulse check-config [--syntax-only] FILE`: 0 when FILE is valid and
// passes CheckStartupResources (pipeline/preflight.h) (prints "FILE: ok" and
// the summary), 1 when it does not (prints the errors), 2 on a usage error.
int RunCheckConfigCommand(int argc, char** argv);

}  // namespace novapulse

#endif  // NOVAPULSE_PIPELINE_CONFIG_H_
