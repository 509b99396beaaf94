// The rule engine against promtool 2.42 as the oracle: seeded series go into
// a SeriesStore and into a promtool rule-test file; our RuleEngine evaluates
// the rule file at every group interval from time 0 (as promtool does), and
// the alerts it has firing at every evaluation become the test's
// `alert_rule_test` (labels and expanded annotations), the recorded series,
// ALERTS and ALERTS_FOR_STATE its `promql_expr_test`. `promtool test rules`
// must accept all of them.
//
// Each scenario also checks that the alert life cycles it is meant to cover
// happened (pending -> firing, firing -> resolved, pending cancelled,
// keep_firing_for holding a cleared alert, resolved then firing again), so a
// change of the generated data cannot quietly make the comparison trivial.
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
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "rules/promql.h"
#include "rules/rule_engine.h"
#include "tests/rules/promtool_text.h"

namespace novapulse {
namespace {

using promql::Label;
using promql::Labels;

enum class Cell { kGap, kValue, kStale };
struct Point {
  Cell cell = Cell::kGap;
  double v = 0;
};
struct InputSeries {
  Labels labels;
  std::vector<Point> points;  // one per step
};

struct Scenario {
  int64_t interval_ms = 15'000;
  int steps = 0;  // evaluations at 0, interval, ..., (steps - 1) * interval
  std::string rules;
  std::vector<std::string> group_order;
  std::vector<InputSeries> input;
  std::vector<std::string> queries;  // checked at every step
};

// What the scenario's alerts went through, from the engine's transitions.
struct Coverage {
  int pending_to_firing = 0;
  int firing_resolved = 0;
  int pending_cancelled = 0;
  int refired = 0;      // fired again with labels that had resolved before
  int kept_firing = 0;  // evaluations where a firing alert's expression no longer held
};

std::string Number(double v) {
  char buf[64];
  snprintf(buf, sizeof(buf), "%.17g", v);
  return buf;
}

std::string FormatValue(double v) {
  if (std::isnan(v)) return ".nan";
  if (std::isinf(v)) return v > 0 ? ".inf" : "-.inf";
  return Number(v);
}

Labels L(std::initializer_list<Label> ls) {
  Labels out(ls);
  std::sort(out.begin(), out.end());
  return out;
}

class Rng {
 public:
  explicit Rng(uint64_t seed) : rng_(seed) {}
  int Uniform(int lo, int hi) {
    return lo + static_cast<int>(rng_() % static_cast<uint64_t>(hi - lo + 1));
  }
  bool Chance(int percent) { return Uniform(0, 99) < percent; }
  template <typename T>
  const T& Pick(const std::vector<T>& v) {
    return v[static_cast<size_t>(Uniform(0, static_cast<int>(v.size()) - 1))];
  }

