#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <simdjson.h>

#include <bit>
#include <cstdint>
#include <ctime>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "parsers/event.h"
#include "parsers/record_parser.h"

namespace novapulse {
namespace {

using ::testing::AnyOf;

// Epoch microseconds of a UTC civil time, computed independently of the code
// under test.
int64_t EpochUs(int year, int month, int day, int hour, int minute, int second,
                int64_t micros = 0) {
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  return static_cast<int64_t>(timegm(&tm)) * 1'000'000 + micros;
}

constexpr std::string_view kFullLine =
    R"({"ts":"2026-11-27T06:21:53.123Z","method":"POST","route":"/api/gifts/:id/claim",)"
    R"("path":"/api/gifts/8812/claim","status":201,"duration_ms":12.5,"bytes_out":512,)"
    R"("request_id":"r-1","instance":"api-1","error_code":"gift_already_claimed"})";

// Required fields only; each test appends or replaces what it needs.
std::string Line(std::string_view ts = R"("2026-11-27T06:21:53Z")",
                 std::string_view method = R"("GET")", std::string_view route = R"("/api/x")",
                 std::string_view status = "200", std::string_view duration = "1.5",
                 std::string_view extra = "") {
  std::string line = "{";
  auto add = [&line](std::string_view key, std::string_view value) {
    if (value.empty()) return;  // empty means: leave the field out
    if (line.size() > 1) line += ",";
    line += "\"";
    line += key;
    line += "\":";
    line += value;
  };
  add("ts", ts);
  add("method", method);
  add("route", route);
  add("status", status);
  add("duration_ms", duration);
  if (!extra.empty()) {
    if (line.size() > 1) line += ",";
    line += extra;
  }
  line += "}";
  return line;
}

std::string Quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

// How the record reaches the parser.
enum class Call {
  kStringView,   // the convenience overload (copies into its own padded buffer)
  kPadded,       // (data, len, capacity) with SIMDJSON_PADDING readable bytes
  kUnderPadded,  // (data, len, capacity) with capacity == len: the parser must copy
};

std::string CallName(const ::testing::TestParamInfo<Call>& info) {
  switch (info.param) {
    case Call::kStringView:
      return "StringView";
    case Call::kPadded:
      return "Padded";
    case Call::kUnderPadded:
      return "UnderPadded";
  }
  return "Unknown";
}

class AccessLogParser : public ::testing::TestWithParam<Call> {
 protected:
  explicit AccessLogParser(size_t max_record_bytes = kDefaultMaxRecordBytes)
      : parser_(max_record_bytes) {}

  std::optional<RejectReason> Parse(std::string_view line, AccessLogEvent* event) {
    return ParseWith(parser_, line, event);
  }

  std::optional<RejectReason> ParseWith(RecordParser& parser, std::string_view line,
                                        AccessLogEvent* event) {
    switch (GetParam()) {
      case Call::kStringView:
        return parser.ParseAccessLog(line, event);
      case Call::kPadded:
        buffer_.assign(line.begin(), line.end());
        buffer_.resize(line.size() + simdjson::SIMDJSON_PADDING, '\0');
        return parser.ParseAccessLog(buffer_.data(), line.size(), buffer_.size(), event);
      case Call::kUnderPadded:
        buffer_.assign(line.begin(), line.end());
        return parser.ParseAccessLog(buffer_.data(), line.size(), line.size(), event);
    }
    return RejectReason::kUnknownTopic;
  }

  // "ok" or the reject reason's stable name, so failures read well.
  std::string Result(std::string_view line) {
    AccessLogEvent event;
    const std::optional<RejectReason> reason = Parse(line, &event);
    return reason ? std::string(RejectReasonName(*reason)) : "ok";
  }

  AccessLogEvent ParseOk(std::string_view line) {
    AccessLogEvent event;
    const std::optional<RejectReason> reason = Parse(line, &event);
    EXPECT_FALSE(reason.has_value()) << RejectReasonName(*reason) << " for " << line;
    return event;
  }

