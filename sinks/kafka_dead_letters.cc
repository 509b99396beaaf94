#include "sinks/kafka_dead_letters.h"

#include "absl/strings/str_cat.h"
#include "base/kafka_conf.h"
#include "base/log.h"

namespace novapulse {
namespace {

constexpr int kFlushMs = 10'000;

}  // namespace

KafkaDeadLetters::KafkaDeadLetters(const KafkaDeadLetterOptions& options)
    : topic_names_(options.topic_names), topic_(options.topic) {}

absl::StatusOr<std::unique_ptr<KafkaDeadLetters>> KafkaDeadLetters::Build(
    const KafkaDeadLetterOptions& options) {
  if (options.topic.empty()) return absl::InvalidArgumentError("dead_letter.topic is empty");
  KafkaSettings settings;
  // The consumer's properties (security, client.id) apply; those only a
  // consumer knows are left out, so librdkafka does not warn about them.
  for (const auto& [key, value] : options.properties) {
    if (key.starts_with("group.") || key.starts_with("auto.offset") ||
        key.starts_with("session.") || key.starts_with("partition.assignment") ||
        key.starts_with("enable.auto") || key.starts_with("fetch.") ||
        key.starts_with("max.poll") || key.starts_with("heartbeat.") ||
        key.starts_with("isolation.") || key.starts_with("max.partition.fetch")) {
      continue;
    }
    settings.emplace_back(key, value);
  }
  settings.emplace_back("bootstrap.servers", options.brokers);
  settings.emplace_back("acks", "all");
  settings.emplace_back("enable.idempotence", "true");
  settings.emplace_back("linger.ms", "20");
  absl::StatusOr<rd_kafka_conf_t*> made = MakeKafkaConf(settings);
  if (!made.ok()) return made.status();
  std::unique_ptr<KafkaDeadLetters> sink(new KafkaDeadLetters(options));
  rd_kafka_conf_set_dr_msg_cb(*made, OnDelivery);
  rd_kafka_conf_set_opaque(*made, sink.get());
  char err[512];
  sink->rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, *made, err, sizeof(err));
  if (sink->rk_ == nullptr) {
    rd_kafka_conf_destroy(*made);
    return absl::InvalidArgumentError(absl::StrCat("creating the dead-letter producer: ", err));
  }
  sink->rkt_ = rd_kafka_topic_new(sink->rk_, options.topic.c_str(), nullptr);
  if (sink->rkt_ == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("dead-letter topic ", options.topic, ": ",
                                                   rd_kafka_err2str(rd_kafka_last_error())));
  }
  KafkaDeadLetters* self = sink.get();
  sink->poller_ = std::thread([self] {
    while (!self->stop_.load(std::memory_order_relaxed)) rd_kafka_poll(self->rk_, 100);
  });
  return sink;
}

KafkaDeadLetters::~KafkaDeadLetters() {
  stop_.store(true, std::memory_order_relaxed);
  if (poller_.joinable()) poller_.join();
  if (rk_ != nullptr) {
    if (rd_kafka_flush(rk_, kFlushMs) != RD_KAFKA_RESP_ERR_NO_ERROR) {
      const int left = rd_kafka_outq_len(rk_);
      Count(0, static_cast<uint64_t>(left));
      Log(LogLevel::kError, "dead letters not delivered before shutdown",
          {{"topic", topic_}, {"dropped", absl::StrCat(left)}});
    }
    if (rkt_ != nullptr) rd_kafka_topic_destroy(rkt_);
    rd_kafka_destroy(rk_);
  }
}

void KafkaDeadLetters::OnDelivery(rd_kafka_t* /*rk*/, const rd_kafka_message_t* message,
                                  void* opaque) {
  auto* sink = static_cast<KafkaDeadLetters*>(opaque);
  if (message->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    sink->Count(1, 0);
  } else {
    sink->Count(0, 1);
    sink->Fail(rd_kafka_err2str(message->err));
  }
}

void KafkaDeadLetters::Fail(std::string_view what) {
  absl::MutexLock lock(&mu_);
  if (error_.ok()) {
    error_ =
        absl::UnavailableError(absl::StrCat("dead-letter topic ", topic_, ": ", std::string(what)));
  }
}

void KafkaDeadLetters::Write(const DeadLetterBatch& batch, std::string_view source,
                             uint64_t line_base) {
  for (const DeadLetterBatch::Entry& e : batch.entries()) {
    line_.clear();
    const std::string_view topic = DeadLetterInputName(topic_names_, e.input);
    AppendDeadLetterJson(e, batch.bytes(e), topic, source, line_base, &line_);
    if (!line_.empty() && line_.back() == '\n') line_.pop_back();
    const std::string key =
        absl::StrCat(std::string(topic), "/", e.origin.partition, "/", e.origin.offset);
    // RD_KAFKA_MSG_F_COPY: librdkafka copies the payload and only reads it.
    if (rd_kafka_produce(rkt_, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, line_.data(),
                         line_.size(), key.data(), key.size(), nullptr) != 0) {
      Count(0, 1);
      Fail(rd_kafka_err2str(rd_kafka_last_error()));
    }
  }
}

absl::Status KafkaDeadLetters::error() const {
  absl::MutexLock lock(&mu_);
  return error_;
}

}  // namespace novapulse
