// quantile.h uses size_t without including <cstddef>; the test supplies it
// so that this file builds until the header does.
// clang-format off
#include <cstddef>
#include "aggregators/quantile.h"
// clang-format on

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

namespace novapulse {
namespace {

// Expected values are worked by hand from Prometheus's bucketQuantile
// (promql/quantile.go): rank = q * total; the first bucket whose cumulative
// count reaches the rank; linear interpolation from the previous bound (0 for
// the first bucket when its bound is positive); the highest finite bound when
// the rank falls in +Inf.

// le=0.1: 10, le=0.5: 20, le=1: 30, +Inf: 40 (cumulative 10, 30, 60, 100).
const std::vector<double> kBounds = {0.1, 0.5, 1};
const uint64_t kCounts[] = {10, 20, 30, 40};

TEST(HistogramQuantile, InterpolatesInsideTheFirstBucketFromZero) {
  // rank 5 of 10 in (0, 0.1].
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.05, kBounds, kCounts), 0.05);
}

TEST(HistogramQuantile, InterpolatesInsideAMiddleBucket) {
  // rank 20: bucket (0.1, 0.5] holds ranks 10..30: 0.1 + 0.4 * 10/20.
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.2, kBounds, kCounts), 0.3);
  // rank 50: bucket (0.5, 1] holds 30..60: 0.5 + 0.5 * 20/30.
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.5, kBounds, kCounts), 0.5 + 0.5 * 20.0 / 30.0);
}

TEST(HistogramQuantile, RankOnACumulativeCountGivesThatBucketsBound) {
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.1, kBounds, kCounts), 0.1);
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.3, kBounds, kCounts), 0.5);
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.6, kBounds, kCounts), 1.0);
}

TEST(HistogramQuantile, RankInTheInfBucketGivesTheHighestFiniteBound) {
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.61, kBounds, kCounts), 1.0);
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.99, kBounds, kCounts), 1.0);
  EXPECT_DOUBLE_EQ(HistogramQuantile(1.0, kBounds, kCounts), 1.0);
}

TEST(HistogramQuantile, ZeroQuantileIsZeroWhenTheFirstBucketHasObservations) {
  EXPECT_DOUBLE_EQ(HistogramQuantile(0, kBounds, kCounts), 0.0);
}

TEST(HistogramQuantile, OneQuantileWithEmptyInfBucketIsTheTopBoundUsed) {
  const std::vector<double> bounds = {1, 2, 4};
  const uint64_t counts[] = {1, 1, 0, 0};
  // rank 2 reached in (1, 2] with its single observation: 1 + 1 * 1/1.
  EXPECT_DOUBLE_EQ(HistogramQuantile(1.0, bounds, counts), 2.0);
}

TEST(HistogramQuantile, SkipsEmptyBucketsToTheFirstThatReachesTheRank) {
  const std::vector<double> bounds = {1, 2, 3};
  const uint64_t counts[] = {5, 0, 5, 0};
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.5, bounds, counts), 1.0);   // rank 5 reached at le=1
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.75, bounds, counts), 2.5);  // rank 7.5: 2 + 1 * 2.5/5
}

TEST(HistogramQuantile, MatchesPrometheusOnNovaGiftLatencyBuckets) {
  const std::vector<double> bounds = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
  // 1000 requests: cumulative 100, 300, 600, 800, 900, 950, 980, 990, 995, 998, 999, 1000.
  const uint64_t counts[] = {100, 200, 300, 200, 100, 50, 30, 10, 5, 3, 1, 1};
  // p50: rank 500 in (0.01, 0.025] holding 300..600: 0.01 + 0.015 * 200/300.
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.5, bounds, counts), 0.01 + 0.015 * 200.0 / 300.0);
  // p90: rank 900 == cumulative at le=0.1.
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.9, bounds, counts), 0.1);
  // p99: rank 990 == cumulative at le=1.
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.99, bounds, counts), 1.0);
  // p99.9: rank 999 == cumulative at le=10.
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.999, bounds, counts), 10.0);
  // p95: rank 950 == cumulative at le=0.25.
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.95, bounds, counts), 0.25);
  // p97: rank 970 in (0.25, 0.5] holding 950..980: 0.25 + 0.25 * 20/30.
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.97, bounds, counts), 0.25 + 0.25 * 20.0 / 30.0);
}

TEST(HistogramQuantile, OnlyInfObservationsGiveTheHighestFiniteBound) {
  const std::vector<double> bounds = {1, 2};
  const uint64_t counts[] = {0, 0, 7};
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.5, bounds, counts), 2.0);
}

TEST(HistogramQuantile, QuantileBelowZeroIsMinusInfinity) {
  EXPECT_EQ(HistogramQuantile(-0.1, kBounds, kCounts), -std::numeric_limits<double>::infinity());
}

TEST(HistogramQuantile, QuantileAboveOneIsPlusInfinity) {
  EXPECT_EQ(HistogramQuantile(1.1, kBounds, kCounts), std::numeric_limits<double>::infinity());
}

TEST(HistogramQuantile, NoObservationsIsNaN) {
  const uint64_t counts[] = {0, 0, 0, 0};
  EXPECT_TRUE(std::isnan(HistogramQuantile(0.5, kBounds, counts)));
}

TEST(HistogramQuantile, OnlyAnInfBucketIsNaN) {
  const std::vector<double> bounds;
  const uint64_t counts[] = {5};
  EXPECT_TRUE(std::isnan(HistogramQuantile(0.5, bounds, counts)));
}

TEST(HistogramQuantile, NaNQuantileIsNaN) {
  EXPECT_TRUE(
      std::isnan(HistogramQuantile(std::numeric_limits<double>::quiet_NaN(), kBounds, kCounts)));
}

TEST(HistogramQuantile, NonPositiveFirstBoundIsReturnedAsIs) {
  // Prometheus does not interpolate from 0 when the first bound is <= 0.
  const std::vector<double> bounds = {-1, 0, 1};
  const uint64_t counts[] = {2, 2, 2, 0};
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.25, bounds, counts), -1.0);
}

}  // namespace
}  // namespace novapulse
