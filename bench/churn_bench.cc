// Series churn: a day of access-log events in which a million distinct
// routes each live for half a minute (three requests, 10 s apart), recorded
// into a two-shard NovaGiftMetrics as `run` records them, with the sweeps
// `run` makes (metrics.expire_after 5m: one every 30 s of event time, see
// SeriesExpiry::Interval). Reported, for expiry on and off, and for expiry
// on with the shipped NovaGift rules reading the windows (mode 2: the
// windows take the same sweeps, and the rules evaluate every 15 s of event
// time on the runner's thread):
//   live_series_max        most series of http_requests_total at once
//   metrics_bytes_max      largest /metrics text (Prometheus format) over the day,
//                          rendered once per hour of event time
//   store_bytes_hour1/24   MetricStore::MemoryBytes() after the 1st and 24th hour
//   rss_growth_hour1/24    growth of the resident set from before the metrics
//                          were built, after the 1st and 24th hour (malloc_trim'd)
//   overflowed             events whose route folded into __overflow__
//   sweeps, sweep_us_mean  expiry sweeps and the mean time of one
//   window_bytes_hour1/24  mode 2: WindowHistory::MemoryBytes() (slot rings and
//                          the sample streams the rules read)
//   window_series_max      mode 2: most sample streams in the windows at once
// Flat memory: hour 24 no higher than hour 1. One iteration each; the time
// is the whole day's.
//   build/churn_bench
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "aggregators/metric_store.h"
#include "aggregators/novagift_metrics.h"
#include "bench/resident_bytes.h"
#include "parsers/event.h"
#include "pipeline/rule_files.h"
#include "pipeline/rule_runner.h"
#include "sinks/exposition.h"

