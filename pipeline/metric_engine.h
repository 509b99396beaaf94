// What the ingest pipeline's workers decode records with and aggregate them
// into: the compiled-in NovaGift path (NovaGiftEngine) or a metric spec's
// (SpecEngine). The pipeline, replay and the expiry sweeps see only this.
//
// An input is a number: for NovaGift the Topic's value (access-log 0, outbox
// 1), for a spec the index of one of its inputs; -1 asks for each record's
// input to be detected. Calls go per batch, or per record from Kafka, never
// per field.
//
// Threads: the worker calls (Start/ProcessLines/ProcessRecord/Reject/
// TakeNewest/EndBatch with `worker` w) belong to worker thread w alone.
// EdgeEventTime belongs to the one thread that schedules the input.
// ExpireIdle runs while no worker does.
//   SpecEngine engine(metrics);
//   IngestPipeline pipeline(options, engine, watermarks, rules, on_complete);
#ifndef NOVAPULSE_PIPELINE_METRIC_ENGINE_H_
#define NOVAPULSE_PIPELINE_METRIC_ENGINE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "aggregators/metric_source.h"
#include "aggregators/metric_store.h"
#include "aggregators/novagift_metrics.h"
#include "aggregators/spec_metrics.h"
#include "parsers/record_parser.h"
#include "pipeline/record_worker.h"
#include "sinks/dead_letter.h"
#include "spec/plan.h"

namespace novapulse {

class MetricEngine {
 public:
  virtual ~MetricEngine() = default;

  virtual int num_shards() const = 0;
  virtual MetricStore& store() = 0;
  virtual MetricSource& source() = 0;
  // The metric set's checkpoint section.
  virtual StatePart& state() = 0;
  // Newest event time recorded by any worker, microseconds; 0 before any.
  virtual int64_t NewestEventTime() const = 0;

  // The event time (ms) of the first or last line of `text` that has one,
  // for scheduling chunks of `input` (-1: any); false when none does.
  virtual bool EdgeEventTime(int input, std::string_view text, bool last, int64_t* ms) = 0;

  // Worker `worker`'s batch: Start, then lines or records, then EndBatch.
  virtual void Start(int worker, int64_t watermark_ms) = 0;
  virtual uint64_t ProcessLines(int worker, int input, const char* data, size_t size,
                                size_t capacity, DeadLetterBatch* rejected,
                                const RecordLimits& limits) = 0;
  virtual void ProcessRecord(int worker, int input, const char* data, size_t len, size_t capacity,
                             DeadLetterBatch* rejected, const DeadLetterOrigin& origin,
                             const RecordLimits& limits) = 0;
  virtual void Reject(int worker, int input, RejectReason reason) = 0;
  // The newest event time recorded since the last call or EndBatch.
  virtual int64_t TakeNewest(int worker) = 0;
  virtual int64_t EndBatch(int worker) = 0;

  // Stale-series expiry at event time `now_ms` (see MetricStore::ExpireIdle).
  virtual size_t ExpireIdle(int64_t now_ms, std::vector<MetricStore::Removed>* removed) = 0;
};

// The input number `name` names in the NovaGift set or in `spec` (an
// input's name or its topic; -1 for "auto"), or an error listing the names
// there are.
absl::StatusOr<int> NovaGiftInputNamed(std::string_view name);
absl::StatusOr<int> SpecInputNamed(const spec::MetricSpecSet& spec, std::string_view name);

// The families of `plan`'s metric set (the compiled-in NovaGift set when
// null): what RuleRunner::Build is given to read its metrics (only the
// spec's carry their `expiry`; the rules read names and labels alone).
std::vector<MetricDef> MetricDefsOf(const spec::SpecPlan* plan, const MetricExpiry& expiry);

// The engine over a new metric set of `plan` (the compiled-in NovaGift set
// when null), which it owns: `threads` writers, a `series_limit` per
// family, windows for the rules when set, and `expiry`.
std::unique_ptr<MetricEngine> MakeMetricEngine(std::shared_ptr<const spec::SpecPlan> plan,
                                               int threads, size_t series_limit,
                                               const WindowSpec* windows,
                                               const MetricExpiry& expiry, size_t max_record_bytes);

// The compiled-in NovaGift path; `metrics` must outlive the engine.
class NovaGiftEngine final : public MetricEngine {
 public:
  explicit NovaGiftEngine(NovaGiftMetrics& metrics, size_t max_record_bytes = 1 << 20);
  // Owning `metrics`.
  NovaGiftEngine(std::unique_ptr<NovaGiftMetrics> metrics, size_t max_record_bytes);

