// libFuzzer target: a block of NDJSON lines of either topic, the topic
// detected per line, through the pipeline's worker code (ProcessLines) into
// the NovaGift metric set, with a Prometheus text rendering now and then.
// Checks that every non-blank line is counted exactly once, accepted or
// rejected, whatever its bytes, and that each rejected line's dead letter is
// one valid JSON line that gives back the line's bytes.
#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/escaping.h"
#include "aggregators/novagift_metrics.h"
#include "parsers/record_parser.h"
#include "pipeline/record_worker.h"
#include "sinks/dead_letter.h"
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

void CheckDeadLetters(const novapulse::DeadLetterBatch& batch) {
  static simdjson::dom::parser json;
  std::string line;
  for (const novapulse::DeadLetterBatch::Entry& e : batch.entries()) {
    line.clear();
    const std::string_view kept = batch.bytes(e);
    novapulse::AppendDeadLetterJson(e, kept, "topic", "in\xff.ndjson", 0, &line);
    FUZZ_CHECK(!line.empty() && line.back() == '\n');
    FUZZ_CHECK(line.find('\n') == line.size() - 1);
    simdjson::dom::element doc;
    FUZZ_CHECK(json.parse(line).get(doc) == simdjson::SUCCESS);
    std::string_view text;
    std::string decoded;
    if (doc["bytes"].get(text) == simdjson::SUCCESS) {
      decoded = std::string(text);
    } else {
      FUZZ_CHECK(doc["bytes_base64"].get(text) == simdjson::SUCCESS);
      FUZZ_CHECK(absl::Base64Unescape(absl::string_view(text.data(), text.size()), &decoded));
    }
    FUZZ_CHECK(decoded == kept);
    uint64_t at = 0;
    FUZZ_CHECK(doc["line"].get(at) == simdjson::SUCCESS && at >= 1 && at <= batch.lines_seen);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static novapulse::RecordParser parser(kMaxRecordBytes);
  static novapulse::NovaGiftMetrics metrics(1, kSeriesLimit);
  static uint64_t lines = 0;
  static uint64_t calls = 0;

  static novapulse::DeadLetterBatch rejected;

  const novapulse::fuzz::PaddedInput input(data, size);
  rejected.Clear();
  const uint64_t records =
      novapulse::ProcessLines(novapulse::Topic::kAuto, input.data(), input.size(), input.capacity(),
                              parser, metrics.writer(0), &rejected);
  FUZZ_CHECK(rejected.entries().size() <= records);
  CheckDeadLetters(rejected);
  lines += records;
  if (++calls % 64 == 0) {
    FUZZ_CHECK(EventsCounted(metrics) == lines);
    std::string text;
    novapulse::WritePrometheusText(metrics.Snapshot(), &text);
    FUZZ_CHECK(novapulse::fuzz::IsValidUtf8(text));
  }
  return 0;
}