namespace novapulse::bench {
namespace {

constexpr int64_t kDayMs = 86'400'000;
constexpr int64_t kHourMs = 3'600'000;
constexpr size_t kRoutes = 1'000'000;
constexpr int64_t kRequestGapMs = 10'000;
constexpr int kRequestsPerRoute = 3;
constexpr int64_t kExpireAfterMs = 5 * 60'000;
constexpr int64_t kSweepMs = kExpireAfterMs / 10;
constexpr int64_t kStartMs = 1'795'651'200'000;  // 2026-11-27T00:00:00Z
constexpr int64_t kLatenessMs = 30'000;
// Mode 2: the writers end a batch, and the rules may close slots, this often.
constexpr int64_t kBatchMs = 1'000;

void BM_RouteChurnDay(benchmark::State& state) {
  const bool expire = state.range(0) != 0;
  const bool with_rules = state.range(0) == 2;
  for (auto _ : state) {
    state.PauseTiming();
    const size_t rss_before = ResidentBytes();
    std::unique_ptr<RuleRunner> rules;
    if (with_rules) {
      absl::StatusOr<RuleSet> set =
          LoadRuleFiles({std::string(NOVAPULSE_SOURCE_DIR) + "/configs/alerts/novagift.yml"});
      absl::StatusOr<std::unique_ptr<RuleRunner>> runner =
          set.ok() ? RuleRunner::Build(*std::move(set), {}) : set.status();
      if (!runner.ok()) {
        state.SkipWithError(std::string(runner.status().message()).c_str());
        return;
      }
      rules = *std::move(runner);
    }
    state.ResumeTiming();
    MetricExpiry expiry;
    if (expire) expiry.default_ms = kExpireAfterMs;
    NovaGiftMetrics metrics(/*num_shards=*/2, kDefaultSeriesLimit,
                            rules ? &rules->window_spec() : nullptr, expiry);
    if (rules) {
      rules->Attach(&metrics.store());
      rules->Start(kStartMs);
    }
    size_t window_series_max = 0;
    size_t window_hour1 = 0;
    int64_t next_batch = kStartMs + kBatchMs;
    size_t live_max = 0;
    size_t sweeps = 0;
    double sweep_seconds = 0;
    size_t text_max = 0;
    size_t store_hour1 = 0;
    size_t rss_hour1 = 0;
    int64_t next_sweep = kStartMs + kSweepMs;
    int64_t next_hour = kStartMs + kHourMs;
    std::string route;
    AccessLogEvent e;
    e.method = "GET";
    e.status = 200;
    e.duration_ms = 12;
    // Route i starts at i * (day / routes); its k-th request comes k gaps
    // later. Event k of route i is merged into time order by walking the
    // start times and, at each, the requests due of the routes before.
    const int64_t spacing_us = kDayMs * 1000 / static_cast<int64_t>(kRoutes);
    const size_t lag = static_cast<size_t>(kRequestGapMs * 1000 / spacing_us);
    for (size_t i = 0; i < kRoutes + lag * kRequestsPerRoute; ++i) {
      const int64_t t_us = kStartMs * 1000 + static_cast<int64_t>(i) * spacing_us;
      for (int k = 0; k < kRequestsPerRoute; ++k) {
        if (i < lag * static_cast<size_t>(k) || i - lag * static_cast<size_t>(k) >= kRoutes) {
          continue;
        }
        route = "/api/items/" + std::to_string(i - lag * static_cast<size_t>(k));
        e.route = route;
        e.ts_us = t_us;
        metrics.writer(static_cast<int>((i + static_cast<size_t>(k)) % 2)).Record(e);
      }
      const int64_t t_ms = t_us / 1000;
      if (rules && t_ms >= next_batch) {
        // A batch ends: the writers publish their spilled updates, and the
        // rules may close the slots the watermark has passed.
        const int64_t watermark = t_ms - kLatenessMs;
        for (int w = 0; w < 2; ++w) {
          metrics.writer(w).EndBatch();
          metrics.writer(w).SetWatermark(watermark);
        }
        rules->AdvanceTo(watermark);
        next_batch += kBatchMs;
      }
      if (expire && t_ms >= next_sweep) {
        const auto start = std::chrono::steady_clock::now();
        ExpireSeries(metrics, rules.get(), t_ms);
        sweep_seconds +=
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        ++sweeps;
        next_sweep += kSweepMs;
      }
      live_max = std::max(live_max, metrics.store().index(kHttpRequestsTotal).live());
      if (t_ms >= next_hour) {
        next_hour += kHourMs;
        state.PauseTiming();
        text_max = std::max(text_max, RenderPrometheusText(metrics.Snapshot()).size());
        if (rules) {
          rules->WaitFor(t_ms - kLatenessMs);
          window_series_max = std::max(window_series_max, rules->history()->series());
        }
        if (store_hour1 == 0) {
          store_hour1 = metrics.store().MemoryBytes();
          rss_hour1 = ResidentBytes() - rss_before;
          if (rules) window_hour1 = rules->history()->MemoryBytes();
        }
        state.ResumeTiming();
      }
    }
    state.PauseTiming();
    uint64_t overflowed = 0;
    const FamilySnapshot f = metrics.store().Merge(kHttpRequestsTotal);
    for (size_t s = 0; s < f.size(); ++s) {
      if (f.keys[s].find(kOverflowLabelValue) != std::string_view::npos) overflowed += f.Word(s, 0);
    }
    state.counters["live_series_max"] = static_cast<double>(live_max);
    state.counters["metrics_bytes_max"] = static_cast<double>(text_max);
    state.counters["store_bytes_hour1"] = static_cast<double>(store_hour1);
    state.counters["store_bytes_hour24"] = static_cast<double>(metrics.store().MemoryBytes());
    state.counters["rss_growth_hour1"] = static_cast<double>(rss_hour1);
    state.counters["rss_growth_hour24"] = static_cast<double>(ResidentBytes() - rss_before);
    state.counters["overflowed"] = static_cast<double>(overflowed);
    state.counters["sweeps"] = static_cast<double>(sweeps);
    state.counters["sweep_us_mean"] =
        sweeps == 0 ? 0.0 : sweep_seconds * 1e6 / static_cast<double>(sweeps);
    state.counters["events"] = static_cast<double>(kRoutes * kRequestsPerRoute);
    if (rules) {
      rules->WaitFor(kStartMs + kDayMs - kLatenessMs);
      state.counters["window_bytes_hour1"] = static_cast<double>(window_hour1);
      state.counters["window_bytes_hour24"] = static_cast<double>(rules->history()->MemoryBytes());
      state.counters["window_series_max"] = static_cast<double>(window_series_max);
      state.counters["rule_evaluations"] = static_cast<double>(rules->engine().evaluations());
      rules->Stop();
    }
    state.ResumeTiming();
  }
}
BENCHMARK(BM_RouteChurnDay)
    ->ArgName("expire")
    ->Arg(1)
    ->Arg(0)
    ->Arg(2)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace novapulse::bench
