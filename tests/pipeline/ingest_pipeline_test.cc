// IngestPipeline, the one pipeline of run and replay, fed both ways (pulled
// in its input stage, submitted from another thread), with both watermark
// policies.
#include "pipeline/ingest_pipeline.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "sinks/exposition.h"

namespace novapulse {
namespace {

// An access-log line stamped `second` seconds after 2026-11-26T00:00:00Z.
std::string AccessLine(int second, int status = 200) {
  return absl::StrFormat(
      R"({"ts":"2026-11-26T%02d:%02d:%02d.000Z","method":"GET","route":"/api/themes",)"
      R"("path":"/api/themes","status":%d,"duration_ms":12.5,"bytes_out":10,)"
      R"("request_id":"r","instance":"api-1"})",
      second / 3600, second / 60 % 60, second % 60, status);
}

constexpr int64_t kDayStartMs = 1'795'651'200'000;  // 2026-11-26T00:00:00Z

// Fills `chunk` with the lines, padded as a source leaves them.
void SetLines(IngestBatch* batch, const std::vector<std::string>& lines) {
  Chunk* chunk = &batch->lines;
  std::string text;
  for (const std::string& line : lines) absl::StrAppend(&text, line, "\n");
  chunk->buffer.assign(text.begin(), text.end());
  chunk->buffer.resize(text.size() + simdjson::SIMDJSON_PADDING, ' ');
  chunk->data = chunk->buffer.data();
  chunk->size = text.size();
  chunk->capacity = chunk->buffer.size();
  batch->input = InputOfTopic(Topic::kAccessLog);
  chunk->oversize_lines = 0;
}

std::string Metric(NovaGiftMetrics& metrics, std::string_view series) {
  std::string text;
  WritePrometheusText(metrics.Snapshot(), &text);
  const size_t at = text.find(std::string(series) + " ");
  if (at == std::string::npos) return "absent";
  const size_t end = text.find('\n', at);
  return text.substr(at + series.size() + 1, end - at - series.size() - 1);
}

constexpr std::string_view kAccepted =
    R"(novapulse_events_total{topic="novagift.access-log",result="accepted"})";

TEST(IngestPipelineTest, SubmittedBatchesAreAllCountedAndDrainWaitsForThem) {
  for (int threads : {1, 2}) {
    NovaGiftMetrics metrics(threads);
    ChunkLagWatermark watermarks(1, 4, std::nullopt);
    std::atomic<uint64_t> completed{0};
    IngestPipeline pipeline({.threads = threads, .in_flight = 4, .batches = 4}, metrics, watermarks,
                            nullptr, [&](IngestBatch&) { ++completed; });
    std::thread workers([&] { pipeline.Run(); });
    constexpr int kBatches = 50;
    constexpr int kLinesPerBatch = 20;
    for (int b = 0; b < kBatches; ++b) {
      IngestBatch* batch = pipeline.NextFree();
      std::vector<std::string> lines;
      for (int i = 0; i < kLinesPerBatch; ++i) lines.push_back(AccessLine(b * kLinesPerBatch + i));
      SetLines(batch, lines);
      pipeline.Submit(batch);
      if (b % 10 == 9) {
        pipeline.Drain();
        EXPECT_EQ(completed.load(), static_cast<uint64_t>(b + 1));
        EXPECT_EQ(pipeline.records(), static_cast<uint64_t>((b + 1) * kLinesPerBatch));
      }
    }
    // A batch taken and given back unused is no input.
    pipeline.Release(pipeline.NextFree());
    pipeline.EndInput();
    workers.join();
    EXPECT_EQ(pipeline.records(), uint64_t{kBatches * kLinesPerBatch});
    EXPECT_EQ(Metric(metrics, kAccepted), absl::StrCat(kBatches * kLinesPerBatch))
        << threads << " threads";
  }
}

TEST(IngestPipelineTest, PulledBatchesEnterInOrderAndCompleteInOrder) {
  NovaGiftMetrics metrics(2);
  ChunkLagWatermark watermarks(1, 5, std::nullopt);
  std::vector<uint64_t> order;
  IngestPipeline pipeline({.threads = 2, .in_flight = 5, .batches = 6}, metrics, watermarks,
                          nullptr,
                          [&](IngestBatch& batch) { order.push_back(batch.input_before); });
  uint64_t next = 0;
  pipeline.Run([&]() -> IngestBatch* {
    if (next == 30) return nullptr;
    IngestBatch* batch = pipeline.NextFree();
    // Uneven batches, so that workers finish out of order.
    std::vector<std::string> lines(next % 3 == 0 ? 200 : 1, AccessLine(static_cast<int>(next)));
    SetLines(batch, lines);
    batch->input_before = next++;  // used here as a sequence number
    return batch;
  });
  ASSERT_EQ(order.size(), 30u);
  for (uint64_t i = 0; i < order.size(); ++i) EXPECT_EQ(order[i], i);
}

TEST(IngestPipelineTest, ChunkLagWatermarkIsTheOneComputedLagChunksBack) {
  constexpr int64_t kLatenessMs = 10'000;
  ChunkLagWatermark watermarks(1, 2, kLatenessMs);  // lag: kMinLagChunks
  constexpr size_t kLag = ChunkLagWatermark::kMinLagChunks;
  std::vector<int64_t> computed;  // after each completed chunk
  for (size_t i = 0; i < 12; ++i) {
    IngestBatch batch;
    watermarks.Enter(batch);
    if (i < kLag) {
      EXPECT_EQ(batch.watermark_ms, INT64_MIN) << i;
    } else {
      EXPECT_EQ(batch.watermark_ms, computed[i - kLag]) << i;
    }
    batch.newest_us = (kDayStartMs + static_cast<int64_t>(i) * 60'000) * 1000;
    const std::optional<int64_t> closable = watermarks.Complete(batch);
    computed.push_back(kDayStartMs + static_cast<int64_t>(i) * 60'000 - kLatenessMs);
    // Slots may close up to the watermark the next chunk to enter gets.
    if (i + 1 < kLag) {
      EXPECT_FALSE(closable.has_value()) << i;
    } else {
      ASSERT_TRUE(closable.has_value()) << i;
      EXPECT_EQ(*closable, computed[i + 1 - kLag]) << i;
    }
  }
  EXPECT_EQ(watermarks.newest_ms(), kDayStartMs + 11 * 60'000);
}

TEST(IngestPipelineTest, ChunkLagWatermarkWaitsForTheSlowestInputStillReading) {
  ChunkLagWatermark watermarks(3, 1, /*lateness_ms=*/0);
  watermarks.MarkEmpty(2);  // no chunk at all: never holds the watermark back
  auto complete = [&](size_t source, int64_t newest_ms, bool last) {
    IngestBatch batch;
    watermarks.Enter(batch);
    batch.source = source;
    batch.newest_us = newest_ms * 1000;
    batch.last_of_source = last;
    watermarks.Complete(batch);
  };
  complete(0, kDayStartMs + 50'000, false);
  complete(1, kDayStartMs + 10'000, false);
  complete(0, kDayStartMs + 90'000, false);
  complete(1, kDayStartMs + 20'000, true);  // input 1 ends: input 0 alone holds it
  complete(0, kDayStartMs + 95'000, false);
  // The watermarks computed so far: -, 10 s, 10 s, 90 s, 95 s; the sixth
  // chunk gets the first one's.
  std::vector<int64_t> entered;
  for (int i = 0; i < 5; ++i) {
    IngestBatch batch;
    watermarks.Enter(batch);
    entered.push_back(batch.watermark_ms);
  }
  EXPECT_EQ(entered[0], INT64_MIN);  // input 1 had not read yet: nothing to go by
  EXPECT_EQ(entered[1], kDayStartMs + 10'000);
  EXPECT_EQ(entered[2], kDayStartMs + 10'000);
  EXPECT_EQ(entered[3], kDayStartMs + 90'000);
  EXPECT_EQ(entered[4], kDayStartMs + 95'000);
  EXPECT_EQ(watermarks.newest_ms(), kDayStartMs + 95'000);
}

TEST(IngestPipelineTest, EventClockWatermarkRejectsEventsTooFarInTheFuture) {
  EventClock clock(/*lateness_ms=*/30'000, /*idle_after_ms=*/5'000);
  EventClockWatermark watermarks(clock, /*max_future_ms=*/60'000);
  NovaGiftMetrics metrics(1);
  IngestPipeline pipeline({.threads = 1, .in_flight = 2, .batches = 2}, metrics, watermarks,
                          nullptr, [](IngestBatch&) {});
  const int64_t now_s = std::chrono::duration_cast<std::chrono::seconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
  // Lines an hour ahead of the wall clock, and one a minute behind it.
  auto line_at = [](int64_t unix_s) {
    const absl::Time t = absl::FromUnixSeconds(unix_s);
    return absl::StrCat(R"({"ts":")",
                        absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone()),
                        R"(","method":"GET","route":"/r","path":"/r","status":200,)"
                        R"("duration_ms":1,"bytes_out":1,"request_id":"r","instance":"i"})");
  };
  // Stamped when submitted (the limit is the wall clock's then).
  IngestBatch* batch = pipeline.NextFree();
  SetLines(batch, {line_at(now_s + 3600), line_at(now_s + 3600), line_at(now_s - 60)});
  pipeline.Submit(batch);
  EXPECT_GE(batch->future_limit_us, (now_s + 60) * 1'000'000);
  EXPECT_LT(batch->future_limit_us, (now_s + 3600) * 1'000'000);
  pipeline.EndInput();
  pipeline.Run();
  EXPECT_EQ(Metric(metrics, kAccepted), "1");
  EXPECT_EQ(
      Metric(
          metrics,
          R"(novapulse_parse_errors_total{topic="novagift.access-log",reason="future_timestamp"})"),
      "2");
  EXPECT_GE(clock.watermark_ms(), (now_s - 60) * 1000 - 30'000);
}

// Appends one access-log record of `partition` to a Kafka batch.
void AddMessage(KafkaBatch* batch, int32_t partition, int64_t offset, const std::string& payload) {
  KafkaRecord record{.begin = batch->used,
                     .size = payload.size(),
                     .input = InputOfTopic(Topic::kAccessLog),
                     .partition = partition,
                     .offset = offset};
  batch->buffer.resize(batch->used + payload.size() + simdjson::SIMDJSON_PADDING, ' ');
  std::copy(payload.begin(), payload.end(), batch->buffer.begin() + batch->used);
  batch->used += payload.size();
  batch->records.push_back(record);
  for (KafkaPartitionOffset& o : batch->offsets) {
    if (o.partition == partition) {
      o.next_offset = offset + 1;
      return;
    }
  }
  batch->offsets.push_back({InputOfTopic(Topic::kAccessLog), partition, offset + 1});
}

TEST(IngestPipelineTest, EventClockWatermarkHoldsTimeForTheSlowestPartition) {
  EventClock clock(/*lateness_ms=*/30'000, /*idle_after_ms=*/5'000);
  EventClockWatermark watermarks(clock, /*max_future_ms=*/int64_t{1} << 50);
  watermarks.Assigned(InputOfTopic(Topic::kAccessLog), 0, true);
  watermarks.Assigned(InputOfTopic(Topic::kAccessLog), 1, true);
  NovaGiftMetrics metrics(1);
  std::vector<std::vector<int64_t>> partition_newest;
  int64_t after_first = 0;
  IngestPipeline pipeline(
      {.threads = 1, .in_flight = 2, .batches = 2}, metrics, watermarks, nullptr,
      [&](IngestBatch& batch) { partition_newest.push_back(batch.partition_newest_us); });
  std::thread feeder([&] {
    // Partition 0 runs 20 minutes ahead of partition 1, in runs that
    // alternate within the batch; a malformed record of 1 in between.
    IngestBatch* batch = pipeline.NextFree();
    batch->from_kafka = true;
    batch->messages.Clear();
    AddMessage(&batch->messages, 0, 0, AccessLine(1200));
    AddMessage(&batch->messages, 0, 1, AccessLine(1260));
    AddMessage(&batch->messages, 1, 0, AccessLine(10));
    AddMessage(&batch->messages, 1, 1, "{not json");
    AddMessage(&batch->messages, 0, 2, AccessLine(1230));
    AddMessage(&batch->messages, 1, 2, AccessLine(70));
    pipeline.Submit(batch);
    pipeline.Drain();
    after_first = clock.watermark_ms();
    // Partition 1 reaches its end, with nothing new.
    batch = pipeline.NextFree();
    batch->from_kafka = true;
    batch->messages.Clear();
    batch->messages.ends.push_back({InputOfTopic(Topic::kAccessLog), 1, 3});
    pipeline.Submit(batch);
    pipeline.EndInput();
  });
  pipeline.Run();
  feeder.join();
  ASSERT_EQ(partition_newest.size(), 2u);
  EXPECT_EQ(partition_newest[0], (std::vector<int64_t>{(kDayStartMs + 1'260'000) * 1000,
                                                       (kDayStartMs + 70'000) * 1000}));
  EXPECT_TRUE(partition_newest[1].empty());
  EXPECT_EQ(after_first, kDayStartMs + 70'000 - 30'000);
  EXPECT_EQ(clock.watermark_ms(), kDayStartMs + 1'260'000 - 30'000);
  EXPECT_EQ(Metric(metrics, kAccepted), "5");
}

}  // namespace
}  // namespace novapulse
