// BackfillWriter benchmarks: Append throughput (samples/s) as the window
// feeds it, every series at every 15 s step, and what Finish() then costs:
// its throughput, the bytes of OpenMetrics text per sample, and the writer's
// heap (which must not grow with the number of steps).
//
// About 1000 series: 400 counters, 100 gauges, 40 histograms of 10 buckets
// (+Inf, _count and _sum make 13 series each). Files go to $TMPDIR (or /tmp)
// and are removed.
//   build-bf/backfill_bench --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "aggregators/metric_def.h"
#include "sinks/backfill_writer.h"

namespace novapulse::bench {
namespace {

constexpr int64_t kT0 = 1795651200000;  // 2026-11-26T00:00:00Z
constexpr int64_t kStep = 15000;

struct Fixture {
  MetricDef counter{
      .name = "http_requests_total", .help = "Requests.", .labels = {"method", "route", "status"}};
  MetricDef gauge{.name = "outbox_queued_total",
                  .help = "Waiting.",
                  .type = MetricType::kGauge,
                  .labels = {"type"}};
  MetricDef hist{.name = "http_request_duration_seconds",
                 .help = "Latency.",
                 .type = MetricType::kHistogram,
                 .labels = {"method", "route"},
                 .buckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}};
  std::vector<uint32_t> series;

  void Register(BackfillWriter& w) {
    for (int i = 0; i < 400; ++i) {
      series.push_back(w.AddSeries(counter, "_total",
                                   {{"method", (i / 4) % 2 == 0 ? "GET" : "POST"},
                                    {"route", absl::StrCat("/api/route/", i / 8)},
                                    {"status", absl::StrCat(200 + i % 4)}}));
    }
    for (int i = 0; i < 100; ++i) {
      series.push_back(w.AddSeries(gauge, "", {{"type", absl::StrCat("gift.event", i)}}));
    }
    for (int i = 0; i < 40; ++i) {
      const BackfillWriter::Labels base = {{"method", i % 2 == 0 ? "GET" : "POST"},
                                           {"route", absl::StrCat("/api/route/", i)}};
      for (size_t b = 0; b <= hist.buckets.size(); ++b) {
        BackfillWriter::Labels labels = base;
        labels.emplace_back("le", b < hist.buckets.size() ? absl::StrCat(hist.buckets[b]) : "+Inf");
        series.push_back(w.AddSeries(hist, "_bucket", std::move(labels)));
      }
      series.push_back(w.AddSeries(hist, "_count", base));
      series.push_back(w.AddSeries(hist, "_sum", base));
    }
  }
};

std::string TempPath() {
  const char* dir = std::getenv("TMPDIR");
  return absl::StrCat(dir != nullptr && *dir != '\0' ? dir : "/tmp", "/backfill_bench.", getpid(),
                      ".om");
}

// Each iteration is one 15 s step: one Append per series. Cumulative values
// as a window produces them: counters and buckets grow, sums are fractional.
void BM_BackfillAppend(benchmark::State& state) {
  const std::string path = TempPath();
  auto created = BackfillWriter::Create(path);
  if (!created.ok()) {
    state.SkipWithError(std::string(created.status().message()).c_str());
    return;
  }
  BackfillWriter& w = **created;
  Fixture fx;
  fx.Register(w);
  int64_t step = 0;
  for (auto _ : state) {
    const int64_t t = kT0 + step * kStep;
    double v = static_cast<double>(step);
    for (uint32_t s : fx.series) {
      w.Append(s, t, v);
      v += 0.37;
    }
    ++step;
  }
  const size_t memory = w.MemoryBytes();
  const auto start = std::chrono::steady_clock::now();
  const absl::Status st = w.Finish();
  const double finish_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!st.ok()) state.SkipWithError(std::string(st.message()).c_str());
  const auto samples = static_cast<double>(w.samples());
  state.SetItemsProcessed(static_cast<int64_t>(w.samples()));
  state.counters["series"] = static_cast<double>(w.series());
  state.counters["steps"] = static_cast<double>(step);
  state.counters["heap_MiB"] = static_cast<double>(memory) / (1 << 20);
  state.counters["finish_samples_per_s"] = samples / finish_s;
  state.counters["bytes_per_sample"] = static_cast<double>(w.bytes_written()) / samples;
  unlink(path.c_str());
}
// 1 day and 7 days at 15 s steps: the heap must be the same.
BENCHMARK(BM_BackfillAppend)->Iterations(5760)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_BackfillAppend)->Iterations(40320)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace novapulse::bench
