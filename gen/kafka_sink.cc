#include "gen/kafka_sink.h"

#include <cstddef>

#include "absl/strings/str_cat.h"
#include "base/kafka_conf.h"
#include "base/log.h"

namespace novapulse {
namespace {

// How long Write waits for delivery reports to free queue space per retry.
constexpr int kQueueFullPollMs = 50;

}  // namespace

std::string_view OutboxMessageKey(std::string_view line) {
  constexpr std::string_view kField = "\"id\":\"";
  const size_t at = line.find(kField);
  if (at == std::string_view::npos) return {};
  const size_t begin = at + kField.size();
  const size_t end = line.find('"', begin);
  if (end == std::string_view::npos) return {};
  return line.substr(begin, end - begin);
}

absl::StatusOr<std::unique_ptr<KafkaSink>> KafkaSink::Create(const KafkaSinkConfig& config) {
  if (config.brokers.empty()) return absl::InvalidArgumentError("no Kafka brokers given");
  // Defaults first, so that --kafka-property can override any of them.
  KafkaSettings settings = {
      {"bootstrap.servers", config.brokers}, {"client.id", "novapulse-gen"}, {"acks", "all"},
      {"enable.idempotence", "true"},        {"compression.codec", "lz4"},   {"linger.ms", "5"},
      {"batch.num.messages", "100000"},
  };
  settings.insert(settings.end(), config.properties.begin(), config.properties.end());
  absl::StatusOr<rd_kafka_conf_t*> made = MakeKafkaConf(settings);
  if (!made.ok()) return made.status();
  rd_kafka_conf_t* conf = *made;
  rd_kafka_conf_set_error_cb(conf, OnError);
  rd_kafka_conf_set_dr_msg_cb(conf, OnDelivery);
  // The callbacks get the sink as their opaque, so it exists before its handle.
  std::unique_ptr<KafkaSink> sink(new KafkaSink(config));
  rd_kafka_conf_set_opaque(conf, sink.get());
  char err[512];
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    return absl::InvalidArgumentError(absl::StrCat("creating the Kafka producer: ", err));
  }
  sink->rk_ = rk;
  for (size_t t = 0; t < sink->topics_.size(); ++t) {
    sink->rkts_[t] = rd_kafka_topic_new(rk, sink->topics_[t].c_str(), nullptr);
    if (sink->rkts_[t] == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("Kafka topic ", sink->topics_[t], ": ",
                                                     rd_kafka_err2str(rd_kafka_last_error())));
    }
  }
  return sink;
}

KafkaSink::KafkaSink(const KafkaSinkConfig& config)
    : topics_{config.access_topic, config.outbox_topic}, flush_timeout_(config.flush_timeout) {}

KafkaSink::~KafkaSink() {
  for (rd_kafka_topic_t* rkt : rkts_) {
    if (rkt != nullptr) rd_kafka_topic_destroy(rkt);
  }
  // Messages still queued are dropped: Finish, not the destructor, waits.
  if (rk_ != nullptr) rd_kafka_destroy(rk_);
}

void KafkaSink::OnDelivery(rd_kafka_t* /*rk*/, const rd_kafka_message_t* message, void* opaque) {
  auto* sink = static_cast<KafkaSink*>(opaque);
  if (message->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (sink->counts_.failed++ == 0) {
      sink->first_failure_ = rd_kafka_err2str(message->err);
    }
    return;
  }
  const size_t t = message->rkt == sink->rkts_[static_cast<size_t>(Topic::kOutbox)] ? 1 : 0;
  ++sink->counts_.delivered[t];
}

void KafkaSink::OnError(rd_kafka_t* rk, int err, const char* reason, void* opaque) {
  auto* sink = static_cast<KafkaSink*>(opaque);
  if (err == RD_KAFKA_RESP_ERR__FATAL && sink->fatal_error_.empty()) {
    char fatal[512];
    const rd_kafka_resp_err_t code = rd_kafka_fatal_error(rk, fatal, sizeof(fatal));
    sink->fatal_error_ = absl::StrCat(rd_kafka_err2name(code), ": ", fatal);
  }
  Log(LogLevel::kWarn, "kafka error",
      {{"error", rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err))}, {"reason", reason}});
}

absl::Status KafkaSink::Write(Topic topic, std::string_view line) {
  if (topic != Topic::kAccessLog && topic != Topic::kOutbox) {
    return absl::InvalidArgumentError("KafkaSink: lines need a concrete topic");
  }
  const size_t t = static_cast<size_t>(topic);
  const std::string_view key = topic == Topic::kOutbox ? OutboxMessageKey(line) : "";
  // librdkafka's API takes non-const payloads; RD_KAFKA_MSG_F_COPY means it
  // only reads them.
  void* payload = const_cast<char*>(line.data());
  const void* key_ptr = key.empty() ? nullptr : key.data();
  for (;;) {
    if (!fatal_error_.empty()) {
      return absl::InternalError(absl::StrCat("Kafka producer failed: ", fatal_error_));
    }
    if (rd_kafka_produce(rkts_[t], RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, payload, line.size(),
                         key_ptr, key.size(), nullptr) == 0) {
      break;
    }
    const rd_kafka_resp_err_t err = rd_kafka_last_error();
    if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      return absl::InternalError(
          absl::StrCat("producing to ", topics_[t], ": ", rd_kafka_err2str(err)));
    }
    rd_kafka_poll(rk_, kQueueFullPollMs);
  }
  ++counts_.produced[t];
  rd_kafka_poll(rk_, 0);
  return absl::OkStatus();
}

absl::Status KafkaSink::Finish() {
  const rd_kafka_resp_err_t flushed =
      rd_kafka_flush(rk_, static_cast<int>(absl::ToInt64Milliseconds(flush_timeout_)));
  if (!fatal_error_.empty()) {
    return absl::InternalError(absl::StrCat("Kafka producer failed: ", fatal_error_));
  }
  if (flushed != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::DeadlineExceededError(
        absl::StrCat(rd_kafka_outq_len(rk_), " messages still undelivered after ",
                     absl::FormatDuration(flush_timeout_), " (", counts_.failed, " failed)"));
  }
  if (counts_.failed > 0) {
    return absl::UnavailableError(
        absl::StrCat(counts_.failed, " of ", counts_.produced[0] + counts_.produced[1],
                     " messages failed delivery (first: ", first_failure_, ")"));
  }
  return absl::OkStatus();
}

}  // namespace novapulse
