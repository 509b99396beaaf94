// Aggregation micro-benchmarks: the write side (CellArray::Add, ShardWriter
// Inc/Observe, NovaGiftMetrics::Writer::Record on generated access events,
// on 1 and 2 threads) and the read side (MetricStore::Merge,
// NovaGiftMetrics::Snapshot, RenderPrometheusText) at 1k, 10k and 100k series.
//
//   build-bench/cells_bench --benchmark_min_time=0.2
#include <benchmark/benchmark.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "aggregators/cell_array.h"
#include "aggregators/metric_store.h"
#include "aggregators/novagift_metrics.h"
#include "bench/bench_corpus.h"
#include "parsers/event.h"
#include "parsers/record_parser.h"
#include "sinks/exposition.h"

namespace novapulse::bench {
namespace {

// The access corpus decoded once. Events point into `strings`, whose nodes
// never move, so they outlive the parser that decoded them.
struct DecodedAccess {
  std::set<std::string, std::less<>> strings;
  std::vector<AccessLogEvent> events;

  std::string_view Intern(std::string_view s) { return *strings.emplace(s).first; }
};

const DecodedAccess& AccessEvents() {
  static const DecodedAccess* decoded = [] {
    auto* d = new DecodedAccess;
    RecordParser parser;
    for (const PaddedLine& line : AccessCorpus()) {
      AccessLogEvent e;
      if (parser.ParseAccessLog(line.data(), line.size(), line.capacity(), &e)) continue;
      e.method = d->Intern(e.method);
      e.route = d->Intern(e.route);
      e.error_code = e.error_code.empty() ? std::string_view() : d->Intern(e.error_code);
      d->events.push_back(e);
    }
    return d;
  }();
  return *decoded;
}

// Series ids in random order, so large arrays are not walked sequentially.
std::vector<uint32_t> RandomIds(size_t series, size_t count) {
  std::mt19937 rng(7);
  std::uniform_int_distribution<uint32_t> pick(0, static_cast<uint32_t>(series - 1));
  std::vector<uint32_t> ids(count);
  for (uint32_t& id : ids) id = pick(rng);
  return ids;
}
constexpr size_t kIdSequence = 1 << 14;  // a power of two: the index is masked

void BM_CellArrayAdd(benchmark::State& state) {
  const size_t series = static_cast<size_t>(state.range(0));
  CellArray cells(/*width=*/1, series);
  const std::vector<uint32_t> ids = RandomIds(series, kIdSequence);
  size_t i = 0;
  for (auto _ : state) {
    cells.Add(ids[i++ & (kIdSequence - 1)], 0, 1);
  }
  benchmark::DoNotOptimize(cells.Load(0, 0));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_CellArrayAdd)->ArgName("series")->Arg(64)->Arg(10000);

// Resolves `series` keys of family `m` on shard 0 of a single-shard store.
std::vector<uint32_t> ResolveSeries(ShardWriter& w, size_t m, size_t series) {
  std::vector<uint32_t> ids;
  std::string key;
  for (size_t s = 0; s < series; ++s) {
    const std::string route = "/api/bench/" + std::to_string(s);
    BuildKey(&key, {"GET", route});
    ids.push_back(w.Resolve(m, key));
  }
  return ids;
}

void BM_ShardWriterInc(benchmark::State& state) {
  const size_t series = static_cast<size_t>(state.range(0));
  MetricStore store(NovaGiftMetricDefs(), /*num_shards=*/1, series);
  ShardWriter w(&store, 0, kSeriesOverflowTotal);
  const std::vector<uint32_t> resolved = ResolveSeries(w, kHttpErrorsTotal, series);
  std::vector<uint32_t> ids = RandomIds(series, kIdSequence);
  for (uint32_t& id : ids) id = resolved[id];
  size_t i = 0;
  for (auto _ : state) {
    w.Inc(kHttpErrorsTotal, ids[i++ & (kIdSequence - 1)]);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ShardWriterInc)->ArgName("series")->Arg(64)->Arg(10000);

// Latencies from the corpus, so the bucket search sees the real spread.
void BM_ShardWriterObserve(benchmark::State& state) {
  const size_t series = static_cast<size_t>(state.range(0));
  MetricStore store(NovaGiftMetricDefs(), /*num_shards=*/1, series);
  ShardWriter w(&store, 0, kSeriesOverflowTotal);
  const std::vector<uint32_t> resolved = ResolveSeries(w, kHttpRequestDuration, series);
  std::vector<uint32_t> ids = RandomIds(series, kIdSequence);
  for (uint32_t& id : ids) id = resolved[id];
  std::vector<double> seconds;
  const std::vector<AccessLogEvent>& events = AccessEvents().events;
  for (size_t k = 0; k < kIdSequence; ++k) {
    seconds.push_back(events[k % events.size()].duration_ms / 1000.0);
  }
  size_t i = 0;
  for (auto _ : state) {
    const size_t k = i++ & (kIdSequence - 1);
    w.Observe(kHttpRequestDuration, ids[k], seconds[k]);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ShardWriterObserve)->ArgName("series")->Arg(64)->Arg(10000);

// Shared by the threads of one BM_RecordAccess run; each thread owns the
// shard of its index.
std::unique_ptr<NovaGiftMetrics> g_record_metrics;

void SetUpRecordMetrics(const benchmark::State& state) {
  g_record_metrics = std::make_unique<NovaGiftMetrics>(state.threads());
}
void TearDownRecordMetrics(const benchmark::State&) { g_record_metrics.reset(); }

// Everything an accepted access line costs after parsing: series lookup in
// the writer's cache, counter, histogram, error counter, busy-time ring.
void BM_RecordAccess(benchmark::State& state) {
  const std::vector<AccessLogEvent>& events = AccessEvents().events;
  NovaGiftMetrics::Writer& writer = g_record_metrics->writer(state.thread_index());
  // Threads start at different points of the corpus, like workers that
  // receive different chunks.
  size_t i = events.size() * state.thread_index() / state.threads();
  for (auto _ : state) {
    writer.Record(events[i]);
    if (++i == events.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RecordAccess)
    ->Setup(SetUpRecordMetrics)
    ->Teardown(TearDownRecordMetrics)
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();

// The read side at a given number of series. Both shards write every series,
// as two workers that both see every key would.
void PopulateFamily(NovaGiftMetrics& metrics, size_t m, size_t series) {
  std::string key;
  for (int shard = 0; shard < metrics.num_shards(); ++shard) {
    ShardWriter& w = metrics.writer(shard).shard_writer();
    for (size_t s = 0; s < series; ++s) {
      const std::string route = "/api/bench/" + std::to_string(s);
      BuildKey(&key, {"GET", route});
      const uint32_t id = w.Resolve(m, key);
      if (metrics.store().def(m).type == MetricType::kHistogram) {
        w.Observe(m, id, 0.001 * static_cast<double>(s % 5000));
      } else {
        w.Inc(m, id);
      }
    }
  }
}

void BM_MergeFamily(benchmark::State& state, size_t m) {
  const size_t series = static_cast<size_t>(state.range(0));
  NovaGiftMetrics metrics(/*num_shards=*/2, series);
  PopulateFamily(metrics, m, series);
  for (auto _ : state) {
    FamilySnapshot f = metrics.store().Merge(m);
    benchmark::DoNotOptimize(f.words.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(series));
}
BENCHMARK_CAPTURE(BM_MergeFamily, counter, kHttpErrorsTotal)
    ->ArgName("series")
    ->Arg(1000)
    ->Arg(10000)
    ->Arg(100000)
    ->Unit(benchmark::kMicrosecond);
BENCHMARK_CAPTURE(BM_MergeFamily, histogram, kHttpRequestDuration)
    ->ArgName("series")
    ->Arg(1000)
    ->Arg(10000)
    ->Arg(100000)
    ->Unit(benchmark::kMicrosecond);

// `series` access series in the shape of real traffic: per (method, route),
// four status codes (four http_requests_total series) and one latency
// histogram; each event recorded on both shards.
size_t PopulateAccess(NovaGiftMetrics& metrics, size_t series) {
  constexpr uint16_t kStatuses[] = {200, 404, 500, 503};
  const size_t routes = series / 5;
  std::string route;
  for (size_t r = 0; r < routes; ++r) {
    route = "/api/bench/" + std::to_string(r);
    for (uint16_t status : kStatuses) {
      AccessLogEvent e;
      e.ts_us = 1795651200LL * 1'000'000 + static_cast<int64_t>(r);
      e.method = "GET";
      e.route = route;
      e.status = status;
      e.duration_ms = static_cast<double>(r % 800);
      for (int shard = 0; shard < metrics.num_shards(); ++shard) metrics.writer(shard).Record(e);
    }
  }
  size_t total = 0;
  for (const FamilySnapshot& f : metrics.Snapshot()) total += f.size();
  return total;
}

void BM_Snapshot(benchmark::State& state) {
  const size_t series = static_cast<size_t>(state.range(0));
  NovaGiftMetrics metrics(/*num_shards=*/2, series);
  const size_t total = PopulateAccess(metrics, series);
  for (auto _ : state) {
    std::vector<FamilySnapshot> families = metrics.Snapshot();
    benchmark::DoNotOptimize(families.data());
  }
  state.counters["series"] = static_cast<double>(total);
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(total));
}
BENCHMARK(BM_Snapshot)
    ->ArgName("series")
    ->Arg(1000)
    ->Arg(10000)
    ->Arg(100000)
    ->Unit(benchmark::kMillisecond);

// A whole scrape: merge every family, convert to prometheus-cpp families,
// serialise. Bytes are those of the exposition text.
void BM_SnapshotAndRender(benchmark::State& state) {
  const size_t series = static_cast<size_t>(state.range(0));
  NovaGiftMetrics metrics(/*num_shards=*/2, series);
  const size_t total = PopulateAccess(metrics, series);
  int64_t bytes = 0;
  for (auto _ : state) {
    const std::string text = RenderPrometheusText(metrics.Snapshot());
    bytes += static_cast<int64_t>(text.size());
  }
  state.counters["series"] = static_cast<double>(total);
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(total));
  state.SetBytesProcessed(bytes);
}
BENCHMARK(BM_SnapshotAndRender)
    ->ArgName("series")
    ->Arg(1000)
    ->Arg(10000)
    ->Arg(100000)
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace novapulse::bench
