// Memory per series: records N distinct series of one family into a
// two-shard NovaGiftMetrics, every series written by both shards (as when two
// workers both see every key), and reports bytes per series two ways:
//   bytes_per_series_accounted  MetricStore::MemoryBytes() growth (indexes and
//                               cells; the workers' series caches are not in it)
//   bytes_per_series_rss        growth of the process's resident set, read from
//                               /proc/self/statm after malloc_trim(0), from
//                               before the NovaGiftMetrics was built
// plus the accounted part split into index and cells, and the rest of the RSS
// growth (rss_minus_accounted: mostly the ShardWriter and Writer caches, and
// malloc's per-allocation overhead).
//
// Targets: <= 256 bytes per counter series, <= 1 KiB per histogram series.
// One iteration each; the time is that of creating the N series.
//   build-bench/memory_bench
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <vector>

#include "aggregators/metric_store.h"
#include "aggregators/novagift_metrics.h"
#include "bench/resident_bytes.h"
#include "parsers/event.h"

namespace novapulse::bench {
namespace {

// Label values built before the baseline, so they are not counted.
std::vector<std::string> Labels(const char* prefix, size_t n) {
  std::vector<std::string> labels;
  labels.reserve(n);
  for (size_t i = 0; i < n; ++i) labels.push_back(prefix + std::to_string(i));
  return labels;
}

size_t FamilyBytes(NovaGiftMetrics& metrics, size_t m, size_t* index_bytes) {
  MetricStore& store = metrics.store();
  *index_bytes = store.index(m).MemoryBytes();
  size_t cells = 0;
  for (int s = 0; s < store.num_shards(); ++s) cells += store.cells(s, m).MemoryBytes();
  return cells;
}

// Builds a 2-shard NovaGiftMetrics, calls `record(metrics, i)` for i < n on
// both shards' behalf, and reports the growth per series of family `m`.
template <typename RecordFn>
void MeasureSeries(benchmark::State& state, size_t m, size_t n, RecordFn record) {
  for (auto _ : state) {
    state.PauseTiming();
    const size_t rss_before = ResidentBytes();
    state.ResumeTiming();
    {
      // A little above n: the overflow series and pre-resolved label sets.
      NovaGiftMetrics metrics(/*num_shards=*/2, n + 64);
      const size_t accounted_before = metrics.store().MemoryBytes();
      size_t index_before = 0;
      const size_t cells_before = FamilyBytes(metrics, m, &index_before);
      const size_t series_before = metrics.store().index(m).size();

      for (size_t i = 0; i < n; ++i) record(metrics, i);

      const size_t series = metrics.store().index(m).size() - series_before;
      if (series != n) {
        state.SkipWithError("recorded fewer distinct series than asked (overflow?)");
        break;
      }
      const size_t accounted = metrics.store().MemoryBytes() - accounted_before;
      size_t index_after = 0;
      const size_t cells = FamilyBytes(metrics, m, &index_after) - cells_before;
      state.PauseTiming();
      const size_t rss = ResidentBytes() - rss_before;
      state.ResumeTiming();
      const double per = 1.0 / static_cast<double>(n);
      state.counters["series"] = static_cast<double>(n);
      state.counters["bytes_per_series_rss"] = static_cast<double>(rss) * per;
      state.counters["bytes_per_series_accounted"] = static_cast<double>(accounted) * per;
      state.counters["index_bytes_per_series"] =
          static_cast<double>(index_after - index_before) * per;
      state.counters["cells_bytes_per_series"] = static_cast<double>(cells) * per;
      state.counters["rss_minus_accounted"] =
          (static_cast<double>(rss) - static_cast<double>(accounted)) * per;
    }
  }
}

void RecordOnBothShards(NovaGiftMetrics& metrics, const OutboxEvent& e) {
  for (int shard = 0; shard < metrics.num_shards(); ++shard) metrics.writer(shard).Record(e);
}

// gifts_created_total{mode,theme}, a pure counter, through the real path:
// queued gift.created outbox records with distinct themes. (They also touch
// gift_value_usd{mode} and outbox_queued_total{type}, one series each.)
// `prefix` sets the key length: "t" keeps "instant\xff" + theme within
// std::string's 15-byte inline buffer; the long prefix does not, as a real
// high-cardinality label value would not.
void BM_CounterSeriesMemory(benchmark::State& state, const char* prefix) {
  const size_t n = static_cast<size_t>(state.range(0));
  const std::vector<std::string> themes = Labels(prefix, n);
  MeasureSeries(state, kGiftsCreated, n, [&](NovaGiftMetrics& metrics, size_t i) {
    OutboxEvent e;
    e.ts_us = 1795651200LL * 1'000'000;
    e.id = "evt-1";
    e.type = OutboxType::kGiftCreated;
    e.status = OutboxStatus::kQueued;
    e.gift_id = "g-1";
    e.mode = "instant";
    e.theme = themes[i];
    e.value_usd = 10;
    RecordOnBothShards(metrics, e);
  });
}
BENCHMARK_CAPTURE(BM_CounterSeriesMemory, short_key, "t")
    ->ArgName("n")
    ->Arg(10000)
    ->Arg(100000)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_CounterSeriesMemory, long_key, "seasonal-campaign-theme-")
    ->ArgName("n")
    ->Arg(10000)
    ->Arg(100000)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

// http_request_duration_seconds{method,route} alone, through ShardWriter:
// the access-log path would also create an http_requests_total series per
// route (see BM_AccessRouteMemory).
void BM_HistogramSeriesMemory(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  const std::vector<std::string> routes = Labels("/api/tenants/", n);
  std::string key;
  MeasureSeries(state, kHttpRequestDuration, n, [&](NovaGiftMetrics& metrics, size_t i) {
    BuildKey(&key, {"GET", routes[i]});
    for (int shard = 0; shard < metrics.num_shards(); ++shard) {
      ShardWriter& w = metrics.writer(shard).shard_writer();
      w.Observe(kHttpRequestDuration, w.Resolve(kHttpRequestDuration, key), 0.02);
    }
  });
}
BENCHMARK(BM_HistogramSeriesMemory)
    ->ArgName("n")
    ->Arg(10000)
    ->Arg(100000)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

// What one new (method, route, status) costs on the access-log path: an
// http_requests_total series, an http_request_duration_seconds series and an
// entry in each Writer's access cache. Reported per route, against the
// histogram family (whose index and cells the split counters show).
void BM_AccessRouteMemory(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  const std::vector<std::string> routes = Labels("/api/tenants/", n);
  MeasureSeries(state, kHttpRequestDuration, n, [&](NovaGiftMetrics& metrics, size_t i) {
    AccessLogEvent e;
    e.ts_us = 1795651200LL * 1'000'000;
    e.method = "GET";
    e.route = routes[i];
    e.status = 200;
    e.duration_ms = 20;
    for (int shard = 0; shard < metrics.num_shards(); ++shard) metrics.writer(shard).Record(e);
  });
}
BENCHMARK(BM_AccessRouteMemory)
    ->ArgName("n")
    ->Arg(10000)
    ->Arg(100000)
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace novapulse::bench
