// libFuzzer target: a block of NDJSON lines of either topic, the topic
// detected per line, through the pipeline's worker code (ProcessLines) into
// the NovaGift metric set, with a Prometheus text rendering now and then.
// Checks that every non-blank line is counted exactly once, accepted or
// rejected, whatever its bytes.
#include <cstddef>
#include <cstdint>
#include <string>

#include "aggregators/novagift_metrics.h"
#include "parsers/record_parser.h"
#include "pipeline/record_worker.h"
#include "sinks/exposition.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

constexpr size_t kMaxRecordBytes = 64 * 1024;
// Few series, so the overflow path is fuzzed too and memory stays bounded.
constexpr size_t kSeriesLimit = 64;

uint64_t EventsCounted(const novapulse::NovaGiftMetrics& metrics) {
  uint64_t total = 0;
  for (const novapulse::FamilySnapshot& f : metrics.Snapshot()) {
    if (f.def->name != "novapulse_events_total") continue;
    for (size_t s = 0; s < f.size(); ++s) total += f.Word(s, 0);
  }
  return total;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static novapulse::RecordParser parser(kMaxRecordBytes);
  static novapulse::NovaGiftMetrics metrics(1, kSeriesLimit);
  static uint64_t lines = 0;
  static uint64_t calls = 0;

  const novapulse::fuzz::PaddedInput input(data, size);
  lines += novapulse::ProcessLines(novapulse::Topic::kAuto, input.data(), input.size(),
                                   input.capacity(), parser, metrics.writer(0));
  if (++calls % 64 == 0) {
    FUZZ_CHECK(EventsCounted(metrics) == lines);
    std::string text;
    novapulse::WritePrometheusText(metrics.Snapshot(), &text);
    FUZZ_CHECK(novapulse::fuzz::IsValidUtf8(text));
  }
  return 0;
}
