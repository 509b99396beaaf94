#include "base/time_math.h"

#include <cstdint>
#include <limits>

#include "gtest/gtest.h"

namespace novapulse {
namespace {

TEST(FloorDiv, RoundsTowardNegativeInfinity) {
  EXPECT_EQ(FloorDiv(7, 2), 3);
  EXPECT_EQ(FloorDiv(-7, 2), -4);
  EXPECT_EQ(FloorDiv(7, -2), -4);
  EXPECT_EQ(FloorDiv(-7, -2), 3);
}

TEST(FloorDiv, ExactQuotientsAreUnchanged) {
  EXPECT_EQ(FloorDiv(0, 5), 0);
  EXPECT_EQ(FloorDiv(6, 2), 3);
  EXPECT_EQ(FloorDiv(-6, 2), -3);
  EXPECT_EQ(FloorDiv(6, -2), -3);
  EXPECT_EQ(FloorDiv(-6, -2), 3);
}

TEST(FloorDiv, ATimeJustBeforeABoundaryBelongsToTheSlotBeforeIt) {
  EXPECT_EQ(FloorDiv(-1, 1000), -1);     // 1969-12-31T23:59:59.999 is in second -1
  EXPECT_EQ(FloorDiv(-1000, 1000), -1);  // and so is 23:59:59.000
  EXPECT_EQ(FloorDiv(-1001, 1000), -2);
  EXPECT_EQ(FloorDiv(14'999, 15'000), 0);
  EXPECT_EQ(FloorDiv(15'000, 15'000), 1);
}

TEST(FloorDiv, HoldsAtTheEndsOfTheRange) {
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(FloorDiv(kMax, 1), kMax);
  EXPECT_EQ(FloorDiv(kMin, 1), kMin);
  EXPECT_EQ(FloorDiv(kMin, 2), kMin / 2);
  EXPECT_EQ(FloorDiv(kMin + 1, 2), kMin / 2);
  EXPECT_EQ(FloorDiv(kMax, -1), -kMax);
  EXPECT_EQ(FloorDiv(kMin, kMax), -2);
  static_assert(FloorDiv(-86'400'001, 86'400'000) == -2);
}

}  // namespace
}  // namespace novapulse