  RecordParser parser_;
  std::vector<char> buffer_;
};

INSTANTIATE_TEST_SUITE_P(Calls, AccessLogParser,
                         ::testing::Values(Call::kStringView, Call::kPadded, Call::kUnderPadded),
                         CallName);

TEST_P(AccessLogParser, DecodesEveryFieldOfAFullLine) {
  const AccessLogEvent e = ParseOk(kFullLine);
  EXPECT_EQ(e.ts_us, EpochUs(2026, 11, 27, 6, 21, 53, 123'000));
  EXPECT_EQ(e.method, "POST");
  EXPECT_EQ(e.route, "/api/gifts/:id/claim");
  EXPECT_EQ(e.status, 201);
  EXPECT_DOUBLE_EQ(e.duration_ms, 12.5);
  EXPECT_EQ(e.error_code, "gift_already_claimed");
}

// Plain decimals are read by a fast path of our own, everything else by
// simdjson: both must give the double simdjson's On-Demand get_double gives,
// to the bit, and reject what it rejects.
TEST_P(AccessLogParser, DurationNumeralsReadExactlyAsSimdjsonReadsThem) {
  std::mt19937_64 rng(99);
  std::vector<std::string> numerals = {"0",
                                       "0.0",
                                       "7",
                                       "12.5",
                                       "0.1",
                                       "0.3",
                                       "1.005",
                                       "20.587",
                                       "1e3",
                                       "1E-2",
                                       "2.5e+1",
                                       "00.5",
                                       "01",
                                       "1.",
                                       ".5",
                                       "-0",
                                       "1.2.3",
                                       "9007199254740993",
                                       "123456789012345",
                                       "1234567890123456",
                                       "0.000000000000001",
                                       "99999999999999.9",
                                       "999999999999999.9"};
  for (int i = 0; i < 3000; ++i) {
    std::string n = std::to_string(rng() % 100000);
    if (rng() % 4 != 0)
      n += "." + std::to_string(rng() % 1000000000000ULL).substr(0, 1 + rng() % 12);
    numerals.push_back(n);
  }
  simdjson::ondemand::parser reference;
  for (const std::string& numeral : numerals) {
    SCOPED_TRACE(numeral);
    double expected = 0;
    const simdjson::padded_string json("[" + numeral + "]");
    simdjson::ondemand::document doc;
    const bool valid = reference.iterate(json).get(doc) == simdjson::SUCCESS &&
                       doc.at(0).get_double().get(expected) == simdjson::SUCCESS;
    AccessLogEvent event;
    const std::optional<RejectReason> reason =
        Parse(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/a")", "200", numeral), &event);
    EXPECT_EQ(!reason.has_value(), valid && expected >= 0);
    if (!reason)
      EXPECT_EQ(std::bit_cast<uint64_t>(event.duration_ms), std::bit_cast<uint64_t>(expected));
  }
}

TEST_P(AccessLogParser, OptionalFieldsDefaultWhenAbsent) {
  const AccessLogEvent e = ParseOk(Line());
  EXPECT_EQ(e.ts_us, EpochUs(2026, 11, 27, 6, 21, 53));
  EXPECT_EQ(e.method, "GET");
  EXPECT_EQ(e.route, "/api/x");
  EXPECT_EQ(e.status, 200);
  EXPECT_DOUBLE_EQ(e.duration_ms, 1.5);
  EXPECT_EQ(e.error_code, "");
}

TEST_P(AccessLogParser, NullOptionalFieldsAreTreatedAsAbsent) {
  const AccessLogEvent e =
      ParseOk(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/api/x")", "200", "1.5",
                   R"("bytes_out":null,"instance":null,"error_code":null,"path":null)"));
  EXPECT_EQ(e.error_code, "");
  EXPECT_EQ(e.route, "/api/x");
}

TEST_P(AccessLogParser, NullRouteFallsBackToPath) {
  const AccessLogEvent e = ParseOk(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", "null", "200",
                                        "1.5", R"("path":"/api/gifts/77")"));
  EXPECT_EQ(e.route, "/api/gifts/:id");
}

TEST_P(AccessLogParser, AcceptsTimestampWithOffset) {
  const AccessLogEvent e = ParseOk(Line(R"("2026-11-27T11:51:53.5+05:30")"));
  EXPECT_EQ(e.ts_us, EpochUs(2026, 11, 27, 6, 21, 53, 500'000));
}

TEST_P(AccessLogParser, AcceptsTimestampAsEpochSeconds) {
  EXPECT_EQ(ParseOk(Line("1795651200")).ts_us, int64_t{1795651200} * 1'000'000);
  EXPECT_EQ(ParseOk(Line("1795651200.25")).ts_us, int64_t{1795651200250000});
}

TEST_P(AccessLogParser, AcceptsTimestampAsEpochMilliseconds) {
  EXPECT_EQ(ParseOk(Line("1795651200123")).ts_us, int64_t{1795651200123000});
}

TEST_P(AccessLogParser, RouteIsTakenVerbatimAndWinsOverPath) {
  const AccessLogEvent e =
      ParseOk(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/api/gifts/{gift}")", "200", "1.5",
                   R"("path":"/api/other/1")"));
  EXPECT_EQ(e.route, "/api/gifts/{gift}");
}

TEST_P(AccessLogParser, PathOnlyIsNormalised) {
  const AccessLogEvent e = ParseOk(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", "", "200", "1.5",
                                        R"("path":"/api/gifts/8812/claim?token=abc")"));
  EXPECT_EQ(e.route, "/api/gifts/:id/claim");
}

TEST_P(AccessLogParser, PathOnlyNormalisesUuidAndHexSegments) {
  const AccessLogEvent e = ParseOk(
      Line(R"("2026-11-27T06:21:53Z")", R"("GET")", "", "200", "1.5",
           R"("path":"/api/users/123e4567-e89b-12d3-a456-426614174000/tx/0123456789abcdef/")"));
  EXPECT_EQ(e.route, "/api/users/:id/tx/:id/");
}

TEST_P(AccessLogParser, StatusBoundsAreInclusive) {
  EXPECT_EQ(ParseOk(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "100")).status, 100);
  EXPECT_EQ(ParseOk(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "599")).status, 599);
}

