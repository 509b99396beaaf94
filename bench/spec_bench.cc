// Metric spec benchmarks: the worker's block loop, parse and aggregation, on
// one thread.
//   - NovaGift traffic (the generated corpus of parsers_bench) through the
//     compiled-in path (ProcessLines) and through configs/metrics/novagift.yaml
//     (ProcessSpecLines): the ratio is what moving NovaGift onto the spec
//     costs. Both are checked to accept every line.
//   - The Caddy example (configs/metrics/examples/caddy.yaml) over its sample
//     log, repeated into one block.
//   - Loading and compiling a 200-metric spec.
// Reports items/s (records) and bytes/s.
//
//   build-bench/spec_bench --benchmark_min_time=0.5
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "aggregators/novagift_metrics.h"
#include "aggregators/spec_metrics.h"
#include "base/str_cat.h"
#include "bench/bench_corpus.h"
#include "pipeline/record_worker.h"
#include "spec/plan.h"

namespace novapulse::bench {
namespace {

std::shared_ptr<const spec::SpecPlan> PlanOf(const std::string& path) {
  absl::StatusOr<spec::MetricSpecSet> spec = spec::LoadMetricSpec(path);
  if (!spec.ok()) return nullptr;
  absl::StatusOr<std::shared_ptr<const spec::SpecPlan>> plan =
      spec::SpecPlan::Compile(*std::move(spec));
  return plan.ok() ? *plan : nullptr;
}

std::string Source(std::string_view relative) { return Cat(NOVAPULSE_SOURCE_DIR, "/", relative); }

// The lines as one block, padded; `size` is the block without the padding.
std::string Block(const std::vector<PaddedLine>& lines, size_t* size) {
  std::string block;
  for (const PaddedLine& line : lines) {
    block.append(line.view());
    block += '\n';
  }
  *size = block.size();
  block.append(simdjson::SIMDJSON_PADDING, ' ');
  return block;
}

uint64_t Accepted(const std::vector<FamilySnapshot>& families) {
  uint64_t accepted = 0;
  for (const FamilySnapshot& f : families) {
    if (f.def->name != "novapulse_events_total") continue;
    for (size_t s = 0; s < f.size(); ++s) {
      if (f.keys[s].ends_with("accepted")) accepted += f.Word(s, 0);
    }
  }
  return accepted;
}

void Finish(benchmark::State& state, uint64_t accepted, size_t lines, size_t size,
            const spec::SpecDecoder* decoder = nullptr) {
  if (accepted != state.iterations() * lines) state.SkipWithError("a line was rejected");
  if (decoder != nullptr && accepted > 0) {
    // The share of records read straight from the block's index.
    state.counters["block_path"] =
        static_cast<double>(decoder->streamed()) / static_cast<double>(accepted);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(lines));
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(size));
}

void BM_NovaGiftCompiledIn(benchmark::State& state, Topic topic) {
  const std::vector<PaddedLine>& lines =
      topic == Topic::kAccessLog ? AccessCorpus() : OutboxCorpus();
  size_t size = 0;
  const std::string block = Block(lines, &size);
  NovaGiftMetrics metrics(1);
  RecordParser parser;
  for (auto _ : state) {
    ProcessLines(topic, block.data(), size, block.size(), parser, metrics.writer(0));
  }
  Finish(state, Accepted(metrics.Snapshot()), lines.size(), size);
}
BENCHMARK_CAPTURE(BM_NovaGiftCompiledIn, access_log, Topic::kAccessLog);
BENCHMARK_CAPTURE(BM_NovaGiftCompiledIn, outbox, Topic::kOutbox);

void BM_NovaGiftSpec(benchmark::State& state, Topic topic) {
  const std::vector<PaddedLine>& lines =
      topic == Topic::kAccessLog ? AccessCorpus() : OutboxCorpus();
  size_t size = 0;
  const std::string block = Block(lines, &size);
  std::shared_ptr<const spec::SpecPlan> plan = PlanOf(Source("configs/metrics/novagift.yaml"));
  if (plan == nullptr) {
    state.SkipWithError("configs/metrics/novagift.yaml does not load");
    return;
  }
  SpecMetrics metrics(plan, 1);
  spec::SpecDecoder decoder(*plan);
  for (auto _ : state) {
    ProcessSpecLines(static_cast<int>(topic), block.data(), size, block.size(), decoder,
                     metrics.writer(0));
  }
  Finish(state, Accepted(metrics.Snapshot()), lines.size(), size, &decoder);
}
BENCHMARK_CAPTURE(BM_NovaGiftSpec, access_log, Topic::kAccessLog);
BENCHMARK_CAPTURE(BM_NovaGiftSpec, outbox, Topic::kOutbox);

void BM_CaddyExample(benchmark::State& state) {
  std::ifstream in(Source("configs/metrics/examples/caddy-access.log"));
  std::stringstream sample;
  sample << in.rdbuf();
  std::string block;
  size_t lines = 0;
  const std::string text = sample.str();
  while (block.size() < (size_t{4} << 20)) {
    block += text;
    lines += static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
  }
  const size_t size = block.size();
  block.append(simdjson::SIMDJSON_PADDING, ' ');
  std::shared_ptr<const spec::SpecPlan> plan =
      PlanOf(Source("configs/metrics/examples/caddy.yaml"));
  if (plan == nullptr || text.empty()) {
    state.SkipWithError("the Caddy example does not load");
    return;
  }
  SpecMetrics metrics(plan, 1);
  spec::SpecDecoder decoder(*plan);
  for (auto _ : state) {
    ProcessSpecLines(0, block.data(), size, block.size(), decoder, metrics.writer(0));
  }
  Finish(state, Accepted(metrics.Snapshot()), lines, size, &decoder);
}
BENCHMARK(BM_CaddyExample);

// A spec of 200 metrics over 40 fields, each metric with a condition and
// two labels, a quarter of them histograms.
std::string LargeSpec() {
  std::string text = "inputs:\n  - name: app\n    time: ts\n    fields:\n      ts: time\n";
  for (int f = 0; f < 40; ++f) {
    absl::StrAppend(&text, "      f", f, ": {path: obj", f % 4, ".k", f,
                    f % 2 == 0 ? ", type: string, lowercase: true}\n" : ", type: int, min: 0}\n");
  }
  text += "metrics:\n";
  for (int m = 0; m < 200; ++m) {
    const int s = (m % 20) * 2;  // a string field
    const int n = s + 1;         // an int field
    if (m % 4 == 0) {
      absl::StrAppend(&text, "  - {name: app_hist_", m, ", type: histogram, labels: [f", s,
                      "], value: f", n, ", buckets: [1, 5, 10, 50, 100], when: 'f", n, " > 0 and f",
                      s, " =~ \"a.*\"'}\n");
    } else {
      absl::StrAppend(&text, "  - {name: app_total_", m, ", type: counter, labels: [f", s, ", f",
                      (s + 2) % 40, "], when: 'f", n, " in [1, 2, 3] or not f", s,
                      " exists', help: Some help text.}\n");
    }
  }
  return text;
}

void BM_CompileSpec200(benchmark::State& state) {
  const std::string text = LargeSpec();
  for (auto _ : state) {
    absl::StatusOr<spec::MetricSpecSet> spec = spec::ParseMetricSpec(text, "large.yaml");
    if (!spec.ok()) {
      state.SkipWithError(std::string(spec.status().message()).c_str());
      return;
    }
    absl::StatusOr<std::shared_ptr<const spec::SpecPlan>> plan =
        spec::SpecPlan::Compile(*std::move(spec));
    if (!plan.ok()) {
      state.SkipWithError(std::string(plan.status().message()).c_str());
      return;
    }
    benchmark::DoNotOptimize(plan);
  }
}
BENCHMARK(BM_CompileSpec200)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace novapulse::bench
