// `novapulse replay` on files that mix good records with every kind of
// malformed one: the run succeeds, every good record is counted, and every
// bad one is counted once under its reason (and named in the stderr summary)
// and written to the dead-letter file with that reason, its line and bytes.
#include <simdjson.h>

#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "gtest/gtest.h"
#include "sinks/dead_letter.h"
#include "tests/pipeline/test_process.h"
#include "tests/sinks/prometheus_text.h"

namespace novapulse {
namespace {

using ::novapulse::testing::ParsePromText;
using ::novapulse::testing::ProcessResult;
using ::novapulse::testing::PromText;
using ::novapulse::testing::RunNovapulse;
using ::novapulse::testing::ScratchDir;
using ::novapulse::testing::SeriesKey;
using ::novapulse::testing::ValidateExposition;
using ::novapulse::testing::WriteWholeFile;

constexpr std::string_view kAccessTopic = "novagift.access-log";
constexpr std::string_view kOutboxTopic = "novagift.outbox";
constexpr std::string_view kUnknownTopic = "unknown";
constexpr size_t kMaxRecordBytes = 32768;
constexpr size_t kChunkBytes = 4096;

const std::vector<std::string> kReasons = {"malformed_json", "not_object",    "missing_field",
                                           "wrong_type",     "out_of_range",  "bad_timestamp",
                                           "oversize",       "unknown_type",  "unknown_status",
                                           "too_deep",       "unknown_topic", "duplicate_field"};

using Fields = std::vector<std::pair<std::string, std::string>>;  // key, raw JSON value

std::string Object(const Fields& fields) {
  std::string out = "{";
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i > 0) out += ',';
    out += "\"" + fields[i].first + "\":" + fields[i].second;
  }
  return out + "}";
}

Fields With(Fields fields, const std::string& key, const std::string& raw) {
  for (auto& [k, v] : fields) {
    if (k == key) {
      v = raw;
      return fields;
    }
  }
  fields.emplace_back(key, raw);
  return fields;
}

Fields Without(Fields fields, const std::string& key) {
  std::erase_if(fields, [&key](const auto& f) { return f.first == key; });
  return fields;
}

const Fields kAccess = {{"ts", R"("2026-11-26T00:00:01.000Z")"},
                        {"method", R"("GET")"},
                        {"route", R"("/api/gifts/:id")"},
                        {"path", R"("/api/gifts/42")"},
                        {"status", "200"},
                        {"duration_ms", "12.5"},
                        {"bytes_out", "512"},
                        {"request_id", R"("req-1")"},
                        {"instance", R"("api-1")"}};

const Fields kOutbox = {
    {"ts", R"("2026-11-26T00:00:02.000Z")"},
    {"id", R"("evt-1")"},
    {"type", R"("gift.created")"},
    {"status", R"("queued")"},
    {"attempt", "1"},
    {"data", R"({"gift_id":"g-1","mode":"instant","theme":"birthday","value_usd":25})"}};

std::string Nested(int depth, const std::string& inner) {
  return std::string(depth, '[') + inner + std::string(depth, ']');
}

struct Line {
  std::string text;    // without the newline
  std::string reason;  // empty: a good record
  std::string topic;   // topic label it is counted under
};

// The expected counts of one file and the check of one replay's output.
struct Expectation {
  std::map<std::string, double> parse_errors;          // SeriesKey -> count
  std::map<std::string, uint64_t> accepted, rejected;  // topic -> count

  void Add(const Line& line) {
    if (line.reason.empty()) {
      ++accepted[line.topic];
      return;
    }
    ++rejected[line.topic];
    parse_errors[SeriesKey("novapulse_parse_errors_total",
                           {{"topic", line.topic}, {"reason", line.reason}})] += 1;
  }
};