TEST_P(AccessLogParser, AcceptsZeroAndIntegerDuration) {
  EXPECT_DOUBLE_EQ(
      ParseOk(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "200", "0")).duration_ms, 0);
  EXPECT_DOUBLE_EQ(
      ParseOk(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "200", "250")).duration_ms,
      250);
}

TEST_P(AccessLogParser, FieldsInAnyOrderDecodeTheSame) {
  const std::string reversed =
      R"({"error_code":"gift_already_claimed","instance":"api-1","request_id":"r-1",)"
      R"("bytes_out":512,"duration_ms":12.5,"status":201,"path":"/api/gifts/8812/claim",)"
      R"("route":"/api/gifts/:id/claim","method":"POST","ts":"2026-11-27T06:21:53.123Z"})";
  const AccessLogEvent e = ParseOk(reversed);
  EXPECT_EQ(e.ts_us, EpochUs(2026, 11, 27, 6, 21, 53, 123'000));
  EXPECT_EQ(e.method, "POST");
  EXPECT_EQ(e.route, "/api/gifts/:id/claim");
  EXPECT_EQ(e.status, 201);
  EXPECT_DOUBLE_EQ(e.duration_ms, 12.5);
  EXPECT_EQ(e.error_code, "gift_already_claimed");
}

TEST_P(AccessLogParser, PathBeforeRouteStillLetsRouteWin) {
  const AccessLogEvent e =
      ParseOk(R"({"path":"/api/gifts/1","ts":1795651200,"route":"/api/gifts/:id","method":"GET",)"
              R"("status":200,"duration_ms":1})");
  EXPECT_EQ(e.route, "/api/gifts/:id");
}

TEST_P(AccessLogParser, IgnoresUnknownScalarFields) {
  const AccessLogEvent e = ParseOk(
      Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "200", "1.5",
           R"("request_id":"r-9","tz":"UTC","router":"edge","paths":3,"statuz":false,"user":null,)"
           R"("t":1,"rout":"/no","methods":"X","duration_msx":-1,"\u0078":2)"));
  EXPECT_EQ(e.route, "/x");
  EXPECT_EQ(e.status, 200);
}

TEST_P(AccessLogParser, IgnoresUnknownNestedObjectsAndArrays) {
  // Known key names inside unknown containers are neither read nor duplicates.
  const AccessLogEvent e = ParseOk(
      Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "200", "1.5",
           R"("headers":{"method":"DELETE","status":"x","nested":{"ts":[1,2,{"a":[]}]}},)"
           R"("tags":[["status",500],{"route":"/evil"},null,true,1e3],"empty":{},"none":[])"));
  EXPECT_EQ(e.method, "GET");
  EXPECT_EQ(e.route, "/x");
  EXPECT_EQ(e.status, 200);
}