 private:
  std::mt19937_64 rng_;
};

// Levels held for random runs of steps: long enough runs satisfy `for`,
// short ones cancel it, and runs come back to the same side of a threshold
// after leaving it.
std::vector<double> Regimes(Rng& rng, int steps, const std::vector<double>& levels, int max_run) {
  std::vector<double> out;
  while (static_cast<int>(out.size()) < steps) {
    const double level = rng.Pick(levels);
    const int run = rng.Uniform(1, max_run);
    for (int i = 0; i < run && static_cast<int>(out.size()) < steps; ++i) out.push_back(level);
  }
  return out;
}

// The promtool test file for the scenario, built from what our engine does;
// `coverage` gets the life cycles seen.
std::string BuildTestFile(const Scenario& s, Coverage* coverage, std::string* error) {
  absl::StatusOr<RuleSet> set = ParseRuleFile(s.rules, "rules.yml", s.interval_ms);
  if (!set.ok()) {
    *error = std::string(set.status().message());
    return "";
  }
  promql::SeriesStore store;
  for (const InputSeries& in : s.input) {
    const uint32_t ref = store.Ref(in.labels);
    for (int i = 0; i < s.steps && i < static_cast<int>(in.points.size()); ++i) {
      const Point& p = in.points[i];
      if (p.cell == Cell::kValue) store.Append(ref, i * s.interval_ms, p.v);
      if (p.cell == Cell::kStale) store.Append(ref, i * s.interval_ms, promql::StaleNaN());
    }
  }
  RuleEngine engine(*std::move(set), &store);
  std::map<std::pair<const RuleSpec*, Labels>, int> fired_count;
  engine.set_on_transition([&](const AlertTransition& t) {
    if (t.to == AlertState::kFiring) {
      ++coverage->pending_to_firing;
      if (++fired_count[{t.rule, t.alert->labels}] == 2) ++coverage->refired;
    }
    if (t.from == AlertState::kFiring) ++coverage->firing_resolved;
    if (t.from == AlertState::kPending && t.to == AlertState::kInactive) {
      ++coverage->pending_cancelled;
    }
  });
  promql::Evaluator eval(&store);

  std::string yaml = "rule_files: [rules.yml]\n";
  yaml += "evaluation_interval: " + std::to_string(s.interval_ms) + "ms\n";
  if (!s.group_order.empty()) {
    yaml += "group_eval_order:\n";
    for (const std::string& g : s.group_order) yaml += "  - " + g + "\n";
  }
  yaml += "tests:\n  - interval: " + std::to_string(s.interval_ms) + "ms\n    input_series:\n";
  for (const InputSeries& in : s.input) {
    std::string values;
    int last = static_cast<int>(in.points.size()) - 1;
    while (last >= 0 && in.points[last].cell == Cell::kGap) --last;
    for (int i = 0; i <= last; ++i) {
      if (i > 0) values += ' ';
      const Point& p = in.points[i];
      values += p.cell == Cell::kGap ? "_" : p.cell == Cell::kStale ? "stale" : Number(p.v);
    }
    yaml +=
        "      - series: " + testing::YamlSingleQuoted(testing::PromtoolLabels(in.labels)) + "\n";
    yaml += "        values: " + testing::YamlSingleQuoted(values) + "\n";
  }

  std::string alert_tests = "    alert_rule_test:\n";
  for (int i = 0; i < s.steps; ++i) {
    const int64_t t = i * s.interval_ms;
    engine.EvaluateDue(t);
    const RulesSnapshot snap = engine.Snapshot();
    for (const RuleStatus& st : snap.rules) {
      if (!st.rule->alert) continue;
      if (st.health != "ok") {
        *error = st.rule->name + " at " + std::to_string(t) + "ms: " + st.last_error;
        return "";
      }
      alert_tests += "      - eval_time: " + std::to_string(t) + "ms\n";
      alert_tests += "        alertname: " + st.rule->name + "\n";
      std::vector<const Alert*> firing;
      for (const Alert& a : st.alerts) {
        if (a.state == AlertState::kFiring && a.resolved_at_ms == 0) firing.push_back(&a);
      }
      if (firing.empty()) {
        alert_tests += "        exp_alerts: []\n";
        continue;
      }
      alert_tests += "        exp_alerts:\n";
      std::set<Labels> holds;
      if (st.rule->keep_firing_for_ms > 0) {
        absl::StatusOr<promql::Vector> v = eval.Eval(*st.rule->expr, t);
        if (v.ok()) {
          for (const promql::Element& e : *v) {
            Labels ls = e.labels;
            std::erase_if(ls, [](const Label& l) { return l.name == "__name__"; });
            holds.insert(ls);
          }
        }
      }
      for (const Alert* a : firing) {
        alert_tests += "          - exp_labels:\n";
        Labels series_labels;
        for (const Label& l : a->labels) {
          alert_tests +=
              "              " + l.name + ": " + testing::YamlSingleQuoted(l.value) + "\n";
          // Every label the rule does not set came from the series.
          bool from_rule = l.name == "alertname";
          for (const auto& [name, tmpl] : st.rule->labels) from_rule |= name == l.name;
          if (!from_rule) series_labels.push_back(l);
        }
        if (a->annotations.empty()) {
          alert_tests += "            exp_annotations: {}\n";
        } else {
          alert_tests += "            exp_annotations:\n";
          for (const auto& [name, text] : a->annotations) {
            alert_tests += "              " + name + ": " + testing::YamlSingleQuoted(text) + "\n";
          }
        }
        if (st.rule->keep_firing_for_ms > 0 && !holds.contains(series_labels)) {
          ++coverage->kept_firing;
        }
      }
    }
  }
  if (engine.failures() != 0) {
    *error = std::to_string(engine.failures()) + " rule evaluation failures";
    return "";
  }

  std::string expr_tests = "    promql_expr_test:\n";
  auto add = [&](const std::string& expr, int64_t t) -> bool {
    absl::StatusOr<promql::ExprPtr> e = promql::Parse(expr);
    if (!e.ok()) {
      *error = expr + ": " + std::string(e.status().message());
      return false;
    }
    absl::StatusOr<promql::Vector> v = eval.Eval(**e, t);
    if (!v.ok()) {
      *error = expr + ": " + std::string(v.status().message());
      return false;
    }
    expr_tests += "      - expr: " + testing::YamlSingleQuoted(expr) + "\n";
    expr_tests += "        eval_time: " + std::to_string(t) + "ms\n";
    if (v->empty()) {
      expr_tests += "        exp_samples: []\n";
      return true;
    }
    expr_tests += "        exp_samples:\n";
    for (const promql::Element& el : *v) {
      expr_tests +=
          "          - labels: " + testing::YamlSingleQuoted(testing::PromtoolLabels(el.labels)) +
          "\n";
      expr_tests += "            value: " + FormatValue(el.v) + "\n";
    }
    return true;
  };
  for (const std::string& q : s.queries) {
    for (int i = 0; i < s.steps; ++i) {
      const int64_t t = i * s.interval_ms;
      absl::StatusOr<promql::Vector> v = eval.Eval(**promql::Parse(q), t);
      bool has_nan = false;
      if (v.ok()) {
        for (const promql::Element& el : *v) has_nan |= std::isnan(el.v);
      }
      if (!has_nan) {
        if (!add(q, t)) return "";
        continue;
      }
      // NaN never equals NaN in promtool's comparison: which samples are NaN,
      // and the others' values, are checked apart.
      const std::string w = "(" + q + ")";
      if (!add(w + " != bool " + w, t) || !add(w + " == " + w, t)) return "";
    }
  }
  return yaml + alert_tests + expr_tests;
}

// Runs promtool on the scenario; returns "" when it agrees, else its output.
std::string RunPromtool(const std::string& name, const Scenario& s, const std::string& test_yaml) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("rules_promtool_" + name + "_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "rules.yml") << s.rules;
  std::ofstream(dir / "test.yml") << test_yaml;
  const std::string cmd = "cd '" + dir.string() + "' && promtool test rules test.yml 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return "popen failed";
  std::string output;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), pipe)) > 0) output.append(buf, n);
  const int status = pclose(pipe);
  if (status == 0) {
    if (std::getenv("RULES_PROMTOOL_KEEP") != nullptr) return "";  // to read the files
    std::filesystem::remove_all(dir);
    return "";
  }
  return "promtool disagrees (files kept in " + dir.string() + "):\n" + output;
}