// The dead-letter file holds one line per bad line, in input order, with the
// reason, topic, source, line number and bytes (or their head) of each.
void CheckDeadLetters(const std::string& dead_letters, const std::string& source,
                      const std::vector<Line>& lines) {
  std::vector<std::pair<size_t, const Line*>> bad;  // file line number, line
  for (size_t i = 0; i < lines.size(); ++i) {
    if (!lines[i].reason.empty()) bad.emplace_back(2 * i + 1, &lines[i]);  // blank line between
  }
  simdjson::dom::parser parser;
  size_t n = 0, pos = 0;
  while (pos < dead_letters.size()) {
    const size_t eol = dead_letters.find('\n', pos);
    ASSERT_NE(eol, std::string::npos) << "unterminated last dead letter";
    const std::string json = dead_letters.substr(pos, eol - pos);
    pos = eol + 1;
    ASSERT_LT(n, bad.size()) << "extra dead letter " << json.substr(0, 200);
    const auto& [line_no, line] = bad[n++];
    simdjson::dom::element doc;
    ASSERT_EQ(parser.parse(json).get(doc), simdjson::SUCCESS) << json.substr(0, 200);
    std::string_view reason, topic, src, bytes;
    uint64_t at = 0, length = 0;
    bool truncated = false;
    EXPECT_EQ(doc["reason"].get(reason), simdjson::SUCCESS);
    EXPECT_EQ(doc["topic"].get(topic), simdjson::SUCCESS);
    EXPECT_EQ(doc["source"].get(src), simdjson::SUCCESS);
    EXPECT_EQ(doc["line"].get(at), simdjson::SUCCESS);
    EXPECT_EQ(doc["length"].get(length), simdjson::SUCCESS);
    if (doc["truncated"].get(truncated) != simdjson::SUCCESS) truncated = false;
    std::string record;
    if (doc["bytes"].get(bytes) == simdjson::SUCCESS) {
      record = std::string(bytes);
    } else {
      std::string_view b64;
      EXPECT_EQ(doc["bytes_base64"].get(b64), simdjson::SUCCESS) << json.substr(0, 200);
      EXPECT_TRUE(absl::Base64Unescape(absl::string_view(b64.data(), b64.size()), &record));
    }
    const std::string where =
        "dead letter " + std::to_string(n) + " for " + line->text.substr(0, 100);
    EXPECT_EQ(reason, line->reason) << where;
    EXPECT_EQ(topic, line->topic) << where;
    EXPECT_EQ(src, source) << where;
    EXPECT_EQ(at, line_no) << where;
    EXPECT_EQ(length, line->text.size()) << where;
    EXPECT_EQ(truncated, record.size() < line->text.size()) << where;
    EXPECT_LE(record.size(), kMaxDeadLetterRecordBytes) << where;
    EXPECT_EQ(record, line->text.substr(0, record.size())) << where;
    if (line->text.size() <= kMaxDeadLetterRecordBytes && line->text.size() < kChunkBytes) {
      EXPECT_EQ(record, line->text) << where;
    }
  }
  EXPECT_EQ(n, bad.size()) << "dead letters missing";
}

void CheckReplay(const ProcessResult& run, const std::string& text, const Expectation& want) {
  EXPECT_EQ(run.exit_code, 0) << run.err;
  const PromText parsed = ParsePromText(text);
  const std::vector<std::string> problems = ValidateExposition(parsed);
  EXPECT_TRUE(problems.empty()) << problems.front();
  // Every (topic, reason) pair: the expected count, zero when not expected.
  for (const std::string& topic :
       {std::string(kAccessTopic), std::string(kOutboxTopic), std::string(kUnknownTopic)}) {
    for (const std::string& reason : kReasons) {
      const std::string key =
          SeriesKey("novapulse_parse_errors_total", {{"topic", topic}, {"reason", reason}});
      auto it = want.parse_errors.find(key);
      const double expected = it == want.parse_errors.end() ? 0 : it->second;
      const double got =
          parsed.Value("novapulse_parse_errors_total", {{"topic", topic}, {"reason", reason}});
      EXPECT_EQ(got, expected) << key;
      if (expected > 0) {
        // The summary names each reason with its topic and count.
        const std::string entry = reason + " (" + topic + ")";
        const size_t at = run.err.find(entry);
        EXPECT_NE(at, std::string::npos) << entry << " missing from:\n" << run.err;
        if (at != std::string::npos) {
          const size_t eol = run.err.find('\n', at);
          const std::string rest = run.err.substr(at + entry.size(), eol - at - entry.size());
          EXPECT_EQ(std::stod(rest), expected) << run.err.substr(at, eol - at);
        }
      }
    }
  }
  for (const auto& [topic, n] : want.accepted) {
    EXPECT_EQ(parsed.Value("novapulse_events_total", {{"topic", topic}, {"result", "accepted"}}), n)
        << topic;
  }
  for (const std::string& topic : {std::string(kAccessTopic), std::string(kOutboxTopic)}) {
    if (!want.accepted.contains(topic)) {
      EXPECT_EQ(parsed.Value("novapulse_events_total", {{"topic", topic}, {"result", "accepted"}}),
                0)
          << topic;
    }
  }
  uint64_t total_rejected = 0, total_accepted = 0;
  for (const auto& [topic, n] : want.rejected) {
    total_rejected += n;
    EXPECT_EQ(parsed.Value("novapulse_events_total", {{"topic", topic}, {"result", "rejected"}}), n)
        << topic;
  }
  for (const auto& [topic, n] : want.accepted) total_accepted += n;
  const std::string summary = "replayed " + std::to_string(total_accepted + total_rejected) +
                              " records (" + std::to_string(total_accepted) + " accepted, " +
                              std::to_string(total_rejected) + " rejected)";
  EXPECT_NE(run.err.find(summary), std::string::npos) << summary << "\nnot in:\n" << run.err;
}

