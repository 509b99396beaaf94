#include "aggregators/window.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "aggregators/metric_store.h"
#include "aggregators/promql.h"

namespace novapulse {
namespace {

enum Metric : size_t { kRequests, kLatency, kDepth, kOverflow };
constexpr int64_t kSlot = 15'000;

std::vector<MetricDef> Defs() {
  return {
      {"requests_total", "Requests.", MetricType::kCounter, {"route"}, {}},
      {"latency_seconds", "Latency.", MetricType::kHistogram, {"route"}, {0.1, 0.5}},
      {"queue_depth", "Depth.", MetricType::kGauge, {"type"}, {}},
      {"series_overflow_total", "Overflows.", MetricType::kCounter, {"metric"}, {}},
  };
}

// Every sample of the series of `metric` whose labels include `label`=`value`.
std::vector<promql::Sample> Samples(const promql::SeriesStore& store, const std::string& metric,
                                    const std::string& label, const std::string& value) {
  std::vector<promql::Storage::SeriesRef> refs;
  promql::Matcher m;
  m.name = label;
  m.value = value;
  std::vector<promql::Matcher> matchers = {m};
  store.Select(metric, matchers, INT64_MIN / 2, INT64_MAX / 2, &refs);
  if (refs.size() != 1) return {};
  return {refs[0].samples.begin(), refs[0].samples.end()};
}

struct Fixture {
  explicit Fixture(std::vector<promql::Reach> reach, int shards = 1, size_t ring = 8) {
    wanted = WindowHistory::Resolve(Defs(), reach, &unknown);
    WindowSpec spec;
    spec.slot_ms = kSlot;
    spec.ring_slots = ring;
    spec.families = WindowHistory::Families(wanted);
    store = std::make_unique<MetricStore>(Defs(), shards, 100);
    store->EnableWindows(spec);
    for (int s = 0; s < shards; ++s) {
      writers.push_back(std::make_unique<ShardWriter>(store.get(), s, kOverflow));
    }
    history = std::make_unique<WindowHistory>(store.get(), wanted, &series);
    history->Start(0);
  }
  void CloseThrough(int64_t t_ms) {
    for (auto& w : writers) w->FlushSpill();
    while (history->open_slot_end_ms() <= t_ms) history->CloseSlot();
  }
  std::vector<WindowHistory::Wanted> wanted;
  std::vector<std::string> unknown;
  std::unique_ptr<MetricStore> store;
  std::vector<std::unique_ptr<ShardWriter>> writers;
  promql::SeriesStore series;
  std::unique_ptr<WindowHistory> history;
};

TEST(WindowHistory, ResolvesFamiliesAndHistogramParts) {
  std::vector<std::string> unknown;
  const auto wanted = WindowHistory::Resolve(Defs(),
                                             {{"requests_total", 300'000},
                                              {"latency_seconds_bucket", 60'000},
                                              {"latency_seconds_count", 600'000},
                                              {"node_cpu_seconds_total", 1},
                                              {"latency_seconds", 1}},
                                             &unknown);
  ASSERT_EQ(wanted.size(), 2u);
  EXPECT_EQ(wanted[0].metric, kRequests);
  EXPECT_TRUE(wanted[0].value);
  EXPECT_EQ(wanted[1].metric, kLatency);
  EXPECT_TRUE(wanted[1].buckets);
  EXPECT_TRUE(wanted[1].count);
  EXPECT_FALSE(wanted[1].sum);
  EXPECT_EQ(wanted[1].reach_ms, 600'000);
  // A histogram's own name is not a series Prometheus would have.
  EXPECT_EQ(unknown, (std::vector<std::string>{"node_cpu_seconds_total", "latency_seconds"}));
}

TEST(WindowHistory, SamplesAreCumulativeCountsBeforeEachSlotEnd) {
  Fixture f({{"requests_total", 300'000}});
  ShardWriter& w = *f.writers[0];
  const uint32_t a = w.Resolve(kRequests, "/a");
  ASSERT_TRUE(w.SetEventTime(1'000));
  w.Inc(kRequests, a);
  ASSERT_TRUE(w.SetEventTime(14'999));
  w.Inc(kRequests, a, 2);
  ASSERT_TRUE(w.SetEventTime(15'000));  // the next slot
  w.Inc(kRequests, a);
  ASSERT_TRUE(w.SetEventTime(50'000));
  w.Inc(kRequests, a, 4);
  f.CloseThrough(60'000);
  const auto samples = Samples(f.series, "requests_total", "route", "/a");
  ASSERT_EQ(samples.size(), 4u);
  EXPECT_EQ(samples[0].t_ms, 15'000);
  EXPECT_EQ(samples[0].v, 3);
  EXPECT_EQ(samples[1].t_ms, 30'000);
  EXPECT_EQ(samples[1].v, 4);
  EXPECT_EQ(samples[2].v, 4);  // a slot without events: the same value, scraped again
  EXPECT_EQ(samples[3].t_ms, 60'000);
  EXPECT_EQ(samples[3].v, 8);
}

TEST(WindowHistory, SeriesStartAtTheirFirstClosedUpdate) {
  Fixture f({{"requests_total", 300'000}});
  ShardWriter& w = *f.writers[0];
  const uint32_t a = w.Resolve(kRequests, "/a");
  const uint32_t b = w.Resolve(kRequests, "/b");
  ASSERT_TRUE(w.SetEventTime(1'000));
  w.Inc(kRequests, a);
  ASSERT_TRUE(w.SetEventTime(40'000));  // b's first event is two slots later
  w.Inc(kRequests, b);
  f.CloseThrough(15'000);
  EXPECT_EQ(Samples(f.series, "requests_total", "route", "/a").size(), 1u);
  EXPECT_TRUE(Samples(f.series, "requests_total", "route", "/b").empty());
  f.CloseThrough(45'000);
  const auto b_samples = Samples(f.series, "requests_total", "route", "/b");
  ASSERT_EQ(b_samples.size(), 1u);
  EXPECT_EQ(b_samples[0].t_ms, 45'000);
}

TEST(WindowHistory, LateEventsReachOnlyTheCumulativeCells) {
  Fixture f({{"requests_total", 300'000}});
  ShardWriter& w = *f.writers[0];
  const uint32_t a = w.Resolve(kRequests, "/a");
  ASSERT_TRUE(w.SetEventTime(1'000));
  w.Inc(kRequests, a);
  f.CloseThrough(30'000);
  w.SetWatermark(30'000);
  EXPECT_FALSE(w.SetEventTime(29'999));  // its slot has closed
  w.Inc(kRequests, a);
  EXPECT_TRUE(w.SetEventTime(30'000));
  w.Inc(kRequests, a);
  f.CloseThrough(45'000);
  const auto samples = Samples(f.series, "requests_total", "route", "/a");
  ASSERT_EQ(samples.size(), 3u);
  EXPECT_EQ(samples[2].v, 2);                           // the late one is missing from the window
  EXPECT_EQ(f.store->Merge(kRequests).Word(0, 0), 3u);  // but counted
}

TEST(WindowHistory, EventsBeyondTheRingWaitAsideForTheirSlot) {
  Fixture f({{"requests_total", 300'000}}, /*shards=*/1, /*ring=*/4);
  ShardWriter& w = *f.writers[0];
  const uint32_t a = w.Resolve(kRequests, "/a");
  ASSERT_TRUE(w.SetEventTime(10 * kSlot + 1));  // slot 10, ring holds slots 0-3
  w.Inc(kRequests, a, 5);
  ASSERT_TRUE(w.SetEventTime(2 * kSlot));
  w.Inc(kRequests, a);
  f.CloseThrough(11 * kSlot);
  const auto samples = Samples(f.series, "requests_total", "route", "/a");
  ASSERT_EQ(samples.size(), 9u);  // from the end of slot 2 on
  EXPECT_EQ(samples[0].t_ms, 3 * kSlot);
  EXPECT_EQ(samples[0].v, 1);
  EXPECT_EQ(samples[7].v, 1);
  EXPECT_EQ(samples[8].t_ms, 11 * kSlot);
  EXPECT_EQ(samples[8].v, 6);
  // The ring positions were reused after the first lap without leftovers.
  ASSERT_TRUE(w.SetEventTime(12 * kSlot));
  w.Inc(kRequests, a);
  f.CloseThrough(13 * kSlot);
  EXPECT_EQ(Samples(f.series, "requests_total", "route", "/a").back().v, 7);
}

TEST(WindowHistory, HistogramPartsAndFlooredGauges) {
  Fixture f({{"latency_seconds_bucket", 60'000},
             {"latency_seconds_sum", 60'000},
             {"latency_seconds_count", 60'000},
             {"queue_depth", 60'000}});
  ShardWriter& w = *f.writers[0];
  const uint32_t h = w.Resolve(kLatency, "/a");
  const uint32_t g = w.Resolve(kDepth, "gift");
  ASSERT_TRUE(w.SetEventTime(1'000));
  w.Observe(kLatency, h, 0.05);
  w.Observe(kLatency, h, 0.3);
  w.Observe(kLatency, h, 7);
  w.GaugeAdd(kDepth, g, -1);  // an exit seen before its entry
  f.CloseThrough(15'000);
  EXPECT_EQ(Samples(f.series, "latency_seconds_bucket", "le", "0.1")[0].v, 1);
  EXPECT_EQ(Samples(f.series, "latency_seconds_bucket", "le", "0.5")[0].v, 2);
  EXPECT_EQ(Samples(f.series, "latency_seconds_bucket", "le", "+Inf")[0].v, 3);
  EXPECT_NEAR(Samples(f.series, "latency_seconds_sum", "route", "/a")[0].v, 7.35, 1e-9);
  EXPECT_EQ(Samples(f.series, "latency_seconds_count", "route", "/a")[0].v, 3);
  EXPECT_EQ(Samples(f.series, "queue_depth", "type", "gift")[0].v, 0);
  ASSERT_TRUE(w.SetEventTime(16'000));
  w.GaugeAdd(kDepth, g, 3);
  f.CloseThrough(30'000);
  EXPECT_EQ(Samples(f.series, "queue_depth", "type", "gift")[1].v, 2);
}

TEST(WindowHistory, ShardsAreSummedAndWritersNeverWait) {
  Fixture f({{"requests_total", 300'000}}, /*shards=*/2, /*ring=*/64);
  constexpr int kEventsPerShard = 200'000;
  std::vector<std::thread> threads;
  for (int s = 0; s < 2; ++s) {
    threads.emplace_back([&f, s] {
      ShardWriter& w = *f.writers[s];
      const uint32_t a = w.Resolve(kRequests, "/a");
      for (int i = 0; i < kEventsPerShard; ++i) {
        // Event times sweep 20 slots; none is late (watermark unset).
        ASSERT_TRUE(w.SetEventTime(static_cast<int64_t>(i) * 20 * kSlot / kEventsPerShard));
        w.Inc(kRequests, a);
      }
    });
  }
  for (auto& t : threads) t.join();
  f.CloseThrough(20 * kSlot);
  const auto samples = Samples(f.series, "requests_total", "route", "/a");
  ASSERT_EQ(samples.size(), 20u);
  EXPECT_EQ(samples.back().v, 2.0 * kEventsPerShard);
  EXPECT_EQ(samples[9].v, 2.0 * kEventsPerShard / 2);
}

}  // namespace
}  // namespace novapulse
