// KafkaSource: the consumer-group side of `novapulse run`. A librdkafka
// high-level consumer subscribed to the access-log and outbox topics, with
// cooperative-sticky assignment, offsets stored only by StoreOffsets (after a
// batch is aggregated: at-least-once) and committed every commit_interval,
// on every revocation and on Close, one commit at a time. A partition with
// no committed (or checkpointed) offset is read from its earliest offset
// unless the properties set auto.offset.reset.
//
// Threads: Fill, StoreOffsets and Close may be called from different threads
// (librdkafka is thread-safe), but Fill from one thread at a time; the
// rebalance callback runs inside Fill. assigned_partitions(), Lag(),
// Reachable(), fatal_error(), commits() and CollectMetrics() are safe from
// any thread.
//   absl::StatusOr<std::unique_ptr<KafkaSource>> source = KafkaSource::Build(config.kafka);
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
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "aggregators/metric_def.h"
#include "aggregators/metric_source.h"
#include "aggregators/metric_store.h"
#include "parsers/event.h"
#include "pipeline/config.h"

namespace novapulse {

// One message of a batch: its payload is batch.buffer[begin, begin + size).
struct KafkaRecord {
  size_t begin = 0;
  size_t size = 0;        // of an oversize message: its length, though nothing was copied
  int input = 0;          // its topic's index in the topics the source reads
  bool oversize = false;  // payload above max_message_bytes: not copied, not parsed
  int32_t partition = 0;
  int64_t offset = 0;
};

// The next offset to store for one partition (highest offset seen + 1).
struct KafkaPartitionOffset {
  int input = 0;  // the topic's index, as KafkaRecord::input
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
  // Partitions whose end the consumer reached after their last record in
  // this batch (next_offset: the end offset), in no order.
  std::vector<KafkaPartitionOffset> ends;

  void Clear();
};

// The NovaGift topics `config` names, by input number (Topic value).
std::vector<std::string> KafkaTopicsOf(const KafkaConfig& config);

// Consumer lag of one assigned partition: the high watermark minus the next
// offset to consume; -1 while either is unknown (no fetch answered yet).
struct KafkaPartitionLag {
  int input = 0;
  int32_t partition = 0;
  int64_t lag = -1;
};

// The consumer's metric families (see aggregators/metric_source.h), in
// export order.
#define NOVAPULSE_KAFKA_METRICS(M)                                                                 \
  M(kKafkaConsumerLag, "novapulse_kafka_consumer_lag",                                             \
    "Messages between the high watermark and the next offset to consume, per assigned "            \
    "partition.",                                                                                  \
    MetricType::kComputed, {"topic", "partition"}, {})                                             \
  M(kKafkaCommitsTotal, "novapulse_kafka_commits_total",                                           \
    "Offset commits answered by the broker, by result.", MetricType::kComputedCounter, {"result"}, \
    {})

enum KafkaMetric : size_t { NOVAPULSE_KAFKA_METRICS(NOVAPULSE_METRIC_ID) kKafkaMetricCount };

const std::vector<MetricDef>& KafkaMetricDefs();

class KafkaSource : public MetricSource {
 public:
  // Creates the consumer and subscribes. Errors name the property librdkafka
  // refused (never its value) or the subscription failure.
  //
  // With `checkpointed`, nothing is committed automatically: the caller
  // commits with Commit() once a checkpoint covers the offsets, and the
  // revoke hook (set_on_revoke) runs before partitions are given up.
  //
  // `topics` are read as inputs 0, 1, ...: a record's input is its topic's
  // index there. Empty: the NovaGift topics of `config` (KafkaTopicsOf).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<KafkaSource>> Build(
      const KafkaConfig& config, bool checkpointed = false, std::vector<std::string> topics = {});

  KafkaSource(const KafkaSource&) = delete;
  KafkaSource& operator=(const KafkaSource&) = delete;
  // Closes the consumer if Close was not called, then destroys it.
  ~KafkaSource() override;

  // Clears *batch and fills it with up to batch_size messages: returns when
  // it is full or batch_timeout after its first message or partition end
  // (a batch may hold ends alone). While nothing comes it keeps waiting,
  // checking `stop` every 100 ms, until `idle_until` (then it returns true
  // with an empty batch); returns false, with no records, once `stop` is
  // true or the consumer has failed for good (fatal_error() then says why).
  bool Fill(KafkaBatch* batch, const std::atomic<bool>& stop,
            absl::Time idle_until = absl::InfiniteFuture());

  // Stores the batch's offsets for the next commit. Call once the batch is
  // aggregated, in batch order. Partitions revoked meanwhile are skipped
  // (their new owner reads those messages again: at-least-once).
  void StoreOffsets(const KafkaBatch& batch);

  // Commits the stored offsets synchronously (unless checkpointed) and
  // leaves the group, waiting for it at most 5 s.
  [[nodiscard]] absl::Status Close();

