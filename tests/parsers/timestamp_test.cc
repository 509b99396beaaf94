#include "parsers/timestamp.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <limits>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace novapulse {
namespace {

// Epoch microseconds of a UTC civil time, computed by the C library rather
// than by the code under test.
int64_t EpochUs(int year, int month, int day, int hour, int minute, int second,
                int64_t micros = 0) {
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  return static_cast<int64_t>(timegm(&tm)) * kMicrosPerSecond + micros;
}

// Sentinel that a successful parse must overwrite and a failed one must keep.
constexpr int64_t kUntouched = -12345;

int64_t ParseOk(std::string_view text) {
  int64_t us = kUntouched;
  EXPECT_TRUE(ParseRfc3339(text, &us)) << text;
  return us;
}

bool Rejects(std::string_view text) {
  int64_t us = kUntouched;
  return !ParseRfc3339(text, &us) && us == kUntouched;
}

TEST(ParseRfc3339, ParsesUtcWithUpperCaseZ) {
  EXPECT_EQ(ParseOk("2026-11-27T06:21:53Z"), EpochUs(2026, 11, 27, 6, 21, 53));
}

TEST(ParseRfc3339, ParsesUtcWithLowerCaseZAndT) {
  EXPECT_EQ(ParseOk("2026-11-27t06:21:53z"), EpochUs(2026, 11, 27, 6, 21, 53));
}

TEST(ParseRfc3339, ParsesSpaceSeparator) {
  EXPECT_EQ(ParseOk("2026-11-27 06:21:53.1z"), EpochUs(2026, 11, 27, 6, 21, 53, 100'000));
}

TEST(ParseRfc3339, AppliesPositiveOffset) {
  EXPECT_EQ(ParseOk("2026-11-27T11:51:53+05:30"), EpochUs(2026, 11, 27, 6, 21, 53));
}

TEST(ParseRfc3339, AppliesNegativeOffset) {
  EXPECT_EQ(ParseOk("2026-11-26T22:21:53-08:00"), EpochUs(2026, 11, 27, 6, 21, 53));
}

TEST(ParseRfc3339, OffsetCanCrossAYearBoundary) {
  EXPECT_EQ(ParseOk("2026-12-31T23:30:00-01:00"), EpochUs(2027, 1, 1, 0, 30, 0));
  EXPECT_EQ(ParseOk("2027-01-01T00:30:00+01:00"), EpochUs(2026, 12, 31, 23, 30, 0));
}

TEST(ParseRfc3339, ZeroOffsetsEqualZ) {
  const int64_t z = ParseOk("2026-11-27T06:21:53Z");
  EXPECT_EQ(ParseOk("2026-11-27T06:21:53+00:00"), z);
  EXPECT_EQ(ParseOk("2026-11-27T06:21:53-00:00"), z);
}

TEST(ParseRfc3339, ParsesFractionalSecondsOfOneToNineDigits) {
  const int64_t base = EpochUs(2026, 11, 27, 6, 21, 53);
  // Micro-seconds each prefix of "123456789" stands for; digits past the
  // sixth are truncated.
  const int64_t expected[] = {100000, 120000, 123000, 123400, 123450,
                              123456, 123456, 123456, 123456};
  const std::string digits = "123456789";
  for (size_t n = 1; n <= 9; ++n) {
    const std::string text = "2026-11-27T06:21:53." + digits.substr(0, n) + "Z";
    EXPECT_EQ(ParseOk(text), base + expected[n - 1]) << text;
  }
}

TEST(ParseRfc3339, TruncatesRatherThanRoundsSubMicrosecondDigits) {
  EXPECT_EQ(ParseOk("2026-11-27T06:21:53.999999999Z"), EpochUs(2026, 11, 27, 6, 21, 53, 999'999));
}

TEST(ParseRfc3339, FractionWithOffset) {
  EXPECT_EQ(ParseOk("2026-11-27T11:51:53.123456789+05:30"),
            EpochUs(2026, 11, 27, 6, 21, 53, 123'456));
}

TEST(ParseRfc3339, AcceptsLeapSecondFoldedIntoTheSecondBefore) {
  EXPECT_EQ(ParseOk("2016-12-31T23:59:60Z"), EpochUs(2016, 12, 31, 23, 59, 59));
  EXPECT_EQ(ParseOk("2016-12-31T23:59:60.5Z"), EpochUs(2016, 12, 31, 23, 59, 59, 500'000));
}

TEST(ParseRfc3339, AcceptsFebruary29InLeapYearsOnly) {
  EXPECT_EQ(ParseOk("2024-02-29T00:00:00Z"), EpochUs(2024, 2, 29, 0, 0, 0));
  EXPECT_EQ(ParseOk("2000-02-29T00:00:00Z"), EpochUs(2000, 2, 29, 0, 0, 0));
  EXPECT_TRUE(Rejects("2026-02-29T00:00:00Z"));
  EXPECT_TRUE(Rejects("2100-02-29T00:00:00Z"));
}

TEST(ParseRfc3339, RejectsImpossibleDates) {
  EXPECT_TRUE(Rejects("2026-02-30T00:00:00Z"));
  EXPECT_TRUE(Rejects("2026-04-31T00:00:00Z"));
  EXPECT_TRUE(Rejects("2026-13-01T00:00:00Z"));
  EXPECT_TRUE(Rejects("2026-00-10T00:00:00Z"));
  EXPECT_TRUE(Rejects("2026-01-00T00:00:00Z"));
  EXPECT_TRUE(Rejects("2026-01-32T00:00:00Z"));
}

TEST(ParseRfc3339, RejectsImpossibleTimes) {
  EXPECT_TRUE(Rejects("2026-01-01T24:00:00Z"));
  EXPECT_TRUE(Rejects("2026-01-01T00:60:00Z"));
  EXPECT_TRUE(Rejects("2026-01-01T00:00:61Z"));
}

TEST(ParseRfc3339, RejectsBadOffsets) {
  EXPECT_TRUE(Rejects("2026-11-27T06:21:53+0530"));
  EXPECT_TRUE(Rejects("2026-11-27T06:21:53+24:00"));
  EXPECT_TRUE(Rejects("2026-11-27T06:21:53+05:60"));
  EXPECT_TRUE(Rejects("2026-11-27T06:21:53+05"));
  EXPECT_TRUE(Rejects("2026-11-27T06:21:53+"));
  EXPECT_TRUE(Rejects("2026-11-27T06:21:53 UTC"));
}

TEST(ParseRfc3339, RejectsMissingOffset) {
  EXPECT_TRUE(Rejects("2026-11-27T06:21:53"));
  EXPECT_TRUE(Rejects("2026-11-27T06:21:53.123"));
}

TEST(ParseRfc3339, RejectsMalformedText) {
  EXPECT_TRUE(Rejects(""));
  EXPECT_TRUE(Rejects("2026"));
  EXPECT_TRUE(Rejects("2026-11-27"));
  EXPECT_TRUE(Rejects("2026-11-27T06:21Z"));
  EXPECT_TRUE(Rejects("2026/11/27T06:21:53Z"));
  EXPECT_TRUE(Rejects("2026-11-27X06:21:53Z"));
  EXPECT_TRUE(Rejects("2026-1a-27T06:21:53Z"));
  EXPECT_TRUE(Rejects("2026-11-27T06:21:53.Z"));
  EXPECT_TRUE(Rejects("2026-11-27T06:21:53ZZ"));
  EXPECT_TRUE(Rejects("2026-11-27T06:21:53Z "));
  EXPECT_TRUE(Rejects(" 2026-11-27T06:21:53Z"));
  EXPECT_TRUE(Rejects("+2026-11-27T06:21:53Z"));
  EXPECT_TRUE(Rejects("yesterday"));
}

TEST(ParseRfc3339, AcceptsTheEpochItself) { EXPECT_EQ(ParseOk("1970-01-01T00:00:00Z"), 0); }

TEST(ParseRfc3339, RejectsYearsBefore1970) {
  EXPECT_TRUE(Rejects("1969-12-31T23:59:59Z"));
  EXPECT_TRUE(Rejects("0001-01-01T00:00:00Z"));
  EXPECT_TRUE(Rejects("0000-01-01T00:00:00Z"));
}

TEST(ParseRfc3339, RejectsOffsetThatLandsBefore1970) {
  EXPECT_TRUE(Rejects("1970-01-01T00:30:00+01:00"));
}

TEST(ParseRfc3339, AcceptsTheLastSecondOfYear9999) {
  EXPECT_EQ(ParseOk("9999-12-31T23:59:59.999Z"), EpochUs(9999, 12, 31, 23, 59, 59, 999'000));
}

TEST(ParseRfc3339, RejectsYearsAfter9999) {
  EXPECT_TRUE(Rejects("10000-01-01T00:00:00Z"));
  EXPECT_TRUE(Rejects("9999-12-31T23:59:59-01:00"));  // 10000-01-01T00:59:59Z
}

TEST(ParseRfc3339, AgreesWithTimegmOnRandomDates) {
  std::mt19937_64 rng(20261127);
  std::uniform_int_distribution<int> year(1970, 9999), month(1, 12), day(1, 28), hour(0, 23),
      minute(0, 59), second(0, 59), micros(0, 999'999);
  for (int i = 0; i < 2000; ++i) {
    const int y = year(rng), mo = month(rng), d = day(rng), h = hour(rng), mi = minute(rng),
              s = second(rng), us = micros(rng);
    char text[64];
    std::snprintf(text, sizeof(text), "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", y, mo, d, h, mi, s,
                  us);
    ASSERT_EQ(ParseOk(text), EpochUs(y, mo, d, h, mi, s, us)) << text;
  }
}

TEST(ParseRfc3339, SameDateWithDifferentTimesAndOffsets) {
  // Consecutive records share a date; each must still get its own instant.
  EXPECT_EQ(ParseOk("2026-11-27T06:21:53Z"), EpochUs(2026, 11, 27, 6, 21, 53));
  EXPECT_EQ(ParseOk("2026-11-27T23:59:59Z"), EpochUs(2026, 11, 27, 23, 59, 59));
  EXPECT_EQ(ParseOk("2026-11-27T00:00:00+01:00"), EpochUs(2026, 11, 26, 23, 0, 0));
  EXPECT_EQ(ParseOk("2026-11-28T00:00:00Z"), EpochUs(2026, 11, 28, 0, 0, 0));
  EXPECT_EQ(ParseOk("2026-11-27T00:00:00Z"), EpochUs(2026, 11, 27, 0, 0, 0));
}

TEST(ParseRfc3339, BadTimeAfterAValidDateIsStillRejected) {
  EXPECT_EQ(ParseOk("2026-02-28T10:00:00Z"), EpochUs(2026, 2, 28, 10, 0, 0));
  EXPECT_TRUE(Rejects("2026-02-28T25:00:00Z"));
  EXPECT_TRUE(Rejects("2026-02-28T10:00:00"));
  EXPECT_TRUE(Rejects("2026-02-29T10:00:00Z"));
  EXPECT_TRUE(Rejects("2026-02-2810:00:00Z"));
}

TEST(ParseRfc3339, MillisecondFormWithZAgreesWithItsOffsetSpelling) {
  // "YYYY-MM-DDTHH:MM:SS.mmmZ" has a fast path; "+00:00" takes the general one.
  for (const char* time :
       {"2026-11-26T09:00:00.016", "2024-02-29T23:59:59.999", "1970-01-01T00:00:00.000",
        "9999-12-31T23:59:59.001", "2016-12-31T23:59:60.500"}) {
    EXPECT_EQ(ParseOk(std::string(time) + "Z"), ParseOk(std::string(time) + "+00:00")) << time;
  }
  EXPECT_EQ(ParseOk("2016-12-31T23:59:60.500Z"), EpochUs(2016, 12, 31, 23, 59, 59, 500000));
  EXPECT_TRUE(Rejects("2026-11-26T24:00:00.000Z"));
  EXPECT_TRUE(Rejects("2026-11-26T09:60:00.000Z"));
  EXPECT_TRUE(Rejects("2026-11-26T09:00:00.0a0Z"));
  EXPECT_TRUE(Rejects("2026-11-26T09:00:00,000Z"));
  EXPECT_TRUE(Rejects("2026-02-30T09:00:00.000Z"));
  EXPECT_TRUE(Rejects("1969-12-31T23:59:59.999Z"));
}

TEST(ParseRfc3339, AgreesWithTimegmFromManyThreadsAtOnce) {
  constexpr int kThreads = 4;
  std::vector<std::thread> threads;
  std::vector<int> mismatches(kThreads, 0);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t, &mismatches] {
      // Each thread alternates between two dates of its own.
      const int years[] = {2000 + t, 2030 + t};
      for (int i = 0; i < 2000; ++i) {
        const int y = years[i % 2], d = 1 + i % 28, h = i % 24;
        char text[32];
        std::snprintf(text, sizeof(text), "%04d-03-%02dT%02d:00:00Z", y, d, h);
        int64_t us = 0;
        if (!ParseRfc3339(text, &us) || us != EpochUs(y, 3, d, h, 0, 0)) ++mismatches[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
}

TEST(EpochNumberToMicros, ReadsSmallNumbersAsSeconds) {
  int64_t us = kUntouched;
  ASSERT_TRUE(EpochNumberToMicros(1795651200, &us));
  EXPECT_EQ(us, int64_t{1795651200} * kMicrosPerSecond);
  ASSERT_TRUE(EpochNumberToMicros(1795651200.25, &us));
  EXPECT_EQ(us, int64_t{1795651200'250'000});
  ASSERT_TRUE(EpochNumberToMicros(0, &us));
  EXPECT_EQ(us, 0);
}

TEST(EpochNumberToMicros, ReadsNumbersFrom1e11AsMilliseconds) {
  int64_t us = kUntouched;
  ASSERT_TRUE(EpochNumberToMicros(1795651200123.0, &us));
  EXPECT_EQ(us, int64_t{1795651200'123'000});
  ASSERT_TRUE(EpochNumberToMicros(1e11, &us));
  EXPECT_EQ(us, int64_t{100'000'000} * kMicrosPerSecond);
}

TEST(EpochNumberToMicros, ReadsJustBelow1e11AsSeconds) {
  int64_t us = kUntouched;
  ASSERT_TRUE(EpochNumberToMicros(99'999'999'999.0, &us));
  EXPECT_EQ(us, int64_t{99'999'999'999} * kMicrosPerSecond);
}

TEST(EpochNumberToMicros, MillisecondsAgreeWithTheSameInstantInSeconds) {
  int64_t from_seconds = 0, from_millis = 0;
  ASSERT_TRUE(EpochNumberToMicros(1795651200.5, &from_seconds));
  ASSERT_TRUE(EpochNumberToMicros(1795651200500.0, &from_millis));
  EXPECT_EQ(from_seconds, from_millis);
  EXPECT_EQ(from_seconds, int64_t{1795651200'500'000});
}

TEST(EpochNumberToMicros, AcceptsTheLastMillisecondOfYear9999) {
  int64_t us = kUntouched;
  ASSERT_TRUE(EpochNumberToMicros(253402300799999.0, &us));
  EXPECT_EQ(us, EpochUs(9999, 12, 31, 23, 59, 59, 999'000));
}

TEST(EpochNumberToMicros, RejectsBeyondYear9999) {
  int64_t us = kUntouched;
  EXPECT_FALSE(EpochNumberToMicros(253402300800000.0, &us));
  EXPECT_FALSE(EpochNumberToMicros(1e300, &us));
  EXPECT_EQ(us, kUntouched);
}

TEST(EpochNumberToMicros, RejectsNegativeAndNonFinite) {
  int64_t us = kUntouched;
  EXPECT_FALSE(EpochNumberToMicros(-1, &us));
  EXPECT_FALSE(EpochNumberToMicros(-0.001, &us));
  EXPECT_FALSE(EpochNumberToMicros(std::numeric_limits<double>::infinity(), &us));
  EXPECT_FALSE(EpochNumberToMicros(std::numeric_limits<double>::quiet_NaN(), &us));
  EXPECT_EQ(us, kUntouched);
}

TEST(FormatRfc3339Millis, FormatsTheEpoch) {
  EXPECT_EQ(FormatRfc3339Millis(0), "1970-01-01T00:00:00.000Z");
}

TEST(FormatRfc3339Millis, FormatsKnownInstants) {
  EXPECT_EQ(FormatRfc3339Millis(EpochUs(2026, 11, 27, 6, 21, 53, 123'000)),
            "2026-11-27T06:21:53.123Z");
  EXPECT_EQ(FormatRfc3339Millis(EpochUs(2024, 2, 29, 23, 59, 59, 1'000)),
            "2024-02-29T23:59:59.001Z");
  EXPECT_EQ(FormatRfc3339Millis(EpochUs(9999, 12, 31, 23, 59, 59, 999'000)),
            "9999-12-31T23:59:59.999Z");
}

TEST(FormatRfc3339Millis, TruncatesMicroseconds) {
  EXPECT_EQ(FormatRfc3339Millis(EpochUs(2026, 11, 27, 6, 21, 53, 123'999)),
            "2026-11-27T06:21:53.123Z");
}

TEST(FormatRfc3339Millis, FormatsInstantsBeforeTheEpoch) {
  EXPECT_EQ(FormatRfc3339Millis(-1'000), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(FormatRfc3339Millis(-1), "1969-12-31T23:59:59.999Z");
}

TEST(AppendRfc3339Millis, AppendsWithoutClearing) {
  std::string out = "ts=";
  AppendRfc3339Millis(0, &out);
  EXPECT_EQ(out, "ts=1970-01-01T00:00:00.000Z");
}

TEST(FormatRfc3339Millis, RoundTripsThroughParseToTheMillisecond) {
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<int64_t> instant(0, EpochUs(9999, 12, 31, 23, 59, 59, 999'999));
  for (int i = 0; i < 5000; ++i) {
    const int64_t us = instant(rng);
    const std::string text = FormatRfc3339Millis(us);
    ASSERT_EQ(ParseOk(text), us - us % 1000) << text;
  }
}

TEST(FormatRfc3339Millis, WritesUtcWithMilliseconds) {
  EXPECT_EQ(FormatRfc3339Millis(EpochUs(2026, 11, 27, 6, 21, 53, 123'456)),
            "2026-11-27T06:21:53.123Z");
  EXPECT_EQ(FormatRfc3339Millis(0), "1970-01-01T00:00:00.000Z");
}

TEST(FormatRfc3339Millis, TimesBefore1970RoundDownToTheEarlierMillisecond) {
  EXPECT_EQ(FormatRfc3339Millis(-1), "1969-12-31T23:59:59.999Z");
  EXPECT_EQ(FormatRfc3339Millis(-1'000'000), "1969-12-31T23:59:59.000Z");
  EXPECT_EQ(FormatRfc3339Millis(-1'000'001), "1969-12-31T23:59:58.999Z");
  EXPECT_EQ(FormatRfc3339Millis(-86'400'000'001), "1969-12-30T23:59:59.999Z");
}

}  // namespace
}  // namespace novapulse
