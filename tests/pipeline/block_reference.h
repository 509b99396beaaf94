// Two ways through a block of NDJSON lines, for tests that compare them:
// the pipeline's worker code (ProcessLines, which streams the block) and the
// plain per-line path (ProcessRecord on each line alone), written out here.
// Each returns what a reader can see: the metrics in Prometheus text, the
// records counted, the dead letters.
#ifndef NOVAPULSE_TESTS_PIPELINE_BLOCK_REFERENCE_H_
#define NOVAPULSE_TESTS_PIPELINE_BLOCK_REFERENCE_H_

#include <simdjson.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "aggregators/novagift_metrics.h"
#include "parsers/record_parser.h"
#include "pipeline/record_worker.h"
#include "sinks/dead_letter.h"
#include "sinks/exposition.h"

namespace novapulse::testing {

struct Outcome {
  std::string metrics;
  uint64_t records = 0;
  std::vector<std::string> dead_letters;  // "line reason bytes"
  uint64_t lines_seen = 0;
  uint64_t streamed = 0;
};

inline Outcome Finish(NovaGiftMetrics& metrics, const DeadLetterBatch& rejected, uint64_t records,
                      uint64_t streamed) {
  Outcome out;
  WritePrometheusText(metrics.Snapshot(), &out.metrics);
  out.records = records;
  for (const DeadLetterBatch::Entry& e : rejected.entries()) {
    out.dead_letters.push_back(std::to_string(e.origin.line) + " " +
                               std::string(RejectReasonName(e.reason)) + " " +
                               std::string(rejected.bytes(e)));
  }
  out.lines_seen = rejected.lines_seen;
  out.streamed = streamed;
  return out;
}

inline std::string Padded(std::string_view block) {
  std::string padded(block);
  padded.append(simdjson::SIMDJSON_PADDING, ' ');
  return padded;
}

// The block through the pipeline's worker code.
inline Outcome ThroughProcessLines(Topic topic, std::string_view block, size_t max_record_bytes,
                                   size_t series_limit,
                                   size_t index_window_bytes = kDefaultIndexWindowBytes) {
  NovaGiftMetrics metrics(1, series_limit);
  RecordParser parser(max_record_bytes, index_window_bytes);
  DeadLetterBatch rejected;
  const std::string padded = Padded(block);
  const uint64_t records = ProcessLines(topic, padded.data(), block.size(), padded.size(), parser,
                                        metrics.writer(0), &rejected);
  return Finish(metrics, rejected, records, parser.streamed());
}

// The block line by line, each line parsed alone: the reference.
inline Outcome LineByLine(Topic topic, std::string_view block, size_t max_record_bytes,
                          size_t series_limit) {
  NovaGiftMetrics metrics(1, series_limit);
  RecordParser parser(max_record_bytes);
  DeadLetterBatch rejected;
  uint64_t records = 0;
  size_t pos = 0;
  while (pos < block.size()) {
    size_t nl = block.find('\n', pos);
    if (nl == std::string_view::npos) nl = block.size();
    std::string_view line = block.substr(pos, nl - pos);
    pos = nl + 1;
    ++rejected.lines_seen;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    ++records;
    const std::string padded = Padded(line);
    ProcessRecord(topic, padded.data(), line.size(), padded.size(), parser, metrics.writer(0),
                  &rejected, DeadLetterOrigin{.line = rejected.lines_seen});
  }
  return Finish(metrics, rejected, records, parser.streamed());
}

}  // namespace novapulse::testing

#endif  // NOVAPULSE_TESTS_PIPELINE_BLOCK_REFERENCE_H_
