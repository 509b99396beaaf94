#include "pipeline/event_clock.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <vector>

namespace novapulse {
namespace {

using Progress = EventClock::PartitionProgress;

constexpr int64_t kLateness = 30'000;
constexpr int64_t kIdleAfter = 5'000;
constexpr int64_t kPartitionIdle = 30'000;
constexpr int64_t kMinute = 60'000;

// Progress of one partition with records up to `newest_ms`.
Progress Records(uint64_t partition, int64_t newest_ms) {
  return {.partition = partition, .records = true, .newest_us = newest_ms * 1000};
}
Progress End(uint64_t partition) { return {.partition = partition, .reached_end = true}; }

// Runs one batch through the clock: begin, then complete with `progress`.
int64_t Batch(EventClock& clock, int64_t wall_ms, std::vector<Progress> progress) {
  int64_t newest_us = INT64_MIN;
  for (const Progress& p : progress) newest_us = std::max(newest_us, p.newest_us);
  clock.BeginBatch();
  return clock.EndBatch(newest_us, wall_ms, progress);
}

// A clock with partitions 1 and 2 assigned at wall time 0.
class TwoPartitions : public ::testing::Test {
 protected:
  TwoPartitions() {
    clock.AddPartition(1, 0);
    clock.AddPartition(2, 0);
  }
  EventClock clock{kLateness, kIdleAfter, kPartitionIdle};
};

TEST(EventClockTest, WithoutPartitionsTheNewestEventOverallCounts) {
  EventClock clock(kLateness, kIdleAfter, kPartitionIdle);
  EXPECT_EQ(clock.BeginBatch(), INT64_MIN);
  EXPECT_EQ(clock.EndBatch(20 * kMinute * 1000, 0), 20 * kMinute - kLateness);
  clock.BeginBatch();
  EXPECT_EQ(clock.EndBatch(10 * kMinute * 1000, 0), 20 * kMinute - kLateness)
      << "the watermark never goes back";
}

TEST_F(TwoPartitions, APartitionAheadDoesNotCloseTheSlotsOfOneBehind) {
  // Partition 1 is handed over first, well ahead: 2 has brought nothing yet.
  EXPECT_EQ(Batch(clock, 100, {Records(1, 30 * kMinute)}), INT64_MIN);
  // Then 2's backlog starts, 20 minutes behind.
  EXPECT_EQ(Batch(clock, 200, {Records(2, 10 * kMinute)}), 10 * kMinute - kLateness);
  EXPECT_EQ(Batch(clock, 300, {Records(1, 31 * kMinute), Records(2, 12 * kMinute)}),
            12 * kMinute - kLateness);
  // 2 reaches its end: 1 alone holds time back.
  EXPECT_EQ(Batch(clock, 400, {Records(2, 13 * kMinute), End(2)}), 31 * kMinute - kLateness);
}

TEST_F(TwoPartitions, AnEndHeardBeforeThePartitionsRecordsCompleteComesWithTheirBatch) {
  EXPECT_EQ(Batch(clock, 100, {Records(1, 30 * kMinute), Records(2, 10 * kMinute)}),
            10 * kMinute - kLateness);
  // Records of 2 after its end was reached (new ones): behind again.
  EXPECT_EQ(Batch(clock, 200, {End(2)}), 30 * kMinute - kLateness);
  EXPECT_EQ(Batch(clock, 300, {Records(1, 40 * kMinute), Records(2, 35 * kMinute)}),
            35 * kMinute - kLateness);
}

TEST_F(TwoPartitions, APartitionWithoutRecordsAtItsEndHoldsNothingBack) {
  EXPECT_EQ(Batch(clock, 100, {Records(1, 30 * kMinute), End(2)}), 30 * kMinute - kLateness);
}

TEST_F(TwoPartitions, ASilentPartitionStopsHoldingTimeBack) {
  EXPECT_EQ(Batch(clock, 1'000, {Records(1, 30 * kMinute)}), INT64_MIN);
  EXPECT_EQ(Batch(clock, kPartitionIdle - 1, {Records(1, 31 * kMinute)}), INT64_MIN);
  // 2 has brought nothing for kPartitionIdle (its leader is away, say).
  EXPECT_EQ(Batch(clock, kPartitionIdle, {Records(1, 32 * kMinute)}), 32 * kMinute - kLateness);
}

TEST_F(TwoPartitions, ARevokedPartitionStopsHoldingTimeBack) {
  EXPECT_EQ(Batch(clock, 100, {Records(1, 30 * kMinute), Records(2, 10 * kMinute)}),
            10 * kMinute - kLateness);
  clock.RemovePartition(2);
  // Its records still in flight when it was revoked change nothing.
  EXPECT_EQ(Batch(clock, 200, {Records(2, 11 * kMinute)}), 30 * kMinute - kLateness);
}

TEST_F(TwoPartitions, TickMovesOnWithTheWallClockOnlyWhenNoPartitionIsBehind) {
  EXPECT_EQ(Batch(clock, 1'000, {Records(1, 30 * kMinute), End(1), Records(2, 10 * kMinute)}),
            10 * kMinute - kLateness);
  // Idle, but 2 is behind: no move until it has been silent kPartitionIdle.
  EXPECT_EQ(clock.Tick(1'000 + kIdleAfter), std::nullopt);
  EXPECT_EQ(clock.Tick(1'000 + kPartitionIdle - 1), std::nullopt);
  const int64_t wall = 1'000 + kPartitionIdle;
  EXPECT_EQ(clock.Tick(wall), 30 * kMinute + kPartitionIdle - kLateness);
}

TEST_F(TwoPartitions, AnEndAloneInABatchLetsTimeMoveOn) {
  EXPECT_EQ(Batch(clock, 1'000, {Records(1, 30 * kMinute), End(1), Records(2, 10 * kMinute)}),
            10 * kMinute - kLateness);
  EXPECT_EQ(Batch(clock, 1'100, {End(2)}), 30 * kMinute - kLateness);
  EXPECT_EQ(clock.Tick(1'200), std::nullopt) << "nothing new to close";
  EXPECT_EQ(clock.Tick(1'000 + kIdleAfter), 30 * kMinute + kIdleAfter - kLateness);
}

TEST(EventClockTest, SlotsCloseOnlyUpToTheOldestBatchInFlight) {
  EventClock clock(kLateness, kIdleAfter, kPartitionIdle);
  clock.AddPartition(1, 0);
  EXPECT_EQ(Batch(clock, 100, {Records(1, 10 * kMinute)}), 10 * kMinute - kLateness);
  clock.BeginBatch();
  const int64_t second = clock.BeginBatch();  // stamped before the first completes
  const std::vector<Progress> first{Records(1, 20 * kMinute)};
  EXPECT_EQ(clock.EndBatch(20 * kMinute * 1000, 200, first), second);
  EXPECT_EQ(clock.watermark_ms(), 20 * kMinute - kLateness);
  EXPECT_EQ(clock.Tick(200 + kIdleAfter), std::nullopt) << "a batch is in flight";
  EXPECT_EQ(clock.EndBatch(INT64_MIN, 300), 20 * kMinute - kLateness);
}

}  // namespace
}  // namespace novapulse
