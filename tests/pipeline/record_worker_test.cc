// ProcessLines reads a block's records through one simdjson pass and parses
// alone each line that pass cannot accept (for outbox blocks, every line
// from the first such one on). These tests check it against the plain per-line path (ProcessRecord
// on each line, written out here): the same metrics, the same rejections by reason, the same dead
// letters, for blocks of good lines, blocks with every kind of bad line at every position, and
// randomly damaged blocks; and that the stream really carried the good lines.
#include "pipeline/record_worker.h"

#include <simdjson.h>

#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "aggregators/novagift_metrics.h"
#include "gen/traffic_gen.h"
#include "gtest/gtest.h"
#include "parsers/record_parser.h"
#include "sinks/dead_letter.h"
#include "sinks/exposition.h"
#include "tests/pipeline/block_reference.h"

namespace novapulse {
namespace {

using ::novapulse::testing::LineByLine;
using ::novapulse::testing::Outcome;
using ::novapulse::testing::ThroughProcessLines;

constexpr size_t kMaxRecordBytes = 4096;
constexpr size_t kSeriesLimit = 1000;

// Small enough that a window holds a line or two and some lines are longer.
constexpr size_t kSmallIndexWindow = 512;

Outcome Streamed(Topic topic, std::string_view block,
                 size_t index_window_bytes = kDefaultIndexWindowBytes) {
  return ThroughProcessLines(topic, block, kMaxRecordBytes, kSeriesLimit, index_window_bytes);
}

class CollectingSink : public TrafficSink {
 public:
  absl::Status Write(Topic topic, std::string_view line) override {
    (topic == Topic::kAccessLog ? access : outbox).emplace_back(line);
    return absl::OkStatus();
  }
  std::vector<std::string> access;
  std::vector<std::string> outbox;
};

const CollectingSink& Generated() {
  static const CollectingSink* sink = [] {
    auto* s = new CollectingSink;
    GenConfig config;
    config.seed = 7;
    config.duration_us = 20 * 60 * 1'000'000LL;
    config.access_rate = 10;
    config.gifts_per_minute = 30;
    config.wallet_per_minute = 20;
    EXPECT_TRUE(GenerateTraffic(config, *s).ok());
    return s;
  }();
  return *sink;
}

std::string Join(const std::vector<std::string>& lines, size_t begin, size_t end) {
  std::string block;
  for (size_t i = begin; i < end && i < lines.size(); ++i) {
    block += lines[i];
    block += '\n';
  }
  return block;
}

// With the default index window and with one so small that its edges fall
// between (and inside) most lines.
void ExpectSame(Topic topic, std::string_view block, const std::string& what) {
  SCOPED_TRACE(what);
  const Outcome alone = LineByLine(topic, block, kMaxRecordBytes, kSeriesLimit);
  EXPECT_EQ(alone.streamed, 0u);
  for (const size_t window : {kDefaultIndexWindowBytes, kSmallIndexWindow}) {
    SCOPED_TRACE("index window " + std::to_string(window));
    const Outcome streamed = Streamed(topic, block, window);
    EXPECT_EQ(streamed.records, alone.records);
    EXPECT_EQ(streamed.lines_seen, alone.lines_seen);
    EXPECT_EQ(streamed.dead_letters, alone.dead_letters);
    EXPECT_EQ(streamed.metrics, alone.metrics);
  }
}

TEST(ProcessLinesTest, GoodBlocksComeFromTheStreamAndMatchLineByLine) {
  const CollectingSink& gen = Generated();
  ASSERT_GT(gen.access.size(), 3000u);
  ASSERT_GT(gen.outbox.size(), 1000u);
  for (const auto& [topic, lines] :
       {std::pair{Topic::kAccessLog, &gen.access}, std::pair{Topic::kOutbox, &gen.outbox},
        std::pair{Topic::kAuto, &gen.access}, std::pair{Topic::kAuto, &gen.outbox}}) {
    const std::string block = Join(*lines, 0, lines->size());
    for (const size_t window : {kDefaultIndexWindowBytes, kSmallIndexWindow}) {
      const Outcome streamed = Streamed(topic, block, window);
      EXPECT_EQ(streamed.records, lines->size());
      EXPECT_EQ(streamed.streamed, lines->size())
          << "every good line should come from the block path (index window " << window << ")";
      EXPECT_TRUE(streamed.dead_letters.empty());
    }
    ExpectSame(topic, block, std::string(topic == Topic::kAuto ? "auto" : TopicName(topic)));
  }
}

// Lines that a stream over the whole block must not get wrong: each is
// checked at the start, the middle and the end of a block of good lines.
const std::vector<std::string>& Troublemakers() {
  static const std::vector<std::string> lines = {
      // Two values on one line; one value over two lines.
      R"({"ts":"2026-11-26T10:00:00Z","method":"GET","route":"/a","status":200,"duration_ms":1} {"x":1})",
      R"({"ts":"2026-11-26T10:00:00Z","method":"GET",)"
      "\n"
      R"("route":"/a","status":200,"duration_ms":1})",
      // Unbalanced brackets, trailing bytes, trailing comma.
      R"({"ts":"2026-11-26T10:00:00Z","method":"GET","route":"/a","status":200,"duration_ms":1,"x":[1,2})",
      R"({"ts":"2026-11-26T10:00:00Z","method":"GET","route":"/a","status":200,"duration_ms":1}})",
      R"({"ts":"2026-11-26T10:00:00Z","method":"GET","route":"/a","status":200,"duration_ms":1}x)",
      R"({"ts":"2026-11-26T10:00:00Z","method":"GET","route":"/a","status":200,"duration_ms":1},)",
      R"({"ts":"2026-11-26T10:00:00Z","method":"GET","route":"/a","status":200,"duration_ms":1)",
      // An unclosed string, raw control bytes, invalid UTF-8.
      R"({"ts":"2026-11-26T10:00:00Z","method":"GET","route":"/a,"status":200,"duration_ms":1})",
      "{\"ts\":\"2026-11-26T10:00:00Z\",\"method\":\"GE\tT\",\"route\":\"/a\",\"status\":200,"
      "\"duration_ms\":1}",
      "{\"ts\":\"2026-11-26T10:00:00Z\",\"method\":\"GET\",\"route\":\"/\xff\",\"status\":200,"
      "\"duration_ms\":1}",
      // Not objects.
      "123",
      "[1,2]",
      "\"text\"",
      "null",
      "{}",
      "tru",
      "]",
      "}{",
      // Escapes, including in keys; whitespace around the value.
      R"({"t\u0073":"2026-11-26T10:00:00Z","method":"G\u0045T","route":"/a\"b","status":200,"duration_ms":1})",
      "  \t{\"ts\":\"2026-11-26T10:00:00Z\",\"method\":\"GET\",\"route\":\"/a\",\"status\":200,"
      "\"duration_ms\":1}  \t\r",
      "\r{\"ts\":\"2026-11-26T10:00:00Z\",\"method\":\"GET\",\"route\":\"/a\",\"status\":200,"
      "\"duration_ms\":1}",
      // Wrong types, ranges, duplicates, missing fields, a future time.
      R"({"ts":"2026-11-26T10:00:00Z","method":"GET","route":"/a","status":"200","duration_ms":1})",
      R"({"ts":"2026-11-26T10:00:00Z","method":"GET","route":"/a","status":200,"duration_ms":-1})",
      R"({"ts":"2026-11-26T10:00:00Z","method":"GET","method":"GET","route":"/a","status":200,"duration_ms":1})",
      R"({"ts":"2026-11-26T10:00:00Z","route":"/a","status":200,"duration_ms":1})",
      R"({"ts":"yesterday","method":"GET","route":"/a","status":200,"duration_ms":1})",
      R"({"ts":"2026-11-26T10:00:00Z","method":"GET","route":"/a","status":200,"duration_ms":1,"x":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]})",
      R"({"ts":"2026-11-26T10:00:00Z","method":"GET","route":"/a","status":200,"duration_ms":1,"x":01})",
      R"({"ts":"2026-11-26T10:00:00Z","method":"GET","route":"/a","status":200,"duration_ms":1,"x":tru})",
      // Outbox-shaped records (bad or good depending on the block's topic).
      R"({"ts":"2026-11-26T10:00:00Z","id":"m1","type":"gift.created","status":"queued","attempt":1,"data":{"gift_id":"g1","mode":"instant","theme":"birthday","value_usd":25}})",
      R"({"ts":"2026-11-26T10:00:00Z","id":"m1","type":"gift.exploded","status":"queued","attempt":1})",
      R"({"ts":"2026-11-26T10:00:00Z","id":"m1","type":"gift.created","status":"queued","attempt":0})",
      // Longer than the parser's limit (oversize), though valid.
      R"({"ts":"2026-11-26T10:00:00Z","method":"GET","route":"/a","status":200,"duration_ms":1,"pad":")" +
          std::string(kMaxRecordBytes, 'x') + "\"}",
      // For detection per line: keys of both schemas, escaped keys.
      R"({"ts":"2026-11-26T10:00:00Z","id":"m1","type":"gift.created","status":"queued","method":"GET","duration_ms":1,"data":{"gift_id":"g1","mode":"instant","theme":"birthday","value_usd":25}})",
      R"({"ts":"2026-11-26T10:00:00Z","id":"m1","type":"gift.created","status":"queued","duration_ms":1,"data":{"gift_id":"g1","mode":"instant","theme":"birthday","value_usd":25}})",
      R"({"ts":"2026-11-26T10:00:00Z","method":"GET","route":"/a","status":200,"duration_ms":1,"id":"m1","type":"gift.created"})",
      R"({"ts":"2026-11-26T10:00:00Z","\u006dethod":"GET","route":"/a","status":200,"duration_ms":1,"id":"m1","type":"gift.created"})",
      R"({"ts":"2026-11-26T10:00:00Z","\u0069d":"m1","type":"gift.created","status":"queued","data":{"gift_id":"g1","mode":"instant","theme":"birthday","value_usd":25}})",
  };
  return lines;
}