std::vector<Line> AccessLines() {
  const std::string a(kAccessTopic);
  auto good = [&a](std::string text) { return Line{std::move(text), "", a}; };
  auto bad = [&a](std::string text, std::string reason) {
    return Line{std::move(text), std::move(reason), a};
  };
  const std::string ok = Object(kAccess);
  std::vector<Line> lines = {
      good(ok),
      good(Object(Without(kAccess, "route"))),  // path only: normalised
      good(ok + "\r"),                          // CRLF line end
      good("  \t" + ok + "  "),                 // blanks around the object
      good(Object(With(kAccess, "ts", "1795651201"))),
      good(Object(With(kAccess, "ts", "1795651201123"))),
      good(Object(With(kAccess, "ts", R"("2026-11-26T05:30:01+05:30")"))),
      good(Object(With(kAccess, "extra", R"({"a":[1,2,{"b":null}],"c":"x"})"))),
      good(Object(With(kAccess, "error_code", R"("GIFT_NOT_FOUND")"))),
      good(Object(With(kAccess, "error_code", "null"))),
      good(Object(With(kAccess, "status", "599"))),
      good(Object(With(kAccess, "duration_ms", "0"))),
      good(Object(With(kAccess, "extra", Nested(50, "1")))),  // deep, but within the limit
      // Truncated JSON, and text that is not JSON at all.
      bad(ok.substr(0, ok.size() / 2), "malformed_json"),
      bad(ok.substr(0, ok.size() - 1), "malformed_json"),
      bad("{", "malformed_json"),
      bad("hello world", "malformed_json"),
      bad("nonsense", "malformed_json"),  // starts like the literal null
      bad("[1,2", "malformed_json"),      // a truncated array is not valid JSON either
      bad(ok + " trailing", "malformed_json"),
      bad(ok + ok, "malformed_json"),
      // Invalid UTF-8: in a read field, in a skipped field, a lone
      // continuation byte and an overlong encoding.
      bad(Object(With(kAccess, "method", "\"G\xC3\x28T\"")), "malformed_json"),
      bad(Object(With(kAccess, "user_agent", "\"Mozilla\xFF\"")), "malformed_json"),
      bad(Object(With(kAccess, "instance", "\"api\x80\"")), "malformed_json"),
      bad(Object(With(kAccess, "route", "\"/api/\xC0\xAF\"")), "malformed_json"),
      // NUL bytes inside a string and after the object.
      bad(Object(With(kAccess, "method", std::string("\"G\0T\"", 5))), "malformed_json"),
      bad(ok + std::string(1, '\0'), "malformed_json"),
      // Roots that are not objects.
      bad("[1,2,3]", "not_object"),
      bad(R"("just a string")", "not_object"),
      bad("42", "not_object"),
      bad("null", "not_object"),
      bad("true", "not_object"),
      // Each required field missing, route and path both missing, nothing.
      bad(Object(Without(kAccess, "ts")), "missing_field"),
      bad(Object(Without(kAccess, "method")), "missing_field"),
      bad(Object(Without(kAccess, "status")), "missing_field"),
      bad(Object(Without(kAccess, "duration_ms")), "missing_field"),
      bad(Object(Without(Without(kAccess, "route"), "path")), "missing_field"),
      bad("{}", "missing_field"),
      // Wrong types.
      bad(Object(With(kAccess, "status", R"("200")")), "wrong_type"),
      bad(Object(With(kAccess, "status", "200.5")), "wrong_type"),
      bad(Object(With(kAccess, "duration_ms", R"("12")")), "wrong_type"),
      bad(Object(With(kAccess, "method", "5")), "wrong_type"),
      bad(Object(With(kAccess, "method", "null")), "wrong_type"),
      bad(Object(With(kAccess, "route", "7")), "wrong_type"),
      bad(Object(With(kAccess, "ts", "true")), "wrong_type"),
      bad(Object(With(kAccess, "error_code", "5")), "wrong_type"),
      bad(Object(With(kAccess, "method", R"(["GET"])")), "wrong_type"),
      // Out of range.
      bad(Object(With(kAccess, "duration_ms", "-1")), "out_of_range"),
      bad(Object(With(kAccess, "duration_ms", "1e400")), "out_of_range"),
      bad(Object(With(kAccess, "status", "99")), "out_of_range"),
      bad(Object(With(kAccess, "status", "600")), "out_of_range"),
      bad(Object(With(kAccess, "status", "1e400")), "out_of_range"),
      bad(Object(With(kAccess, "status", "-200")), "out_of_range"),
      bad(Object(With(kAccess, "status", "99999999999999999999999")), "out_of_range"),
      // Bad timestamps.
      bad(Object(With(kAccess, "ts", R"("2026-13-01T00:00:00Z")")), "bad_timestamp"),
      bad(Object(With(kAccess, "ts", R"("2026-02-30T00:00:00Z")")), "bad_timestamp"),
      bad(Object(With(kAccess, "ts", R"("1969-12-31T23:59:59Z")")), "bad_timestamp"),
      bad(Object(With(kAccess, "ts", R"("2026-11-26T00:00:00")")), "bad_timestamp"),
      bad(Object(With(kAccess, "ts", R"("yesterday")")), "bad_timestamp"),
      bad(Object(With(kAccess, "ts", R"("")")), "bad_timestamp"),
      bad(Object(With(kAccess, "ts", "-5")), "bad_timestamp"),
      bad(Object(With(kAccess, "ts", "1e400")), "bad_timestamp"),
      // Far in the past or the future, as text and as epoch milliseconds.
      bad(Object(With(kAccess, "ts", R"("0001-01-01T00:00:00Z")")), "bad_timestamp"),
      bad(Object(With(kAccess, "ts", R"("10000-01-01T00:00:00Z")")), "bad_timestamp"),
      bad(Object(With(kAccess, "ts", R"("9999-12-31T23:59:59-01:00")")), "bad_timestamp"),
      bad(Object(With(kAccess, "ts", "253402300800000")), "bad_timestamp"),
      bad(Object(With(kAccess, "ts", "99999999999999999999999")), "bad_timestamp"),
      bad(Object(With(kAccess, "ts", R"("1795651201")")), "bad_timestamp"),  // a number as text
      // Strings where numbers belong and the reverse, for the other fields.
      bad(Object(With(Without(kAccess, "route"), "path", "42")), "wrong_type"),
      bad(Object(With(kAccess, "route", "[]")), "wrong_type"),
      bad(Object(With(kAccess, "duration_ms", "true")), "wrong_type"),
      bad(Object(With(kAccess, "status", "null")), "wrong_type"),
      bad(Object(With(kAccess, "duration_ms", "-1e400")), "out_of_range"),
      // Oversize: a label value above 256 bytes, a record above the limit
      // that fits a chunk (the parser rejects it) and one too long for any
      // chunk (the source drops it).
      bad(Object(With(kAccess, "method", "\"" + std::string(300, 'G') + "\"")), "oversize"),
      bad(Object(With(kAccess, "pad", "\"" + std::string(kMaxRecordBytes + 100, 'p') + "\"")),
          "oversize"),
      bad(Object(With(kAccess, "pad", "\"" + std::string(10 * kMaxRecordBytes, 'p') + "\"")),
          "oversize"),
      // A field we read, twice.
      bad(ok.substr(0, ok.size() - 1) + R"(,"status":500})", "duplicate_field"),
      bad(R"({"ts":"2026-11-26T00:00:01.000Z",)" + ok.substr(1), "duplicate_field"),
      // Nesting far beyond the parser's depth limit.
      bad(Object(With(kAccess, "extra", Nested(10000, "1"))), "too_deep"),
      bad(Object(With(kAccess, "extra", Nested(100, "1"))), "too_deep"),
  };
  return lines;
}

