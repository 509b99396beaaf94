#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "base/state_codec.h"
#include "rules/promql.h"

namespace novapulse::promql {
namespace {

using ::testing::HasSubstr;

Labels L(std::initializer_list<Label> ls) {
  Labels out(ls);
  std::sort(out.begin(), out.end());
  return out;
}

absl::StatusOr<Vector> EvalAt(const Storage& s, const std::string& expr, int64_t t_ms) {
  absl::StatusOr<ExprPtr> e = Parse(expr);
  if (!e.ok()) return e.status();
  Evaluator eval(&s);
  return eval.Eval(**e, t_ms);
}

double Only(const Storage& s, const std::string& expr, int64_t t_ms) {
  absl::StatusOr<Vector> v = EvalAt(s, expr, t_ms);
  EXPECT_TRUE(v.ok()) << v.status();
  if (!v.ok() || v->size() != 1) {
    ADD_FAILURE() << expr << ": expected one element";
    return std::nan("");
  }
  return (*v)[0].v;
}

// Samples every 15 s from t=0.
void Fill(SeriesStore* s, const Labels& ls, const std::vector<double>& values) {
  uint32_t ref = s->Ref(ls);
  for (size_t i = 0; i < values.size(); ++i) {
    s->Append(ref, static_cast<int64_t>(i) * 15000, values[i]);
  }
}

TEST(PromqlEval, InstantSelectorLooksBackFiveMinutesInclusive) {
  SeriesStore s;
  Fill(&s, L({{"__name__", "m"}, {"a", "1"}}), {1, 2});
  EXPECT_EQ(Only(s, "m", 15000 + kLookbackDeltaMs), 2);
  EXPECT_TRUE(EvalAt(s, "m", 15001 + kLookbackDeltaMs)->empty());
  absl::StatusOr<Vector> v = EvalAt(s, "m", 15000);
  ASSERT_EQ(v->size(), 1u);
  EXPECT_EQ((*v)[0].labels, L({{"__name__", "m"}, {"a", "1"}}));
}

TEST(PromqlEval, StaleMarkerEndsTheSeries) {
  SeriesStore s;
  uint32_t ref = s.Ref(L({{"__name__", "m"}}));
  s.Append(ref, 0, 1);
  s.Append(ref, 15000, StaleNaN());
  s.Append(ref, 30000, 5);
  EXPECT_TRUE(EvalAt(s, "m", 20000)->empty());
  EXPECT_EQ(Only(s, "m", 30000), 5);
  // Range functions skip the marker.
  EXPECT_EQ(Only(s, "count_over_time(m[1m])", 30000), 2);
}

TEST(PromqlEval, RateExtrapolatesAndHandlesResets) {
  SeriesStore s;
  // 0..60 s: 10, 20, 5 (reset), 15, 25 -> 25 - 10, plus 20 for the reset: 35 over 60 s.
  Fill(&s, L({{"__name__", "c"}}), {10, 20, 5, 15, 25});
  // Range [0, 60]: samples cover it exactly, no extrapolation.
  EXPECT_DOUBLE_EQ(Only(s, "increase(c[1m])", 60000), 35);
  EXPECT_DOUBLE_EQ(Only(s, "rate(c[1m])", 60000), 35.0 / 60);
  // delta ignores resets.
  EXPECT_DOUBLE_EQ(Only(s, "delta(c[1m])", 60000), 15);
  // irate: last two samples.
  EXPECT_DOUBLE_EQ(Only(s, "irate(c[1m])", 60000), 10.0 / 15);
  EXPECT_DOUBLE_EQ(Only(s, "irate(c[1m])", 30000), 5.0 / 15);  // reset: the new value
  EXPECT_DOUBLE_EQ(Only(s, "idelta(c[1m])", 30000), -15);
  // One sample: no rate.
  EXPECT_TRUE(EvalAt(s, "rate(c[10s])", 60000)->empty());
}

// A storage that hides the monotonic hint: rate must not depend on it.
class NoHint : public Storage {
 public:
  explicit NoHint(const Storage* s) : s_(s) {}
  void Select(std::string_view metric, std::span<const Matcher> matchers, int64_t mint,
              int64_t maxt, std::vector<SeriesRef>* out) const override {
    size_t n = out->size();
    s_->Select(metric, matchers, mint, maxt, out);
    for (size_t i = n; i < out->size(); ++i) (*out)[i].monotonic = false;
  }

