// The ingest pipeline of both `run` and `replay`: batches of records ->
// oneTBB parallel_pipeline -> a MetricEngine (the NovaGift metrics or a
// metric spec's).
//
//   serial input (a pull function, or the batches another thread submits;
//                 the watermark policy stamps each batch in order)
//     -> parallel parse + aggregate (the engine's decoder and shard per worker)
//     -> serial in-order completion (the source's bookkeeping, then the
//        watermark policy, then the rules' evaluations up to it)
//
// A batch is a chunk of lines of one topic (files) or a batch of Kafka
// messages; what differs between the two uses is where batches come from,
// what happens once one is in the metrics (offsets stored, progress counted)
// and the watermark policy: the event clock for Kafka, the chunk lag for
// files.
//
// Threads: Run blocks the thread that calls it, which joins the pipeline's
// arena. NextFree, Release, Submit, EndInput and Drain may be called from one
// other thread (the feeder) while Run runs.
//   IngestPipeline pipeline(options, metrics, watermarks, rules, on_complete);
//   std::thread worker([&] { pipeline.Run(); });
//   IngestBatch* batch = pipeline.NextFree();  ... fill ...  pipeline.Submit(batch);
//   pipeline.EndInput();  worker.join();
#ifndef NOVAPULSE_PIPELINE_INGEST_PIPELINE_H_
#define NOVAPULSE_PIPELINE_INGEST_PIPELINE_H_

#include <oneapi/tbb/concurrent_queue.h>

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "aggregators/novagift_metrics.h"
#include "pipeline/event_clock.h"
#include "pipeline/file_source.h"
#include "pipeline/kafka_source.h"
#include "pipeline/metric_engine.h"
#include "pipeline/rule_runner.h"
#include "sinks/dead_letter.h"

namespace novapulse {

// One unit of input on its way through the pipeline. The source fills one
// of `lines` and `messages`; the watermark policy sets the limits when the
// batch enters; the worker fills the results.
struct IngestBatch {
  // Files: lines of one input, after the oversize lines the source dropped.
  Chunk lines;
  int input = -1;  // files: the engine's input of the lines, -1 detected per line
  // Kafka: one record a message (lines is empty then).
  KafkaBatch messages;
  bool from_kafka = false;

  // Files: which input the chunk is from, whether it is its last, and the
  // input bytes of the other inputs consumed before it.
  size_t source = 0;
  bool last_of_source = false;
  uint64_t input_before = 0;
  int64_t last_ms = INT64_MIN;  // event time of the chunk's last line, if known

  // Set when the batch enters the pipeline.
  int64_t watermark_ms = INT64_MIN;     // window slots ending by this are closed to it
  int64_t future_limit_us = INT64_MAX;  // events stamped later are future_timestamp

  // Set by the worker.
  uint64_t records = 0;           // non-blank lines or messages, accepted or rejected
  int64_t newest_us = INT64_MIN;  // newest accepted event time
  // Kafka: newest accepted event time of each of messages.offsets' partitions.
  std::vector<int64_t> partition_newest_us;
  DeadLetterBatch rejected;  // when dead letters are on
};

// When window slots close: stamps each batch as it enters, in input order,
// and learns from each completed batch, in the same order.
class WatermarkPolicy {
 public:
  virtual ~WatermarkPolicy() = default;
  // IngestPipeline::Submit, on the feeder thread, in submission order.
  virtual void Submitted(IngestBatch& /*batch*/) {}
  // Serial input stage.
  virtual void Enter(IngestBatch& batch) = 0;
  // Serial completion stage, after the batch's records are in the metrics:
  // the event time up to which the rules may close window slots, if any.
  virtual std::optional<int64_t> Complete(const IngestBatch& batch) = 0;
};

// Kafka: the event clock (newest event time of the slowest partition still
// behind, minus the lateness, moving on with the wall clock while the input
// is idle). Events stamped more than max_future_ms after the wall clock are
// rejected. A batch is stamped when it is submitted, so that the clock
// counts it as in flight from then on (it does not move on with the wall
// clock past a batch still queued). Assigned(), on the consumer's thread,
// tells the clock of the partitions as they come and go.
class EventClockWatermark final : public WatermarkPolicy {
 public:
  EventClockWatermark(EventClock& clock, int64_t max_future_ms)
      : clock_(clock), max_future_ms_(max_future_ms) {}
  void Submitted(IngestBatch& batch) override;
  void Enter(IngestBatch& /*batch*/) override {}
  std::optional<int64_t> Complete(const IngestBatch& batch) override;
  // KafkaSource::set_on_assignment's hook.
  void Assigned(int input, int32_t partition, bool assigned);

 private:
  static uint64_t Key(int input, int32_t partition) {
    return (uint64_t{static_cast<uint32_t>(input)} << 32) | static_cast<uint32_t>(partition);
  }

