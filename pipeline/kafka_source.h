// KafkaSource: the consumer-group side of `novapulse run`. A librdkafka
// high-level consumer subscribed to the access-log and outbox topics, with
// cooperative-sticky assignment, offsets stored only by StoreOffsets (after a
// batch is aggregated: at-least-once) and committed by librdkafka's
// auto-commit, on every revocation and on Close.
//
// Threads: Fill, StoreOffsets and Close may be called from different threads
// (librdkafka is thread-safe), but Fill from one thread at a time; the
// rebalance callback runs inside Fill. assigned_partitions() is safe from any
// thread.
//   absl::StatusOr<std::unique_ptr<KafkaSource>> source = KafkaSource::Create(config.kafka);
//   KafkaBatch batch;
//   while ((*source)->Fill(&batch, stop)) { Process(batch); (*source)->StoreOffsets(batch); }
//   absl::Status closed = (*source)->Close();
#ifndef NOVAPULSE_PIPELINE_KAFKA_SOURCE_H_
#define NOVAPULSE_PIPELINE_KAFKA_SOURCE_H_

#include <librdkafka/rdkafka.h>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "parsers/event.h"
#include "pipeline/config.h"

namespace novapulse {

// One message of a batch: its payload is batch.buffer[begin, begin + size).
struct KafkaRecord {
  size_t begin = 0;
  size_t size = 0;
  Topic topic = Topic::kAccessLog;
  bool oversize = false;  // payload above max_message_bytes: not copied, not parsed
};

// The next offset to store for one partition (highest offset seen + 1).
struct KafkaPartitionOffset {
  Topic topic = Topic::kAccessLog;
  int32_t partition = 0;
  int64_t next_offset = 0;
};

// Messages copied out of librdkafka, back to back, followed by
// SIMDJSON_PADDING readable bytes, so the parser reads each one in place.
struct KafkaBatch {
  std::vector<char> buffer;
  size_t used = 0;  // payload bytes in buffer; the rest is padding
  std::vector<KafkaRecord> records;
  std::vector<KafkaPartitionOffset> offsets;

  void Clear();
};

class KafkaSource {
 public:
  // Creates the consumer and subscribes. Errors name the property librdkafka
  // refused (never its value) or the subscription failure.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<KafkaSource>> Create(
      const KafkaConfig& config);

  KafkaSource(const KafkaSource&) = delete;
  KafkaSource& operator=(const KafkaSource&) = delete;
  // Closes the consumer if Close was not called, then destroys it.
  ~KafkaSource();

  // Clears *batch and fills it with up to batch_size messages: returns when
  // it is full or batch_timeout after its first message. While no message
  // comes it keeps waiting, checking `stop` every 100 ms; returns false, with
  // an empty batch, once `stop` is true.
  bool Fill(KafkaBatch* batch, const std::atomic<bool>& stop);

  // Stores the batch's offsets for the next commit. Call once the batch is
  // aggregated, in batch order. Partitions revoked meanwhile are skipped
  // (their new owner reads those messages again: at-least-once).
  void StoreOffsets(const KafkaBatch& batch);

  // Commits the stored offsets synchronously and leaves the group.
  [[nodiscard]] absl::Status Close();

  int assigned_partitions() const { return assigned_.load(std::memory_order_relaxed); }

 private:
  explicit KafkaSource(const KafkaConfig& config);

  static void OnRebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                          rd_kafka_topic_partition_list_t* partitions, void* opaque);
  void Rebalance(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* partitions);
  void CommitSync(const char* why);
  void UpdateAssigned();
  // Appends `message` to the batch; false when it is an error, not data.
  bool Append(const rd_kafka_message_t* message, KafkaBatch* batch);

  // Topic names by Topic value (kAccessLog, kOutbox), from the config.
  std::array<std::string, kTopicCount> topics_;
  size_t max_message_bytes_;
  size_t batch_size_;
  absl::Duration batch_timeout_;
  rd_kafka_t* rk_ = nullptr;  // set once by Create
  bool closed_ = false;       // owned by the thread that calls Close/the destructor
  std::atomic<int> assigned_{0};
};

}  // namespace novapulse

#endif  // NOVAPULSE_PIPELINE_KAFKA_SOURCE_H_
