#include "aggregators/window.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iterator>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "aggregators/metric_store.h"
#include "rules/promql.h"

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

// Defs() whose requests_total and latency_seconds series expire after a
// minute of event time.
std::vector<MetricDef> ExpiringDefs() {
  std::vector<MetricDef> defs = Defs();
  defs[kRequests].expire_after_ms = 60'000;
  defs[kLatency].expire_after_ms = 60'000;
  return defs;
}

struct Fixture {
  explicit Fixture(std::vector<promql::Reach> reach, int shards = 1, size_t ring = 8,
                   size_t memory_bytes = 0, size_t series_limit = 1000, bool start = true,
                   const std::vector<MetricDef>& defs = Defs()) {
    wanted = WindowHistory::Resolve(defs, reach, &unknown);
    WindowSpec spec;
    spec.slot_ms = kSlot;
    spec.ring_slots = ring;
    spec.families = WindowHistory::Families(wanted);
    spec.memory_bytes = memory_bytes;
    store = std::make_unique<MetricStore>(defs, shards, series_limit);
    store->EnableWindows(spec);
    for (int s = 0; s < shards; ++s) {
      writers.push_back(std::make_unique<ShardWriter>(store.get(), s, kOverflow));
    }
    history = std::make_unique<WindowHistory>(store.get(), wanted, &series);
    if (start) history->Start(0);
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

// Label sets resolved before the window starts are those /metrics shows at
// 0 before any event: they hold 0 from the first slot's start, so that the
// increments of their first slot count in rate() as Prometheus would count
// them.
TEST(WindowHistory, SeriesKnownBeforeTheStartHoldZeroFromIt) {
  Fixture f({{"requests_total", 300'000}, {"latency_seconds_count", 300'000}}, 1, 8, 0, 1000,
            /*start=*/false);
  ShardWriter& w = *f.writers[0];
  const uint32_t known = w.Resolve(kRequests, "/known");
  w.Resolve(kLatency, "/known");
  f.history->Start(2);  // the first slot starts at 30 s
  const uint32_t later = w.Resolve(kRequests, "/later");
  ASSERT_TRUE(w.SetEventTime(40'000));
  w.Inc(kRequests, known, 3);
  w.Inc(kRequests, later, 2);
  f.CloseThrough(60'000);
  const auto samples = Samples(f.series, "requests_total", "route", "/known");
  ASSERT_EQ(samples.size(), 3u);
  EXPECT_EQ(samples[0].t_ms, 30'000);
  EXPECT_EQ(samples[0].v, 0);
  EXPECT_EQ(samples[1].t_ms, 45'000);
  EXPECT_EQ(samples[1].v, 3);
  const auto count = Samples(f.series, "latency_seconds_count", "route", "/known");
  ASSERT_EQ(count.size(), 3u);
  EXPECT_EQ(count[2].v, 0);
  // A label set first met in the stream starts at its first closed update.
  const auto later_samples = Samples(f.series, "requests_total", "route", "/later");
  ASSERT_EQ(later_samples.size(), 2u);
  EXPECT_EQ(later_samples[0].t_ms, 45'000);
  EXPECT_EQ(later_samples[0].v, 2);
}

TEST(WindowHistory, ZeroNewSeriesStartsALabelSetAtZeroBeforeItsFirstSlot) {
  Fixture f({{"requests_total", 300'000}, {"latency_seconds_bucket", 300'000}}, 1, 8, 0, 1000,
            /*start=*/false);
  f.history->set_zero_new_series(true);
  f.history->Start(0);
  ShardWriter& w = *f.writers[0];
  const uint32_t a = w.Resolve(kRequests, "/a");
  ASSERT_TRUE(w.SetEventTime(40'000));  // the third slot: [30 s, 45 s)
  w.Inc(kRequests, a, 3);
  const uint32_t h = w.Resolve(kLatency, "/a");
  w.Inc(kLatency, h);  // bucket le=0.1
  f.CloseThrough(60'000);
  const auto samples = Samples(f.series, "requests_total", "route", "/a");
  ASSERT_EQ(samples.size(), 3u);
  EXPECT_EQ(samples[0].t_ms, 30'000);
  EXPECT_EQ(samples[0].v, 0);
  EXPECT_EQ(samples[1].t_ms, 45'000);
  EXPECT_EQ(samples[1].v, 3);
  EXPECT_EQ(samples[2].v, 3);
  std::vector<promql::Storage::SeriesRef> buckets;
  f.series.Select("latency_seconds_bucket", {}, INT64_MIN / 2, INT64_MAX / 2, &buckets);
  ASSERT_EQ(buckets.size(), 3u);
  for (const auto& b : buckets) {
    ASSERT_EQ(b.samples.size(), 3u);
    EXPECT_EQ(b.samples[0].t_ms, 30'000);
    EXPECT_EQ(b.samples[0].v, 0);
    EXPECT_EQ(b.samples[1].v, 1);
  }
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

// Zero-padded, so that label order is number order.
std::string Route(int r) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "/r%04d", r);
  return buf;
}

// Every sample stream of `metric` (optionally only those with le=`le`): its
// route and last value.
std::map<std::string, double> Last(const promql::SeriesStore& store, const std::string& metric,
                                   const std::string& le = "") {
  std::vector<promql::Storage::SeriesRef> refs;
  std::vector<promql::Matcher> matchers;
  if (!le.empty()) matchers.push_back({.name = "le", .value = le});
  store.Select(metric, matchers, INT64_MIN / 2, INT64_MAX / 2, &refs);
  std::map<std::string, double> last;
  for (const auto& ref : refs) {
    for (const promql::Label& l : *ref.labels) {
      if (l.name == "route") last[l.value] = ref.samples.back().v;
    }
  }
  return last;
}

double Sum(const std::map<std::string, double>& values) {
  double sum = 0;
  for (const auto& [route, v] : values) sum += v;
  return sum;
}

// `routes` label sets, each with one request and one latency observation in
// every slot of `slots`, spread over the fixture's shards.
void FeedRoutes(Fixture& f, int routes, int slots) {
  for (int slot = 0; slot < slots; ++slot) {
    for (int r = 0; r < routes; ++r) {
      ShardWriter& w = *f.writers[r % f.writers.size()];
      ASSERT_TRUE(w.SetEventTime(slot * kSlot + r));
      w.Inc(kRequests, w.Resolve(kRequests, Route(r)));
      w.Observe(kLatency, w.Resolve(kLatency, Route(r)), 0.2 * (r % 4));
    }
    f.CloseThrough((slot + 1) * kSlot);
  }
}

TEST(WindowHistory, BudgetFoldsLabelSetsPastItIntoOverflowAndKeepsTheTotals) {
  constexpr size_t kBudget = 512 << 10;
  constexpr int kRoutes = 600;
  constexpr int kSlots = 12;  // longer than the reach: every stream at its longest
  const std::vector<promql::Reach> reach = {{"latency_seconds_bucket", 60'000},
                                            {"requests_total", 60'000}};
  Fixture f(reach, /*shards=*/2, /*ring=*/8, kBudget);
  Fixture unbounded(reach, /*shards=*/2, /*ring=*/8);
  FeedRoutes(f, kRoutes, kSlots);
  FeedRoutes(unbounded, kRoutes, kSlots);

  // The memory the metric reports stays within the budget, and within what
  // the rows reserved.
  EXPECT_LE(f.history->MemoryBytes(), f.history->reserved_bytes());
  EXPECT_LE(f.history->reserved_bytes(), kBudget);
  EXPECT_EQ(f.history->memory_limit(), kBudget);
  EXPECT_GT(unbounded.history->MemoryBytes(), 2 * kBudget);

  // Rows went to the first label sets in label order, family by family
  // (latency first, as the rules read them); the rest were counted as folded.
  const size_t latency_rows = f.store->window_rows(kLatency) - 1;
  const size_t request_rows = f.store->window_rows(kRequests) - 1;
  ASSERT_GT(latency_rows, 0u);
  ASSERT_LT(latency_rows, size_t{kRoutes});
  ASSERT_LT(request_rows, size_t{kRoutes});
  const std::vector<WindowHistory::Folded> folded = f.history->folded();
  ASSERT_EQ(folded.size(), 2u);
  EXPECT_EQ(folded[0].metric, "latency_seconds");
  EXPECT_EQ(folded[0].series, kRoutes - latency_rows);
  EXPECT_EQ(folded[1].metric, "requests_total");
  EXPECT_EQ(folded[1].series, kRoutes - request_rows);
  const std::map<std::string, double> requests = Last(f.series, "requests_total");
  EXPECT_EQ(requests.size(), request_rows + 1);
  EXPECT_EQ(requests.count("__overflow__"), 1u);
  if (request_rows > 0) EXPECT_EQ(requests.begin()->first, Route(0));
  const std::map<std::string, double> slow = Last(f.series, "latency_seconds_bucket", "0.5");
  EXPECT_EQ(slow.size(), latency_rows + 1);
  EXPECT_EQ(slow.begin()->first, Route(0));
  EXPECT_EQ(std::prev(slow.end(), 2)->first, Route(static_cast<int>(latency_rows) - 1));
  EXPECT_EQ(slow.rbegin()->first, "__overflow__");

  // Sums over the family are what they are without a budget.
  EXPECT_EQ(Sum(requests), kRoutes * kSlots);
  EXPECT_EQ(Sum(requests), Sum(Last(unbounded.series, "requests_total")));
  for (const std::string le : {"0.1", "0.5", "+Inf"}) {
    EXPECT_EQ(Sum(Last(f.series, "latency_seconds_bucket", le)),
              Sum(Last(unbounded.series, "latency_seconds_bucket", le)))
        << le;
  }
}

TEST(WindowHistory, BudgetChoosesTheSameSeriesWhicheverWorkerMetThemFirst) {
  constexpr size_t kBudget = 256 << 10;
  const std::vector<promql::Reach> reach = {{"requests_total", 60'000}};
  constexpr int kRoutes = 3000;  // under the series limit, which folds whatever comes last
  Fixture a(reach, /*shards=*/2, /*ring=*/8, kBudget, /*series_limit=*/kRoutes);
  Fixture b(reach, /*shards=*/2, /*ring=*/8, kBudget, /*series_limit=*/kRoutes);
  for (int slot = 0; slot < 3; ++slot) {
    // The same events, met in opposite orders by different workers.
    for (int i = 0; i < kRoutes; ++i) {
      for (Fixture* f : {&a, &b}) {
        const int r = f == &a ? i : kRoutes - 1 - i;
        ShardWriter& w = *f->writers[f == &a ? r % 2 : (r / 7) % 2];
        ASSERT_TRUE(w.SetEventTime(slot * kSlot + 7));
        w.Inc(kRequests, w.Resolve(kRequests, Route(r)), 1 + r % 3);
      }
    }
    a.CloseThrough((slot + 1) * kSlot);
    b.CloseThrough((slot + 1) * kSlot);
  }
  ASSERT_FALSE(a.history->folded().empty());
  EXPECT_EQ(a.history->folded()[0].series, b.history->folded()[0].series);
  EXPECT_EQ(Last(a.series, "requests_total"), Last(b.series, "requests_total"));
  EXPECT_EQ(a.history->reserved_bytes(), b.history->reserved_bytes());
}

TEST(WindowHistory, SeriesLimitOverflowIsTheWindowsOverflowRow) {
  // No budget; the series limit (10) folds the rest, into row 0.
  Fixture f({{"requests_total", 60'000}}, /*shards=*/1, /*ring=*/8, /*memory_bytes=*/0,
            /*series_limit=*/10);
  ShardWriter& w = *f.writers[0];
  ASSERT_TRUE(w.SetEventTime(1'000));
  for (int r = 0; r < 25; ++r) w.Inc(kRequests, w.Resolve(kRequests, Route(r)));
  w.Inc(kRequests, w.Resolve(kRequests, std::string(kOverflowLabelValue)));  // a lookalike
  f.CloseThrough(15'000);
  const std::map<std::string, double> requests = Last(f.series, "requests_total");
  EXPECT_EQ(requests.size(), 11u);
  EXPECT_EQ(requests.at("__overflow__"), 16);
  EXPECT_EQ(Sum(requests), 26);
  EXPECT_TRUE(f.history->folded().empty());  // the series limit's doing, not the budget's
}

TEST(WindowHistory, BudgetBelowTheOverflowRowsFoldsEverything) {
  Fixture f({{"latency_seconds_bucket", 60'000}}, /*shards=*/2, /*ring=*/64,
            /*memory_bytes=*/4096);
  ShardWriter& w = *f.writers[0];
  ASSERT_TRUE(w.SetEventTime(1'000));
  for (int r = 0; r < 5; ++r) w.Observe(kLatency, w.Resolve(kLatency, Route(r)), 0.3);
  f.CloseThrough(15'000);
  EXPECT_EQ(f.store->window_rows(kLatency), 1u);
  ASSERT_EQ(f.history->folded().size(), 1u);
  EXPECT_EQ(f.history->folded()[0].series, 5u);
  // More than the budget, but no more than the overflow row needs.
  EXPECT_GT(f.history->reserved_bytes(), 4096u);
  EXPECT_LE(f.history->MemoryBytes(), f.history->reserved_bytes());
  EXPECT_EQ(Last(f.series, "latency_seconds_bucket", "+Inf").at("__overflow__"), 5);
}

// Removes the series idle at `now_ms` from the store and the windows.
size_t Expire(Fixture& f, int64_t now_ms) {
  std::vector<MetricStore::Removed> removed;
  f.store->ExpireIdle(now_ms, &removed);
  return f.history->Retire(removed);
}

TEST(WindowHistory, AnExpiredSeriesEndsWithAStaleMarkerAndFreesItsRow) {
  Fixture f({{"requests_total", 60'000}}, /*shards=*/2, /*ring=*/8, /*memory_bytes=*/1 << 20,
            /*series_limit=*/1000, /*start=*/true, ExpiringDefs());
  const uint32_t a = f.writers[0]->Resolve(kRequests, "/a");
  ASSERT_TRUE(f.writers[0]->SetEventTime(1'000));
  f.writers[0]->Inc(kRequests, a, 3);
  for (int64_t slot = 0; slot < 6; ++slot) {  // /b in every slot, from the other shard
    ShardWriter& w = *f.writers[1];
    ASSERT_TRUE(w.SetEventTime(slot * kSlot + 2'000));
    w.Inc(kRequests, w.Resolve(kRequests, "/b"));
    f.CloseThrough((slot + 1) * kSlot);
  }
  const size_t reserved = f.history->reserved_bytes();
  const size_t rows = f.store->window_rows(kRequests);
  ASSERT_EQ(rows, 3u);                 // __overflow__, /a, /b
  EXPECT_EQ(f.history->series(), 2u);  // __overflow__ has no stream until used

  // /a was last updated at 1 s: idle for a minute at 90 s. One stream ends.
  EXPECT_EQ(Expire(f, 90'000), 1u);
  const auto a_samples = Samples(f.series, "requests_total", "route", "/a");
  ASSERT_GE(a_samples.size(), 2u);
  EXPECT_EQ(a_samples[a_samples.size() - 2].t_ms, 90'000);
  EXPECT_EQ(a_samples[a_samples.size() - 2].v, 3);
  EXPECT_TRUE(promql::IsStaleNaN(a_samples.back().v));
  EXPECT_EQ(a_samples.back().t_ms, 90'001);
  EXPECT_EQ(f.history->series(), 1u);
  EXPECT_EQ(f.history->free_rows(), 1u);
  // Its share of the budget is held until its ended stream leaves the
  // series store (after the reach), not handed out at once.
  EXPECT_EQ(f.history->reserved_bytes(), reserved);
  // The rules no longer see /a at the next slot end; /b goes on.
  promql::Evaluator eval(&f.series);
  auto expr = promql::Parse("requests_total");
  ASSERT_TRUE(expr.ok());
  f.CloseThrough(105'000);
  absl::StatusOr<promql::Vector> v = eval.Eval(**expr, 105'000);
  ASSERT_TRUE(v.ok()) << v.status();
  ASSERT_EQ(v->size(), 1u);
  EXPECT_EQ(v->front().labels.back().value, "/b");

  // A new label set takes the free row, and counts from 0 there: none of
  // /a's counts reach it.
  ShardWriter& w = *f.writers[0];
  ASSERT_TRUE(w.SetEventTime(106'000));
  w.Inc(kRequests, w.Resolve(kRequests, "/c"));
  f.CloseThrough(120'000);
  EXPECT_EQ(f.store->window_rows(kRequests), rows);
  EXPECT_EQ(f.history->free_rows(), 0u);
  const auto c_samples = Samples(f.series, "requests_total", "route", "/c");
  ASSERT_EQ(c_samples.size(), 1u);
  EXPECT_EQ(c_samples[0].v, 1);

  // /a again: its stream goes on after the marker, from 0 (a counter reset).
  ASSERT_TRUE(w.SetEventTime(121'000));
  w.Inc(kRequests, w.Resolve(kRequests, "/a"));
  f.CloseThrough(135'000);
  const auto again = Samples(f.series, "requests_total", "route", "/a");
  ASSERT_EQ(again.size(), a_samples.size() + 1);
  EXPECT_TRUE(promql::IsStaleNaN(again[again.size() - 2].v));
  EXPECT_EQ(again.back().t_ms, 135'000);
  EXPECT_EQ(again.back().v, 1);
  EXPECT_EQ(f.store->window_rows(kRequests), rows + 1);
}

TEST(WindowHistory, EndedStreamsLeaveTheSeriesStoreOnceOlderThanTheReach) {
  // 200 routes, each live for two slots, over 100 slots: the streams held
  // stay bounded by what the reach and the expiry keep, not by the routes.
  Fixture f({{"requests_total", 60'000}, {"latency_seconds_count", 60'000}}, /*shards=*/2,
            /*ring=*/8, /*memory_bytes=*/1 << 20, /*series_limit=*/1000, /*start=*/true,
            ExpiringDefs());
  constexpr int kSlots = 100;
  size_t most_live = 0;
  size_t most_rows = 0;
  size_t ended = 0;
  for (int slot = 0; slot < kSlots; ++slot) {
    for (int r = slot * 2; r < slot * 2 + 4; ++r) {  // routes 2s..2s+3: each in two slots
      ShardWriter& w = *f.writers[r % 2];
      ASSERT_TRUE(w.SetEventTime(slot * kSlot + 100));
      w.Inc(kRequests, w.Resolve(kRequests, Route(r)));
      w.Observe(kLatency, w.Resolve(kLatency, Route(r)), 0.2);
    }
    f.CloseThrough((slot + 1) * kSlot);
    ended += Expire(f, (slot + 1) * kSlot);
    // Retired rows' shares are held until their ended streams go.
    ASSERT_LE(f.history->MemoryBytes(), f.history->reserved_bytes()) << slot;
    most_live = std::max(most_live, f.series.live());
    most_rows = std::max(most_rows, f.store->window_rows(kRequests));
  }
  // Every route but those of the last five slots (a minute) ended, two
  // streams each; ended streams stay for the reach and a slot, then go at
  // the next trim (every 16 slots).
  EXPECT_GE(ended, 2u * (2 * kSlots - 10));
  EXPECT_LE(most_rows, 1 + 2 * 7u);
  EXPECT_LE(most_live, 2 * (2 + 2 * (7 + 5 + 16)));
  EXPECT_LT(f.series.live(), f.series.size());
  // Totals over the family: what was counted, expired or not, is what rules
  // would sum over the live streams plus the ended ones' last values; here
  // just check the live ones hold their two increments.
  for (const auto& [route, v] : Last(f.series, "requests_total")) {
    if (route != "__overflow__" && !std::isnan(v)) EXPECT_LE(v, 2) << route;
  }
}

TEST(WindowHistory, RetiredRowsComeBackFromACheckpoint) {
  auto make = [] {
    return std::make_unique<Fixture>(std::vector<promql::Reach>{{"requests_total", 60'000}},
                                     /*shards=*/1, /*ring=*/8, /*memory_bytes=*/1 << 20,
                                     /*series_limit=*/1000, /*start=*/true, ExpiringDefs());
  };
  std::unique_ptr<Fixture> f = make();
  ShardWriter& w = *f->writers[0];
  ASSERT_TRUE(w.SetEventTime(1'000));
  w.Inc(kRequests, w.Resolve(kRequests, "/a"));
  w.Inc(kRequests, w.Resolve(kRequests, "/b"));
  ASSERT_TRUE(w.SetEventTime(70'000));
  w.Inc(kRequests, w.Resolve(kRequests, "/c"));
  f->CloseThrough(75'000);
  EXPECT_EQ(Expire(*f, 75'000), 2u);  // /a and /b
  ASSERT_EQ(f->history->free_rows(), 2u);

  // In the order a checkpoint has them: the metrics, then the rules' part.
  StateWriter out;
  f->store->SaveCumulative(&out);
  f->history->SaveBudget(&out);
  f->series.SaveState(&out);
  f->history->SaveState(&out);
  f->store->SaveWindows(&out);

  std::unique_ptr<Fixture> g = make();
  StateReader in(out.bytes());
  bool same_ids = false;
  ASSERT_TRUE(g->store->LoadCumulative(&in, &same_ids).ok());
  EXPECT_TRUE(same_ids);
  ASSERT_TRUE(g->history->LoadBudget(&in).ok());
  ASSERT_TRUE(g->series.LoadState(&in).ok());
  ASSERT_TRUE(g->history->LoadState(&in).ok());
  ASSERT_TRUE(g->store->LoadWindows(&in).ok());
  EXPECT_EQ(g->history->free_rows(), 2u);
  EXPECT_EQ(g->history->series(), f->history->series());
  // The restored reservation is the placed rows' (the retired rows' shares
  // are not saved); once the ended streams are gone both agree.
  EXPECT_LE(g->history->reserved_bytes(), f->history->reserved_bytes());
  for (Fixture* x : {f.get(), g.get()}) {
    ShardWriter& wx = *x->writers[0];
    ASSERT_TRUE(wx.SetEventTime(200'000));
    wx.Inc(kRequests, wx.Resolve(kRequests, "/c"));
    x->CloseThrough(15 * 60'000);
  }
  EXPECT_EQ(g->history->reserved_bytes(), f->history->reserved_bytes());
  EXPECT_LT(f->series.live(), f->series.size());  // the ended streams went
  EXPECT_EQ(g->series.live(), f->series.live());
  // A new label set takes the lowest free row in both: 1 (/a's).
  for (Fixture* x : {f.get(), g.get()}) {
    ShardWriter& wx = *x->writers[0];
    ASSERT_TRUE(wx.SetEventTime(15 * 60'000 + 1'000));
    const uint32_t d = wx.Resolve(kRequests, "/d");
    wx.Inc(kRequests, d);
    x->CloseThrough(15 * 60'000 + kSlot);
    EXPECT_EQ(x->store->window_row(kRequests, d), 1u);
    EXPECT_EQ(x->history->free_rows(), 1u);
  }
}

}  // namespace
}  // namespace novapulse
