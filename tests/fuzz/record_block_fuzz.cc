// libFuzzer target: a block of NDJSON lines with a known topic through
// ProcessLines, which reads the block through one simdjson pass, against the
// same lines parsed one by one. The first byte picks the topic and the size
// of the windows access-log blocks are indexed in (64 B to 8 KiB, so their
// edges fall inside inputs). Checks that both
// give the same metrics, counts and dead letters, whatever the bytes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "tests/fuzz/fuzz_support.h"
#include "tests/pipeline/block_reference.h"

namespace {

constexpr size_t kMaxRecordBytes = 64 * 1024;
constexpr size_t kSeriesLimit = 64;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using novapulse::testing::LineByLine;
  using novapulse::testing::Outcome;
  using novapulse::testing::ThroughProcessLines;
  if (size == 0) return 0;
  const novapulse::Topic topic =
      data[0] % 2 == 0 ? novapulse::Topic::kAccessLog : novapulse::Topic::kOutbox;
  const size_t window = size_t{64} << (data[0] / 2 % 8);
  const std::string_view block(reinterpret_cast<const char*>(data) + 1, size - 1);
  const Outcome streamed = ThroughProcessLines(topic, block, kMaxRecordBytes, kSeriesLimit, window);
  const Outcome alone = LineByLine(topic, block, kMaxRecordBytes, kSeriesLimit);
  FUZZ_CHECK(streamed.records == alone.records);
  FUZZ_CHECK(streamed.lines_seen == alone.lines_seen);
  FUZZ_CHECK(streamed.dead_letters == alone.dead_letters);
  FUZZ_CHECK(streamed.metrics == alone.metrics);
  return 0;
}