  EventClock& clock_;
  const int64_t max_future_ms_;
  std::vector<EventClock::PartitionProgress> progress_;  // completion stage
};

// Files: a chunk's watermark is the one computed `lag` chunks back (the
// slowest input still reading, minus the lateness). Every chunk that far back
// has completed when a chunk enters, so what is late depends on the input
// alone, not on thread timing: the same for 1 and 2 threads. Without rules
// (lateness_ms unset) every watermark stays INT64_MIN.
class ChunkLagWatermark final : public WatermarkPolicy {
 public:
  // A chunk's watermark is the one computed this many chunks back, at least
  // (more when more chunks may be in flight).
  static constexpr size_t kMinLagChunks = 5;

  ChunkLagWatermark(size_t num_sources, size_t in_flight, std::optional<int64_t> lateness_ms);
  // An input without a single chunk: called before the first chunk enters,
  // so that it never holds the watermark back. Any thread.
  void MarkEmpty(size_t source) { empty_[source].store(true, std::memory_order_release); }
  void Enter(IngestBatch& batch) override;
  std::optional<int64_t> Complete(const IngestBatch& batch) override;
  // Newest accepted event time of every input (ms; INT64_MIN if none).
  int64_t newest_ms() const { return newest_; }
  // The least newest event time of the inputs still reading (INT64_MIN
  // while one has none yet; INT64_MAX when none is reading). Completion
  // stage, or once the pipeline is drained.
  int64_t reading_ms() const;

 private:
  const size_t lag_;
  const std::optional<int64_t> lateness_ms_;
  // Watermark after each completed chunk, by sequence number mod (lag + 1).
  std::vector<std::atomic<int64_t>> watermarks_;
  std::vector<std::atomic<bool>> empty_;
  std::vector<int64_t> source_newest_;  // completion stage
  std::vector<bool> source_done_;       // completion stage
  uint64_t sequence_in_ = 0;            // input stage
  uint64_t sequence_out_ = 0;           // completion stage
  int64_t watermark_ = INT64_MIN;       // completion stage
  int64_t newest_ = INT64_MIN;          // completion stage
};

struct IngestOptions {
  int threads = 1;  // must equal the shards of the metrics
  size_t max_record_bytes = 1 << 20;
  size_t in_flight = 2;       // batches in the pipeline at once, at most
  size_t batches = 2;         // batches in circulation (>= in_flight)
  bool dead_letters = false;  // workers collect rejected records in IngestBatch::rejected
};

class IngestPipeline {
 public:
  // `on_complete` runs in the completion stage, in input order, once the
  // batch's records are in the metrics; then the watermark policy learns of
  // the batch, the rules (when set) evaluate up to the policy's answer, and
  // only then is the batch free again: while the rules hold the completion
  // stage back (too many window updates waiting), so are the feeders.
  IngestPipeline(const IngestOptions& options, MetricEngine& engine, WatermarkPolicy& watermarks,
                 RuleRunner* rules, std::function<void(IngestBatch&)> on_complete);
  // Into the NovaGift metrics, through an engine of its own.
  IngestPipeline(const IngestOptions& options, NovaGiftMetrics& metrics,
                 WatermarkPolicy& watermarks, RuleRunner* rules,
                 std::function<void(IngestBatch&)> on_complete);
  IngestPipeline(const IngestPipeline&) = delete;
  IngestPipeline& operator=(const IngestPipeline&) = delete;

  // Runs until the input ends: `pull` (in the serial input stage) returns
  // nullptr, or, without `pull`, EndInput was called and every batch
  // submitted before it went through.
  void Run(const std::function<IngestBatch*()>& pull = nullptr);

  // A batch to fill; blocks until one is free. Returned through Submit or
  // Release. `lines` and `messages` keep their buffers from earlier use.
  IngestBatch* NextFree();
  void Release(IngestBatch* batch);
  void Submit(IngestBatch* batch);
  void EndInput();
  // Waits until every batch submitted so far has completed (batches given
  // to Submit; not those pulled).
  void Drain();
  // Records of the completed batches.
  uint64_t records();

 private:
  IngestPipeline(const IngestOptions& options, WatermarkPolicy& watermarks, RuleRunner* rules,
                 std::function<void(IngestBatch&)> on_complete,
                 std::unique_ptr<MetricEngine> engine);
  void Process(IngestBatch& batch);

  const IngestOptions options_;
  std::unique_ptr<MetricEngine> owned_engine_;
  MetricEngine& engine_;
  WatermarkPolicy& watermarks_;
  RuleRunner* const rules_;
  const std::function<void(IngestBatch&)> on_complete_;
  // Batches circulate free -> feeder -> submitted -> pipeline -> free, so
  // memory stays flat whatever the input size.
  std::vector<std::unique_ptr<IngestBatch>> batches_;
  tbb::concurrent_bounded_queue<IngestBatch*> free_;
  tbb::concurrent_bounded_queue<IngestBatch*> submitted_;  // nullptr: no more
  uint64_t submitted_count_ = 0;                           // feeder
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t completed_ = 0;  // guarded by mu_
  uint64_t records_ = 0;    // guarded by mu_
};

}  // namespace novapulse

#endif  // NOVAPULSE_PIPELINE_INGEST_PIPELINE_H_