bool HavePromtool() { return std::system("promtool --version > /dev/null 2>&1") == 0; }

void ExpectAgreement(const std::string& name, const Scenario& s, Coverage* coverage) {
  std::string error;
  const std::string yaml = BuildTestFile(s, coverage, &error);
  ASSERT_TRUE(error.empty()) << error;
  const std::string disagreement = RunPromtool(name, s, yaml);
  EXPECT_TRUE(disagreement.empty()) << disagreement;
  std::printf(
      "%s: %d fired, %d resolved, %d cancelled while pending, %d fired again, %d evaluations "
      "kept firing\n",
      name.c_str(), coverage->pending_to_firing, coverage->firing_resolved,
      coverage->pending_cancelled, coverage->refired, coverage->kept_firing);
}

// 15 s groups over 40 minutes: gauges around thresholds, counters with
// resets and gaps, a classic histogram with an empty bucket; recording rules
// feeding alerts; `for` of 0, 30s and 2m; keep_firing_for; templates.
Scenario FifteenSecondScenario() {
  Scenario s;
  s.interval_ms = 15'000;
  s.steps = 161;
  Rng rng(20240611);

  // Room a has a team label, the others not.
  const std::vector<Labels> rooms = {
      L({{"__name__", "temp"}, {"room", "a"}, {"instance", "i0"}, {"team", "ops"}}),
      L({{"__name__", "temp"}, {"room", "b"}, {"instance", "i0"}}),
      L({{"__name__", "temp"}, {"room", "c"}, {"instance", "i1"}})};
  const std::vector<double> levels = {8, 9.5, 9.75, 10, 10.25, 10.5, 11, 11.25, 12};
  for (const Labels& room : rooms) {
    InputSeries in{room, std::vector<Point>(static_cast<size_t>(s.steps))};
    const std::vector<double> level = Regimes(rng, s.steps, levels, 14);
    for (int i = 0; i < s.steps; ++i) {
      if (rng.Chance(4)) continue;
      const double jitter = rng.Chance(70) ? 0 : rng.Uniform(-1, 1) * 0.25;
      in.points[i] = {Cell::kValue, level[i] + jitter};
    }
    if (room[2].value == "c") {
      // Goes away (stale) for a while, then comes back.
      in.points[90] = {Cell::kStale, 0};
      for (int i = 91; i < 110; ++i) in.points[i] = {};
    }
    s.input.push_back(std::move(in));
  }

  for (const char* instance : {"i0", "i1"}) {
    const std::vector<double> errors = Regimes(rng, s.steps, {0, 1, 2, 8, 12}, 16);
    for (const char* code : {"200", "500"}) {
      InputSeries in{L({{"__name__", "http_requests_total"},
                        {"instance", instance},
                        {"code", code},
                        {"job", "api"}}),
                     std::vector<Point>(static_cast<size_t>(s.steps))};
      double v = rng.Uniform(0, 100);
      for (int i = 0; i < s.steps; ++i) {
        if (rng.Chance(3)) {
          v = rng.Uniform(0, 4);  // counter reset
        } else if (code[0] == '5') {
          v += errors[i] + rng.Uniform(0, 2);
        } else {
          v += rng.Uniform(10, 20);
        }
        if (rng.Chance(5)) continue;
        in.points[i] = {Cell::kValue, v};
      }
      s.input.push_back(std::move(in));
    }
  }

  // le="0.25" never gets an observation of its own (same count as 0.1);
  // route r2 has spans without observations (a rate of 0: NaN quantiles).
  const char* bounds[] = {"0.1", "0.25", "0.5", "1", "+Inf"};
  for (const char* route : {"r1", "r2"}) {
    const std::vector<double> slow = Regimes(rng, s.steps, {0, 0, 1, 3}, 16);
    std::vector<InputSeries> buckets(5);
    for (int b = 0; b < 5; ++b) {
      buckets[b].labels =
          L({{"__name__", "req_duration_seconds_bucket"}, {"route", route}, {"le", bounds[b]}});
      buckets[b].points.resize(static_cast<size_t>(s.steps));
    }
    std::vector<double> counts(5, 0);
    for (int i = 0; i < s.steps; ++i) {
      const bool idle = route[1] == '2' && (i / 20) % 3 == 1;
      const int n = idle ? 0 : rng.Uniform(2, 10);
      for (int k = 0; k < n; ++k) {
        // Slow spans put most observations above 0.5 s.
        int b = rng.Uniform(0, 4);
        if (slow[i] > 0 && rng.Uniform(0, 3) < slow[i]) b = rng.Uniform(3, 4);
        if (b == 1) b = 0;
        for (int j = b; j < 5; ++j) counts[j] += 1;
      }
      for (int b = 0; b < 5; ++b) buckets[b].points[i] = {Cell::kValue, counts[b]};
    }
    for (InputSeries& b : buckets) s.input.push_back(std::move(b));
  }

  s.group_order = {"recording", "alerts"};
  s.rules = R"(groups:
  - name: recording
    interval: 15s
    rules:
      - record: instance:http_errors:rate1m
        expr: sum by (instance) (rate(http_requests_total{code="500"}[1m]))
      - record: instance:http_requests:rate1m
        expr: sum by (instance, job) (rate(http_requests_total[1m]))
        labels:
          source: recorded
      - record: instance:http_error_ratio:rate1m
        expr: instance:http_errors:rate1m / instance:http_requests:rate1m
      - record: route:req_duration_seconds:p90_2m
        expr: histogram_quantile(0.9, sum by (route, le) (rate(req_duration_seconds_bucket[2m])))
        labels:
          quantile: "0.9"
  - name: alerts
    interval: 15s
    rules:
      - alert: TempAbove
        expr: temp > 10
        labels:
          severity: page
          where: "room {{ $labels.room }}"
          owner: "team {{ $labels.team }}"
        annotations:
          summary: "{{ $labels.room }} at {{ $value }}"
          human: "{{ $value | humanize }}"
          empty: "{{ $labels.nothing }}"
      - alert: TempHigh
        expr: temp >= 10.5
        for: 30s
        labels:
          severity: warning
        annotations:
          description: "{{ $labels.instance }}/{{ $labels.room }}: {{ $value }} for 30s"
      - alert: TempLow
        expr: temp < 9.75
        for: 2m
        keep_firing_for: 1m
        annotations:
          summary: "low: {{ $value | humanize }}"
      - alert: TempSpike
        expr: temp > 11
        keep_firing_for: 45s
        annotations:
          held: "{{ $value | humanizeDuration }}"
      - alert: ErrorRatioHigh
        expr: instance:http_error_ratio:rate1m > 0.3
        for: 30s
        labels:
          severity: critical
        annotations:
          ratio: "{{ $value | humanizePercentage }}"
          raw: "{{ $value }} = {{ $value | humanize }}"
      - alert: ErrorsAndHot
        expr: instance:http_errors:rate1m > 0.5 and on (instance) max by (instance) (temp) > 10
        annotations:
          summary: "{{ $labels.instance }}: {{ $value | humanize }} errors/s"
      - alert: ErrorsOrCold
        expr: instance:http_errors:rate1m > 0.6 or on (instance) min by (instance) (temp) < 9
        for: 30s
      - alert: QuietUnlessHot
        expr: instance:http_requests:rate1m < 1.8 unless on (instance) max by (instance) (temp) > 10.5
        for: 30s
        annotations:
          rate: '{{ printf "%.3f" $value }}/s'
      - alert: SlowRoute
        expr: route:req_duration_seconds:p90_2m > 0.8
        for: 30s
        annotations:
          p90: "{{ $value | humanizeDuration }}"
      - alert: CounterLarge
        expr: http_requests_total{code="200"} * 9 > 3000
        annotations:
          human: "{{ $value | humanize }}"
          duration: "{{ $value | humanizeDuration }}"
          percent: "{{ $value | humanizePercentage }}"
      - alert: BusyWithoutCode
        expr: sum without (code) (rate(http_requests_total[2m])) > 1.5
        for: 2m
        annotations:
          rate: "{{ $value | humanize }}/s"
)";
  s.queries = {"instance:http_errors:rate1m",
               "instance:http_requests:rate1m",
               "instance:http_error_ratio:rate1m",
               "route:req_duration_seconds:p90_2m",
               "ALERTS",
               "ALERTS_FOR_STATE"};
  return s;
}