  // Checkpointed mode. Offsets a checkpoint holds: when one of these
  // partitions is assigned, consumption starts there, or at the committed
  // offset if another member has committed further. Before the first Fill.
  void SetResumeOffsets(const std::vector<KafkaPartitionOffset>& offsets);
  // Called on Fill's thread when partitions are revoked, before they are
  // given up; it must leave every batch handed out so far aggregated and
  // covered by a checkpoint, then, unless `lost`, commit (e.g. drain,
  // checkpoint, Commit). `lost`: the group has already given the partitions
  // to others (session timed out, consumer fenced), so a commit would fail.
  // Messages of those partitions not yet handed out are dropped from the
  // batch being filled: their next owner reads them.
  void set_on_revoke(std::function<void(bool lost)> f) { on_revoke_ = std::move(f); }
  // Called on Fill's thread for each partition assigned (`assigned`) and,
  // after the revoke hook, each one given up. Before the first Fill.
  void set_on_assignment(std::function<void(int input, int32_t partition, bool assigned)> f) {
    on_assignment_ = std::move(f);
  }
  // Next offset of every assigned partition whose messages have all been
  // passed to StoreOffsets, ordered by topic and partition: what to commit.
  // Any thread.
  std::vector<KafkaPartitionOffset> ProcessedOffsets();
  // What the aggregate state covers: ProcessedOffsets() and, of partitions
  // held before but not assigned now (revoked or lost, or restored and not
  // yet assigned), the next offset the state covers. What a checkpoint
  // records: when such a partition comes back, it resumes there unless
  // another member committed further. Any thread.
  std::vector<KafkaPartitionOffset> CoveredOffsets();
  // Commits these offsets: synchronously, or in the background unless an
  // earlier commit is still unanswered (then the next commit carries them).
  // On Fill's thread, or after Fill's last call.
  void Commit(const std::vector<KafkaPartitionOffset>& offsets, bool sync);

  int assigned_partitions() const { return assigned_.load(std::memory_order_relaxed); }

  // Whether the consumer reaches Kafka, from librdkafka's statistics (every
  // second): false, with *reason set, while no broker connection is up or
  // the group coordinator is not reachable, and before the first statistics.
  bool Reachable(std::string* reason) const;
  // librdkafka's fatal error (e.g. a static member fenced by another with
  // the same group.instance.id), or "" while there is none. The consumer
  // cannot go on after one.
  std::string fatal_error() const;

  // Lag of every assigned partition, ordered by topic and partition. Read
  // from librdkafka's cached watermarks, no broker round trip, and refreshed
  // at most once a second.
  std::vector<KafkaPartitionLag> Lag();
  // Offset commits answered by the broker, successful or failed; commits
  // with nothing to commit are not counted.
  uint64_t commits(bool success) const {
    return (success ? commits_ok_ : commits_failed_).load(std::memory_order_relaxed);
  }
  // One family per KafkaMetricDefs() entry.
  void CollectMetrics(MetricFamilies* out) override;

 private:
  using PartitionKey = std::pair<int, int32_t>;  // (input, partition)
  static constexpr absl::Duration kLagRefresh = absl::Seconds(1);
  // How long Close waits for the group before leaving without it.
  static constexpr absl::Duration kCloseTimeout = absl::Seconds(5);
  // How long a synchronous commit waits for the one in flight, which is
  // answered in milliseconds unless the coordinator is gone (then librdkafka
  // holds it for up to session.timeout.ms). Short: on shutdown it adds to
  // kCloseTimeout within the 8 s `run` gives Close.
  static constexpr absl::Duration kCommitWait = absl::Seconds(2);
  // How long a synchronous commit waits for its answer. A commit that finds
  // no coordinator is held by librdkafka for up to session.timeout.ms; the
  // main loop must not stand still that long (it would keep /readyz and
  // the checkpoints waiting), so past this the commit goes on unanswered.
  static constexpr absl::Duration kCommitAnswerWait = absl::Seconds(5);
  static constexpr int kStatisticsIntervalMs = 1000;

  KafkaSource(const KafkaConfig& config, std::vector<std::string> topics);

