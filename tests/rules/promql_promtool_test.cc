// The oracle test: seeded random series go both into a SeriesStore and into a
// promtool rule-test file; every expression is evaluated by our Evaluator at
// several times and its result written as the expected samples; promtool
// 2.42 (which compares labels and values exactly, with reflect.DeepEqual)
// must agree with every one.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "rules/promql.h"
#include "tests/rules/promtool_text.h"

namespace novapulse::promql {
namespace {

constexpr int64_t kStepMs = 15000;
constexpr int kSteps = 161;  // 40 minutes

enum class Cell { kValue, kGap, kStale };
struct Point {
  Cell cell = Cell::kGap;
  double v = 0;
};
struct InputSeries {
  Labels labels;
  std::vector<Point> points;
};

std::string FormatValue(double v) {
  if (std::isnan(v)) return ".nan";
  if (std::isinf(v)) return v > 0 ? ".inf" : "-.inf";
  char buf[64];
  snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}

std::string InputValue(double v) {
  if (std::isinf(v)) return v > 0 ? "Inf" : "-Inf";
  char buf[64];
  snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}

Labels L(std::initializer_list<Label> ls) {
  Labels out(ls);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<InputSeries> Generate() {
  std::mt19937_64 rng(20230201);
  auto uniform = [&](int lo, int hi) {
    return lo + static_cast<int>(rng() % static_cast<uint64_t>(hi - lo + 1));
  };
  auto chance = [&](int percent) { return uniform(0, 99) < percent; };
  std::vector<InputSeries> out;

  // Counters with resets, gaps, late starts and early stops.
  int idx = 0;
  for (const char* instance : {"i0", "i1", "i2", "i3"}) {
    for (const char* code : {"200", "500"}) {
      InputSeries s;
      s.labels = L({{"__name__", "http_requests_total"},
                    {"job", "api"},
                    {"instance", instance},
                    {"code", code}});
      int start = idx == 3 ? 40 : idx == 5 ? 10 : 0;
      int stop = idx == 6 ? 100 : idx == 7 ? 130 : kSteps;
      double v = idx == 2 ? 0 : uniform(0, 200);
      s.points.resize(kSteps);
      for (int i = start; i < stop; ++i) {
        if (chance(3)) {
          v = uniform(0, 5);
        } else {
          v += idx == 4 ? uniform(0, 2) * 0.5 : uniform(0, 20);
        }
        if (chance(6)) continue;
        s.points[i] = Point{Cell::kValue, v};
      }
      if (idx == 7) s.points[stop] = Point{Cell::kStale, 0};
      out.push_back(std::move(s));
      ++idx;
    }
  }

  // Gauges around a threshold of 10, in quarters so that sums are exact.
  for (const char* room : {"a", "b", "c"}) {
    InputSeries s;
    s.labels = L({{"__name__", "temp"}, {"room", room}, {"instance", "i0"}});
    s.points.resize(kSteps);
    for (int i = 0; i < kSteps; ++i) {
      if (chance(5)) continue;
      double v = chance(15) ? 10 : 10 + uniform(-24, 24) * 0.25;
      if (room[0] == 'c' && i == 77) {
        s.points[i] = Point{Cell::kStale, 0};
        continue;
      }
      s.points[i] = Point{Cell::kValue, v};
    }
    out.push_back(std::move(s));
  }

  // Counters that start inside the range with a small first value, where the
  // zero-point clamp of extrapolatedRate decides the result.
  for (int first : {3, 7, 12}) {
    InputSeries s;
    s.labels = L({{"__name__", "jobs_total"}, {"first", std::to_string(first)}});
    s.points.resize(kSteps);
    for (int i = 20 + first; i < kSteps; ++i) {
      s.points[i] = Point{Cell::kValue, first + 10.0 * (i - 20 - first)};
    }
    out.push_back(std::move(s));
  }

  // Gauges whose sums are inexact (where compensated summation shows), and
  // one with NaN and infinities.
  {
    InputSeries s;
    s.labels = L({{"__name__", "ratio"}, {"kind", "tenths"}});
    s.points.resize(kSteps);
    for (int i = 0; i < kSteps; ++i) {
      double v = uniform(1, 9) * 0.1 + (i % 17 == 0 ? 1e15 : 0) - (i % 17 == 8 ? 1e15 : 0);
      s.points[i] = Point{Cell::kValue, v};
    }
    out.push_back(std::move(s));
    InputSeries o;
    o.labels = L({{"__name__", "odd"}, {"kind", "nan"}});
    o.points.resize(kSteps);
    for (int i = 0; i < kSteps; ++i) {
      double v = i % 11 == 3   ? std::nan("")
                 : i % 13 == 5 ? std::numeric_limits<double>::infinity()
                 : i % 19 == 7 ? -std::numeric_limits<double>::infinity()
                               : uniform(0, 8) * 0.5;
      o.points[i] = Point{Cell::kValue, v};
    }
    out.push_back(std::move(o));
    InputSeries o2;
    o2.labels = L({{"__name__", "odd"}, {"kind", "plain"}});
    o2.points.resize(kSteps);
    for (int i = 0; i < kSteps; ++i) o2.points[i] = Point{Cell::kValue, uniform(0, 8) * 0.5};
    out.push_back(std::move(o2));
  }

  // Classic histograms: a normal one with an empty bucket, one without
  // observations, one without +Inf, one whose buckets are not monotonic.
  const char* bounds[] = {"0.1", "0.25", "0.5", "1", "+Inf"};
  for (const char* route : {"normal", "empty", "noinf", "nonmono"}) {
    std::vector<double> counts(5, 0);
    std::vector<InputSeries> buckets(5);
    for (int b = 0; b < 5; ++b) {
      buckets[b].labels =
          L({{"__name__", "req_duration_seconds_bucket"}, {"route", route}, {"le", bounds[b]}});
      buckets[b].points.resize(kSteps);
    }
    for (int i = 0; i < kSteps; ++i) {
      if (std::string(route) != "empty") {
        int n = uniform(0, 12);
        for (int k = 0; k < n; ++k) {
          int b = uniform(0, 4);
          if (b == 1) b = 2;  // le="0.25" stays empty
          for (int j = b; j < 5; ++j) counts[j] += 1;
        }
      }
      for (int b = 0; b < 5; ++b) {
        double v = counts[b];
        if (std::string(route) == "nonmono" && b == 2) v = counts[b] - 3;
        buckets[b].points[i] = Point{Cell::kValue, v};
      }
    }
    for (int b = 0; b < 5; ++b) {
      if (std::string(route) == "noinf" && b == 4) continue;
      out.push_back(std::move(buckets[b]));
    }
  }
  return out;
}

struct Case {
  std::string expr;
  // Sums over several series depend on the order Prometheus reads them in,
  // which is not fixed; such results are compared after rounding.
  bool order_sensitive = false;
};

std::vector<Case> Cases() {
  return {
      {"http_requests_total"},
      {"rate(jobs_total[5m])"},
      {"increase(jobs_total[10m])"},
      {"increase(jobs_total[2m])"},
      {"sum_over_time(ratio[5m])"},
      {"avg_over_time(ratio[5m])"},
      {"stddev_over_time(ratio[5m])"},
      {"stdvar_over_time(ratio[10m])"},
      {"avg_over_time(odd[5m])"},
      {"sum_over_time(odd[5m])"},
      {"min_over_time(odd[5m])"},
      {"max_over_time(odd[5m])"},
      {"quantile_over_time(0.5, odd[5m])"},
      {"stddev_over_time(odd[2m])"},
      {"odd"},
      {"sum(odd)"},
      {"avg(odd)"},
      {"max(odd)"},
      {"min(odd)"},
      {"count(odd)"},
      {"odd > 1"},
      {"odd == bool odd"},
      {"clamp(odd, 1, 3)"},
      {"clamp_min(odd, 1)"},
      {"clamp_max(odd, 3)"},
      {"abs(-odd)"},
      {"http_requests_total{code=\"200\"}"},
      {"http_requests_total{code!=\"200\"}"},
      {"http_requests_total{instance=~\"i[01]\"}"},
      {"http_requests_total{instance!~\"i0|i2\", code=~\"2..\"}"},
      {"http_requests_total{instance=~\"i\"}"},
      {"http_requests_total offset 2m"},
      {"http_requests_total offset -1m"},
      {"rate(http_requests_total[5m])"},
      {"rate(http_requests_total[1m])"},
      {"rate(http_requests_total[2m] offset 1m)"},
      {"rate(http_requests_total[10m])"},
      {"increase(http_requests_total[10m])"},
      {"increase(http_requests_total[1h])"},
      {"irate(http_requests_total[5m])"},
      {"irate(http_requests_total[30s])"},
      {"delta(temp[5m])"},
      {"delta(http_requests_total[3m])"},
      {"idelta(temp[3m])"},
      {"idelta(http_requests_total[3m])"},
      {"avg_over_time(temp[5m])"},
      {"avg_over_time(http_requests_total[7m])"},
      {"min_over_time(temp[5m])"},
      {"max_over_time(temp[5m])"},
      {"sum_over_time(temp[10m])"},
      {"sum_over_time(http_requests_total{instance=\"i2\"}[10m])"},
      {"count_over_time(temp[5m])"},
      {"count_over_time(http_requests_total[2m])"},
      {"last_over_time(temp[1m])"},
      {"stddev_over_time(temp[5m])"},
      {"stdvar_over_time(temp[5m])"},
      {"stddev_over_time(http_requests_total[5m])"},
      {"present_over_time(http_requests_total[1m])"},
      {"quantile_over_time(0.9, temp[5m])"},
      {"quantile_over_time(0, temp[5m])"},
      {"quantile_over_time(1, temp[5m])"},
      {"quantile_over_time(0.33, http_requests_total[5m])"},
      {"quantile_over_time(-1, temp[5m])"},
      {"quantile_over_time(2, temp[5m])"},
      {"absent(nonexistent{job=\"x\", a=\"b\"})"},
      {"absent(nonexistent{job=\"x\", job=\"y\", a=~\"b\", c=\"\"})"},
      {"absent(http_requests_total)"},
      {"absent(sum(nonexistent))"},
      {"absent_over_time(nonexistent{job=\"y\"}[5m])"},
      {"absent_over_time(http_requests_total{instance=\"i3\"}[1m])"},
      {"abs(temp - 10)"},
      {"ceil(temp / 3)"},
      {"floor(temp / 3)"},
      {"round(temp)"},
      {"round(temp, 5)"},
      {"round(temp / 7, 0.1)"},
      {"clamp(temp, 8, 12)"},
      {"clamp(temp, 12, 8)"},
      {"clamp_min(temp, 10)"},
      {"clamp_max(temp, 10)"},
      {"scalar(temp{room=\"a\"})"},
      {"scalar(temp)"},
      {"vector(1)"},
      {"vector(time())"},
      {"time()"},
      {"time() - 60"},
      {"histogram_quantile(0.5, rate(req_duration_seconds_bucket[5m]))"},
      {"histogram_quantile(0.9, req_duration_seconds_bucket)"},
      {"histogram_quantile(0.1, req_duration_seconds_bucket)"},
      {"histogram_quantile(0.999, req_duration_seconds_bucket)"},
      {"histogram_quantile(0, req_duration_seconds_bucket)"},
      {"histogram_quantile(1, req_duration_seconds_bucket)"},
      {"histogram_quantile(-0.5, req_duration_seconds_bucket)"},
      {"histogram_quantile(1.5, req_duration_seconds_bucket)"},
      {"histogram_quantile(0.75, sum by (le) (rate(req_duration_seconds_bucket[5m])))", true},
      {"histogram_quantile(0.75, sum by (le, route) (increase(req_duration_seconds_bucket[10m])))"},
      {"sum(http_requests_total)"},
      {"sum by (code) (http_requests_total)"},
      {"sum without (instance) (http_requests_total)"},
      {"sum(http_requests_total) by (instance, job)"},
      {"avg by (code) (http_requests_total)", true},
      {"avg(temp)", true},
      {"min by (code) (http_requests_total)"},
      {"max without (code, job) (http_requests_total)"},
      {"count by (job) (http_requests_total)"},
      {"count(temp > 10)"},
      {"sum by (__name__) (http_requests_total)"},
      {"sum by (code) (rate(http_requests_total[5m]))", true},
      {"max(rate(http_requests_total[5m]))"},
      {"http_requests_total + 1"},
      {"2 * http_requests_total"},
      {"http_requests_total / 0"},
      {"-http_requests_total % 7"},
      {"temp ^ 2"},
      {"2 ^ 3 ^ 2"},
      {"-2 ^ 2"},
      {"1 + 2 * 3 - 4 / 8"},
      {"7 % 3"},
      {"1 > bool 2"},
      {"2 >= bool 2"},
      {"-temp"},
      {"temp > 10"},
      {"temp >= 10"},
      {"10 < temp"},
      {"temp == bool 10"},
      {"temp != 10"},
      {"10 <= bool temp"},
      {"temp < 10.5"},
      {"http_requests_total{code=\"200\"} / ignoring(code) http_requests_total{code=\"500\"}"},
      {"http_requests_total{code=\"200\"} - on(instance, job) http_requests_total{code=\"500\"}"},
      {"http_requests_total{code=\"200\"} > bool on(instance) http_requests_total{code=\"500\"}"},
      {"http_requests_total{code=\"200\"} > on(instance) http_requests_total{code=\"500\"}"},
      {"http_requests_total{code=\"200\"} < ignoring(code) http_requests_total{code=\"500\"}"},
      {"http_requests_total{code=\"200\"} and on(instance) http_requests_total{code=\"500\"} > "
       "100"},
      {"http_requests_total{code=\"200\"} unless on(instance) http_requests_total{code=\"500\"} > "
       "100"},
      {"http_requests_total{code=\"500\"} > 50 or on(instance) http_requests_total{code=\"200\"}"},
      {"http_requests_total or temp"},
      {"temp and temp > 10"},
      {"temp unless temp > 10"},
      {"temp{room=\"a\"} + on() temp{room=\"b\"}"},
      {"scalar(temp{room=\"a\"}) * http_requests_total"},
      {"rate(http_requests_total[5m]) > 0.5"},
      {"sum by (instance) (rate(http_requests_total[5m])) > bool 1", true},
  };
}

TEST(PromqlPromtool, AgreesWithPromtool) {
  if (std::system("promtool --version > /dev/null 2>&1") != 0) {
    GTEST_SKIP() << "promtool is not installed";
  }
  std::vector<InputSeries> input = Generate();
  SeriesStore store;
  for (const InputSeries& s : input) {
    uint32_t ref = store.Ref(s.labels);
    for (int i = 0; i < kSteps; ++i) {
      const Point& p = s.points[i];
      if (p.cell == Cell::kValue) store.Append(ref, i * kStepMs, p.v);
      if (p.cell == Cell::kStale) store.Append(ref, i * kStepMs, StaleNaN());
    }
  }

  std::string yaml = "rule_files: [empty_rules.yml]\nevaluation_interval: 1m\ntests:\n";
  yaml += "  - interval: 15s\n    input_series:\n";
  for (const InputSeries& s : input) {
    std::string values;
    int last = kSteps - 1;
    while (last >= 0 && s.points[last].cell == Cell::kGap) --last;
    for (int i = 0; i <= last; ++i) {
      if (i > 0) values += ' ';
      const Point& p = s.points[i];
      values += p.cell == Cell::kGap ? "_" : p.cell == Cell::kStale ? "stale" : InputValue(p.v);
    }
    std::string series = testing::PromtoolLabels(s.labels);
    yaml += "      - series: " + testing::YamlSingleQuoted(series) + "\n";
    yaml += "        values: " + testing::YamlSingleQuoted(values) + "\n";
  }
  yaml += "    promql_expr_test:\n";

  const int64_t kTimes[] = {0,       60000,   187000,  300000,  450000,  600000, 727000,
                            1200000, 1799000, 1950000, 2400000, 2430000, 2700000};
  Evaluator eval(&store);
  int cases = 0;
  auto add = [&](const std::string& expr, int64_t t) {
    absl::StatusOr<ExprPtr> e = Parse(expr);
    ASSERT_TRUE(e.ok()) << expr << ": " << e.status();
    absl::StatusOr<Vector> v = eval.Eval(**e, t);
    ASSERT_TRUE(v.ok()) << expr << " at " << t << ": " << v.status();
    yaml += "      - expr: " + testing::YamlSingleQuoted(expr) + "\n";
    yaml += "        eval_time: " + std::to_string(t) + "ms\n";
    if (v->empty()) {
      yaml += "        exp_samples: []\n";
    } else {
      yaml += "        exp_samples:\n";
      for (const Element& el : *v) {
        yaml +=
            "          - labels: " + testing::YamlSingleQuoted(testing::PromtoolLabels(el.labels)) +
            "\n";
        yaml += "            value: " + FormatValue(el.v) + "\n";
      }
    }
    ++cases;
  };
  for (const Case& c : Cases()) {
    std::string expr = c.order_sensitive ? "round(" + c.expr + ", 1e-9)" : c.expr;
    bool scalar = TypeOf(**Parse(expr)) == ValueType::kScalar;
    for (int64_t t : kTimes) {
      absl::StatusOr<Vector> v = eval.Eval(**Parse(expr), t);
      ASSERT_TRUE(v.ok()) << expr << ": " << v.status();
      bool has_nan = false;
      for (const Element& el : *v) has_nan |= std::isnan(el.v);
      if (!has_nan) {
        add(expr, t);
        continue;
      }
      // NaN never equals NaN in promtool's comparison: check which samples
      // are NaN, and the others' values, separately.
      std::string wrapped = "(" + expr + ")";
      std::string nan_check = wrapped;
      nan_check.append(" != bool ").append(wrapped);
      add(nan_check, t);
      if (!scalar) {
        std::string value_check = wrapped;
        value_check.append(" == ").append(wrapped);
        add(value_check, t);
      }
    }
  }

  std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("promql_promtool_test_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "empty_rules.yml") << "groups: []\n";
  std::ofstream(dir / "test.yml") << yaml;
  std::string cmd = "cd '" + dir.string() + "' && promtool test rules test.yml 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) output.append(buf, n);
  int status = pclose(pipe);
  EXPECT_EQ(status, 0) << "promtool disagrees (" << cases << " cases, file " << (dir / "test.yml")
                       << "):\n"
                       << output;
  if (status == 0) std::filesystem::remove_all(dir);
  std::printf("%d promtool cases agree\n", cases);
}

}  // namespace
}  // namespace novapulse::promql