// 30 s groups over 40 minutes: queue depths at and around 100, counters that
// stall; an alert reading a series a later group records (it sees the
// previous evaluation's value), label templates in rule labels.
Scenario ThirtySecondScenario() {
  Scenario s;
  s.interval_ms = 30'000;
  s.steps = 81;
  Rng rng(77031);

  struct Shard {
    const char* queue;
    const char* shard;
  };
  for (const Shard& sh :
       std::vector<Shard>{{"q1", "s1"}, {"q1", "s2"}, {"q2", "s1"}, {"q3", "s1"}, {"q3", "s2"}}) {
    InputSeries in{L({{"__name__", "queue_depth"}, {"queue", sh.queue}, {"shard", sh.shard}}),
                   std::vector<Point>(static_cast<size_t>(s.steps))};
    const std::vector<double> level = Regimes(rng, s.steps, {20, 50, 51, 99, 100, 101, 140}, 10);
    for (int i = 0; i < s.steps; ++i) {
      if (rng.Chance(3)) continue;
      in.points[i] = {Cell::kValue, level[i] + (rng.Chance(80) ? 0 : rng.Uniform(-1, 1))};
    }
    if (std::string(sh.queue) == "q3") {
      // q3 is removed after 30 minutes: its alerts resolve with no sample.
      for (int i = 60; i < s.steps; ++i) in.points[i] = {};
    }
    s.input.push_back(std::move(in));
  }
  for (const char* queue : {"q1", "q2", "q3"}) {
    InputSeries in{L({{"__name__", "jobs_total"}, {"queue", queue}, {"shard", "s1"}}),
                   std::vector<Point>(static_cast<size_t>(s.steps))};
    const std::vector<double> work = Regimes(rng, s.steps, {0, 0, 3, 10}, 12);
    double v = 0;
    for (int i = 0; i < s.steps; ++i) {
      if (rng.Chance(2)) v = 0;  // reset
      v += work[i];
      in.points[i] = {Cell::kValue, v};
    }
    s.input.push_back(std::move(in));
  }

  s.group_order = {"queues", "late"};
  s.rules = R"(groups:
  - name: queues
    interval: 30s
    rules:
      - record: queue:depth:max
        expr: max by (queue) (queue_depth)
      - record: queue:jobs:rate2m
        expr: sum without (shard) (rate(jobs_total[2m]))
      - alert: QueueDeep
        expr: queue:depth:max >= 100
        for: 2m
        keep_firing_for: 1m
        labels:
          severity: "{{ $labels.queue }}-sev"
        annotations:
          summary: "{{ $labels.queue }} depth {{ $value }}"
          since: "{{ $value | humanizeDuration }}"
      - alert: QueueStalled
        expr: queue:jobs:rate2m == 0 and on (queue) queue:depth:max > 50
        for: 1m
        annotations:
          summary: "{{ $labels.queue }} stalled"
      - alert: QueueTotalHigh
        expr: late:depth:sum > 180
        for: 30s
        keep_firing_for: 30s
        annotations:
          v: "{{ $value | humanize }}"
      - alert: ShardNearlyFull
        expr: queue_depth > 99 unless on (queue) queue:jobs:rate2m > 0.2
        annotations:
          summary: "{{ $labels.queue }}/{{ $labels.shard }} at {{ $value }}"
  - name: late
    interval: 30s
    rules:
      - record: late:depth:sum
        expr: sum by (queue) (queue_depth)
)";
  s.queries = {"queue:depth:max", "queue:jobs:rate2m", "late:depth:sum", "ALERTS",
               "ALERTS_FOR_STATE"};
  return s;
}

