// KafkaSink: the TrafficSink of `novapulse gen --kafka`. Produces each
// generated line as one message with a librdkafka idempotent producer: access
// lines without a key (librdkafka's partitioner spreads them), outbox lines
// keyed by their message id, so every step of one message lands in one
// partition in lifecycle order.
//
// Threads: single-threaded, like the generator. Delivery reports are served
// inside Write and Finish on the calling thread, so counts() needs no lock.
//   absl::StatusOr<std::unique_ptr<KafkaSink>> sink = KafkaSink::Create(config);
//   absl::StatusOr<GenStats> stats = GenerateTraffic(gen, **sink);
//   absl::Status delivered = (*sink)->Finish();
#ifndef NOVAPULSE_GEN_KAFKA_SINK_H_
#define NOVAPULSE_GEN_KAFKA_SINK_H_

#include <librdkafka/rdkafka.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "gen/traffic_gen.h"
#include "parsers/event.h"

namespace novapulse {

struct KafkaSinkConfig {
  std::string brokers;
  std::string access_topic = "novagift.access-log";
  std::string outbox_topic = "novagift.outbox";
  // Applied after the sink's defaults (acks=all, idempotence, lz4, linger),
  // so they may override them.
  std::vector<std::pair<std::string, std::string>> properties;
  absl::Duration flush_timeout = absl::Seconds(30);
};

// Messages by outcome, per Topic value (kAccessLog, kOutbox).
struct KafkaSinkCounts {
  std::array<uint64_t, kTopicCount> produced = {};   // handed to librdkafka
  std::array<uint64_t, kTopicCount> delivered = {};  // acknowledged by the broker
  uint64_t failed = 0;                               // delivery failed for good
};

// The key of an outbox line: the value of its top-level "id" field, which
// the generator writes right after "ts". Empty when there is none.
std::string_view OutboxMessageKey(std::string_view line);

class KafkaSink : public TrafficSink {
 public:
  // Creates the producer. Errors name the property librdkafka refused
  // (never its value).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<KafkaSink>> Create(
      const KafkaSinkConfig& config);

  KafkaSink(const KafkaSink&) = delete;
  KafkaSink& operator=(const KafkaSink&) = delete;
  ~KafkaSink() override;

  // Queues the line; when librdkafka's queue is full, serves delivery
  // reports until there is room. Fails on a fatal producer error.
  absl::Status Write(Topic topic, std::string_view line) override;
  // Waits up to flush_timeout for every message to be delivered; fails when
  // some are still queued or any delivery failed.
  absl::Status Finish() override;

  const KafkaSinkCounts& counts() const { return counts_; }
  const std::string& topic_name(Topic topic) const { return topics_[static_cast<size_t>(topic)]; }

 private:
  explicit KafkaSink(const KafkaSinkConfig& config);

  static void OnDelivery(rd_kafka_t* rk, const rd_kafka_message_t* message, void* opaque);
  static void OnError(rd_kafka_t* rk, int err, const char* reason, void* opaque);

  std::array<std::string, kTopicCount> topics_;
  absl::Duration flush_timeout_;
  rd_kafka_t* rk_ = nullptr;                              // set once by Create
  std::array<rd_kafka_topic_t*, kTopicCount> rkts_ = {};  // set once by Create
  KafkaSinkCounts counts_;
  std::string first_failure_;  // librdkafka's reason for the first failed delivery
  std::string fatal_error_;    // set by OnError on a fatal (idempotence) error
};

}  // namespace novapulse

#endif  // NOVAPULSE_GEN_KAFKA_SINK_H_