TEST_P(AccessLogParser, UnknownFieldBetweenKnownFieldsIsSkipped) {
  const AccessLogEvent e =
      ParseOk(R"({"ts":1795651200,"blob":{"a":[{"b":[{"c":"}]"}]}]},"method":"PUT","route":"/r",)"
              R"("status":204,"duration_ms":3})");
  EXPECT_EQ(e.method, "PUT");
  EXPECT_EQ(e.status, 204);
}

TEST_P(AccessLogParser, UnescapesStringValues) {
  const AccessLogEvent e =
      ParseOk(Line(R"("2026-11-27T06:21:53Z")", R"("P\u004FST")", R"("\u002Fapi\/gifts\/:id")",
                   "200", "1.5", R"("error_code":"caf\u00e9\tx")"));
  EXPECT_EQ(e.method, "POST");
  EXPECT_EQ(e.route, "/api/gifts/:id");
  EXPECT_EQ(e.error_code, "caf\xc3\xa9\tx");
}

TEST_P(AccessLogParser, UnescapesTimestampString) {
  EXPECT_EQ(ParseOk(Line(R"("2026-11-27T06:21:53\u005A")")).ts_us,
            EpochUs(2026, 11, 27, 6, 21, 53));
}

TEST_P(AccessLogParser, AcceptsWhitespaceAroundKeysAndValues) {
  const AccessLogEvent e = ParseOk(
      "{ \"ts\" : \"2026-11-27T06:21:53Z\" ,\n \"method\"\t:\t\"GET\"\t, \"route\" : \"/x\" \r\n,"
      " \"status\" : 200 , \"duration_ms\" : 1.5 , \"error_code\" : \"e\" }");
  EXPECT_EQ(e.ts_us, EpochUs(2026, 11, 27, 6, 21, 53));
  EXPECT_EQ(e.method, "GET");
  EXPECT_EQ(e.route, "/x");
  EXPECT_EQ(e.status, 200);
  EXPECT_DOUBLE_EQ(e.duration_ms, 1.5);
  EXPECT_EQ(e.error_code, "e");
}

TEST_P(AccessLogParser, EmptyErrorCodeIsTreatedAsAbsent) {
  EXPECT_EQ(ParseOk(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "200", "1",
                         R"("error_code":"")"))
                .error_code,
            "");
}

TEST_P(AccessLogParser, UnescapesPathBeforeNormalising) {
  const AccessLogEvent e = ParseOk(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", "", "200", "1.5",
                                        R"("path":"\/api\/gifts\u002F8812")"));
  EXPECT_EQ(e.route, "/api/gifts/:id");
}

TEST_P(AccessLogParser, UnescapesKeyNames) {
  const AccessLogEvent e =
      ParseOk(R"({"\u0074s":"2026-11-27T06:21:53Z","m\u0065thod":"GET","rout\u0065":"/x",)"
              R"("\u0073tatus":418,"duration\u005fms":7})");
  EXPECT_EQ(e.ts_us, EpochUs(2026, 11, 27, 6, 21, 53));
  EXPECT_EQ(e.method, "GET");
  EXPECT_EQ(e.route, "/x");
  EXPECT_EQ(e.status, 418);
  EXPECT_DOUBLE_EQ(e.duration_ms, 7);
}

