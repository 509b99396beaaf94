#include "base/kafka_conf.h"

#include "absl/strings/str_cat.h"
#include "base/log.h"

namespace novapulse {
namespace {

LogLevel LevelOfSyslog(int level) {
  if (level <= 3) return LogLevel::kError;
  if (level == 4) return LogLevel::kWarn;
  if (level <= 6) return LogLevel::kInfo;
  return LogLevel::kDebug;
}

void OnLog(const rd_kafka_t* /*rk*/, int level, const char* fac, const char* buf) {
  Log(LevelOfSyslog(level), buf, {{"component", "librdkafka"}, {"facility", fac}});
}

}  // namespace

absl::StatusOr<rd_kafka_conf_t*> MakeKafkaConf(const KafkaSettings& settings) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  for (const auto& [key, value] : settings) {
    char err[512];
    if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      return absl::InvalidArgumentError(absl::StrCat("kafka property ", key, ": ", err));
    }
  }
  rd_kafka_conf_set_log_cb(conf, OnLog);
  return conf;
}

}  // namespace novapulse
