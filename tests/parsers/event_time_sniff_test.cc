// The pipeline's cheap look at a block's first and last event times.
#include "parsers/event_time_sniff.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace novapulse {
namespace {

constexpr int64_t kDayStartMs = 1'795'651'200'000;  // 2026-11-26T00:00:00Z

TEST(EventTimeSniff, FirstAndLastLinesThatNameATime) {
  const std::string_view text =
      "\n"
      "not json\n"
      R"({"method":"GET","ts" : "2026-11-26T00:00:01.500Z"})"
      "\n"
      R"({"ts":"2026-11-26T00:00:02Z","status":200})"
      "\n"
      R"({"ts":1795651203})"
      "\n"
      R"({"no":"time"})"
      "\n\n";
  int64_t ms = 0;
  ASSERT_TRUE(FirstLineEventTime(text, &ms));
  EXPECT_EQ(ms, kDayStartMs + 1'500);
  ASSERT_TRUE(LastLineEventTime(text, &ms));
  EXPECT_EQ(ms, kDayStartMs + 3'000);  // epoch seconds
}

TEST(EventTimeSniff, NoTimeAnywhere) {
  int64_t ms = 42;
  EXPECT_FALSE(FirstLineEventTime("", &ms));
  EXPECT_FALSE(LastLineEventTime("\n\n", &ms));
  EXPECT_FALSE(FirstLineEventTime(R"({"ts":"yesterday"})", &ms));
  EXPECT_FALSE(LastLineEventTime(R"({"ts":)", &ms));
  EXPECT_EQ(ms, 42);
}

TEST(EventTimeSniff, SubMillisecondTimesRoundDownAndYearsBefore1970AreNoTime) {
  int64_t ms = 0;
  ASSERT_TRUE(FirstLineEventTime(R"({"ts":"2026-11-26T00:00:00.000999Z"})", &ms));
  EXPECT_EQ(ms, kDayStartMs);
  // As the parsers reject them: the next line's time is the first.
  ASSERT_TRUE(FirstLineEventTime(R"({"ts":"1969-12-31T23:59:59Z"})"
                                 "\n"
                                 R"({"ts":"2026-11-26T00:00:05Z"})",
                                 &ms));
  EXPECT_EQ(ms, kDayStartMs + 5'000);
}

}  // namespace
}  // namespace novapulse