TEST_P(AccessLogParser, AcceptsSurroundingWhitespaceAndTrailingCarriageReturn) {
  EXPECT_EQ(Result("  \t" + Line() + " \r"), "ok");
  EXPECT_EQ(Result(Line() + "\r\n"), "ok");
}

TEST_P(AccessLogParser, ReusedParserDoesNotLeakFieldsFromThePreviousRecord) {
  ParseOk(kFullLine);
  const AccessLogEvent e = ParseOk(Line());
  EXPECT_EQ(e.error_code, "");
}

TEST_P(AccessLogParser, RecoversAfterARejectedRecord) {
  EXPECT_EQ(Result(R"({"ts":1,"method":)"), "malformed_json");
  EXPECT_EQ(Result(Line()), "ok");
  EXPECT_EQ(Result("[]"), "not_object");
  EXPECT_EQ(ParseOk(kFullLine).route, "/api/gifts/:id/claim");
}

TEST_P(AccessLogParser, RejectsTruncatedJsonAsMalformed) {
  const std::string full(kFullLine);
  EXPECT_EQ(Result(full.substr(0, full.size() - 1)), "malformed_json");
  EXPECT_EQ(Result(full.substr(0, 40)), "malformed_json");  // inside a string
  EXPECT_EQ(Result(R"({"ts":1795651200,"method":"GET","route":"/x","status":200,)"),
            "malformed_json");
  EXPECT_EQ(Result("{"), "malformed_json");
  EXPECT_EQ(Result(""), "malformed_json");
}

TEST_P(AccessLogParser, RejectsTrailingGarbageAsMalformed) {
  EXPECT_EQ(Result(Line() + " x"), "malformed_json");
  EXPECT_EQ(Result(Line() + "}"), "malformed_json");
  EXPECT_EQ(Result(Line() + Line()), "malformed_json");
  EXPECT_EQ(Result(Line() + ",1"), "malformed_json");
}

TEST_P(AccessLogParser, RejectsSyntaxErrorsAsMalformed) {
  EXPECT_EQ(Result(R"({ts:1795651200,"method":"GET","route":"/x","status":200,"duration_ms":1})"),
            "malformed_json");
  EXPECT_EQ(
      Result(R"({"ts":1795651200,"method":"GET","route":"/x","status":200,"duration_ms":1,})"),
      "malformed_json");
  EXPECT_EQ(Result(R"({"ts":1795651200 "method":"GET","route":"/x","status":200,"duration_ms":1})"),
            "malformed_json");
}

TEST_P(AccessLogParser, RejectsSingleQuotedValueAsMalformed) {
  // Not JSON at all, so not a string of the wrong type either.
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", "'GET'")), "malformed_json");
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", "GET")), "malformed_json");
}

TEST_P(AccessLogParser, RejectsMalformedNumeralsAsMalformed) {
  // Invalid JSON numbers; none is a well-formed numeral that is out of range.
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "200", "1e")),
            "malformed_json");
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "200", "01")),
            "malformed_json");
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "200", "1.")),
            "malformed_json");
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "200", "-")),
            "malformed_json");
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "0200")),
            "malformed_json");
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "200", "12abc")),
            "malformed_json");
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "200", ".5")),
            "malformed_json");
}

TEST_P(AccessLogParser, RejectsMalformedJsonInsideAnUnknownField) {
  // A skipped value must still be JSON: the record as a whole is malformed.
  for (const char* bad : {R"("x":GET)", R"("x":[1,,2])", R"("x":{"a"})", R"("x":[1 2])",
                          R"("x":{"a":1,})", R"("x":tru)", R"("x":01)"}) {
    EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "200", "1", bad)),
              "malformed_json")
        << bad;
  }
}

