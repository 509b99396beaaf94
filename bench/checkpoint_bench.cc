// Checkpoint cost on the NovaGift default state: one generated day of both
// topics (default rates, with an error spike, an outbox backlog and a claim
// drop) aggregated by 2 shards with the NovaGift rules
// (configs/alerts/novagift.yml) at the default series limit, lateness and
// ring size, as `novapulse run` holds it. Measures the encoding, the durable
// write (temporary file, fsync, rename, fsync of the directory) and both
// together, which is what a checkpoint holds the pipeline for once it has
// drained; and the decoding of a restart. Write and Checkpoint are wall
// time (fsync waits); at a 10 s interval the pipeline is held for
// Checkpoint's time plus the drain once per 10 s.
//   build/checkpoint_bench                               # writes under /tmp
//   NOVAPULSE_CHECKPOINT_DIR=/var/lib/x build/checkpoint_bench
#include <benchmark/benchmark.h>
#include <simdjson.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gen/traffic_gen.h"
#include "parsers/event_time_sniff.h"
#include "parsers/record_parser.h"
#include "pipeline/checkpoint.h"
#include "pipeline/record_worker.h"
#include "pipeline/rule_files.h"
#include "pipeline/service.h"

namespace novapulse {
namespace {

constexpr int kShards = 2;

struct State {
  std::unique_ptr<RuleRunner> rules;
  std::unique_ptr<NovaGiftMetrics> metrics;
  std::unique_ptr<EventClock> clock;
  novapulse::CheckpointParts checkpointed() const {
    return novapulse::RunCheckpointParts(metrics.get(), clock.get(), rules.get());
  }
};

State Build() {
  State s;
  absl::StatusOr<RuleSet> set =
      LoadRuleFiles({std::string(NOVAPULSE_SOURCE_DIR) + "/configs/alerts/novagift.yml"});
  if (!set.ok()) {
    std::fprintf(stderr, "rules: %s\n", set.status().ToString().c_str());
    std::abort();
  }
  s.rules = *RuleRunner::Build(*std::move(set), RuleRunnerOptions{});
  s.metrics =
      std::make_unique<NovaGiftMetrics>(kShards, kDefaultSeriesLimit, &s.rules->window_spec());
  s.rules->Attach(&s.metrics->store());
  s.clock = std::make_unique<EventClock>(30'000, 5'000);
  return s;
}

// Feeds generated lines in batches, alternating shards, the way the
// pipeline does.
class FeedingSink : public TrafficSink {
 public:
  explicit FeedingSink(State* state) : state_(state), parser_(1 << 20) {}
  absl::Status Write(Topic topic, std::string_view line) override {
    batch_.emplace_back(topic, std::string(line));
    if (batch_.size() == 1000) Flush();
    return absl::OkStatus();
  }
  absl::Status Finish() override {
    Flush();
    state_->rules->WaitFor(state_->clock->watermark_ms());
    return absl::OkStatus();
  }

 private:
  void Flush() {
    if (batch_.empty()) return;
    if (!state_->rules->started()) {
      int64_t ms = 0;
      if (FirstLineEventTime(batch_.front().second, &ms)) state_->rules->Start(ms);
    }
    NovaGiftMetrics::Writer& writer = state_->metrics->writer(shard_);
    shard_ = (shard_ + 1) % kShards;
    writer.SetWatermark(state_->clock->BeginBatch());
    for (auto& [topic, line] : batch_) {
      const size_t len = line.size();
      line.resize(len + simdjson::SIMDJSON_PADDING);
      ProcessRecord(topic, line.data(), len, line.size(), parser_, writer);
    }
    const int64_t newest = writer.EndBatch();
    state_->rules->AdvanceTo(state_->clock->EndBatch(newest, 0));
    batch_.clear();
  }

  State* state_;
  RecordParser parser_;
  std::vector<std::pair<Topic, std::string>> batch_;
  int shard_ = 0;
};

State& DayState() {
  static State* state = [] {
    auto* s = new State(Build());
    GenConfig config;
    config.duration_us = 24LL * 3600 * 1'000'000;
    for (const char* spec :
         {"error_spike@10h+30m", "outbox_backlog@14h+40m", "claim_drop@18h+3h"}) {
      config.incidents.push_back(*ParseIncidentSpec(spec, config.start_us));
    }
    FeedingSink sink(s);
    absl::StatusOr<GenStats> stats = GenerateTraffic(config, sink);
    if (!stats.ok() || !sink.Finish().ok()) std::abort();
    return s;
  }();
  return *state;
}

std::string Dir() {
  const char* dir = std::getenv("NOVAPULSE_CHECKPOINT_DIR");
  return dir != nullptr
             ? dir
             : (std::filesystem::temp_directory_path() / "novapulse-ckpt-bench").string();
}

void BM_Encode(benchmark::State& bench) {
  State& s = DayState();
  size_t bytes = 0;
  for (auto _ : bench) {
    std::string payload = EncodeCheckpoint(s.checkpointed(), {{"t", 0, 1}}, 0);
    bytes = payload.size();
    benchmark::DoNotOptimize(payload);
  }
  bench.counters["bytes"] = static_cast<double>(bytes);
  bench.counters["window_series"] = static_cast<double>(s.rules->history()->series());
}
BENCHMARK(BM_Encode)->Unit(benchmark::kMillisecond);

void BM_Write(benchmark::State& bench) {
  State& s = DayState();
  const std::string payload = EncodeCheckpoint(s.checkpointed(), {{"t", 0, 1}}, 0);
  std::unique_ptr<CheckpointFile> file = *CheckpointFile::Build({.dir = Dir()});
  for (auto _ : bench) {
    if (!file->Write(payload).ok()) bench.SkipWithError("write failed");
  }
  bench.counters["bytes"] = static_cast<double>(payload.size());
}
BENCHMARK(BM_Write)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Checkpoint(benchmark::State& bench) {
  State& s = DayState();
  std::unique_ptr<CheckpointFile> file = *CheckpointFile::Build({.dir = Dir()});
  size_t bytes = 0;
  for (auto _ : bench) {
    const std::string payload = EncodeCheckpoint(s.checkpointed(), {{"t", 0, 1}}, 0);
    bytes = payload.size();
    if (!file->Write(payload).ok()) bench.SkipWithError("write failed");
  }
  bench.counters["bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_Checkpoint)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Restore(benchmark::State& bench) {
  State& s = DayState();
  const std::string payload = EncodeCheckpoint(s.checkpointed(), {{"t", 0, 1}}, 0);
  for (auto _ : bench) {
    bench.PauseTiming();
    State fresh = Build();
    bench.ResumeTiming();
    absl::StatusOr<RestoredCheckpoint> restored =
        DecodeCheckpoint(payload, fresh.checkpointed(), 0);
    if (!restored.ok() || !restored->part("rules")->restored) bench.SkipWithError("restore failed");
    bench.PauseTiming();
    fresh.rules->Stop();
    fresh = State();
    bench.ResumeTiming();
  }
}
BENCHMARK(BM_Restore)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace novapulse