 private:
  const Storage* s_;
};

TEST(PromqlEval, MonotonicHintGivesIdenticalResults) {
  SeriesStore s;
  std::vector<double> values;
  values.reserve(100);
  for (int i = 0; i < 100; ++i) values.push_back(i < 50 ? i * 3 : (i - 50) * 2);
  Fill(&s, L({{"__name__", "c"}}), values);
  NoHint nohint(&s);
  for (int64_t t : {300000, 740000, 900000, 1500000}) {
    for (const char* e : {"rate(c[5m])", "increase(c[10m])"}) {
      EXPECT_EQ(Only(s, e, t), Only(nohint, e, t)) << e << " at " << t;
    }
  }
  std::vector<Storage::SeriesRef> refs;
  s.Select("c", {}, 0, 600000, &refs);
  ASSERT_EQ(refs.size(), 1u);
  EXPECT_TRUE(refs[0].monotonic);
  refs.clear();
  s.Select("c", {}, 0, 900000, &refs);
  EXPECT_FALSE(refs[0].monotonic);
}

TEST(PromqlEval, NameIsDroppedByFunctionsAndArithmeticButKeptByFilters) {
  SeriesStore s;
  Fill(&s, L({{"__name__", "m"}, {"a", "1"}}), {5});
  Labels with = L({{"__name__", "m"}, {"a", "1"}});
  Labels without = L({{"a", "1"}});
  EXPECT_EQ((*EvalAt(s, "m > 1", 0))[0].labels, with);
  EXPECT_EQ((*EvalAt(s, "m > bool 1", 0))[0].labels, without);
  EXPECT_EQ((*EvalAt(s, "m + 1", 0))[0].labels, without);
  EXPECT_EQ((*EvalAt(s, "abs(m)", 0))[0].labels, without);
  EXPECT_EQ((*EvalAt(s, "last_over_time(m[1m])", 0))[0].labels, with);
  EXPECT_EQ((*EvalAt(s, "max_over_time(m[1m])", 0))[0].labels, without);
  EXPECT_EQ((*EvalAt(s, "m and m", 0))[0].labels, with);
  EXPECT_EQ((*EvalAt(s, "-m", 0))[0].labels, without);
  // A comparison with the scalar on the left keeps the vector's value.
  EXPECT_EQ(Only(s, "1 < m", 0), 5);
}

TEST(PromqlEval, VectorMatching) {
  SeriesStore s;
  Fill(&s, L({{"__name__", "a"}, {"x", "1"}, {"y", "p"}}), {6});
  Fill(&s, L({{"__name__", "a"}, {"x", "2"}, {"y", "p"}}), {8});
  Fill(&s, L({{"__name__", "b"}, {"x", "1"}, {"y", "q"}}), {2});
  Fill(&s, L({{"__name__", "b"}, {"x", "2"}, {"y", "q"}}), {4});
  absl::StatusOr<Vector> v = EvalAt(s, "a / on(x) b", 0);
  ASSERT_TRUE(v.ok());
  ASSERT_EQ(v->size(), 2u);
  EXPECT_EQ((*v)[0].labels, L({{"x", "1"}}));
  EXPECT_EQ((*v)[0].v, 3);
  v = EvalAt(s, "a - ignoring(y) b", 0);
  ASSERT_EQ(v->size(), 2u);
  EXPECT_EQ((*v)[1].labels, L({{"x", "2"}}));
  EXPECT_EQ((*v)[1].v, 4);
  EXPECT_TRUE(EvalAt(s, "a + b", 0)->empty());  // y differs
  v = EvalAt(s, "a + on() b", 0);
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(std::string(v.status().message()),
              HasSubstr("many-to-many matching not allowed: matching labels must be unique on one "
                        "side"));
  v = EvalAt(s, "a + on() b{x=\"1\"}", 0);
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(std::string(v.status().message()), HasSubstr("multiple matches for labels"));
  // Set operators.
  EXPECT_EQ(EvalAt(s, "a and on(x) b{x=\"1\"}", 0)->size(), 1u);
  EXPECT_EQ(EvalAt(s, "a unless on(x) b{x=\"1\"}", 0)->size(), 1u);
  EXPECT_EQ(EvalAt(s, "a or b", 0)->size(), 4u);
  EXPECT_EQ(EvalAt(s, "a or on(x) b", 0)->size(), 2u);
}

TEST(PromqlEval, Aggregations) {
  SeriesStore s;
  Fill(&s, L({{"__name__", "m"}, {"g", "x"}, {"i", "1"}}), {1});
  Fill(&s, L({{"__name__", "m"}, {"g", "x"}, {"i", "2"}}), {std::nan("")});
  Fill(&s, L({{"__name__", "m"}, {"g", "y"}, {"i", "3"}}), {4});
  absl::StatusOr<Vector> v = EvalAt(s, "max by (g) (m)", 0);
  ASSERT_EQ(v->size(), 2u);
  EXPECT_EQ((*v)[0].labels, L({{"g", "x"}}));
  EXPECT_EQ((*v)[0].v, 1);  // NaN loses to a number
  v = EvalAt(s, "count without (i) (m)", 0);
  ASSERT_EQ(v->size(), 2u);
  EXPECT_EQ((*v)[0].labels, L({{"g", "x"}}));
  EXPECT_EQ((*v)[0].v, 2);
  EXPECT_TRUE(std::isnan(Only(s, "sum(m)", 0)));
  EXPECT_EQ(Only(s, "avg(m{g=\"y\"})", 0), 4);
  EXPECT_EQ(Only(s, "min(m)", 0), 1);
}

TEST(PromqlEval, HistogramQuantile) {
  SeriesStore s;
  auto b = [](const char* le) { return L({{"__name__", "h_bucket"}, {"le", le}, {"r", "a"}}); };
  Fill(&s, b("0.1"), {10});
  Fill(&s, b("0.5"), {30});
  Fill(&s, b("1"), {60});
  Fill(&s, b("+Inf"), {100});
  EXPECT_DOUBLE_EQ(Only(s, "histogram_quantile(0.05, h_bucket)", 0), 0.05);
  EXPECT_DOUBLE_EQ(Only(s, "histogram_quantile(0.3, h_bucket)", 0), 0.5);
  EXPECT_DOUBLE_EQ(Only(s, "histogram_quantile(0.99, h_bucket)", 0), 1);  // in +Inf
  EXPECT_EQ(Only(s, "histogram_quantile(-1, h_bucket)", 0), -INFINITY);
  EXPECT_EQ(Only(s, "histogram_quantile(2, h_bucket)", 0), INFINITY);
  absl::StatusOr<Vector> v = EvalAt(s, "histogram_quantile(0.5, h_bucket)", 0);
  EXPECT_EQ((*v)[0].labels, L({{"r", "a"}}));
}

TEST(PromqlEval, AbsentAndScalarFunctions) {
  SeriesStore s;
  Fill(&s, L({{"__name__", "m"}}), {2.5});
  absl::StatusOr<Vector> v = EvalAt(s, "absent(nope{a=\"1\", b=~\"x\", c=\"3\", c=\"4\"})", 0);
  ASSERT_EQ(v->size(), 1u);
  EXPECT_EQ((*v)[0].labels, L({{"a", "1"}}));
  EXPECT_TRUE(EvalAt(s, "absent(m)", 0)->empty());
  EXPECT_EQ(Only(s, "scalar(m) * 2", 0), 5);
  EXPECT_TRUE(std::isnan(Only(s, "scalar(nope)", 0)));
  EXPECT_EQ(Only(s, "time()", 90000), 90);
  EXPECT_EQ(Only(s, "round(m)", 0), 3);
  EXPECT_EQ(Only(s, "clamp(m, 0, 1)", 0), 1);
  EXPECT_TRUE(EvalAt(s, "clamp(m, 1, 0)", 0)->empty());
}

TEST(PromqlEval, RangeVectorResultIsAnError) {
  SeriesStore s;
  EXPECT_FALSE(EvalAt(s, "m[5m]", 0).ok());
}

TEST(SeriesStore, TrimKeepsRetentionAndCompacts) {
  SeriesStore s;
  s.SetRetention("long", 3600 * 1000);
  uint32_t a = s.Ref(L({{"__name__", "short"}}));
  uint32_t b = s.Ref(L({{"__name__", "long"}}));
  EXPECT_EQ(s.Ref(L({{"__name__", "short"}})), a);
  for (int64_t t = 0; t <= 3600 * 1000; t += 15000) {
    s.Append(a, t, 1);
    s.Append(b, t, 1);
  }
  s.Append(a, 0, 7);  // not after the last sample: ignored
  size_t before = s.MemoryBytes();
  s.Trim(3600 * 1000);
  std::vector<Storage::SeriesRef> refs;
  s.Select("short", {}, 0, 3600 * 1000, &refs);
  ASSERT_EQ(refs.size(), 1u);
  EXPECT_EQ(refs[0].samples.front().t_ms, 3600 * 1000 - kLookbackDeltaMs);
  refs.clear();
  s.Select("long", {}, 0, 3600 * 1000, &refs);
  EXPECT_EQ(refs[0].samples.front().t_ms, 0);
  EXPECT_GT(before, 0u);
}

TEST(SeriesStore, AnEndedSeriesGoesOnceItsSamplesAgeOutAndItsRefIsReused) {
  SeriesStore s;
  const uint32_t a = s.Ref(L({{"__name__", "m"}, {"r", "a"}}));
  const uint32_t b = s.Ref(L({{"__name__", "m"}, {"r", "b"}}));
  const uint32_t c = s.Ref(L({{"__name__", "m"}, {"r", "c"}}));
  for (int64_t t = 0; t <= 60'000; t += 15'000) {
    s.Append(a, t, 1);
    s.Append(b, t, 2);
    s.Append(c, t, 3);
  }
  s.Append(a, 60'001, StaleNaN());  // a ended
  s.Append(c, 60'001, StaleNaN());  // c ended, and comes back
  s.Append(c, 75'000, 4);
  // Within the lookback: a is still held, and absent from an instant query.
  s.Trim(75'000);
  EXPECT_EQ(s.live(), 3u);
  EXPECT_EQ(EvalAt(s, "count(m)", 75'000)->front().v, 2);
  // Every sample of a older than 5 minutes: a goes; b (no marker) and c
  // (a value after its marker) stay, though b's samples are gone too.
  s.Append(c, 400'000, 5);
  s.Trim(400'000);
  EXPECT_EQ(s.live(), 2u);
  EXPECT_EQ(s.size(), 3u);
  std::vector<Storage::SeriesRef> refs;
  s.Select("m", {}, 0, 400'000, &refs);
  ASSERT_EQ(refs.size(), 1u);
  EXPECT_EQ(*refs[0].labels, L({{"__name__", "m"}, {"r", "c"}}));
  // a's ref goes to the next new label set; a itself would be new too.
  const uint32_t d = s.Ref(L({{"__name__", "m"}, {"r", "d"}}));
  EXPECT_EQ(d, a);
  EXPECT_EQ(s.Ref(L({{"__name__", "m"}, {"r", "b"}})), b);
  EXPECT_EQ(s.live(), 3u);
  s.Append(d, 400'001, 9);
  refs.clear();
  s.Select("m", {}, 400'001, 400'001, &refs);
  ASSERT_EQ(refs.size(), 1u);
  EXPECT_EQ(*refs[0].labels, L({{"__name__", "m"}, {"r", "d"}}));
  EXPECT_EQ(refs[0].samples.front().v, 9);
}

TEST(SeriesStore, RemovedSeriesAreHolesInACheckpointAndTheirRefsStayFree) {
  SeriesStore s;
  const uint32_t a = s.Ref(L({{"__name__", "m"}, {"r", "a"}}));
  const uint32_t b = s.Ref(L({{"__name__", "m"}, {"r", "b"}}));
  s.Append(a, 0, 1);
  s.Append(b, 0, 2);
  // c ended once and came back: it has not ended, even with no samples left.
  const uint32_t c = s.Ref(L({{"__name__", "m"}, {"r", "c"}}));
  s.Append(c, 0, 1);
  s.Append(c, 1, StaleNaN());
  s.Append(c, 2, 5);
  s.Append(a, 1, StaleNaN());
  s.Append(b, 600'000, 3);
  s.Trim(600'000);
  ASSERT_EQ(s.live(), 2u);
  StateWriter w;
  s.SaveState(&w);

  SeriesStore t;
  StateReader r(w.bytes());
  ASSERT_TRUE(t.LoadState(&r).ok());
  EXPECT_EQ(t.size(), 3u);
  EXPECT_EQ(t.live(), 2u);
  EXPECT_FALSE(t.IsLive(a));
  EXPECT_TRUE(t.IsLive(c));
  t.Trim(900'000);  // c stays: it has not ended
  EXPECT_TRUE(t.IsLive(c));
  EXPECT_EQ(t.Ref(L({{"__name__", "m"}, {"r", "c"}})), c);
  EXPECT_EQ(t.Ref(L({{"__name__", "m"}, {"r", "b"}})), b);
  EXPECT_EQ(t.Ref(L({{"__name__", "m"}, {"r", "e"}})), a);  // the hole
  // Every prefix fails cleanly.
  for (size_t n = 0; n < w.bytes().size(); ++n) {
    SeriesStore u;
    StateReader cut(std::string_view(w.bytes()).substr(0, n));
    EXPECT_FALSE(u.LoadState(&cut).ok()) << n;
  }
}

// ~16 rules over 200 series with a day of 15 s samples for the range ones.
TEST(PromqlEval, SixteenRulesCostWellUnderAMillisecond) {
  SeriesStore s;
  s.SetRetention("req_total", 24 * 3600 * 1000);
  const int64_t kEnd = 3600 * 1000;
  for (int route = 0; route < 20; ++route) {
    for (int code = 0; code < 5; ++code) {
      uint32_t ref = s.Ref(L({{"__name__", "req_total"},
                              {"route", "r" + std::to_string(route)},
                              {"code", std::to_string(200 + code)}}));
      for (int64_t t = 0; t <= kEnd; t += 15000) s.Append(ref, t, static_cast<double>(t) / 1000);
      for (const char* le : {"0.1", "0.5", "1", "+Inf"}) {
        uint32_t h = s.Ref(L({{"__name__", "lat_bucket"},
                              {"route", "r" + std::to_string(route)},
                              {"code", std::to_string(200 + code)},
                              {"le", le}}));
        for (int64_t t = kEnd - 600000; t <= kEnd; t += 15000) s.Append(h, t, t / 1000.0);
      }
    }
  }
  std::vector<ExprPtr> rules;
  for (const char* r : {
           "sum by (route) (rate(req_total[5m]))",
           "sum by (code) (increase(req_total[1h]))",
           "histogram_quantile(0.99, sum by (le, route) (rate(lat_bucket[5m])))",
           "sum(rate(req_total{code=~\"5..\"}[5m])) / sum(rate(req_total[5m]))",
           "sum by (route) (rate(req_total{code=\"500\"}[5m])) > 0.1",
           "max_over_time(req_total[10m])",
           "count by (route) (req_total)",
           "avg(rate(req_total[1m]))",
           "req_total{code=\"200\"} - ignoring(code) req_total{code=\"201\"}",
           "absent(req_total{route=\"nope\"})",
           "sum by (route) (irate(req_total[5m]))",
           "min by (code) (delta(req_total[5m]))",
           "rate(req_total[5m]) and on(route, code) rate(req_total[5m]) > 0",
           "clamp_max(sum by (route) (rate(req_total[5m])), 100)",
           "sum without (le) (lat_bucket{le=\"+Inf\"})",
           "histogram_quantile(0.5, rate(lat_bucket[5m]))",
       }) {
    rules.push_back(*Parse(r));
  }
  Evaluator eval(&s);
  auto start = std::chrono::steady_clock::now();
  const int kRounds = 20;
  for (int i = 0; i < kRounds; ++i) {
    for (const ExprPtr& r : rules) ASSERT_TRUE(eval.Eval(*r, kEnd).ok());
  }
  double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() /
      kRounds;
  std::printf("16 rules over 100 series: %.3f ms per evaluation\n", ms);
#if !defined(__SANITIZE_ADDRESS__) && !__has_feature(address_sanitizer)
  EXPECT_LT(ms, 5.0);  // generous for a shared machine; typically far less
#endif
}

}  // namespace
}  // namespace novapulse::promql