std::vector<Line> OutboxLines() {
  const std::string o(kOutboxTopic);
  auto good = [&o](std::string text) { return Line{std::move(text), "", o}; };
  auto bad = [&o](std::string text, std::string reason) {
    return Line{std::move(text), std::move(reason), o};
  };
  const std::string ok = Object(kOutbox);
  const Fields in_flight = Without(With(kOutbox, "status", R"("in_flight")"), "data");
  const Fields claimed =
      With(With(kOutbox, "type", R"("gift.claimed")"), "data",
           R"({"gift_id":"g-1","mode":"instant","theme":"birthday","value_usd":25,)"
           R"("created_at":"2026-11-25T00:00:00Z"})");
  return {
      good(ok),
      good(ok + "\r"),
      good(Object(in_flight)),
      good(Object(With(With(in_flight, "status", R"("processed")"), "processing_ms", "35.2"))),
      good(Object(With(With(in_flight, "status", R"("failed")"), "error", R"("timeout")"))),
      good(Object(With(With(in_flight, "status", R"("dead")"), "attempt", "5"))),
      good(Object(claimed)),
      good(Object(With(With(kOutbox, "type", R"("wallet.transaction")"), "data",
                       R"({"kind":"topup","amount_usd":10,"status":"completed"})"))),
      bad(ok.substr(0, ok.size() - 2), "malformed_json"),
      bad(Object(With(kOutbox, "id", "\"evt\xC3\"")), "malformed_json"),
      bad(Object(With(kOutbox, "id", std::string("\"e\0\"", 4))), "malformed_json"),
      bad("[]", "not_object"),
      bad(Object(Without(kOutbox, "ts")), "missing_field"),
      bad(Object(Without(kOutbox, "id")), "missing_field"),
      bad(Object(Without(kOutbox, "type")), "missing_field"),
      bad(Object(Without(kOutbox, "status")), "missing_field"),
      bad(Object(Without(kOutbox, "data")), "missing_field"),  // queued needs its facts
      bad(Object(With(kOutbox, "data", R"({"gift_id":"g-1","theme":"birthday","value_usd":2})")),
          "missing_field"),
      bad(Object(With(claimed, "data", R"({"mode":"instant","theme":"birthday"})")),
          "missing_field"),
      bad(Object(With(kOutbox, "type", "5")), "wrong_type"),
      bad(Object(With(kOutbox, "attempt", R"("1")")), "wrong_type"),
      bad(Object(With(kOutbox, "attempt", "1.5")), "wrong_type"),
      bad(Object(With(kOutbox, "data", "5")), "wrong_type"),
      // Strings where numbers belong and the reverse, for every field.
      bad(Object(With(kOutbox, "ts", "true")), "wrong_type"),
      bad(Object(With(kOutbox, "id", "123")), "wrong_type"),
      bad(Object(With(kOutbox, "status", "1")), "wrong_type"),
      bad(Object(With(in_flight, "processing_ms", R"("35.2")")), "wrong_type"),
      bad(Object(With(With(in_flight, "status", R"("failed")"), "error", "504")), "wrong_type"),
      bad(Object(
              With(kOutbox, "data", R"({"gift_id":1,"mode":"instant","theme":"x","value_usd":1})")),
          "wrong_type"),
      bad(Object(With(kOutbox, "data", R"({"mode":7,"theme":"x","value_usd":1})")), "wrong_type"),
      bad(Object(With(kOutbox, "data", R"({"mode":"instant","theme":false,"value_usd":1})")),
          "wrong_type"),
      bad(Object(With(kOutbox, "data", R"({"mode":"instant","theme":"x","value_usd":"25"})")),
          "wrong_type"),
      bad(Object(With(claimed, "data", R"({"mode":"instant","theme":"x","created_at":true})")),
          "wrong_type"),
      bad(Object(With(With(kOutbox, "type", R"("wallet.transaction")"), "data",
                      R"({"kind":1,"amount_usd":10,"status":"completed"})")),
          "wrong_type"),
      bad(Object(With(With(kOutbox, "type", R"("wallet.transaction")"), "data",
                      R"({"kind":"topup","amount_usd":"10","status":"completed"})")),
          "wrong_type"),
      bad(Object(With(With(kOutbox, "type", R"("wallet.transaction")"), "data",
                      R"({"kind":"topup","amount_usd":10,"status":200})")),
          "wrong_type"),
      // Numbers out of range.
      bad(Object(With(kOutbox, "attempt", "99999999999999999999")), "out_of_range"),
      bad(Object(With(in_flight, "processing_ms", "1e400")), "out_of_range"),
      bad(Object(With(kOutbox, "data", R"({"mode":"instant","theme":"x","value_usd":1e400})")),
          "out_of_range"),
      bad(Object(With(kOutbox, "attempt", "0")), "out_of_range"),
      bad(Object(With(kOutbox, "attempt", "-1")), "out_of_range"),
      bad(Object(With(in_flight, "processing_ms", "-3")), "out_of_range"),
      bad(Object(With(kOutbox, "data", R"({"mode":"instant","theme":"x","value_usd":-1})")),
          "out_of_range"),
      bad(Object(With(kOutbox, "ts", R"("not a time")")), "bad_timestamp"),
      bad(Object(With(kOutbox, "ts", R"("1969-12-31T23:59:59Z")")), "bad_timestamp"),
      bad(Object(With(kOutbox, "ts", R"("12026-11-26T00:00:02Z")")), "bad_timestamp"),
      bad(Object(With(kOutbox, "ts", "1e300")), "bad_timestamp"),
      bad(Object(With(claimed, "data", R"({"mode":"instant","theme":"x","created_at":"never"})")),
          "bad_timestamp"),
      bad(Object(With(kOutbox, "type", R"("gift.exploded")")), "unknown_type"),
      bad(Object(With(kOutbox, "status", R"("pending")")), "unknown_status"),
      bad(ok.substr(0, ok.size() - 1) + R"(,"id":"evt-2"})", "duplicate_field"),
      bad(Object(With(kOutbox, "data",
                      R"({"mode":"instant","mode":"group","theme":"x","value_usd":1})")),
          "duplicate_field"),
      bad(Object(With(
              kOutbox, "data",
              R"({"mode":"instant","theme":"x","value_usd":1,"n":)" + Nested(10000, "1") + "}")),
          "too_deep"),
      bad(Object(With(in_flight, "trace", Nested(100, "{}"))), "too_deep"),
      bad(Object(With(kOutbox, "pad", "\"" + std::string(kMaxRecordBytes + 10, 'p') + "\"")),
          "oversize"),
  };
}