// Values every formatter must print as Go does: NaN, infinities, negatives,
// zero, tiny and huge values, durations of days; and a label templated from
// $value, which makes a new alert (pending again) whenever the value changes.
Scenario ValueFormatScenario() {
  Scenario s;
  s.interval_ms = 15'000;
  s.steps = 41;
  Rng rng(5150);
  const std::vector<double> values = {0,
                                      -0.5,
                                      1e-9,
                                      0.000123,
                                      0.5,
                                      1,
                                      59.999,
                                      61,
                                      3725,
                                      -3725,
                                      86400 * 3 + 5.5,
                                      123456789,
                                      -2.5e12,
                                      1e21,
                                      1e30,
                                      std::nan(""),
                                      std::numeric_limits<double>::infinity(),
                                      -std::numeric_limits<double>::infinity()};
  for (const char* kind : {"a", "b"}) {
    InputSeries in{L({{"__name__", "odd"}, {"kind", kind}}),
                   std::vector<Point>(static_cast<size_t>(s.steps))};
    for (int i = 0; i < s.steps; ++i) {
      in.points[i] = {Cell::kValue, i % 4 == 3 ? in.points[i - 1].v : rng.Pick(values)};
    }
    s.input.push_back(std::move(in));
  }
  s.group_order = {"g"};
  s.rules = R"(groups:
  - name: g
    interval: 15s
    rules:
      - alert: AnyValue
        expr: odd != 7
        annotations:
          raw: "{{ $value }}"
          human: "{{ $value | humanize }}"
          percent: "{{ $value | humanizePercentage }}"
          duration: "{{ $value | humanizeDuration }}"
          fixed: '{{ printf "%.2f" $value }}'
      - alert: ValueLabel
        expr: odd != 7
        for: 30s
        labels:
          v: "{{ $value }}"
)";
  s.queries = {"ALERTS", "ALERTS_FOR_STATE"};
  return s;
}