  static void OnError(rd_kafka_t* rk, int err, const char* reason, void* opaque);
  static int OnStatistics(rd_kafka_t* rk, char* json, size_t json_len, void* opaque);
  static void OnCommit(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                       rd_kafka_topic_partition_list_t* offsets, void* opaque);
  static void OnRebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err,
                          rd_kafka_topic_partition_list_t* partitions, void* opaque);
  void Rebalance(rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* partitions);
  // Commits, one at a time. librdkafka holds a commit that finds no group
  // coordinator and sends it once there is one, so commits started on a
  // timer during an outage (as its auto-commit does) go out together, and
  // an older one answered last moves the group's offsets back: the next
  // member reads those messages again. So a commit starts only once the
  // previous one is answered. All on Fill's thread, or after its last call.
  //
  // Starts committing `offsets` (nullptr: the stored ones) in the
  // background; false, and nothing started, while a commit is in flight
  // (unless `even_if_in_flight`) or when librdkafka refuses it.
  bool StartCommit(const rd_kafka_topic_partition_list_t* offsets, bool even_if_in_flight = false);
  // Collects the answers to the commits in flight, waiting for them until
  // `deadline`; true once no commit is in flight.
  bool AwaitCommit(absl::Time deadline);
  // Without checkpoints: starts a commit of the stored offsets when
  // commit_interval has passed since the last one.
  void CommitOnInterval();
  // Waits for the commit in flight (kCommitWait at most; past that it
  // commits anyway, logged), then commits `offsets` (nullptr: the stored
  // ones) and waits for the answer, kCommitAnswerWait at most.
  void CommitSync(const char* why, const rd_kafka_topic_partition_list_t* offsets = nullptr);
  void UpdateAssigned();
  void NotifyAssignment(const rd_kafka_topic_partition_list_t* partitions, bool assigned);
  // Keeps librdkafka's fatal error for fatal_error() and ends Fill.
  void RecordFatalError();
  // Appends `message` to the batch: a record, or a partition's end to
  // batch->ends. False when it is neither (an error).
  bool Append(const rd_kafka_message_t* message, KafkaBatch* batch);
  // The input a topic is read as: its index in topics_.
  int InputOf(const rd_kafka_message_t* message) const;
  int InputOf(std::string_view topic) const;
  // Removes the records and offsets of `partitions` from `batch`.
  void DropPartitions(const rd_kafka_topic_partition_list_t* partitions, KafkaBatch* batch) const;
  // Checkpointed mode, on assignment: sets each partition's start offset and
  // its processed offset.
  void StartFromCheckpoint(rd_kafka_topic_partition_list_t* partitions);
  // Publishes the next offsets of the batch's partitions and of those that
  // reached their end, for Lag().
  void UpdatePositions(const KafkaBatch& batch);

  bool checkpointed_ = false;
  std::function<void(bool lost)> on_revoke_;
  std::function<void(int, int32_t, bool)> on_assignment_;
  KafkaBatch* filling_ = nullptr;  // the batch Fill is filling; Fill's thread
  // The topics subscribed to, by input number.
  std::vector<std::string> topics_;
  size_t max_message_bytes_;
  size_t batch_size_;
  absl::Duration batch_timeout_;
  absl::Duration commit_interval_;
  rd_kafka_t* rk_ = nullptr;  // set once by Build
  // Commit answers (RD_KAFKA_EVENT_OFFSET_COMMIT); set once by Build.
  rd_kafka_queue_t* commit_answers_ = nullptr;
  // The commit state: Fill's thread, then Close's. Commits started and not
  // yet answered: more than one only after a synchronous commit went ahead
  // of an unanswered one, or was itself left unanswered.
  int commits_in_flight_ = 0;
  rd_kafka_resp_err_t last_commit_error_ = RD_KAFKA_RESP_ERR_NO_ERROR;  // of the latest answer
  absl::Time next_commit_;
  bool closed_ = false;     // owned by the thread that calls Close/the destructor
  bool abandoned_ = false;  // Close gave up waiting for the group; same thread
  std::atomic<int> assigned_{0};
  std::atomic<uint64_t> commits_ok_{0};
  std::atomic<uint64_t> commits_failed_{0};
  std::atomic<bool> fatal_{false};
  // End-of-partition offsets seen by the current Fill; owned by its thread.
  std::vector<KafkaPartitionOffset> ends_;

  mutable absl::Mutex mu_;
  // Next offset to consume per partition, as of the last Fill; forgotten on
  // revocation.
  std::map<PartitionKey, int64_t> positions_ ABSL_GUARDED_BY(mu_);
  // Checkpointed mode: assigned partitions and their processed next
  // offsets; partitions not assigned whose messages the state holds up to
  // an offset (restored, revoked or lost), resumed from there on assignment.
  std::map<PartitionKey, int64_t> processed_ ABSL_GUARDED_BY(mu_);
  std::map<PartitionKey, int64_t> held_ ABSL_GUARDED_BY(mu_);
  // From librdkafka's statistics: why Kafka is not reachable ("" when it is).
  std::string unreachable_ ABSL_GUARDED_BY(mu_) = "kafka connection state not known yet";
  std::string fatal_error_ ABSL_GUARDED_BY(mu_);
  absl::Time lag_time_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  std::vector<KafkaPartitionLag> lag_ ABSL_GUARDED_BY(mu_);
};

}  // namespace novapulse

#endif  // NOVAPULSE_PIPELINE_KAFKA_SOURCE_H_