TEST_P(AccessLogParser, RejectsInvalidUtf8AsMalformed) {
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", "\"/api/\xff\xfe\"")),
            "malformed_json");
  // Also when the bad bytes sit in a field the parser would skip.
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "200", "1",
                        "\"note\":\"\xc3\x28\"")),
            "malformed_json");
  // A lone continuation byte, and an overlong encoding of '/'.
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", "\"G\x80T\"")), "malformed_json");
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", "\"\xc0\xaf\"")),
            "malformed_json");
}

TEST_P(AccessLogParser, RejectsRawControlCharacterInStringAsMalformed) {
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", "\"G\tET\"")), "malformed_json");
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", "\"/x\ny\"")), "malformed_json");
}

TEST_P(AccessLogParser, RejectsNonObjectRoots) {
  EXPECT_EQ(Result("[1,2,3]"), "not_object");
  EXPECT_EQ(Result(R"("a string")"), "not_object");
  EXPECT_EQ(Result("42"), "not_object");
  EXPECT_EQ(Result("null"), "not_object");
  EXPECT_EQ(Result("true"), "not_object");
  EXPECT_EQ(Result("[" + Line() + "]"), "not_object");
}

TEST_P(AccessLogParser, RejectsMissingTs) { EXPECT_EQ(Result(Line("")), "missing_field"); }

TEST_P(AccessLogParser, RejectsMissingMethod) {
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", "")), "missing_field");
}

TEST_P(AccessLogParser, RejectsMissingStatus) {
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "")), "missing_field");
}

TEST_P(AccessLogParser, RejectsMissingDuration) {
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "200", "")),
            "missing_field");
}

TEST_P(AccessLogParser, RejectsMissingRouteAndPath) {
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", "")), "missing_field");
  EXPECT_EQ(
      Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", "null", "200", "1", R"("path":null)")),
      "missing_field");
  EXPECT_EQ(
      Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("")", "200", "1", R"("path":"")")),
      "missing_field");
}

TEST_P(AccessLogParser, RejectsMissingFieldOnEmptyObject) {
  EXPECT_EQ(Result("{}"), "missing_field");
}

TEST_P(AccessLogParser, RejectsStringStatusAsWrongType) {
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", R"("201")")),
            "wrong_type");
}

TEST_P(AccessLogParser, RejectsNonIntegerStatusAsWrongType) {
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "201.5")),
            "wrong_type");
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "201.0")),
            "wrong_type");
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "[201]")),
            "wrong_type");
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "null")), "wrong_type");
}

TEST_P(AccessLogParser, RejectsNumberMethodAsWrongType) {
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", "5")), "wrong_type");
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", "null")), "wrong_type");
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"({"verb":"GET"})")), "wrong_type");
}

TEST_P(AccessLogParser, RejectsNonStringRouteOrPathAsWrongType) {
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", "17")), "wrong_type");
  EXPECT_EQ(
      Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", "", "200", "1", R"("path":["/a"])")),
      "wrong_type");
}

TEST_P(AccessLogParser, RejectsNonNumericDurationAsWrongType) {
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "200", R"("12")")),
            "wrong_type");
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "200", "true")),
            "wrong_type");
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "200", "null")),
            "wrong_type");
}

TEST_P(AccessLogParser, RejectsWrongTypeOptionalFields) {
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "200", "1",
                        R"("error_code":5)")),
            "wrong_type");
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "200", "1",
                        R"("error_code":{})")),
            "wrong_type");
}

TEST_P(AccessLogParser, RejectsNonStringNonNumberTimestampAsWrongType) {
  EXPECT_EQ(Result(Line("true")), "wrong_type");
  EXPECT_EQ(Result(Line("null")), "wrong_type");
  EXPECT_EQ(Result(Line("[1795651200]")), "wrong_type");
}

TEST_P(AccessLogParser, RejectsNegativeDuration) {
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "200", "-0.5")),
            "out_of_range");
}

TEST_P(AccessLogParser, RejectsDurationTooLargeForADouble) {
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "200", "1e400")),
            "out_of_range");
}