// Blank and whitespace-only lines between records: skipped, never counted.
std::string JoinWithBlankLines(const std::vector<Line>& lines) {
  const std::vector<std::string> blanks = {"", "   ", "\t", "\r", " \t \r"};
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    out += lines[i].text + "\n";
    out += blanks[i % blanks.size()] + "\n";
  }
  return out;
}

class BadInput : public ::testing::Test {
 protected:
  // `novapulse replay` of `input` with the corpus's limits on 2 threads:
  // the metrics to `out`, the dead letters to `dead_letters`.
  static ProcessResult Replay(const std::string& input, const std::string& out,
                              const std::string& dead_letters,
                              const std::vector<std::string>& flags) {
    std::vector<std::string> args = {"replay",
                                     "--threads",
                                     "2",
                                     "--max-record-bytes",
                                     std::to_string(kMaxRecordBytes),
                                     "--chunk-bytes",
                                     std::to_string(kChunkBytes),
                                     "--output",
                                     out,
                                     "--dead-letter",
                                     dead_letters};
    args.insert(args.end(), flags.begin(), flags.end());
    args.push_back(input);
    return RunNovapulse(args);
  }

  // Replays `lines` (with blank lines between them) and checks the counts.
  void ReplayAndCheck(const std::vector<Line>& lines, std::vector<std::string> flags) {
    Expectation want;
    for (const Line& line : lines) want.Add(line);
    WriteWholeFile(dir_.Path("input.ndjson"), JoinWithBlankLines(lines));
    const std::string out = dir_.Path("metrics.txt");
    const std::string dead_letters = dir_.Path("dead-letters.ndjson");
    const ProcessResult run = Replay(dir_.Path("input.ndjson"), out, dead_letters, flags);
    const std::string metrics = testing::ReadWholeFile(out);
    CheckReplay(run, metrics, want);
    CheckDeadLetters(testing::ReadWholeFile(dead_letters), dir_.Path("input.ndjson"), lines);
    const PromText parsed = ParsePromText(metrics);
    uint64_t rejected = 0;
    for (const auto& [topic, n] : want.rejected) rejected += n;
    EXPECT_EQ(parsed.Value("novapulse_dead_letters_total", {{"result", "written"}}), rejected);
    EXPECT_EQ(parsed.Value("novapulse_dead_letters_total", {{"result", "dropped"}}), 0);
  }

