#include "aggregators/metric_store.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <map>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "aggregators/metric_def.h"
#include "base/state_codec.h"

namespace novapulse {
namespace {

enum Metric : size_t { kRequests, kLatency, kDepth, kOverflow };

std::vector<MetricDef> Defs() {
  return {
      {"requests_total", "Requests.", MetricType::kCounter, {"method", "route"}, {}},
      {"latency_seconds", "Latency.", MetricType::kHistogram, {"route"}, {0.1, 0.5, 1}},
      {"queue_depth", "Depth.", MetricType::kGauge, {"type"}, {}},
      {"series_overflow_total", "Overflows.", MetricType::kCounter, {"metric"}, {}},
  };
}

std::string Key(std::initializer_list<std::string_view> values) {
  std::string key;
  BuildKey(&key, values);
  return key;
}

// Index of `key` in a merged family, or -1.
int Find(const FamilySnapshot& f, std::string_view key) {
  for (size_t i = 0; i < f.size(); ++i) {
    if (f.keys[i] == key) return static_cast<int>(i);
  }
  return -1;
}

uint64_t CounterValue(const MetricStore& store, size_t m, std::string_view key) {
  const FamilySnapshot f = store.Merge(m);
  const int i = Find(f, key);
  EXPECT_GE(i, 0) << "no series " << key;
  return i < 0 ? 0 : f.Word(i, 0);
}

TEST(BuildKey, JoinsValuesWithTheSeparator) {
  EXPECT_EQ(Key({"GET", "/x"}), std::string("GET") + kLabelSeparator + "/x");
  EXPECT_EQ(Key({"only"}), "only");
  EXPECT_EQ(Key({}), "");
}

TEST(BuildKey, ClearsThePreviousKey) {
  std::string key = "stale";
  BuildKey(&key, {"a", "b"});
  EXPECT_EQ(key, std::string("a") + kLabelSeparator + "b");
}

TEST(SplitKey, InvertsBuildKey) {
  const std::string key = Key({"POST", "", "/api/:id"});  // the views point into it
  const std::vector<std::string_view> values = SplitKey(key);
  ASSERT_EQ(values.size(), 3u);
  EXPECT_EQ(values[0], "POST");
  EXPECT_EQ(values[1], "");
  EXPECT_EQ(values[2], "/api/:id");
  EXPECT_EQ(SplitKey("single"), std::vector<std::string_view>{"single"});
}

TEST(ShardWriter, ResolvedIdsAreStableAndSharedAcrossShards) {
  MetricStore store(Defs(), 3, 100);
  ShardWriter w0(&store, 0, kOverflow), w1(&store, 1, kOverflow), w2(&store, 2, kOverflow);
  const uint32_t a = w1.Resolve(kRequests, Key({"GET", "/a"}));
  const uint32_t b = w0.Resolve(kRequests, Key({"GET", "/b"}));
  EXPECT_NE(a, b);
  EXPECT_EQ(w0.Resolve(kRequests, Key({"GET", "/a"})), a);
  EXPECT_EQ(w2.Resolve(kRequests, Key({"GET", "/a"})), a);
  EXPECT_EQ(w1.Resolve(kRequests, Key({"GET", "/a"})), a);
  EXPECT_EQ(w2.Resolve(kRequests, Key({"GET", "/b"})), b);
  EXPECT_EQ(store.index(kRequests).size(), 2u);
}

TEST(ShardWriter, FamiliesHaveSeparateIdSpaces) {
  MetricStore store(Defs(), 1, 100);
  ShardWriter w(&store, 0, kOverflow);
  EXPECT_EQ(w.Resolve(kRequests, "x"), 0u);
  EXPECT_EQ(w.Resolve(kDepth, "y"), 0u);
}

TEST(MetricStore, MergedCounterIsTheSumOverShards) {
  MetricStore store(Defs(), 3, 100);
  ShardWriter w0(&store, 0, kOverflow), w1(&store, 1, kOverflow), w2(&store, 2, kOverflow);
  const std::string get_a = Key({"GET", "/a"}), post_a = Key({"POST", "/a"});
  w0.Inc(kRequests, w0.Resolve(kRequests, get_a), 2);
  w1.Inc(kRequests, w1.Resolve(kRequests, get_a), 5);
  w2.Inc(kRequests, w2.Resolve(kRequests, get_a));
  w2.Inc(kRequests, w2.Resolve(kRequests, post_a), 4);
  const FamilySnapshot f = store.Merge(kRequests);
  ASSERT_EQ(f.size(), 2u);
  EXPECT_EQ(f.width, 1u);
  EXPECT_EQ(f.def->name, "requests_total");
  EXPECT_EQ(f.Word(Find(f, get_a), 0), 8u);
  EXPECT_EQ(f.Word(Find(f, post_a), 0), 4u);
}

TEST(MetricStore, ResolvedButUnwrittenSeriesMergeAsZero) {
  MetricStore store(Defs(), 2, 100);
  ShardWriter w(&store, 1, kOverflow);
  w.Resolve(kRequests, Key({"GET", "/idle"}));
  EXPECT_EQ(CounterValue(store, kRequests, Key({"GET", "/idle"})), 0u);
}

TEST(MetricStore, EmptyFamilyMergesToNoSeries) {
  const MetricStore store(Defs(), 2, 100);
  EXPECT_EQ(store.Merge(kRequests).size(), 0u);
  EXPECT_EQ(store.Merge(kLatency).size(), 0u);
}

class HistogramBuckets : public ::testing::Test {
 protected:
  // Per-bucket counts (le=0.1, 0.5, 1, +Inf) after observing `values`.
  std::vector<uint64_t> Observe(std::initializer_list<double> values) {
    MetricStore store(Defs(), 1, 100);
    ShardWriter w(&store, 0, kOverflow);
    const uint32_t id = w.Resolve(kLatency, "/r");
    for (double v : values) w.Observe(kLatency, id, v);
    const FamilySnapshot f = store.Merge(kLatency);
    EXPECT_EQ(f.width, 5u);
    return {f.Word(0, 0), f.Word(0, 1), f.Word(0, 2), f.Word(0, 3)};
  }
};

TEST_F(HistogramBuckets, ValueEqualToABoundLandsInThatBucket) {
  EXPECT_EQ(Observe({0.1}), (std::vector<uint64_t>{1, 0, 0, 0}));
  EXPECT_EQ(Observe({0.5}), (std::vector<uint64_t>{0, 1, 0, 0}));
  EXPECT_EQ(Observe({1.0}), (std::vector<uint64_t>{0, 0, 1, 0}));
}

TEST_F(HistogramBuckets, ValueJustAboveABoundLandsInTheNextBucket) {
  EXPECT_EQ(Observe({0.100001}), (std::vector<uint64_t>{0, 1, 0, 0}));
  EXPECT_EQ(Observe({0.5000001}), (std::vector<uint64_t>{0, 0, 1, 0}));
}

TEST_F(HistogramBuckets, ValueAboveTheLastBoundLandsInInf) {
  EXPECT_EQ(Observe({1.0000001, 1e9}), (std::vector<uint64_t>{0, 0, 0, 2}));
}

TEST_F(HistogramBuckets, ZeroAndSmallValuesLandInTheFirstBucket) {
  EXPECT_EQ(Observe({0, 0.0001}), (std::vector<uint64_t>{2, 0, 0, 0}));
}

// Histograms up to 16 bounds count from a padded copy, longer ones with a
// loop: both must place every value where std::lower_bound does, at the
// bounds, between them and past the last.
TEST(HistogramBucketSearch, EveryBoundCountPlacesValuesAsLowerBoundDoes) {
  for (const size_t count : {1, 2, 15, 16, 17, 40}) {
    SCOPED_TRACE("bounds=" + std::to_string(count));
    std::vector<double> bounds;
    for (size_t i = 0; i < count; ++i) bounds.push_back(0.25 * static_cast<double>(i + 1));
    std::vector<MetricDef> defs = Defs();
    defs[kLatency].buckets = bounds;
    MetricStore store(defs, 1, 100);
    ShardWriter w(&store, 0, kOverflow);
    const uint32_t id = w.Resolve(kLatency, "/r");
    std::vector<uint64_t> expected(count + 1, 0);
    std::vector<double> values = {0, 1e9};
    for (const double bound : bounds) {
      values.insert(values.end(), {bound, std::nextafter(bound, 0.0), bound + 0.1});
    }
    for (const double v : values) {
      w.Observe(kLatency, id, v);
      ++expected[static_cast<size_t>(std::lower_bound(bounds.begin(), bounds.end(), v) -
                                     bounds.begin())];
    }
    const FamilySnapshot f = store.Merge(kLatency);
    ASSERT_EQ(f.width, count + 2);
    std::vector<uint64_t> got;
    for (size_t b = 0; b <= count; ++b) got.push_back(f.Word(0, b));
    EXPECT_EQ(got, expected);
  }
}

TEST(MetricStore, HistogramSumAndCountMergeOverShards) {
  MetricStore store(Defs(), 2, 100);
  ShardWriter w0(&store, 0, kOverflow), w1(&store, 1, kOverflow);
  const uint32_t id = w0.Resolve(kLatency, "/r");
  EXPECT_EQ(w1.Resolve(kLatency, "/r"), id);
  w0.Observe(kLatency, id, 0.25);
  w0.Observe(kLatency, id, 2);
  w1.Observe(kLatency, id, 0.25);
  w1.Observe(kLatency, id, 0.75);
  w1.Observe(kLatency, id, 0.05);
  const FamilySnapshot f = store.Merge(kLatency);
  ASSERT_EQ(f.size(), 1u);
  EXPECT_EQ(f.Word(0, 0), 1u);  // 0.05
  EXPECT_EQ(f.Word(0, 1), 2u);  // 0.25 twice
  EXPECT_EQ(f.Word(0, 2), 1u);  // 0.75
  EXPECT_EQ(f.Word(0, 3), 1u);  // 2 in +Inf
  EXPECT_EQ(f.HistogramCount(0), 5u);
  EXPECT_DOUBLE_EQ(f.HistogramSum(0), 0.25 + 2 + 0.25 + 0.75 + 0.05);
}

TEST(MetricStore, GaugeDeltasSumOverShards) {
  MetricStore store(Defs(), 2, 100);
  ShardWriter w0(&store, 0, kOverflow), w1(&store, 1, kOverflow);
  const uint32_t id = w0.Resolve(kDepth, "gift.created");
  w0.GaugeAdd(kDepth, id, +5);
  w1.GaugeAdd(kDepth, id, -2);
  const FamilySnapshot f = store.Merge(kDepth);
  EXPECT_EQ(f.Gauge(0), 3.0);
}

TEST(MetricStore, GaugeIsFlooredAtZero) {
  MetricStore store(Defs(), 2, 100);
  ShardWriter w0(&store, 0, kOverflow), w1(&store, 1, kOverflow);
  const uint32_t id = w0.Resolve(kDepth, "gift.created");
  // The exit is seen (on another shard) before its entry.
  w1.GaugeAdd(kDepth, id, -1);
  EXPECT_EQ(store.Merge(kDepth).Gauge(0), 0.0);
  w0.GaugeAdd(kDepth, id, +1);
  EXPECT_EQ(store.Merge(kDepth).Gauge(0), 0.0);
  w0.GaugeAdd(kDepth, id, +1);
  EXPECT_EQ(store.Merge(kDepth).Gauge(0), 1.0);
}

TEST(MetricStore, GaugeNegativeOnEveryShardIsStillZero) {
  MetricStore store(Defs(), 2, 100);
  ShardWriter w0(&store, 0, kOverflow), w1(&store, 1, kOverflow);
  const uint32_t id = w0.Resolve(kDepth, "t");
  w0.GaugeAdd(kDepth, id, -3);
  w1.GaugeAdd(kDepth, id, -4);
  EXPECT_EQ(store.Merge(kDepth).Gauge(0), 0.0);
}

TEST(MetricStore, SeriesLimitFoldsIntoOverflowAndCountsEachFold) {
  MetricStore store(Defs(), 2, /*series_limit=*/2);
  ShardWriter w0(&store, 0, kOverflow), w1(&store, 1, kOverflow);
  const uint32_t a = w0.Resolve(kRequests, Key({"GET", "/a"}));
  const uint32_t b = w0.Resolve(kRequests, Key({"GET", "/b"}));
  const uint32_t c = w0.Resolve(kRequests, Key({"GET", "/c"}));
  const uint32_t d = w1.Resolve(kRequests, Key({"GET", "/d"}));
  const uint32_t c_again = w0.Resolve(kRequests, Key({"GET", "/c"}));
  EXPECT_NE(a, b);
  EXPECT_EQ(c, d);
  EXPECT_EQ(c, c_again);
  EXPECT_EQ(w1.Resolve(kRequests, Key({"GET", "/a"})), a);  // known keys still resolve
  for (uint32_t id : {a, b, c, d, c_again}) w0.Inc(kRequests, id);

  const FamilySnapshot f = store.Merge(kRequests);
  ASSERT_EQ(f.size(), 3u);
  const int overflow = Find(f, Key({kOverflowLabelValue, kOverflowLabelValue}));
  ASSERT_GE(overflow, 0);
  EXPECT_EQ(f.Word(overflow, 0), 3u);
  EXPECT_EQ(f.Word(Find(f, Key({"GET", "/a"})), 0), 1u);
  // Three resolves folded: /c, /d and /c again.
  EXPECT_EQ(CounterValue(store, kOverflow, "requests_total"), 3u);
}

TEST(MetricStore, OverflowIsCountedPerMetric) {
  MetricStore store(Defs(), 1, /*series_limit=*/2);
  ShardWriter w(&store, 0, kOverflow);
  for (std::string_view route : {"/a", "/b", "/c", "/d"}) {
    w.Resolve(kRequests, Key({"GET", route}));
    w.Resolve(kLatency, route);
  }
  w.Resolve(kLatency, "/e");
  EXPECT_EQ(CounterValue(store, kOverflow, "requests_total"), 2u);
  EXPECT_EQ(CounterValue(store, kOverflow, "latency_seconds"), 3u);
}

TEST(MetricStore, WithinTheLimitNothingIsCountedAsOverflow) {
  MetricStore store(Defs(), 1, 10);
  ShardWriter w(&store, 0, kOverflow);
  for (int i = 0; i < 10; ++i) w.Resolve(kRequests, Key({"GET", std::to_string(i)}));
  EXPECT_EQ(store.Merge(kOverflow).size(), 0u);
}

TEST(ShardWriterDeathTest, OverflowOfTheOverflowCounterFoldsInsteadOfRecursing) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  // With a limit of 1 the overflow counter has room for one metric name; the
  // second overflowing metric must fold into the counter's own __overflow__
  // series. Runs in a child process because the failure mode is a crash.
  EXPECT_EXIT(
      {
        MetricStore store(Defs(), 1, /*series_limit=*/1);
        ShardWriter w(&store, 0, kOverflow);
        w.Resolve(kRequests, Key({"GET", "/a"}));
        w.Resolve(kRequests, Key({"GET", "/b"}));  // overflow #1 of requests_total
        w.Resolve(kLatency, "/a");
        w.Resolve(kLatency, "/b");  // overflow of latency_seconds: no room left
        const FamilySnapshot f = store.Merge(kOverflow);
        uint64_t total = 0;
        for (size_t i = 0; i < f.size(); ++i) total += f.Word(i, 0);
        std::exit(total == 2 ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST(MetricStore, MemoryGrowsWhenSeriesAreWritten) {
  MetricStore store(Defs(), 2, 10000);
  const size_t before = store.MemoryBytes();
  ShardWriter w(&store, 1, kOverflow);
  for (int i = 0; i < 300; ++i) w.Inc(kRequests, w.Resolve(kRequests, std::to_string(i)));
  EXPECT_GT(store.MemoryBytes(), before);
}

// Several writers, one per shard, hammer shared series while a reader merges.
TEST(MetricStore, ConcurrentMergeIsMonotonicAndFinalTotalsAreExact) {
  constexpr int kShards = 4;
  constexpr int kKeys = 40;
  constexpr int kIterations = 40000;                 // per shard, a multiple of kKeys
  const double kValues[] = {0.05, 0.25, 0.75, 4.0};  // one per bucket incl. +Inf
  MetricStore store(Defs(), kShards, 1000);

  std::atomic<int> running{kShards};
  std::vector<std::thread> writers;
  for (int s = 0; s < kShards; ++s) {
    writers.emplace_back([&, s] {
      ShardWriter w(&store, s, kOverflow);
      for (int i = 0; i < kIterations; ++i) {
        const std::string route = "/r" + std::to_string((i + s) % kKeys);
        w.Inc(kRequests, w.Resolve(kRequests, Key({"GET", route})));
        w.Observe(kLatency, w.Resolve(kLatency, route), kValues[i % 4]);
      }
      running.fetch_sub(1, std::memory_order_release);
    });
  }

  // Merged series come sorted by key, so a new series can shift positions:
  // successive merges are compared per key.
  std::map<std::string, uint64_t, std::less<>> last_count;
  std::map<std::string, std::vector<uint64_t>, std::less<>> last_buckets;
  std::map<std::string, double, std::less<>> last_sum;
  bool monotonic = true;
  int merges = 0;
  while (running.load(std::memory_order_acquire) > 0) {
    const FamilySnapshot counters = store.Merge(kRequests);
    for (size_t i = 0; i < counters.size(); ++i) {
      uint64_t& last = last_count[std::string(counters.keys[i])];
      if (counters.Word(i, 0) < last) monotonic = false;
      last = counters.Word(i, 0);
    }
    const FamilySnapshot hist = store.Merge(kLatency);
    for (size_t i = 0; i < hist.size(); ++i) {
      const std::string key(hist.keys[i]);
      std::vector<uint64_t>& buckets = last_buckets[key];
      buckets.resize(4, 0);
      for (size_t b = 0; b < 4; ++b) {
        if (hist.Word(i, b) < buckets[b]) monotonic = false;
        buckets[b] = hist.Word(i, b);
      }
      double& sum = last_sum[key];
      if (hist.HistogramSum(i) < sum) monotonic = false;
      sum = hist.HistogramSum(i);
    }
    ++merges;
  }
  for (auto& t : writers) t.join();
  EXPECT_TRUE(monotonic) << "after " << merges << " merges";

  const FamilySnapshot counters = store.Merge(kRequests);
  ASSERT_EQ(counters.size(), size_t{kKeys});
  for (size_t i = 0; i < counters.size(); ++i) {
    EXPECT_EQ(counters.Word(i, 0), uint64_t{kShards} * kIterations / kKeys) << counters.keys[i];
  }
  const FamilySnapshot hist = store.Merge(kLatency);
  ASSERT_EQ(hist.size(), size_t{kKeys});
  uint64_t total = 0;
  for (size_t i = 0; i < hist.size(); ++i) total += hist.HistogramCount(i);
  EXPECT_EQ(total, uint64_t{kShards} * kIterations);
  // Route r on shard s always sees value (r - s) mod 4, so over the four
  // shards each bucket of each route gets the same count.
  for (size_t i = 0; i < hist.size(); ++i) {
    const uint64_t per_bucket = uint64_t{kShards} * kIterations / kKeys / 4;
    for (size_t b = 0; b < 4; ++b) EXPECT_EQ(hist.Word(i, b), per_bucket) << hist.keys[i];
    EXPECT_NEAR(hist.HistogramSum(i), per_bucket * (0.05 + 0.25 + 0.75 + 4.0), 1e-6);
  }
  EXPECT_EQ(store.Merge(kOverflow).size(), 0u);
}

std::vector<MetricDef> ExpiringDefs(int64_t after_ms) {
  std::vector<MetricDef> defs = Defs();
  defs[kRequests].expire_after_ms = after_ms;
  defs[kLatency].expire_after_ms = after_ms;
  return defs;
}

TEST(MetricStore, ExpireIdleRemovesSeriesWhoseNewestEventIsOldEnough) {
  MetricStore store(ExpiringDefs(60'000), 2, 100);
  ShardWriter w0(&store, 0, kOverflow), w1(&store, 1, kOverflow);
  const std::string old_key = Key({"GET", "/old"}), fresh_key = Key({"GET", "/fresh"});
  w0.SetEventTime(1'000'000);
  w0.Inc(kRequests, w0.Resolve(kRequests, old_key), 3);
  w0.Observe(kLatency, w0.Resolve(kLatency, "/old"), 0.2);
  // The newest event of a series counts, whichever shard had it.
  w1.SetEventTime(1'000'000);
  w1.Inc(kRequests, w1.Resolve(kRequests, fresh_key));
  w0.SetEventTime(1'050'000);
  w0.Inc(kRequests, w0.Resolve(kRequests, fresh_key));
  // A gauge family without expiry keeps its series.
  w0.GaugeAdd(kDepth, w0.Resolve(kDepth, "t"), 1);

  EXPECT_EQ(store.ExpireIdle(1'059'999), 0u);  // /old is 59.999 s idle
  std::vector<MetricStore::Removed> removed;
  EXPECT_EQ(store.ExpireIdle(1'060'000, &removed), 2u);
  ASSERT_EQ(removed.size(), 2u);
  EXPECT_EQ(removed[0].metric, size_t{kRequests});
  EXPECT_EQ(removed[1].metric, size_t{kLatency});
  const FamilySnapshot requests = store.Merge(kRequests);
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests.keys[0], fresh_key);
  EXPECT_EQ(requests.Word(0, 0), 2u);
  EXPECT_EQ(store.Merge(kLatency).size(), 0u);
  EXPECT_EQ(store.Merge(kDepth).size(), 1u);

  // The freed id starts from zero for the next series that takes it.
  w1.SetEventTime(1'070'000);
  const uint32_t again = w1.Resolve(kRequests, old_key);
  EXPECT_EQ(again, removed[0].id);
  w1.Inc(kRequests, again);
  EXPECT_EQ(CounterValue(store, kRequests, old_key), 1u);
  EXPECT_EQ(store.LastEventMs(kRequests, again), 1'070'000);
  // And expires on its own clock.
  EXPECT_EQ(store.ExpireIdle(1'110'000), 1u);  // /fresh (newest 1'050'000)
  EXPECT_EQ(store.ExpireIdle(1'129'999), 0u);
  EXPECT_EQ(store.ExpireIdle(1'130'000), 1u);
}

TEST(MetricStore, ExpireIdleKeepsSeriesWithoutEventTimeAndTheOverflowSeries) {
  MetricStore store(ExpiringDefs(1'000), 1, 1);
  ShardWriter w(&store, 0, kOverflow);
  w.ClearEventTime();
  w.Inc(kRequests, w.Resolve(kRequests, Key({"GET", "/no-time"})));
  w.SetEventTime(5'000);
  w.Inc(kRequests, w.Resolve(kRequests, Key({"GET", "/over"})));  // folds
  EXPECT_EQ(store.ExpireIdle(1'000'000), 0u);
  EXPECT_EQ(store.Merge(kRequests).size(), 2u);
}

TEST(MetricStore, SeriesCountsAreLiveSeries) {
  MetricStore store(ExpiringDefs(1'000), 1, 100);
  ShardWriter w(&store, 0, kOverflow);
  w.SetEventTime(5'000);
  w.Inc(kRequests, w.Resolve(kRequests, Key({"GET", "/a"})));
  w.Inc(kRequests, w.Resolve(kRequests, Key({"GET", "/b"})));
  store.ExpireIdle(6'000);
  w.SetEventTime(7'000);
  w.Inc(kRequests, w.Resolve(kRequests, Key({"GET", "/c"})));
  std::map<std::string, double> counts;
  store.AddSeriesCounts([&](std::string_view name, double n) { counts[std::string(name)] = n; });
  EXPECT_EQ(counts["requests_total"], 1.0);
}

TEST(MetricStore, CheckpointKeepsFreeIdsInPlace) {
  MetricStore store(ExpiringDefs(1'000), 1, 100);
  ShardWriter w(&store, 0, kOverflow);
  w.SetEventTime(5'000);
  w.Inc(kRequests, w.Resolve(kRequests, Key({"GET", "/a"})), 2);
  w.Inc(kRequests, w.Resolve(kRequests, Key({"GET", "/b"})), 3);
  w.SetEventTime(9'000);
  w.Inc(kRequests, w.Resolve(kRequests, Key({"GET", "/c"})), 4);
  ASSERT_EQ(store.ExpireIdle(8'000), 2u);  // /a and /b: ids 0 and 1 free
  StateWriter saved;
  store.SaveCumulative(&saved);

  MetricStore restored(ExpiringDefs(1'000), 1, 100);
  StateReader r(saved.bytes());
  bool same_ids = false;
  ASSERT_TRUE(restored.LoadCumulative(&r, &same_ids).ok());
  EXPECT_TRUE(same_ids);
  EXPECT_EQ(restored.index(kRequests).live(), 1u);
  uint32_t id;
  ASSERT_TRUE(restored.index(kRequests).Find(Key({"GET", "/c"}), &id));
  EXPECT_EQ(id, 2u);
  EXPECT_EQ(CounterValue(restored, kRequests, Key({"GET", "/c"})), 4u);
  ShardWriter rw(&restored, 0, kOverflow);
  EXPECT_LT(rw.Resolve(kRequests, Key({"GET", "/d"})), 2u);  // a free id
}

TEST(MetricStore, ScrapesRunWhileSeriesExpire) {
  MetricStore store(ExpiringDefs(1), 1, 1000);
  ShardWriter w(&store, 0, kOverflow);
  std::atomic<bool> done{false};
  std::atomic<bool> consistent{true};
  std::thread scraper([&] {
    while (!done.load(std::memory_order_acquire)) {
      const FamilySnapshot f = store.Merge(kRequests);
      for (size_t i = 0; i < f.size(); ++i) {
        // Every live series has had exactly its key's length in events.
        if (f.Word(i, 0) != f.keys[i].size() && f.Word(i, 0) != 0) consistent.store(false);
      }
    }
  });
  for (int round = 0; round < 300; ++round) {
    w.SetEventTime((round + 1) * 10);
    for (int i = 0; i < 500; ++i) {
      const std::string key = Key({"GET", "/" + std::to_string(round) + "/" + std::to_string(i)});
      w.Inc(kRequests, w.Resolve(kRequests, key), key.size());
    }
    store.ExpireIdle((round + 1) * 10 + 1);
  }
  done.store(true, std::memory_order_release);
  scraper.join();
  EXPECT_TRUE(consistent.load());
  EXPECT_EQ(store.index(kRequests).live(), 0u);
}

TEST(MetricStore, CheckpointWithFreeIdsLoadsIntoASmallerLimit) {
  MetricStore store(ExpiringDefs(1'000), 1, 10);
  ShardWriter w(&store, 0, kOverflow);
  w.SetEventTime(5'000);
  for (int i = 0; i < 3; ++i)
    w.Inc(kRequests, w.Resolve(kRequests, Key({"GET", "/old" + std::to_string(i)})));
  w.SetEventTime(9'000);
  for (int i = 0; i < 7; ++i)
    w.Inc(kRequests, w.Resolve(kRequests, Key({"GET", "/new" + std::to_string(i)})));
  ASSERT_EQ(store.ExpireIdle(8'000), 3u);
  StateWriter saved;
  store.SaveCumulative(&saved);
  store.SaveEventTimes(&saved);

  MetricStore restored(ExpiringDefs(1'000), 1, 4);
  StateReader r(saved.bytes());
  bool same_ids = true;
  ASSERT_TRUE(restored.LoadCumulative(&r, &same_ids).ok());
  EXPECT_FALSE(same_ids);
  ASSERT_TRUE(restored.LoadEventTimes(&r, same_ids).ok());
  EXPECT_TRUE(r.at_end());
  const SeriesIndex& idx = restored.index(kRequests);
  EXPECT_LE(idx.size(), idx.capacity());
  // Four of the seven live series, and the other three in __overflow__:
  // the free ids are left out.
  EXPECT_EQ(idx.live(), 5u);
  uint64_t total = 0;
  const FamilySnapshot f = restored.Merge(kRequests);
  for (size_t i = 0; i < f.size(); ++i) total += f.Word(i, 0);
  EXPECT_EQ(total, 7u);
}

}  // namespace
}  // namespace novapulse
