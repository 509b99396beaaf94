#include "aggregators/cell_array.h"

#include <gtest/gtest.h>

#include <atomic>
#include <bit>
#include <cstdint>
#include <thread>
#include <vector>

namespace novapulse {
namespace {

TEST(CellArray, UnwrittenSeriesReadAsZero) {
  const CellArray cells(/*width=*/3, /*capacity=*/1000);
  EXPECT_EQ(cells.Load(0, 0), 0u);
  EXPECT_EQ(cells.Load(999, 2), 0u);
}

TEST(CellArray, AddAccumulatesPerWord) {
  CellArray cells(3, 10);
  cells.Add(4, 0, 2);
  cells.Add(4, 0, 5);
  cells.Add(4, 2, 1);
  EXPECT_EQ(cells.Load(4, 0), 7u);
  EXPECT_EQ(cells.Load(4, 1), 0u);
  EXPECT_EQ(cells.Load(4, 2), 1u);
  EXPECT_EQ(cells.Load(3, 0), 0u);
  EXPECT_EQ(cells.Load(5, 0), 0u);
}

TEST(CellArray, NegativeDeltasWrapToATwosComplementSum) {
  // Gauges store int64 deltas in the u64 words.
  CellArray cells(1, 1);
  cells.Add(0, 0, static_cast<uint64_t>(int64_t{-3}));
  cells.Add(0, 0, 5);
  EXPECT_EQ(static_cast<int64_t>(cells.Load(0, 0)), 2);
}

TEST(CellArray, StoreOverwrites) {
  CellArray cells(1, 1);
  cells.Add(0, 0, 10);
  cells.Store(0, 0, 3);
  EXPECT_EQ(cells.Load(0, 0), 3u);
}

TEST(CellArray, SeriesInDifferentChunksAreIndependent) {
  CellArray cells(2, 3 * CellArray::kChunkSeries);
  const uint32_t ids[] = {0, CellArray::kChunkSeries - 1, CellArray::kChunkSeries,
                          2 * CellArray::kChunkSeries + 7};
  uint64_t n = 1;
  for (uint32_t id : ids) cells.Add(id, 1, n++);
  n = 1;
  for (uint32_t id : ids) {
    EXPECT_EQ(cells.Load(id, 1), n++) << id;
    EXPECT_EQ(cells.Load(id, 0), 0u) << id;
  }
}

TEST(CellArray, AllocatesChunksOnlyWhenWritten) {
  CellArray cells(4, 4 * CellArray::kChunkSeries);
  const size_t empty = cells.MemoryBytes();
  cells.Add(0, 0, 1);
  const size_t one_chunk = cells.MemoryBytes();
  EXPECT_EQ(one_chunk - empty, CellArray::kChunkSeries * 4 * sizeof(uint64_t));
  cells.Add(1, 3, 1);  // same chunk
  EXPECT_EQ(cells.MemoryBytes(), one_chunk);
  cells.Add(3 * CellArray::kChunkSeries, 0, 1);
  EXPECT_EQ(cells.MemoryBytes() - one_chunk, CellArray::kChunkSeries * 4 * sizeof(uint64_t));
}

TEST(CellArray, ChunksOfAGivenNumberOfSeries) {
  CellArray cells(/*width=*/512, /*capacity=*/10, /*chunk_series=*/2);
  EXPECT_EQ(cells.chunk_series(), 2u);
  EXPECT_EQ(cells.chunk_bytes(), 2 * 512 * sizeof(uint64_t));
  const size_t empty = cells.MemoryBytes();
  EXPECT_EQ(empty, 5 * sizeof(void*));  // the chunk pointers
  cells.Add(3, 511, 7);
  cells.Add(2, 0, 1);  // same chunk
  EXPECT_EQ(cells.MemoryBytes() - empty, cells.chunk_bytes());
  cells.Add(9, 1, 2);
  EXPECT_EQ(cells.MemoryBytes() - empty, 2 * cells.chunk_bytes());
  EXPECT_EQ(cells.Load(3, 511), 7u);
  EXPECT_EQ(cells.Load(2, 0), 1u);
  EXPECT_EQ(cells.Load(9, 1), 2u);
  EXPECT_EQ(cells.Load(8, 1), 0u);
  EXPECT_EQ(cells.Load(4, 0), 0u);
  cells.ResetIfAllocated(3, 511);
  EXPECT_EQ(cells.Load(3, 511), 0u);
}

TEST(CellArray, ReportsItsWidth) { EXPECT_EQ(CellArray(13, 1).width(), 13u); }

TEST(CellArray, ConcurrentReaderSeesMonotonicValuesAndTheFinalTotal) {
  constexpr uint32_t kSeries = 3 * CellArray::kChunkSeries;
  constexpr int kRounds = 200;
  CellArray cells(1, kSeries);
  std::atomic<bool> done{false};
  std::thread writer([&] {
    // Chunks are allocated while the reader runs.
    for (int r = 0; r < kRounds; ++r) {
      for (uint32_t s = 0; s < kSeries; ++s) cells.Add(s, 0, 1);
    }
    done.store(true, std::memory_order_release);
  });
  std::vector<uint64_t> last(kSeries, 0);
  bool monotonic = true;
  int reads = 0;
  while (!done.load(std::memory_order_acquire) || reads == 0) {
    for (uint32_t s = 0; s < kSeries; ++s) {
      const uint64_t v = cells.Load(s, 0);
      if (v < last[s] || v > kRounds) monotonic = false;
      last[s] = v;
    }
    ++reads;
  }
  writer.join();
  EXPECT_TRUE(monotonic);
  for (uint32_t s = 0; s < kSeries; ++s) ASSERT_EQ(cells.Load(s, 0), uint64_t{kRounds}) << s;
}

}  // namespace
}  // namespace novapulse