TEST(ProcessLinesTest, EveryBadLineAtEveryPlaceMatchesLineByLine) {
  const CollectingSink& gen = Generated();
  for (const auto& [topic, lines] :
       {std::pair{Topic::kAccessLog, &gen.access}, std::pair{Topic::kOutbox, &gen.outbox},
        std::pair{Topic::kAuto, &gen.access}, std::pair{Topic::kAuto, &gen.outbox}}) {
    const std::string head = Join(*lines, 0, 40);
    const std::string tail = Join(*lines, 40, 80);
    for (size_t i = 0; i < Troublemakers().size(); ++i) {
      const std::string& bad = Troublemakers()[i];
      const std::string name = std::string(topic == Topic::kAuto ? "auto" : TopicName(topic)) +
                               " over " + (lines == &gen.access ? "access" : "outbox") + " line " +
                               std::to_string(i);
      ExpectSame(topic, bad + "\n" + head + tail, name + " first");
      ExpectSame(topic, head + bad + "\n" + tail, name + " middle");
      ExpectSame(topic, head + tail + bad, name + " last, no newline");
      ExpectSame(topic, head + bad + "\n" + bad + "\n\n  \n" + tail, name + " twice, blank lines");
    }
  }
}

TEST(ProcessLinesTest, BlockEdgesMatchLineByLine) {
  const CollectingSink& gen = Generated();
  const std::string one = gen.access.front();
  ExpectSame(Topic::kAccessLog, one, "one line without newline");
  ExpectSame(Topic::kAccessLog, one + "\r\n" + one + "\r\n", "CRLF");
  ExpectSame(Topic::kAccessLog, "\n\n" + one + "\n\n", "blank lines around");
  ExpectSame(Topic::kAccessLog, "   \n\t\n", "blank only");
  ExpectSame(Topic::kAccessLog, "", "empty");
  ExpectSame(Topic::kAuto, Join(gen.access, 0, 20) + Join(gen.outbox, 0, 20), "auto topic");
}