TEST_P(AccessLogParser, RejectsStatusOutside100To599) {
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "99")), "out_of_range");
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "600")),
            "out_of_range");
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "-200")),
            "out_of_range");
  // 65736 would wrap to 200 in a uint16_t.
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "65736")),
            "out_of_range");
}

TEST_P(AccessLogParser, RejectsStatusAtTheInt64Limit) {
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "9223372036854775807")),
            "out_of_range");
}

TEST_P(AccessLogParser, RejectsStatusTooLargeFor64BitsAsOutOfRange) {
  // Integral numerals past int64: out of range, not "not an integer".
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "9223372036854775808")),
            "out_of_range");
  EXPECT_EQ(
      Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "99999999999999999999999")),
      "out_of_range");
  EXPECT_EQ(
      Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "-9223372036854775809")),
      "out_of_range");
}

TEST_P(AccessLogParser, SkipsUndecodedSchemaFieldsUnread) {
  // request_id, instance and bytes_out feed no metric: never validated.
  const std::string long_value(kMaxLabelValueBytes + 1, 'i');
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "200", "1",
                        R"("bytes_out":-1,"instance":)" + Quoted(long_value) +
                            R"(,"request_id":{"a":[1]})")),
            "ok");
}

TEST_P(AccessLogParser, RejectsUnparseableTimestampString) {
  EXPECT_EQ(Result(Line(R"("yesterday")")), "bad_timestamp");
  EXPECT_EQ(Result(Line(R"("")")), "bad_timestamp");
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53")")), "bad_timestamp");  // no offset
}

TEST_P(AccessLogParser, RejectsImpossibleDate) {
  EXPECT_EQ(Result(Line(R"("2026-02-30T00:00:00Z")")), "bad_timestamp");
  EXPECT_EQ(Result(Line(R"("2026-13-01T00:00:00Z")")), "bad_timestamp");
}

TEST_P(AccessLogParser, RejectsTimestampBefore1970) {
  EXPECT_EQ(Result(Line(R"("1969-12-31T23:59:59Z")")), "bad_timestamp");
  EXPECT_EQ(Result(Line("-1")), "bad_timestamp");
}

TEST_P(AccessLogParser, RejectsEpochNumberOutOfRangeAsBadTimestamp) {
  EXPECT_EQ(Result(Line("1e400")), "bad_timestamp");
  EXPECT_EQ(Result(Line("1e300")), "bad_timestamp");
}

TEST_P(AccessLogParser, RejectsLabelValuesLongerThan256Bytes) {
  const std::string at_limit(kMaxLabelValueBytes, 'a');
  const std::string over_limit(kMaxLabelValueBytes + 1, 'a');
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", Quoted(at_limit))), "ok");
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", Quoted(over_limit))), "oversize");
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", Quoted("/" + over_limit))),
            "oversize");
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "200", "1",
                        R"("error_code":)" + Quoted(over_limit))),
            "oversize");
}

TEST_P(AccessLogParser, LabelLimitCountsUnescapedBytes) {
  // 256 bytes once unescaped, 1536 bytes as written.
  std::string escaped;
  for (size_t i = 0; i < kMaxLabelValueBytes; ++i) escaped += "\\u0061";
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", Quoted(escaped))), "ok");
}

TEST_P(AccessLogParser, RejectsPathWhoseNormalisedRouteIsOversize) {
  std::string path;
  while (path.size() <= kMaxLabelValueBytes) path += "/abc";
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", "", "200", "1",
                        R"("path":)" + Quoted(path))),
            "oversize");
}

TEST_P(AccessLogParser, RejectsPathThatNormalisesToAnEmptyRoute) {
  // A query string alone leaves no route: as good as no route at all.
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", "", "200", "1",
                        R"("path":"?gift=8812")")),
            "missing_field");
}