  int num_shards() const override { return metrics_.num_shards(); }
  MetricStore& store() override { return metrics_.store(); }
  MetricSource& source() override { return metrics_; }
  StatePart& state() override { return metrics_; }
  int64_t NewestEventTime() const override { return metrics_.NewestEventTime(); }
  bool EdgeEventTime(int input, std::string_view text, bool last, int64_t* ms) override;
  void Start(int worker, int64_t watermark_ms) override;
  uint64_t ProcessLines(int worker, int input, const char* data, size_t size, size_t capacity,
                        DeadLetterBatch* rejected, const RecordLimits& limits) override;
  void ProcessRecord(int worker, int input, const char* data, size_t len, size_t capacity,
                     DeadLetterBatch* rejected, const DeadLetterOrigin& origin,
                     const RecordLimits& limits) override;
  void Reject(int worker, int input, RejectReason reason) override;
  int64_t TakeNewest(int worker) override { return metrics_.writer(worker).TakeNewest(); }
  int64_t EndBatch(int worker) override { return metrics_.writer(worker).EndBatch(); }
  size_t ExpireIdle(int64_t now_ms, std::vector<MetricStore::Removed>* removed) override {
    return metrics_.ExpireIdle(now_ms, removed);
  }

 private:
  std::unique_ptr<NovaGiftMetrics> owned_;  // null unless owned
  NovaGiftMetrics& metrics_;
  std::vector<std::unique_ptr<RecordParser>> parsers_;  // per worker
};

// A metric spec's path; `metrics` (and its plan) must outlive the engine.
// A dead letter's input is the spec's input index (name it with the
// inputs' topics, DeadLetterOptions::topic_names).
class SpecEngine final : public MetricEngine {
 public:
  explicit SpecEngine(SpecMetrics& metrics, size_t max_record_bytes = 1 << 20);
  // Owning `metrics`.
  SpecEngine(std::unique_ptr<SpecMetrics> metrics, size_t max_record_bytes);

  int num_shards() const override { return metrics_.num_shards(); }
  MetricStore& store() override { return metrics_.store(); }
  MetricSource& source() override { return metrics_; }
  StatePart& state() override { return metrics_; }
  int64_t NewestEventTime() const override { return metrics_.NewestEventTime(); }
  bool EdgeEventTime(int input, std::string_view text, bool last, int64_t* ms) override;
  void Start(int worker, int64_t watermark_ms) override;
  uint64_t ProcessLines(int worker, int input, const char* data, size_t size, size_t capacity,
                        DeadLetterBatch* rejected, const RecordLimits& limits) override;
  void ProcessRecord(int worker, int input, const char* data, size_t len, size_t capacity,
                     DeadLetterBatch* rejected, const DeadLetterOrigin& origin,
                     const RecordLimits& limits) override;
  void Reject(int worker, int input, RejectReason reason) override {
    metrics_.writer(worker).Reject(input, reason);
  }
  int64_t TakeNewest(int worker) override { return metrics_.writer(worker).TakeNewest(); }
  int64_t EndBatch(int worker) override { return metrics_.writer(worker).EndBatch(); }
  size_t ExpireIdle(int64_t now_ms, std::vector<MetricStore::Removed>* removed) override {
    return metrics_.ExpireIdle(now_ms, removed);
  }

 private:
  // The event time of one line, when it decodes as `input` (-1: detected).
  bool LineEventTime(int input, std::string_view line, int64_t* ms);

  std::unique_ptr<SpecMetrics> owned_;  // null unless owned
  SpecMetrics& metrics_;
  std::vector<std::unique_ptr<spec::SpecDecoder>> decoders_;  // per worker
  spec::SpecDecoder edge_;                                    // EdgeEventTime's
};

}  // namespace novapulse

#endif  // NOVAPULSE_PIPELINE_METRIC_ENGINE_H_