// Access-log blocks are indexed a window of lines at a time (64 KiB). A
// block of a few MB crosses many windows; bad lines sit at and around the
// window edges, and one good line is longer than a window.
TEST(ProcessLinesTest, AccessBlocksAcrossIndexWindowsMatchLineByLine) {
  const CollectingSink& gen = Generated();
  constexpr size_t kLongRecordLimit = size_t{1} << 20;
  std::vector<std::string> lines(gen.access.begin(), gen.access.end());
  ASSERT_GT(lines.size(), 4000u);
  std::string long_line = lines[5];
  long_line.insert(1, R"("note":")" + std::string(100'000, 'n') + R"(",)");
  lines[1000] = long_line;
  size_t good = lines.size();
  // Bytes per line are about 280, so these land near multiples of 64 KiB.
  for (const size_t at : {0, 233, 234, 235, 467, 468, 469, 2000, 3000}) {
    lines[at] = Troublemakers()[(at * 7) % Troublemakers().size()];
    --good;
  }
  const std::string block = Join(lines, 0, lines.size());
  SCOPED_TRACE("access lines across windows");
  const Outcome streamed =
      ThroughProcessLines(Topic::kAccessLog, block, kLongRecordLimit, kSeriesLimit);
  const Outcome alone = LineByLine(Topic::kAccessLog, block, kLongRecordLimit, kSeriesLimit);
  EXPECT_EQ(streamed.records, alone.records);
  EXPECT_EQ(streamed.dead_letters, alone.dead_letters);
  EXPECT_EQ(streamed.metrics, alone.metrics);
  // A line the index cannot take costs at most its own window: good lines
  // after it come from the block again.
  EXPECT_GT(streamed.streamed, good - 3 * 240) << "of " << good << " good lines";
}

