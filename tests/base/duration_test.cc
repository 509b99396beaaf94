#include "base/duration.h"

#include <cstdint>
#include <string>
#include <string_view>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace novapulse {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kSecond = 1000;
constexpr int64_t kMinute = 60 * kSecond;
constexpr int64_t kHour = 60 * kMinute;
constexpr int64_t kDay = 24 * kHour;
// Prometheus's limit: 2^63-1 nanoseconds.
constexpr int64_t kMaxMs = 9'223'372'036'854;

// Milliseconds, or -1 when `text` is not a duration.
int64_t Ms(std::string_view text) {
  int64_t ms = -2;
  if (!ParseDuration(text, &ms)) return -1;
  return ms;
}

// The reason `text` is not a duration, or "" when it is one.
std::string Reason(std::string_view text) {
  const absl::StatusOr<absl::Duration> d = ParseDuration(text);
  return d.ok() ? "" : std::string(d.status().message());
}

TEST(ParseDuration, ReadsEachUnit) {
  EXPECT_EQ(Ms("1ms"), 1);
  EXPECT_EQ(Ms("1s"), kSecond);
  EXPECT_EQ(Ms("1m"), kMinute);
  EXPECT_EQ(Ms("1h"), kHour);
  EXPECT_EQ(Ms("1d"), kDay);
  EXPECT_EQ(Ms("1w"), 7 * kDay);
  EXPECT_EQ(Ms("1y"), 365 * kDay);
}

TEST(ParseDuration, MsIsMillisecondsNotMinutesAndSeconds) {
  EXPECT_EQ(Ms("100ms"), 100);
  EXPECT_EQ(Ms("5m100ms"), 5 * kMinute + 100);
  EXPECT_EQ(Ms("1m1s1ms"), kMinute + kSecond + 1);
}

TEST(ParseDuration, AddsUnitsFromLargestToSmallest) {
  EXPECT_EQ(Ms("1h30m"), 90 * kMinute);
  EXPECT_EQ(Ms("90m"), 90 * kMinute);
  EXPECT_EQ(Ms("2d12h"), 60 * kHour);
  EXPECT_EQ(Ms("1y1w1d1h1m1s1ms"), 373 * kDay + kHour + kMinute + kSecond + 1);
  EXPECT_EQ(Ms("09h"), 9 * kHour);  // leading zeros, as Go's ParseUint reads them
}

TEST(ParseDuration, ZeroAloneNeedsNoUnit) {
  EXPECT_EQ(Ms("0"), 0);
  EXPECT_EQ(Ms("0s"), 0);
  EXPECT_EQ(Ms("0h0m"), 0);
  EXPECT_EQ(Ms("00"), -1);
  EXPECT_EQ(Ms("5"), -1);
}

TEST(ParseDuration, RejectsUnitsOutOfOrderOrRepeated) {
  EXPECT_EQ(Ms("30m1h"), -1);
  EXPECT_EQ(Ms("1s1m"), -1);
  EXPECT_EQ(Ms("1ms1s"), -1);
  EXPECT_EQ(Ms("1h1h"), -1);
  EXPECT_EQ(Ms("1m2m"), -1);
  EXPECT_EQ(Reason("30m1h"), "units must go from largest to smallest, each once");
}

TEST(ParseDuration, RejectsWhatGoAcceptsButPrometheusDoesNot) {
  EXPECT_EQ(Ms("1.5s"), -1);
  EXPECT_EQ(Ms("1.5h"), -1);
  EXPECT_EQ(Ms("500us"), -1);
  EXPECT_EQ(Ms("500\u00b5s"), -1);
  EXPECT_EQ(Ms("500ns"), -1);
  EXPECT_EQ(Ms("-1h"), -1);
  EXPECT_EQ(Ms("+1h"), -1);
  EXPECT_THAT(Reason("1.5s"), HasSubstr("no fractions"));
  EXPECT_THAT(Reason("500us"), HasSubstr("unknown unit"));
  EXPECT_THAT(Reason("-1h"), HasSubstr("want an integer and a unit"));
}

TEST(ParseDuration, RejectsEmptyMissingUnitsAndStrayCharacters) {
  EXPECT_EQ(Ms(""), -1);
  EXPECT_EQ(Ms("h"), -1);
  EXPECT_EQ(Ms("1h30"), -1);
  EXPECT_EQ(Ms("1H"), -1);
  EXPECT_EQ(Ms(" 1h"), -1);
  EXPECT_EQ(Ms("1h "), -1);
  EXPECT_EQ(Ms("1h 30m"), -1);
  EXPECT_EQ(Ms("5sx"), -1);
  EXPECT_EQ(Ms(std::string_view("1s\0", 3)), -1);
  EXPECT_EQ(Reason(""), "empty duration");
  EXPECT_THAT(Reason("1h30"), HasSubstr("missing unit"));
  EXPECT_THAT(Reason("5x"), HasSubstr("unknown unit"));
}

TEST(ParseDuration, StopsAtPrometheusLimitOf2To63Nanoseconds) {
  EXPECT_EQ(Ms("9223372036854ms"), kMaxMs);
  EXPECT_EQ(Ms("9223372036855ms"), -1);
  EXPECT_EQ(Ms("292y"), 292 * 365 * kDay);
  EXPECT_EQ(Ms("293y"), -1);
  EXPECT_EQ(Ms("292y24w"), 292 * 365 * kDay + 24 * 7 * kDay);
  EXPECT_EQ(Ms("292y25w"), -1);  // each part fits, the sum does not
  EXPECT_EQ(Ms("99999999999999999999999s"), -1);
  EXPECT_THAT(Reason("293y"), HasSubstr("out of range"));
}

TEST(ParseDuration, LeavesTheOutputAloneOnError) {
  int64_t ms = 42;
  EXPECT_FALSE(ParseDuration("1h1h", &ms));
  EXPECT_EQ(ms, 42);
}

TEST(ParseDuration, StatusFormGivesAnAbslDuration) {
  const absl::StatusOr<absl::Duration> d = ParseDuration("1h30m15s250ms");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, absl::Hours(1) + absl::Minutes(30) + absl::Seconds(15) + absl::Milliseconds(250));
  EXPECT_EQ(ParseDuration("0").value(), absl::ZeroDuration());
  EXPECT_EQ(ParseDuration("1x").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ParseDuration, ReasonsNeverQuoteTheText) {
  for (std::string_view bad : {"s3cr3t", "1s3cr3t", "1.s3cr3t", "1h1s3cr3t"}) {
    EXPECT_THAT(Reason(bad), ::testing::Not(HasSubstr("s3cr3t"))) << bad;
    EXPECT_THAT(Reason(bad), ::testing::Not(HasSubstr("cr3t"))) << bad;
  }
}

}  // namespace
}  // namespace novapulse