  // The same lines one per run, so a miscounted line is named.
  void ExpectEachLineAloneGetsItsReason(const std::vector<Line>& lines, const std::string& topic) {
    for (const Line& line : lines) {
      if (line.text.size() > 1000) continue;  // the long ones are covered by the whole-file tests
      WriteWholeFile(dir_.Path("one.ndjson"), line.text + "\n");
      const ProcessResult run =
          RunNovapulse({"replay", "--threads", "1", "--topic", topic, "--max-record-bytes",
                        std::to_string(kMaxRecordBytes), dir_.Path("one.ndjson")});
      ASSERT_EQ(run.exit_code, 0) << run.err;
      const PromText parsed = ParsePromText(run.out);
      std::string got;
      for (const std::string& reason : kReasons) {
        if (parsed.Value("novapulse_parse_errors_total",
                         {{"topic", line.topic}, {"reason", reason}}) > 0) {
          got += reason;
        }
      }
      EXPECT_EQ(got, line.reason) << "for the line " << line.text;
    }
  }

  ScratchDir dir_;
};

TEST_F(BadInput, AccessLogLinesAreCountedByReasonAndGoodOnesAccepted) {
  ReplayAndCheck(AccessLines(), {"--topic", "access-log"});
}

TEST_F(BadInput, OutboxLinesAreCountedByReasonAndGoodOnesAccepted) {
  ReplayAndCheck(OutboxLines(), {"--topic", "outbox"});
}

TEST_F(BadInput, EachAccessLogLineAloneGetsItsReason) {
  ExpectEachLineAloneGetsItsReason(AccessLines(), "access-log");
}

TEST_F(BadInput, EachOutboxLineAloneGetsItsReason) {
  ExpectEachLineAloneGetsItsReason(OutboxLines(), "outbox");
}

TEST_F(BadInput, MixedFileWithoutTopicIsDetectedPerLine) {
  std::vector<Line> lines;
  const std::vector<Line> access = AccessLines();
  const std::vector<Line> outbox = OutboxLines();
  // Good records of both topics, interleaved.
  for (size_t i = 0; i < 8; ++i) {
    lines.push_back(access[i]);
    lines.push_back(outbox[i]);
  }
  const std::string a(kAccessTopic), o(kOutboxTopic), u(kUnknownTopic);
  const std::vector<Line> more = {
      // Detected, then rejected under the detected topic.
      {Object(With(kAccess, "duration_ms", "-1")), "out_of_range", a},
      {Object(With(kAccess, "status", R"("200")")), "wrong_type", a},
      {Object(With(kOutbox, "type", R"("gift.exploded")")), "unknown_type", o},
      {Object(With(kOutbox, "attempt", "0")), "out_of_range", o},
      {Object(Without(kOutbox, "ts")), "missing_field", o},
      {R"({"ts":"2026-11-26T00:00:01.000Z","id":"x"})", "missing_field", o},  // "id": outbox only
      {R"({"ts":"2026-11-26T00:00:01.000Z","path":"/x"})", "missing_field", a},
      // An access-log key nested in an unknown field does not decide.
      {R"({"ts":"2026-11-26T00:00:01.000Z","meta":{"method":"GET"}})", "unknown_topic", u},
      // Neither schema: the topic stays unknown.
      {R"({"foo":1})", "unknown_topic", u},
      {R"({"ts":"2026-11-26T00:00:01.000Z","level":"info"})", "unknown_topic", u},
      {"{}", "unknown_topic", u},
      {"not json", "malformed_json", u},
      {"[1]", "not_object", u},
      {"\"text\"", "not_object", u},
  };
  lines.insert(lines.end(), more.begin(), more.end());
  ReplayAndCheck(lines, {});
}

