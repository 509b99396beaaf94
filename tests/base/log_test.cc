#include "base/log.h"

#include <simdjson.h>

#include <string>
#include <string_view>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace novapulse {
namespace {

constexpr std::string_view kTs = "2026-11-26T00:00:00.000Z";

TEST(LogLine, LogfmtQuotesOnlyTheValuesThatNeedIt) {
  EXPECT_EQ(FormatLogLine(LogFormat::kLogfmt, kTs, LogLevel::kInfo, "partitions assigned",
                          {{"count", "4"}, {"topic", "novagift.outbox"}, {"empty", ""}}),
            "ts=2026-11-26T00:00:00.000Z level=info msg=\"partitions assigned\" count=4 "
            "topic=novagift.outbox empty=\"\"\n");
  EXPECT_EQ(FormatLogLine(LogFormat::kLogfmt, kTs, LogLevel::kWarn, "m",
                          {{"a", "x=y"}, {"b", "caf\u00e9"}}),
            "ts=2026-11-26T00:00:00.000Z level=warn msg=\"m\" a=\"x=y\" b=caf\u00e9\n");
}

TEST(LogLine, LogfmtEscapesAsJsonDoes) {
  EXPECT_EQ(FormatLogLine(LogFormat::kLogfmt, kTs, LogLevel::kError, "say \"hi\"\n",
                          {{"path", "C:\\x\ty"}, {"nul", std::string("a\0b", 3)}}),
            "ts=2026-11-26T00:00:00.000Z level=error msg=\"say \\\"hi\\\"\\n\" "
            "path=\"C:\\\\x\\ty\" nul=\"a\\u0000b\"\n");
}

TEST(LogLine, BytesThatAreNotUtf8BecomeReplacementCharacters) {
  EXPECT_EQ(
      FormatLogLine(LogFormat::kLogfmt, kTs, LogLevel::kInfo, "m\xff", {{"file", "caf\u00e9\xc3"}}),
      "ts=2026-11-26T00:00:00.000Z level=info msg=\"m\\ufffd\" file=\"caf\u00e9\\ufffd\"\n");
  const std::string json =
      FormatLogLine(LogFormat::kJson, kTs, LogLevel::kInfo, "m\xff", {{"file", "caf\u00e9\xc3"}});
  EXPECT_EQ(json,
            "{\"ts\":\"2026-11-26T00:00:00.000Z\",\"level\":\"info\",\"msg\":\"m\\ufffd\","
            "\"file\":\"caf\u00e9\\ufffd\"}\n");
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(json).get(doc), simdjson::SUCCESS);
  std::string_view file;
  ASSERT_EQ(doc["file"].get(file), simdjson::SUCCESS);
  EXPECT_EQ(file, "caf\u00e9\ufffd");
}

TEST(LogLine, JsonIsOneObjectWithStringValues) {
  EXPECT_EQ(
      FormatLogLine(LogFormat::kJson, kTs, LogLevel::kDebug, "tab\there", {{"k\"ey", "<v>&"}}),
      "{\"ts\":\"2026-11-26T00:00:00.000Z\",\"level\":\"debug\",\"msg\":\"tab\\there\","
      "\"k\\\"ey\":\"<v>&\"}\n");
}

}  // namespace
}  // namespace novapulse
