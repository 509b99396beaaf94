// librdkafka configuration shared by the consumer (KafkaSource) and the
// producer (KafkaSink): properties applied in order, librdkafka's own log
// lines routed through novapulse's logger.
//
//   absl::StatusOr<rd_kafka_conf_t*> conf = MakeKafkaConf(settings);
//   // ... add callbacks, then rd_kafka_new(..., *conf, ...), which takes it.
#ifndef NOVAPULSE_BASE_KAFKA_CONF_H_
#define NOVAPULSE_BASE_KAFKA_CONF_H_

#include <librdkafka/rdkafka.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace novapulse {

using KafkaSettings = std::vector<std::pair<std::string, std::string>>;

// A new configuration with `settings` applied in order (later ones win) and
// the log callback set. An error names the key and librdkafka's reason,
// which never quotes the value. The caller owns the result.
absl::StatusOr<rd_kafka_conf_t*> MakeKafkaConf(const KafkaSettings& settings);

}  // namespace novapulse

#endif  // NOVAPULSE_BASE_KAFKA_CONF_H_