// The same corpus through the shipped metric spec (`replay --metrics`): every
// line gets the reason, the topic and the dead letter the compiled-in path
// gives it.
std::string NovaGiftSpec() {
  return std::string(NOVAPULSE_SOURCE_DIR) + "/configs/metrics/novagift.yaml";
}

TEST_F(BadInput, TheShippedSpecCountsAccessLogLinesAsTheCompiledInPathDoes) {
  ReplayAndCheck(AccessLines(), {"--metrics", NovaGiftSpec(), "--topic", "access-log"});
}

TEST_F(BadInput, TheShippedSpecCountsOutboxLinesAsTheCompiledInPathDoes) {
  ReplayAndCheck(OutboxLines(), {"--metrics", NovaGiftSpec(), "--topic", "outbox"});
}

TEST_F(BadInput, TheShippedSpecDetectsAMixedFileAsTheCompiledInPathDoes) {
  // Both corpora in one file, each line's input detected: both paths give
  // the same counts and the same dead letters, byte for byte.
  std::vector<Line> lines = AccessLines();
  const std::vector<Line> outbox = OutboxLines();
  lines.insert(lines.end(), outbox.begin(), outbox.end());
  WriteWholeFile(dir_.Path("mixed.ndjson"), JoinWithBlankLines(lines));
  std::string metrics[2], dead[2];
  for (int spec = 0; spec < 2; ++spec) {
    const std::string out = dir_.Path("metrics-" + std::to_string(spec) + ".txt");
    const std::string letters = dir_.Path("dead-" + std::to_string(spec) + ".ndjson");
    const ProcessResult run = Replay(
        dir_.Path("mixed.ndjson"), out, letters,
        spec ? std::vector<std::string>{"--metrics", NovaGiftSpec()} : std::vector<std::string>{});
    ASSERT_EQ(run.exit_code, 0) << run.err;
    for (const auto& [key, value] : ParsePromText(testing::ReadWholeFile(out)).values) {
      if (key.starts_with("novapulse_parse_errors_total") ||
          key.starts_with("novapulse_events_total")) {
        metrics[spec] += absl::StrCat(key, " ", value, "\n");
      }
    }
    dead[spec] = testing::ReadWholeFile(letters);
  }
  EXPECT_NE(metrics[0].find("unknown_topic"), std::string::npos) << metrics[0];
  EXPECT_GT(std::count(dead[0].begin(), dead[0].end(), '\n'), 50);
  EXPECT_EQ(metrics[1], metrics[0]);
  EXPECT_EQ(dead[1], dead[0]);
}

TEST_F(BadInput, ExplicitAutoTopicBehavesLikeNoTopic) {
  const std::vector<Line> lines = {
      {Object(kAccess), "", std::string(kAccessTopic)},
      {Object(kOutbox), "", std::string(kOutboxTopic)},
      {R"({"foo":1})", "unknown_topic", std::string(kUnknownTopic)},
  };
  ReplayAndCheck(lines, {"--topic", "auto"});
}

TEST_F(BadInput, OutboxRecordWithAPaymentMethodInItsDataIsStillAnOutboxRecord) {
  // A wallet transaction's facts may well say how it was paid.
  const std::vector<Line> lines = {
      {Object(With(With(kOutbox, "type", R"("wallet.transaction")"), "data",
                   R"({"kind":"purchase","amount_usd":10,"status":"completed","method":"card"})")),
       "", std::string(kOutboxTopic)},
      {Object(kAccess), "", std::string(kAccessTopic)},
  };
  ReplayAndCheck(lines, {});
}

TEST_F(BadInput, WholeFileWithCrlfLineEndsIsAccepted) {
  std::string input;
  for (int i = 0; i < 100; ++i) input += Object(kAccess) + "\r\n" + Object(kOutbox) + "\r\n";
  input += "\r\n";
  WriteWholeFile(dir_.Path("crlf.ndjson"), input);
  const ProcessResult run = RunNovapulse({"replay", "--threads", "2", dir_.Path("crlf.ndjson")});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const PromText parsed = ParsePromText(run.out);
  EXPECT_EQ(parsed.Value("novapulse_events_total",
                         {{"topic", std::string(kAccessTopic)}, {"result", "accepted"}}),
            100);
  EXPECT_EQ(parsed.Value("novapulse_events_total",
                         {{"topic", std::string(kOutboxTopic)}, {"result", "accepted"}}),
            100);
  EXPECT_NE(run.err.find("replayed 200 records (200 accepted, 0 rejected)"), std::string::npos)
      << run.err;
}

