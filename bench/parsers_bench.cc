// Parser micro-benchmarks on generated lines: RecordParser (access log and
// outbox), ParseRfc3339, NormaliseRoute and DetectTopic. Each cycles through
// a corpus of kCorpusLines distinct inputs and reports items/s and bytes/s
// (bytes of the record or field, without the newline). BM_WorkerBlock runs
// the whole corpus as one block through the worker code, parse and
// aggregation: streamed (ProcessLines) and line by line (ProcessRecord).
//
//   build-bench/parsers_bench --benchmark_min_time=0.2
#include <benchmark/benchmark.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "aggregators/novagift_metrics.h"
#include "bench/bench_corpus.h"
#include "parsers/event.h"
#include "parsers/record_parser.h"
#include "parsers/route.h"
#include "parsers/timestamp.h"
#include "pipeline/record_worker.h"

namespace novapulse::bench {
namespace {

// `key` of every corpus line that has one.
std::vector<std::string> Fields(const std::vector<PaddedLine>& lines, std::string_view key) {
  std::vector<std::string> values;
  for (const PaddedLine& line : lines) {
    const std::string_view v = JsonStringField(line.view(), key);
    if (!v.empty()) values.emplace_back(v);
  }
  return values;
}

void BM_ParseAccessLog(benchmark::State& state) {
  const std::vector<PaddedLine>& lines = AccessCorpus();
  RecordParser parser;
  AccessLogEvent event;
  size_t i = 0;
  int64_t bytes = 0;
  for (auto _ : state) {
    const PaddedLine& line = lines[i];
    if (parser.ParseAccessLog(line.data(), line.size(), line.capacity(), &event)) {
      state.SkipWithError("a generated access line was rejected");
      break;
    }
    benchmark::DoNotOptimize(event);
    bytes += static_cast<int64_t>(line.size());
    if (++i == lines.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(bytes);
}
BENCHMARK(BM_ParseAccessLog);

void BM_WorkerBlock(benchmark::State& state, bool streamed) {
  const std::vector<PaddedLine>& lines = AccessCorpus();
  std::string block;
  for (const PaddedLine& line : lines) {
    block.append(line.view());
    block += '\n';
  }
  const size_t size = block.size();
  block.append(simdjson::SIMDJSON_PADDING, ' ');
  NovaGiftMetrics metrics(1);
  RecordParser parser;
  for (auto _ : state) {
    if (streamed) {
      ProcessLines(Topic::kAccessLog, block.data(), size, block.size(), parser, metrics.writer(0));
    } else {
      for (size_t pos = 0; pos < size;) {
        const size_t nl = block.find('\n', pos);
        ProcessRecord(Topic::kAccessLog, block.data() + pos, nl - pos, block.size() - pos, parser,
                      metrics.writer(0));
        pos = nl + 1;
      }
    }
  }
  if (streamed && parser.streamed() != state.iterations() * lines.size()) {
    state.SkipWithError("lines were parsed outside the stream");
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(lines.size()));
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(size));
}
BENCHMARK_CAPTURE(BM_WorkerBlock, streamed, true);
BENCHMARK_CAPTURE(BM_WorkerBlock, line_by_line, false);

void BM_ParseOutbox(benchmark::State& state) {
  const std::vector<PaddedLine>& lines = OutboxCorpus();
  RecordParser parser;
  OutboxEvent event;
  size_t i = 0;
  int64_t bytes = 0;
  for (auto _ : state) {
    const PaddedLine& line = lines[i];
    if (parser.ParseOutbox(line.data(), line.size(), line.capacity(), &event)) {
      state.SkipWithError("a generated outbox line was rejected");
      break;
    }
    benchmark::DoNotOptimize(event);
    bytes += static_cast<int64_t>(line.size());
    if (++i == lines.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(bytes);
}
BENCHMARK(BM_ParseOutbox);

void BM_ParseRfc3339(benchmark::State& state) {
  const std::vector<std::string> stamps = Fields(AccessCorpus(), "ts");
  size_t i = 0;
  int64_t bytes = 0;
  for (auto _ : state) {
    int64_t ts_us = 0;
    if (!ParseRfc3339(stamps[i], &ts_us)) {
      state.SkipWithError("a generated timestamp was rejected");
      break;
    }
    benchmark::DoNotOptimize(ts_us);
    bytes += static_cast<int64_t>(stamps[i].size());
    if (++i == stamps.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(bytes);
}
BENCHMARK(BM_ParseRfc3339);

// Every access line's `path`: static routes, numeric ids and UUIDs in the
// generator's proportions.
void BM_NormaliseRoute(benchmark::State& state) {
  const std::vector<std::string> paths = Fields(AccessCorpus(), "path");
  std::string route;
  route.reserve(256);
  size_t i = 0;
  int64_t bytes = 0;
  for (auto _ : state) {
    NormaliseRoute(paths[i], &route);
    benchmark::DoNotOptimize(route.data());
    bytes += static_cast<int64_t>(paths[i].size());
    if (++i == paths.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(bytes);
}
BENCHMARK(BM_NormaliseRoute);

// Topic detection walks the top-level keys until one decides.
void BM_DetectTopic(benchmark::State& state, Topic topic) {
  const std::vector<PaddedLine>& lines =
      topic == Topic::kAccessLog ? AccessCorpus() : OutboxCorpus();
  RecordParser parser;
  size_t i = 0;
  int64_t bytes = 0;
  for (auto _ : state) {
    const Topic detected =
        parser.DetectTopic(lines[i].data(), lines[i].size(), lines[i].capacity());
    if (detected != topic) {
      state.SkipWithError("a generated line was detected as the wrong topic");
      break;
    }
    benchmark::DoNotOptimize(detected);
    bytes += static_cast<int64_t>(lines[i].size());
    if (++i == lines.size()) i = 0;
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(bytes);
}
BENCHMARK_CAPTURE(BM_DetectTopic, access_log, Topic::kAccessLog);
BENCHMARK_CAPTURE(BM_DetectTopic, outbox, Topic::kOutbox);

}  // namespace
}  // namespace novapulse::bench