// Rule labels whose value is empty: Prometheus sets them with
// labels.Builder.Set, which deletes a label set to "", so a recording rule's
// `job: ""` removes job from its output and an alert label template that
// expands to "" leaves the label out of the alert.
Scenario EmptyRuleLabelScenario() {
  Scenario s = FifteenSecondScenario();
  s.steps = 9;
  s.group_order = {"g"};
  s.rules = R"(groups:
  - name: g
    interval: 15s
    rules:
      - record: instance:http_requests:rate1m
        expr: sum by (instance, job) (rate(http_requests_total[1m]))
        labels:
          job: ""
      - alert: TempAbove
        expr: temp > 10
        labels:
          team: "{{ $labels.team }}"
)";
  // Not ALERTS: for an alert without a label its rule sets, Prometheus 2.42
  // writes the rule's unexpanded template as that label of ALERTS (sample()
  // starts from the rule's labels); whether to copy that is a separate question.
  s.queries = {"instance:http_requests:rate1m"};
  return s;
}

TEST(RulesPromtool, FifteenSecondGroupsAgreeWithPromtool) {
  if (!HavePromtool()) GTEST_SKIP() << "promtool is not installed";
  Coverage c;
  ExpectAgreement("fifteen", FifteenSecondScenario(), &c);
  EXPECT_GT(c.pending_to_firing, 0);
  EXPECT_GT(c.firing_resolved, 0);
  EXPECT_GT(c.pending_cancelled, 0);
  EXPECT_GT(c.refired, 0);
  EXPECT_GT(c.kept_firing, 0);
}

