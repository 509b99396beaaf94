#include "pipeline/ingest_pipeline.h"

#include <oneapi/tbb/parallel_pipeline.h>
#include <oneapi/tbb/task_arena.h>

#include <algorithm>
#include <chrono>
#include <utility>

#include "base/time_math.h"
#include "pipeline/record_worker.h"

namespace novapulse {

void EventClockWatermark::Submitted(IngestBatch& batch) {
  batch.future_limit_us = (WallMillis() + max_future_ms_) * 1000;
  batch.watermark_ms = clock_.BeginBatch();
}

std::optional<int64_t> EventClockWatermark::Complete(const IngestBatch& batch) {
  progress_.clear();
  if (batch.from_kafka) {
    const KafkaBatch& messages = batch.messages;
    for (size_t i = 0; i < messages.offsets.size(); ++i) {
      const KafkaPartitionOffset& o = messages.offsets[i];
      progress_.push_back({.partition = Key(o.input, o.partition),
                           .records = true,
                           .newest_us = i < batch.partition_newest_us.size()
                                            ? batch.partition_newest_us[i]
                                            : INT64_MIN});
    }
    // An end comes after the batch's records of its partition.
    for (const KafkaPartitionOffset& end : messages.ends) {
      progress_.push_back({.partition = Key(end.input, end.partition), .reached_end = true});
    }
  }
  return clock_.EndBatch(batch.newest_us, WallMillis(), progress_);
}

void EventClockWatermark::Assigned(int input, int32_t partition, bool assigned) {
  if (assigned) {
    clock_.AddPartition(Key(input, partition), WallMillis());
  } else {
    clock_.RemovePartition(Key(input, partition));
  }
}

ChunkLagWatermark::ChunkLagWatermark(size_t num_sources, size_t in_flight,
                                     std::optional<int64_t> lateness_ms)
    : lag_(std::max(kMinLagChunks, in_flight)),
      lateness_ms_(lateness_ms),
      watermarks_(lag_ + 1),
      empty_(num_sources),
      source_newest_(num_sources, INT64_MIN),
      source_done_(num_sources, false) {
  for (auto& w : watermarks_) w.store(INT64_MIN, std::memory_order_relaxed);
}

void ChunkLagWatermark::Enter(IngestBatch& batch) {
  const uint64_t seq = sequence_in_++;
  batch.watermark_ms =
      seq >= lag_ ? watermarks_[(seq - lag_) % watermarks_.size()].load(std::memory_order_acquire)
                  : INT64_MIN;
}

int64_t ChunkLagWatermark::reading_ms() const {
  int64_t slowest = INT64_MAX;
  for (size_t s = 0; s < source_newest_.size(); ++s) {
    if (source_done_[s] || empty_[s].load(std::memory_order_acquire)) continue;
    slowest = std::min(slowest, source_newest_[s]);
  }
  return slowest;
}

std::optional<int64_t> ChunkLagWatermark::Complete(const IngestBatch& batch) {
  const size_t src = batch.source;
  if (batch.newest_us != INT64_MIN) {
    source_newest_[src] = std::max(source_newest_[src], batch.newest_us / 1000);
    newest_ = std::max(newest_, source_newest_[src]);
  }
  if (batch.last_of_source) source_done_[src] = true;
  if (!lateness_ms_) return std::nullopt;
  // The slowest source still reading holds the watermark back.
  const int64_t slowest = reading_ms();
  if (slowest != INT64_MAX && slowest != INT64_MIN) {
    watermark_ = std::max(watermark_, slowest - *lateness_ms_);
  }
  const uint64_t seq = sequence_out_++;
  watermarks_[seq % watermarks_.size()].store(watermark_, std::memory_order_release);
  // Chunks from seq + 1 on use watermarks of seq + 1 - lag or later: slots
  // ending by that one take no more writes.
  if (seq + 1 < lag_) return std::nullopt;
  return watermarks_[(seq + 1 - lag_) % watermarks_.size()].load(std::memory_order_relaxed);
}

IngestPipeline::IngestPipeline(const IngestOptions& options, MetricEngine& engine,
                               WatermarkPolicy& watermarks, RuleRunner* rules,
                               std::function<void(IngestBatch&)> on_complete)
    : options_(options),
      engine_(engine),
      watermarks_(watermarks),
      rules_(rules),
      on_complete_(std::move(on_complete)) {
  const size_t count = std::max(options_.batches, options_.in_flight);
  batches_.reserve(count);
  for (size_t i = 0; i < count; ++i) {
    batches_.push_back(std::make_unique<IngestBatch>());
    free_.push(batches_.back().get());
  }
}

IngestPipeline::IngestPipeline(const IngestOptions& options, NovaGiftMetrics& metrics,
                               WatermarkPolicy& watermarks, RuleRunner* rules,
                               std::function<void(IngestBatch&)> on_complete)
    : IngestPipeline(options, watermarks, rules, std::move(on_complete),
                     std::make_unique<NovaGiftEngine>(metrics, options.max_record_bytes)) {}

IngestPipeline::IngestPipeline(const IngestOptions& options, WatermarkPolicy& watermarks,
                               RuleRunner* rules, std::function<void(IngestBatch&)> on_complete,
                               std::unique_ptr<MetricEngine> engine)
    : IngestPipeline(options, *engine, watermarks, rules, std::move(on_complete)) {
  owned_engine_ = std::move(engine);
}

IngestBatch* IngestPipeline::NextFree() {
  IngestBatch* batch = nullptr;
  free_.pop(batch);
  return batch;
}

void IngestPipeline::Release(IngestBatch* batch) { free_.push(batch); }

void IngestPipeline::Submit(IngestBatch* batch) {
  watermarks_.Submitted(*batch);
  ++submitted_count_;
  submitted_.push(batch);
}

void IngestPipeline::EndInput() { submitted_.push(nullptr); }

void IngestPipeline::Drain() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return completed_ == submitted_count_; });
}

