#include "aggregators/series_index.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <set>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "aggregators/metric_def.h"

namespace novapulse {
namespace {

uint32_t Resolve(SeriesIndex& index, std::string_view key) {
  bool overflowed;
  return index.Resolve(key, &overflowed);
}

TEST(SeriesIndex, AssignsDenseIdsInFirstSeenOrder) {
  SeriesIndex index(1, 100);
  EXPECT_EQ(Resolve(index, "a"), 0u);
  EXPECT_EQ(Resolve(index, "b"), 1u);
  EXPECT_EQ(Resolve(index, "c"), 2u);
  EXPECT_EQ(index.size(), 3u);
}

TEST(SeriesIndex, SameKeyResolvesToSameId) {
  SeriesIndex index(1, 100);
  const uint32_t a = Resolve(index, "a");
  Resolve(index, "b");
  bool overflowed = true;
  EXPECT_EQ(index.Resolve("a", &overflowed), a);
  EXPECT_FALSE(overflowed);
  EXPECT_EQ(index.size(), 2u);
}

TEST(SeriesIndex, KeyReturnsTheInternedKey) {
  SeriesIndex index(2, 100);
  const std::string key = std::string("GET") + kLabelSeparator + "/x";
  const uint32_t id = Resolve(index, key);
  EXPECT_EQ(index.Key(id), key);
}

TEST(SeriesIndexDeathTest, EmptyKeyIsASeries) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  // A family without labels has the empty key. Runs in a child process
  // because the failure mode is a crash that would end the whole binary.
  EXPECT_EXIT(
      {
        SeriesIndex index(0, 10);
        const uint32_t first = Resolve(index, "");
        const uint32_t again = Resolve(index, "");
        std::exit(first == 0 && again == 0 && index.size() == 1 && index.Key(0).empty() ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST(SeriesIndex, EmptyKeyAfterOtherKeysIsASeries) {
  SeriesIndex index(1, 10);
  Resolve(index, "a");
  const uint32_t empty = Resolve(index, "");
  EXPECT_EQ(empty, 1u);
  EXPECT_EQ(Resolve(index, ""), empty);
  EXPECT_EQ(index.Key(empty), "");
}

TEST(SeriesIndex, LongKeysAreStoredWhole) {
  SeriesIndex index(1, 10);
  const std::string long_key(40000, 'k');
  const uint32_t a = Resolve(index, "a");
  const uint32_t big = Resolve(index, long_key);
  const uint32_t b = Resolve(index, "b");
  EXPECT_EQ(index.Key(a), "a");
  EXPECT_EQ(index.Key(big), long_key);
  EXPECT_EQ(index.Key(b), "b");
  EXPECT_EQ(Resolve(index, long_key), big);
}

TEST(SeriesIndex, RealOverflowLookalikeKeepsItsOwnSeries) {
  // A label value that happens to read "__overflow__" is an ordinary series;
  // the overflow series is a different id.
  SeriesIndex index(1, 2);
  const uint32_t lookalike = Resolve(index, kOverflowLabelValue);
  Resolve(index, "b");
  bool overflowed = false;
  const uint32_t overflow = index.Resolve("c", &overflowed);
  ASSERT_TRUE(overflowed);
  EXPECT_NE(overflow, lookalike);
  overflowed = true;
  EXPECT_EQ(index.Resolve(kOverflowLabelValue, &overflowed), lookalike);
  EXPECT_FALSE(overflowed);
}

TEST(SeriesIndex, FindDoesNotInsert) {
  SeriesIndex index(1, 100);
  uint32_t id = 77;
  EXPECT_FALSE(index.Find("a", &id));
  EXPECT_EQ(id, 77u);
  EXPECT_EQ(index.size(), 0u);
  const uint32_t a = Resolve(index, "a");
  ASSERT_TRUE(index.Find("a", &id));
  EXPECT_EQ(id, a);
}

TEST(SeriesIndex, FoldsNewKeysPastTheLimitIntoOneOverflowSeries) {
  SeriesIndex index(2, 3);
  for (std::string_view k : {"a", "b", "c"}) {
    bool overflowed = true;
    index.Resolve(k, &overflowed);
    EXPECT_FALSE(overflowed) << k;
  }
  bool overflowed = false;
  const uint32_t d = index.Resolve("d", &overflowed);
  EXPECT_TRUE(overflowed);
  EXPECT_EQ(d, 3u);
  overflowed = false;
  EXPECT_EQ(index.Resolve("e", &overflowed), d);
  EXPECT_TRUE(overflowed);
  EXPECT_EQ(index.size(), 4u);
  EXPECT_EQ(index.capacity(), 4u);
  EXPECT_EQ(index.limit(), 3u);
}

TEST(SeriesIndex, OverflowSeriesHasOverflowForEveryLabel) {
  SeriesIndex index(3, 1);
  Resolve(index, "a");
  const uint32_t id = Resolve(index, "b");
  const std::string expected = std::string(kOverflowLabelValue) + kLabelSeparator +
                               std::string(kOverflowLabelValue) + kLabelSeparator +
                               std::string(kOverflowLabelValue);
  EXPECT_EQ(index.Key(id), expected);
}

TEST(SeriesIndex, KnownKeysStillResolvePastTheLimit) {
  SeriesIndex index(1, 2);
  const uint32_t a = Resolve(index, "a");
  Resolve(index, "b");
  Resolve(index, "c");  // overflow
  bool overflowed = true;
  EXPECT_EQ(index.Resolve("a", &overflowed), a);
  EXPECT_FALSE(overflowed);
}

TEST(SeriesIndex, OverflowedKeysAreNotFound) {
  SeriesIndex index(1, 1);
  Resolve(index, "a");
  Resolve(index, "b");
  uint32_t id;
  EXPECT_FALSE(index.Find("b", &id));
}

TEST(SeriesIndex, ZeroLimitSendsEverythingToOverflow) {
  SeriesIndex index(1, 0);
  bool overflowed = false;
  EXPECT_EQ(index.Resolve("a", &overflowed), 0u);
  EXPECT_TRUE(overflowed);
  EXPECT_EQ(index.Key(0), kOverflowLabelValue);
}

TEST(SeriesIndex, KeysStayValidAcrossChunks) {
  SeriesIndex index(1, 3 * SeriesIndex::kChunk);
  const std::string_view first = index.Key(Resolve(index, "first-key-long-enough-for-the-heap"));
  for (size_t i = 0; i < 2 * SeriesIndex::kChunk + 5; ++i) Resolve(index, std::to_string(i));
  EXPECT_EQ(first, "first-key-long-enough-for-the-heap");
  EXPECT_EQ(index.Key(static_cast<uint32_t>(SeriesIndex::kChunk + 1)),
            std::to_string(SeriesIndex::kChunk));
}

TEST(SeriesIndex, MemoryGrowsWithSeries) {
  SeriesIndex index(1, 10000);
  const size_t before = index.MemoryBytes();
  for (int i = 0; i < 2000; ++i) Resolve(index, "some-label-value-" + std::to_string(i));
  EXPECT_GT(index.MemoryBytes(), before);
}

TEST(SeriesIndex, ConcurrentResolversAgreeOnIds) {
  constexpr int kThreads = 4;
  constexpr int kKeys = 3000;
  SeriesIndex index(1, 100000);
  std::vector<std::vector<uint32_t>> ids(kThreads, std::vector<uint32_t>(kKeys));
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Each thread walks the keys from a different starting point.
      for (int i = 0; i < kKeys; ++i) {
        const int k = (i + t * kKeys / kThreads) % kKeys;
        bool overflowed;
        ids[t][k] = index.Resolve("k" + std::to_string(k), &overflowed);
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 1; t < kThreads; ++t) EXPECT_EQ(ids[t], ids[0]);
  const std::set<uint32_t> distinct(ids[0].begin(), ids[0].end());
  EXPECT_EQ(distinct.size(), size_t{kKeys});
  EXPECT_EQ(*distinct.rbegin(), uint32_t{kKeys - 1});
  for (int k = 0; k < kKeys; ++k) EXPECT_EQ(index.Key(ids[0][k]), "k" + std::to_string(k));
}

TEST(SeriesIndex, ReaderSeesAConsistentPrefixWhileWritersInsert) {
  constexpr int kKeys = 5000;
  SeriesIndex index(1, kKeys);
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (int k = 0; k < kKeys; ++k) {
      bool overflowed;
      index.Resolve("key-" + std::to_string(k), &overflowed);
    }
    done.store(true, std::memory_order_release);
  });
  bool consistent = true;
  size_t last_size = 0;
  while (!done.load(std::memory_order_acquire)) {
    const size_t n = index.size();
    if (n < last_size) consistent = false;
    last_size = n;
    // Every published id has its key; ids are in insertion order here.
    for (size_t id = n > 50 ? n - 50 : 0; id < n; ++id) {
      if (index.Key(static_cast<uint32_t>(id)) != "key-" + std::to_string(id)) consistent = false;
      uint32_t found;
      if (!index.Find("key-" + std::to_string(id), &found) || found != id) consistent = false;
    }
  }
  writer.join();
  EXPECT_TRUE(consistent);
  EXPECT_EQ(index.size(), size_t{kKeys});
}

TEST(SeriesIndex, SortedIdsFollowKeyOrderAsSeriesArrive) {
  SeriesIndex index(1, 100);
  std::vector<uint32_t> ids;
  index.SortedIds(&ids);
  EXPECT_TRUE(ids.empty());
  Resolve(index, "m");
  Resolve(index, "c");
  Resolve(index, "x");
  index.SortedIds(&ids);
  EXPECT_EQ(ids, (std::vector<uint32_t>{1, 0, 2}));
  // New ids land between the old ones, not after them.
  Resolve(index, "a");
  Resolve(index, "n");
  Resolve(index, "d");
  index.SortedIds(&ids);
  EXPECT_EQ(ids, (std::vector<uint32_t>{3, 1, 5, 0, 4, 2}));
  index.SortedIds(&ids);
  EXPECT_EQ(ids, (std::vector<uint32_t>{3, 1, 5, 0, 4, 2}));
}

TEST(SeriesIndex, SortedIdsIncludeTheOverflowSeries) {
  SeriesIndex index(1, 2);
  Resolve(index, "b");
  Resolve(index, "a");
  Resolve(index, "z");  // folds into __overflow__
  std::vector<uint32_t> ids;
  index.SortedIds(&ids);
  ASSERT_EQ(ids.size(), 3u);
  EXPECT_EQ(index.Key(ids[0]), "__overflow__");
  EXPECT_EQ(index.Key(ids[1]), "a");
  EXPECT_EQ(index.Key(ids[2]), "b");
}

TEST(SeriesIndex, SortedIdsStaySortedWhileWritersInsert) {
  constexpr int kKeys = 5000;
  SeriesIndex index(1, kKeys);
  std::atomic<bool> done{false};
  std::thread writer([&] {
    // Descending-ish keys, so each new batch merges in front of the old one.
    for (int k = kKeys - 1; k >= 0; --k) {
      bool overflowed;
      index.Resolve("key-" + std::to_string(k * 7919 % kKeys), &overflowed);
    }
    done.store(true, std::memory_order_release);
  });
  bool consistent = true;
  size_t last_size = 0;
  std::vector<uint32_t> ids;
  while (!done.load(std::memory_order_acquire)) {
    index.SortedIds(&ids);
    if (ids.size() < last_size) consistent = false;
    last_size = ids.size();
    std::vector<bool> seen(ids.size(), false);
    for (size_t i = 0; i < ids.size(); ++i) {
      if (ids[i] >= ids.size() || seen[ids[i]]) {
        consistent = false;
        break;
      }
      seen[ids[i]] = true;
      if (i > 0 && !(index.Key(ids[i - 1]) < index.Key(ids[i]))) consistent = false;
    }
  }
  writer.join();
  EXPECT_TRUE(consistent);
  index.SortedIds(&ids);
  ASSERT_EQ(ids.size(), size_t{kKeys});
  for (size_t i = 1; i < ids.size(); ++i) EXPECT_LT(index.Key(ids[i - 1]), index.Key(ids[i]));
}

TEST(SeriesIndex, RemovedKeysAreGoneAndTheirIdsReused) {
  SeriesIndex index(1, 100);
  const uint32_t a = Resolve(index, "a");
  const uint32_t b = Resolve(index, "b");
  const uint32_t c = Resolve(index, "c");
  const std::vector<uint32_t> gone = {b};
  index.Remove(gone);
  EXPECT_TRUE(index.IsFree(b));
  EXPECT_FALSE(index.IsFree(a));
  EXPECT_EQ(index.live(), 2u);
  uint32_t id;
  EXPECT_FALSE(index.Find("b", &id));
  ASSERT_TRUE(index.Find("a", &id));
  EXPECT_EQ(id, a);
  ASSERT_TRUE(index.Find("c", &id));
  EXPECT_EQ(id, c);
  // The next new key takes the free id; size() does not grow.
  EXPECT_EQ(Resolve(index, "d"), b);
  EXPECT_EQ(index.Key(b), "d");
  EXPECT_FALSE(index.IsFree(b));
  EXPECT_EQ(index.size(), 3u);
  EXPECT_EQ(index.live(), 3u);
  // A removed key that comes back is a new series.
  EXPECT_EQ(Resolve(index, "b"), 3u);
}

TEST(SeriesIndex, RemovalKeepsEveryOtherKeyFindableInCollidingRuns) {
  // A small table (limit 40: 128 slots) and many keys: long probe runs,
  // wrapping at the end, so that removal must shift later slots back.
  SeriesIndex index(1, 40);
  std::vector<std::string> keys;
  for (int i = 0; i < 40; ++i) keys.push_back("k" + std::to_string(i));
  for (int round = 0; round < 50; ++round) {
    std::vector<uint32_t> ids;
    for (const std::string& k : keys) ids.push_back(Resolve(index, k));
    // Remove every third key, a different third each round.
    std::vector<uint32_t> gone;
    std::set<std::string> removed;
    for (size_t i = round % 3; i < keys.size(); i += 3) {
      gone.push_back(ids[i]);
      removed.insert(keys[i]);
    }
    index.Remove(gone);
    for (size_t i = 0; i < keys.size(); ++i) {
      uint32_t id;
      const bool found = index.Find(keys[i], &id);
      ASSERT_EQ(found, removed.count(keys[i]) == 0) << keys[i] << " round " << round;
      if (found) EXPECT_EQ(id, ids[i]);
    }
    // New names each round: ids are reused, the limit is never reached.
    for (size_t i = round % 3; i < keys.size(); i += 3) {
      keys[i] = "r" + std::to_string(round) + "-" + std::to_string(i);
    }
  }
  EXPECT_LE(index.size(), 41u);
  bool overflowed = false;
  index.Resolve("one-more", &overflowed);
  EXPECT_FALSE(overflowed);
}

TEST(SeriesIndex, SortedIdsDropRemovedIdsAndPlaceReusedOnes) {
  SeriesIndex index(1, 100);
  Resolve(index, "m");  // 0
  Resolve(index, "c");  // 1
  Resolve(index, "x");  // 2
  std::vector<uint32_t> ids;
  index.SortedIds(&ids);
  EXPECT_EQ(ids, (std::vector<uint32_t>{1, 0, 2}));
  const std::vector<uint32_t> gone = {0};
  index.Remove(gone);
  index.SortedIds(&ids);
  EXPECT_EQ(ids, (std::vector<uint32_t>{1, 2}));
  EXPECT_EQ(Resolve(index, "a"), 0u);  // reuses 0
  EXPECT_EQ(Resolve(index, "z"), 3u);
  index.SortedIds(&ids);
  EXPECT_EQ(ids, (std::vector<uint32_t>{0, 1, 2, 3}));
  // Removed and reused again before a reader looked.
  const std::vector<uint32_t> again = {3};
  index.Remove(again);
  EXPECT_EQ(Resolve(index, "b"), 3u);
  index.SortedIds(&ids);
  EXPECT_EQ(ids, (std::vector<uint32_t>{0, 3, 1, 2}));
}

TEST(SeriesIndex, FreeIdsDoNotCountTowardsTheLimit) {
  SeriesIndex index(1, 2);
  const uint32_t a = Resolve(index, "a");
  Resolve(index, "b");
  bool overflowed = false;
  const uint32_t over = index.Resolve("c", &overflowed);
  EXPECT_TRUE(overflowed);
  const std::vector<uint32_t> gone = {a};
  index.Remove(gone);
  EXPECT_EQ(index.Resolve("c", &overflowed), a);
  EXPECT_FALSE(overflowed);
  EXPECT_EQ(index.overflow_id(), over);
  index.Resolve("d", &overflowed);
  EXPECT_TRUE(overflowed);
}

TEST(SeriesIndex, ChurnKeepsMemoryFlat) {
  // Ten thousand live keys at a time, a million over the run: the arena is
  // compacted, the table and the ids are reused.
  constexpr size_t kLive = 10000;
  SeriesIndex index(1, kLive);
  std::vector<uint32_t> ids;
  size_t after_first_round = 0;
  for (int round = 0; round < 100; ++round) {
    ids.clear();
    for (size_t i = 0; i < kLive; ++i) {
      bool overflowed = false;
      ids.push_back(
          index.Resolve("/route/" + std::to_string(round) + "/" + std::to_string(i), &overflowed));
      ASSERT_FALSE(overflowed);
    }
    if (round == 1) after_first_round = index.MemoryBytes();
    index.Remove(ids);
    ASSERT_EQ(index.live(), 0u);
  }
  EXPECT_EQ(index.size(), kLive);
  EXPECT_LE(index.MemoryBytes(), after_first_round + SeriesIndex::kChunk * 64);
}

TEST(SeriesIndex, KeyOwnerKeepsRemovedKeysReadable) {
  SeriesIndex index(1, 3000);
  std::vector<uint32_t> ids;
  // Enough bytes for several arena blocks, so that removing most of them
  // moves the rest to a new arena.
  const std::string long_tail(200, 'x');
  for (int i = 0; i < 2000; ++i) ids.push_back(Resolve(index, std::to_string(i) + long_tail));
  std::shared_ptr<const void> owner;
  std::string_view kept;
  {
    const std::shared_lock<std::shared_mutex> lock = index.ReadLock();
    owner = index.KeyOwner();
    kept = index.Key(ids[5]);
  }
  ids.pop_back();
  index.Remove(ids);  // all but the last: compacts
  EXPECT_EQ(kept, "5" + long_tail);
  uint32_t id;
  ASSERT_TRUE(index.Find("1999" + long_tail, &id));
  EXPECT_EQ(index.Key(id), "1999" + long_tail);
}

TEST(SeriesIndex, ReadersRunWhileSeriesAreRemoved) {
  constexpr size_t kLive = 2000;
  SeriesIndex index(1, kLive);
  std::atomic<bool> done{false};
  std::atomic<bool> consistent{true};
  std::thread reader([&] {
    std::vector<uint32_t> ids;
    while (!done.load(std::memory_order_acquire)) {
      const std::shared_lock<std::shared_mutex> lock = index.ReadLock();
      index.SortedIds(&ids);
      for (size_t i = 1; i < ids.size(); ++i) {
        if (index.IsFree(ids[i]) || !(index.Key(ids[i - 1]) < index.Key(ids[i]))) {
          consistent.store(false);
        }
      }
    }
  });
  std::vector<uint32_t> ids;
  for (int round = 0; round < 200; ++round) {
    ids.clear();
    for (size_t i = 0; i < kLive; ++i) {
      ids.push_back(Resolve(index, "r" + std::to_string(round) + "/" + std::to_string(i)));
    }
    index.Remove(ids);
  }
  done.store(true, std::memory_order_release);
  reader.join();
  EXPECT_TRUE(consistent.load());
}

TEST(SeriesIndex, RemoveSkipsIdsThatAreNotLive) {
  SeriesIndex index(1, 1);
  const uint32_t a = Resolve(index, "a");
  const uint32_t over = Resolve(index, "b");  // folds
  const std::vector<uint32_t> twice = {a, a, over, over, 7};
  index.Remove(twice);
  // The overflow series stays (writers keep its id); a is gone once.
  EXPECT_EQ(index.live(), 1u);
  EXPECT_EQ(index.overflow_id(), over);
  EXPECT_EQ(Resolve(index, "c"), a);
}

TEST(SeriesIndex, AddFreeLeavesAHoleTheNextKeyFills) {
  SeriesIndex index(1, 10);
  Resolve(index, "a");
  const uint32_t hole = index.AddFree();
  EXPECT_EQ(hole, 1u);
  EXPECT_TRUE(index.IsFree(hole));
  EXPECT_EQ(index.live(), 1u);
  EXPECT_EQ(Resolve(index, "b"), hole);
}

}  // namespace
}  // namespace novapulse