TEST(RulesPromtool, ThirtySecondGroupsAgreeWithPromtool) {
  if (!HavePromtool()) GTEST_SKIP() << "promtool is not installed";
  Coverage c;
  ExpectAgreement("thirty", ThirtySecondScenario(), &c);
  EXPECT_GT(c.pending_to_firing, 0);
  EXPECT_GT(c.firing_resolved, 0);
  EXPECT_GT(c.pending_cancelled, 0);
  EXPECT_GT(c.refired, 0);
  EXPECT_GT(c.kept_firing, 0);
}

TEST(RulesPromtool, ValuesAreFormattedLikeGo) {
  if (!HavePromtool()) GTEST_SKIP() << "promtool is not installed";
  Coverage c;
  ExpectAgreement("values", ValueFormatScenario(), &c);
  EXPECT_GT(c.pending_to_firing, 0);
}

// KNOWN BUG, fails until the rule engine drops empty-valued rule labels
// (aggregators/rule_engine.cc SetLabel keeps name=""): our output has
// job="" on the recorded series and team="" on alerts of rooms without a
// team label; promtool has neither label.
TEST(RulesPromtool, EmptyRuleLabelsAreDroppedLikePrometheus) {
  if (!HavePromtool()) GTEST_SKIP() << "promtool is not installed";
  Coverage c;
  ExpectAgreement("empty_labels", EmptyRuleLabelScenario(), &c);
}

}  // namespace
}  // namespace novapulse