// A line the index does not take (a rejection, an escape, a number in
// exponent form, a nested value) is parsed alone, and does not end the block
// path for access logs: the lines after it are still read from the index.
TEST(ProcessLinesTest, AccessLinesAfterALineParsedAloneStillComeFromTheBlock) {
  const CollectingSink& gen = Generated();
  const std::string head = Join(gen.access, 0, 40);
  const std::string tail = Join(gen.access, 40, 80);
  for (
      const std::string& bad :
      {std::string(
           R"({"ts":"2026-11-26T10:00:00Z","method":"GET","route":"/a","status":700,"duration_ms":1})"),
       std::string(
           R"({"ts":"2026-11-26T10:00:00Z","method":"G\u0045T","route":"/a","status":200,"duration_ms":1})"),
       std::string(
           R"({"ts":"2026-11-26T10:00:00Z","method":"GET","route":"/a","status":200,"duration_ms":1e3})"),
       std::string(
           R"({"ts":"2026-11-26T10:00:00Z","method":"GET","route":"/a","status":200,"duration_ms":1,"x":{"y":1}})")}) {
    SCOPED_TRACE(bad);
    const Outcome streamed = Streamed(Topic::kAccessLog, head + bad + "\n" + tail);
    EXPECT_EQ(streamed.streamed, 80u);
  }
}

// Random damage: bytes flipped, deleted, duplicated or swapped for JSON's
// structural characters, and records broken over two lines, in random lines
// of random blocks of both topics, the topic set or detected per line.
TEST(ProcessLinesTest, RandomlyDamagedBlocksMatchLineByLine) {
  const CollectingSink& gen = Generated();
  std::mt19937_64 rng(20261127);
  constexpr std::string_view kSpecial = "{}[]:,\"\\ \n\r\t0-e.ntf\x80\xff";
  uint64_t streamed = 0;
  for (int round = 0; round < 300; ++round) {
    const bool access = round % 2 == 0;
    const bool detect = round % 3 == 0;
    const std::vector<std::string>& lines = access ? gen.access : gen.outbox;
    const size_t n = 1 + rng() % 60;
    const size_t first = rng() % (lines.size() - n);
    std::vector<std::string> picked(lines.begin() + static_cast<std::ptrdiff_t>(first),
                                    lines.begin() + static_cast<std::ptrdiff_t>(first + n));
    const int damages = static_cast<int>(rng() % 4);
    for (int d = 0; d < damages; ++d) {
      std::string& line = picked[rng() % picked.size()];
      if (line.empty()) continue;
      const size_t at = rng() % line.size();
      switch (rng() % 5) {
        case 0:
          line[at] = kSpecial[rng() % kSpecial.size()];
          break;
        case 1:
          line.erase(at, 1 + rng() % 8);
          break;
        case 2:
          line.insert(at, 1, kSpecial[rng() % kSpecial.size()]);
          break;
        case 3:
          line.insert(at, line.substr(rng() % line.size(), 1 + rng() % 16));
          break;
        case 4:  // a record broken over lines between two fields
          if (const size_t comma = line.find(',', at); comma != std::string::npos) {
            line.insert(comma + 1, "\n");
          }
          break;
      }
    }
    const std::string block = Join(picked, 0, picked.size());
    const Topic topic = detect ? Topic::kAuto : access ? Topic::kAccessLog : Topic::kOutbox;
    ExpectSame(topic, block, "round " + std::to_string(round));
    streamed += Streamed(topic, block).streamed;
    if (::testing::Test::HasFailure()) break;
  }
  EXPECT_GT(streamed, 0u);
}

}  // namespace
}  // namespace novapulse