uint64_t IngestPipeline::records() {
  std::lock_guard<std::mutex> lock(mu_);
  return records_;
}

void IngestPipeline::Process(IngestBatch& batch) {
  const int worker = tbb::this_task_arena::current_thread_index();
  MetricEngine& engine = engine_;
  engine.Start(worker, batch.watermark_ms);
  DeadLetterBatch* rejected = options_.dead_letters ? &batch.rejected : nullptr;
  if (rejected) rejected->Clear();
  const RecordLimits limits{.future_limit_us = batch.future_limit_us};
  if (batch.from_kafka) {
    const KafkaBatch& messages = batch.messages;
    const char* base = messages.buffer.data();
    // The newest event time of each partition, taken at each change of
    // partition (records come in runs of one partition).
    batch.partition_newest_us.assign(messages.offsets.size(), INT64_MIN);
    size_t run = messages.offsets.size();  // index in offsets of the current run's partition
    auto end_run = [&] {
      if (run < messages.offsets.size()) {
        int64_t& newest = batch.partition_newest_us[run];
        newest = std::max(newest, engine.TakeNewest(worker));
      }
    };
    // A record's input is its topic's index in what the source reads: the
    // NovaGift Topic values, or a spec's inputs in order.
    for (const KafkaRecord& r : messages.records) {
      if (run >= messages.offsets.size() || messages.offsets[run].partition != r.partition ||
          messages.offsets[run].input != r.input) {
        end_run();
        run = 0;
        while (run < messages.offsets.size() && (messages.offsets[run].partition != r.partition ||
                                                 messages.offsets[run].input != r.input)) {
          ++run;
        }
      }
      const DeadLetterOrigin origin{.partition = r.partition, .offset = r.offset};
      if (r.oversize) {
        engine.Reject(worker, r.input, RejectReason::kOversize);
        // The payload was not copied: only its length is known.
        if (rejected) rejected->Add(RejectReason::kOversize, r.input, origin, {}, r.size);
      } else {
        engine.ProcessRecord(worker, r.input, base + r.begin, r.size,
                             messages.buffer.size() - r.begin, rejected, origin, limits);
      }
    }
    end_run();
    batch.records = messages.records.size();
    batch.newest_us = INT64_MIN;
    for (const int64_t newest : batch.partition_newest_us) {
      batch.newest_us = std::max(batch.newest_us, newest);
    }
    engine.EndBatch(worker);
  } else {
    const Chunk& chunk = batch.lines;
    for (uint32_t i = 0; i < chunk.oversize_lines; ++i) {
      engine.Reject(worker, batch.input, RejectReason::kOversize);
      if (rejected && i < chunk.dropped.size()) {
        const DeadLetterOrigin origin{.line = ++rejected->lines_seen};
        rejected->Add(RejectReason::kOversize, batch.input, origin, chunk.dropped[i].head,
                      chunk.dropped[i].length);
      }
    }
    batch.records =
        chunk.oversize_lines + engine.ProcessLines(worker, batch.input, chunk.data, chunk.size,
                                                   chunk.capacity, rejected, limits);
    batch.newest_us = engine.EndBatch(worker);
  }
}

void IngestPipeline::Run(const std::function<IngestBatch*()>& pull) {
  tbb::task_arena arena(options_.threads);
  arena.execute([&] {
    tbb::parallel_pipeline(
        options_.in_flight,
        tbb::make_filter<void, IngestBatch*>(tbb::filter_mode::serial_in_order,
                                             [&](tbb::flow_control& fc) -> IngestBatch* {
                                               IngestBatch* batch = nullptr;
                                               if (pull) {
                                                 batch = pull();
                                               } else {
                                                 submitted_.pop(batch);
                                               }
                                               if (batch == nullptr) {
                                                 fc.stop();
                                                 return nullptr;
                                               }
                                               watermarks_.Enter(*batch);
                                               return batch;
                                             }) &
            tbb::make_filter<IngestBatch*, IngestBatch*>(tbb::filter_mode::parallel,
                                                         [&](IngestBatch* batch) -> IngestBatch* {
                                                           Process(*batch);
                                                           return batch;
                                                         }) &
            tbb::make_filter<IngestBatch*, void>(
                tbb::filter_mode::serial_in_order, [&](IngestBatch* batch) {
                  // Only now are the batch's records in the metrics.
                  on_complete_(*batch);
                  const std::optional<int64_t> closable = watermarks_.Complete(*batch);
                  const uint64_t records = batch->records;
                  if (rules_ != nullptr && closable) rules_->AdvanceTo(*closable);
                  free_.push(batch);
                  std::lock_guard<std::mutex> lock(mu_);
                  records_ += records;
                  ++completed_;
                  cv_.notify_all();
                }));
  });
}

}  // namespace novapulse