TEST_P(AccessLogParser, LongPathWhoseIdsShrinkBelowTheLimitIsAccepted) {
  // A raw path is not a label: only its normalised route must fit.
  const std::string path = "/api/gifts/" + std::string(400, '7') + "/claim";
  const AccessLogEvent e = ParseOk(
      Line(R"("2026-11-27T06:21:53Z")", R"("GET")", "", "200", "1", R"("path":)" + Quoted(path)));
  EXPECT_EQ(e.route, "/api/gifts/:id/claim");
}

TEST_P(AccessLogParser, RejectsDuplicateRequiredField) {
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "200", "1",
                        R"("status":500)")),
            "duplicate_field");
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "200", "1",
                        R"("ts":1795651200)")),
            "duplicate_field");
}

TEST_P(AccessLogParser, RejectsDuplicateOptionalField) {
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "200", "1",
                        R"("route":"/y")")),
            "duplicate_field");
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "200", "1",
                        R"("error_code":null,"error_code":"e")")),
            "duplicate_field");
}

TEST_P(AccessLogParser, RejectsDuplicateFieldSpelledWithEscapes) {
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "200", "1",
                        R"("\u0074s":"2026-11-27T06:21:54Z")")),
            "duplicate_field");
}

TEST_P(AccessLogParser, DuplicateUnknownFieldsAreIgnored) {
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "200", "1",
                        R"("request_id":"a","request_id":"b")")),
            "ok");
}

TEST_P(AccessLogParser, RejectsTenThousandDeepArraysInAnUnknownField) {
  const std::string deep = std::string(10000, '[') + std::string(10000, ']');
  EXPECT_THAT(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "200", "1",
                          R"("blob":)" + deep)),
              AnyOf("too_deep", "malformed_json"));
}

TEST_P(AccessLogParser, RejectsTooDeepObjectsInAnUnknownField) {
  std::string deep;
  for (size_t i = 0; i < kMaxJsonDepth + 10; ++i) deep += R"({"a":)";
  deep += "1";
  deep += std::string(kMaxJsonDepth + 10, '}');
  EXPECT_THAT(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "200", "1",
                          R"("blob":)" + deep)),
              AnyOf("too_deep", "malformed_json"));
}

TEST_P(AccessLogParser, AcceptsModestNestingInAnUnknownField) {
  const std::string nested = std::string(8, '[') + std::string(8, ']');
  EXPECT_EQ(Result(Line(R"("2026-11-27T06:21:53Z")", R"("GET")", R"("/x")", "200", "1",
                        R"("blob":)" + nested)),
            "ok");
}

class SmallAccessLogParser : public AccessLogParser {
 protected:
  static constexpr size_t kMax = 128;
  SmallAccessLogParser() : AccessLogParser(kMax) {}
};

INSTANTIATE_TEST_SUITE_P(Calls, SmallAccessLogParser,
                         ::testing::Values(Call::kStringView, Call::kPadded, Call::kUnderPadded),
                         CallName);

TEST_P(SmallAccessLogParser, RejectsRecordAboveMaxRecordBytes) {
  std::string line = Line();
  line.insert(line.size() - 1, R"(,"pad":")" + std::string(kMax, 'p') + "\"");
  ASSERT_GT(line.size(), kMax);
  EXPECT_EQ(Result(line), "oversize");
}

TEST_P(SmallAccessLogParser, AcceptsRecordOfExactlyMaxRecordBytes) {
  std::string line = Line();
  const std::string pad_field = R"(,"pad":"")";
  ASSERT_LT(line.size() + pad_field.size(), kMax);
  line.insert(line.size() - 1,
              R"(,"pad":")" + std::string(kMax - line.size() - pad_field.size(), 'p') + "\"");
  ASSERT_EQ(line.size(), kMax);
  EXPECT_EQ(Result(line), "ok");
}

TEST_P(SmallAccessLogParser, StillParsesSmallRecordsAfterAnOversizeOne) {
  EXPECT_EQ(Result(std::string(kMax + 1, ' ')), "oversize");
  EXPECT_EQ(Result(Line()), "ok");
}

}  // namespace
}  // namespace novapulse