TEST_F(BadInput, TenMegabyteLineIsOversizeAndItsHeadIsADeadLetter) {
  const std::string huge = Object(With(kAccess, "pad", "\"" + std::string(10 << 20, 'p') + "\""));
  WriteWholeFile(dir_.Path("huge.ndjson"),
                 Object(kAccess) + "\n" + huge + "\r\n" + Object(kAccess) + "\n");
  const std::string dead_letters = dir_.Path("dl.ndjson");
  const ProcessResult run = RunNovapulse({"replay", "--threads", "2", "--topic", "access-log",
                                          "--dead-letter", dead_letters, dir_.Path("huge.ndjson")});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const PromText parsed = ParsePromText(run.out);
  const std::string a(kAccessTopic);
  EXPECT_EQ(parsed.Value("novapulse_events_total", {{"topic", a}, {"result", "accepted"}}), 2);
  EXPECT_EQ(parsed.Value("novapulse_parse_errors_total", {{"topic", a}, {"reason", "oversize"}}),
            1);
  const std::string text = testing::ReadWholeFile(dead_letters);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(text).get(doc), simdjson::SUCCESS) << text.substr(0, 300);
  std::string_view reason, bytes;
  uint64_t line = 0, length = 0;
  bool truncated = false;
  ASSERT_EQ(doc["reason"].get(reason), simdjson::SUCCESS);
  ASSERT_EQ(doc["line"].get(line), simdjson::SUCCESS);
  ASSERT_EQ(doc["length"].get(length), simdjson::SUCCESS);
  ASSERT_EQ(doc["truncated"].get(truncated), simdjson::SUCCESS);
  ASSERT_EQ(doc["bytes"].get(bytes), simdjson::SUCCESS);
  EXPECT_EQ(reason, "oversize");
  EXPECT_EQ(line, 2u);
  EXPECT_TRUE(truncated);
  EXPECT_GE(length, huge.size());  // the source cannot tell the CR from the line
  EXPECT_LE(length, huge.size() + 1);
  EXPECT_EQ(bytes, huge.substr(0, kMaxDeadLetterRecordBytes));
}

TEST_F(BadInput, DeadLettersKeepInputOrderAcrossThreadsAndRotations) {
  std::string input;
  uint64_t bad = 0;
  for (int i = 0; i < 6000; ++i) {
    if (i % 3 == 0) {
      input += Object(With(kAccess, "status", "\"" + std::to_string(i) + "\"")) + "\n";
      ++bad;
    } else if (i % 3 == 1) {
      input += Object(kOutbox) + "\r\n\n";
    } else {
      input += Object(kAccess) + "\n";
    }
  }
  WriteWholeFile(dir_.Path("mixed.ndjson"), input);
  const std::string dead_letters = dir_.Path("dl.ndjson");
  const ProcessResult run =
      RunNovapulse({"replay", "--threads", "4", "--chunk-bytes", "4096", "--dead-letter",
                    dead_letters, "--dead-letter-max-bytes", "65536", "--dead-letter-keep", "100",
                    "-q", dir_.Path("mixed.ndjson")});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  std::vector<std::string> files;
  for (int k = 100; k >= 1; --k) {
    const std::string rotated = dead_letters + "." + std::to_string(k);
    if (std::filesystem::exists(rotated)) files.push_back(rotated);
  }
  files.push_back(dead_letters);
  ASSERT_GT(files.size(), 3u);
  simdjson::dom::parser parser;
  uint64_t n = 0;
  for (const std::string& file : files) {
    const std::string text = testing::ReadWholeFile(file);
    EXPECT_LE(text.size(), 65536u) << file;
    size_t pos = 0;
    while (pos < text.size()) {
      const size_t eol = text.find('\n', pos);
      simdjson::dom::element doc;
      ASSERT_EQ(parser.parse(text.substr(pos, eol - pos)).get(doc), simdjson::SUCCESS);
      pos = eol + 1;
      // Record i = 3n sits on line 1 + 4n: each outbox record is followed by a blank line.
      uint64_t line = 0;
      std::string_view bytes;
      ASSERT_EQ(doc["line"].get(line), simdjson::SUCCESS);
      ASSERT_EQ(doc["bytes"].get(bytes), simdjson::SUCCESS);
      EXPECT_EQ(line, 1 + 4 * n);
      EXPECT_NE(bytes.find("\"status\":\"" + std::to_string(3 * n) + "\""), std::string::npos)
          << bytes;
      ++n;
    }
  }
  EXPECT_EQ(n, bad);
  const PromText parsed = ParsePromText(run.out);
  EXPECT_EQ(parsed.Value("novapulse_dead_letters_total", {{"result", "written"}}), bad);
}

TEST_F(BadInput, FileOfOnlyBlankLinesHasNoRecords) {
  WriteWholeFile(dir_.Path("blank.ndjson"), "\n\n   \n\t\n\r\n \r\n");
  const ProcessResult run = RunNovapulse({"replay", dir_.Path("blank.ndjson")});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_NE(run.err.find("replayed 0 records (0 accepted, 0 rejected)"), std::string::npos)
      << run.err;
  EXPECT_EQ(run.err.find("rejected by reason"), std::string::npos) << run.err;
}

}  // namespace
}  // namespace novapulse
