#include "aggregators/spec_metrics.h"

#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "aggregators/novagift_metrics.h"
#include "gen/traffic_gen.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pipeline/record_worker.h"
#include "sinks/exposition.h"

namespace novapulse {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

const std::string kNovaGiftSpec =
    std::string(NOVAPULSE_SOURCE_DIR) + "/configs/metrics/novagift.yaml";

std::shared_ptr<const spec::SpecPlan> NovaGiftPlan() {
  absl::StatusOr<spec::MetricSpecSet> spec = spec::LoadMetricSpec(kNovaGiftSpec);
  EXPECT_TRUE(spec.ok()) << spec.status();
  absl::StatusOr<std::shared_ptr<const spec::SpecPlan>> plan =
      spec::SpecPlan::Compile(*std::move(spec));
  EXPECT_TRUE(plan.ok()) << plan.status();
  return *plan;
}

// The plan of a spec given as text, null (with the errors reported) if it
// does not load.
std::shared_ptr<const spec::SpecPlan> PlanOf(std::string_view text, std::string_view name) {
  absl::StatusOr<spec::MetricSpecSet> spec = spec::ParseMetricSpec(text, name);
  EXPECT_TRUE(spec.ok()) << spec.status();
  if (!spec.ok()) return nullptr;
  absl::StatusOr<std::shared_ptr<const spec::SpecPlan>> plan =
      spec::SpecPlan::Compile(*std::move(spec));
  EXPECT_TRUE(plan.ok()) << plan.status();
  return plan.ok() ? *plan : nullptr;
}

class StringSink : public TrafficSink {
 public:
  absl::Status Write(Topic topic, std::string_view line) override {
    std::string& out = topic == Topic::kAccessLog ? access : outbox;
    out.append(line);
    out += '\n';
    mixed.append(line);
    mixed += '\n';
    return absl::OkStatus();
  }
  std::string access, outbox, mixed;
};

// Lines each rejected for a reason of its own, for both topics.
constexpr std::string_view kBadAccess =
    "{\"ts\": 1795651300, \"method\": \"GET\"\n"
    "[1, 2]\n"
    "{\"ts\": 1795651300, \"method\": \"GET\", \"status\": 200}\n"
    "{\"ts\": 1795651300, \"method\": \"GET\", \"route\": \"/a\", \"status\": 700, "
    "\"duration_ms\": 1}\n"
    "{\"ts\": \"soon\", \"method\": \"GET\", \"route\": \"/a\", \"status\": 200, "
    "\"duration_ms\": 1}\n"
    "{\"ts\": 1795651300, \"method\": 5, \"route\": \"/a\", \"status\": 200, "
    "\"duration_ms\": 1}\n"
    "{\"ts\": 1795651300, \"method\": \"GET\", \"path\": \"/x/8812?y=1\", \"status\": 201, "
    "\"duration_ms\": 3.5, \"error_code\": \"E1\"}\n"
    // JSON null: wrong_type where the field must not be null, absent elsewhere.
    "{\"ts\": null, \"method\": \"GET\", \"route\": \"/a\", \"status\": 200, \"duration_ms\": 1}\n"
    "{\"ts\": 1795651300, \"method\": null, \"route\": \"/a\", \"status\": 200, "
    "\"duration_ms\": 1}\n"
    "{\"ts\": 1795651300, \"method\": \"GET\", \"route\": \"/a\", \"status\": null, "
    "\"duration_ms\": 1}\n"
    "{\"ts\": 1795651300, \"method\": \"GET\", \"route\": null, \"path\": \"/b/1\", "
    "\"status\": 200, \"duration_ms\": null}\n"
    "{\"ts\": 1795651300, \"method\": \"GET\", \"route\": null, \"path\": \"/b/1\", "
    "\"status\": 200, \"duration_ms\": 2, \"error_code\": null}\n";
constexpr std::string_view kBadOutbox =
    "{\"ts\": 1795651300, \"id\": \"m1\", \"type\": \"gift.opened\", \"status\": \"queued\"}\n"
    "{\"ts\": 1795651300, \"id\": \"m1\", \"type\": \"gift.created\", \"status\": \"lost\"}\n"
    "{\"ts\": 1795651300, \"id\": \"m1\", \"type\": \"gift.created\", \"status\": \"queued\"}\n"
    "{\"ts\": 1795651300, \"id\": \"m1\", \"type\": \"gift.created\", \"status\": \"queued\", "
    "\"data\": {\"mode\": \"a\", \"theme\": \"b\"}}\n"
    "{\"ts\": 1795651300, \"id\": \"m1\", \"type\": \"gift.created\", \"status\": \"failed\", "
    "\"attempt\": 0}\n"
    "{\"ts\": 1795651300, \"id\": null, \"type\": \"gift.created\", \"status\": \"failed\"}\n"
    "{\"ts\": 1795651300, \"id\": \"m1\", \"type\": \"gift.created\", \"status\": \"failed\", "
    "\"attempt\": null}\n"
    "{\"ts\": 1795651300, \"id\": \"m1\", \"type\": \"gift.created\", \"status\": \"failed\", "
    "\"attempt\": 2, \"processing_ms\": null, \"error\": null, \"data\": null}\n"
    "{\"ts\": 1795651300, \"id\": \"m1\", \"type\": \"gift.expired\", \"status\": \"queued\", "
    "\"data\": {\"mode\": \"a\", \"theme\": null}}\n"
    // Not readable JSON: the topic is told from the keys in its text.
    "{\"id\": \"m1\", \"type\": \"gift.created\", \"status\": \n"
    "{\"id\": \"m1\", \"attempt\": 3,\n"
    "{\"id\": \"m1\", \"ts\": 1\n";

std::string Padded(std::string s) {
  s.append(simdjson::SIMDJSON_PADDING, ' ');
  return s;
}

// The text /metrics would serve for `lines` of `topic`, through the
// compiled-in NovaGift path and through the NovaGift spec.
std::pair<std::string, std::string> BothWays(Topic topic, const std::string& lines) {
  const std::string padded = Padded(lines);
  NovaGiftMetrics table(1);
  RecordParser parser;
  ProcessLines(topic, padded.data(), lines.size(), padded.size(), parser, table.writer(0));
  SpecMetrics spec(NovaGiftPlan(), 1);
  spec::SpecDecoder decoder(spec.plan());
  const int input = topic == Topic::kAuto ? -1 : static_cast<int>(topic);
  ProcessSpecLines(input, padded.data(), lines.size(), padded.size(), decoder, spec.writer(0));
  return {RenderPrometheusText(table.Snapshot()), RenderPrometheusText(spec.Snapshot())};
}

TEST(SpecMetrics, NovaGiftSpecExportsWhatTheCompiledInPathExports) {
  GenConfig config;
  config.duration_us = 3 * 3600LL * 1'000'000;
  config.access_rate = 20;
  absl::StatusOr<IncidentSpan> spike = ParseIncidentSpec("error_spike@1h+20m", config.start_us);
  ASSERT_TRUE(spike.ok()) << spike.status();
  config.incidents.push_back(*spike);
  StringSink sink;
  ASSERT_TRUE(GenerateTraffic(config, sink).ok());
  ASSERT_GT(sink.access.size(), 1000u);
  {
    const auto [table, spec] = BothWays(Topic::kAccessLog, sink.access + std::string(kBadAccess));
    EXPECT_EQ(spec, table);
  }
  {
    const auto [table, spec] = BothWays(Topic::kOutbox, sink.outbox + std::string(kBadOutbox));
    EXPECT_EQ(spec, table);
  }
  {
    const auto [table, spec] =
        BothWays(Topic::kAuto, sink.mixed + std::string(kBadAccess) + std::string(kBadOutbox) +
                                   "{\"neither\": 1}\nnot json\n");
    EXPECT_EQ(spec, table);
  }
}

// A family whose labels all come from closed lists is looked up by the
// values' codes; past its series limit, a label set not resolved goes to
// __overflow__ as by the general way, and a value outside the list (`other`
// not among `values`, an absent field) takes the general way.
TEST(SpecMetrics, ClosedLabelSetsByCodeKeepTheSeriesLimitAndOther) {
  constexpr std::string_view kSpec = R"(inputs:
  - name: in
    time: ts
    fields:
      ts: {type: time, format: unix_s}
      a: {type: string, values: [x, y, z], other: w}
      b: {type: string, values: [p, q]}
metrics:
  - {name: ab_total, input: in, type: counter, labels: [a, b], series_limit: 4}
  - {name: b_total, input: in, type: counter, labels: [b, {site: {value: s1}}]}
)";
  const std::shared_ptr<const spec::SpecPlan> plan = PlanOf(kSpec, "closed.yaml");
  ASSERT_NE(plan, nullptr);
  SpecMetrics metrics(plan, 1);
  spec::SpecDecoder decoder(*plan);
  const std::string lines =
      "{\"ts\":1,\"a\":\"x\",\"b\":\"p\"}\n"     // (x,p): resolved up front
      "{\"ts\":1,\"a\":\"y\",\"b\":\"q\"}\n"     // (y,q): the 4th set, past the limit
      "{\"ts\":1,\"a\":\"x\",\"b\":\"q\"}\n"     // (x,q)
      "{\"ts\":1,\"a\":\"nope\",\"b\":\"p\"}\n"  // a -> w, not in the list
      "{\"ts\":1,\"b\":\"q\"}\n"                 // a absent
      "{\"ts\":1,\"a\":\"x\",\"b\":\"p\"}\n";
  std::string padded = lines + std::string(simdjson::SIMDJSON_PADDING, ' ');
  ProcessSpecLines(0, padded.data(), lines.size(), padded.size(), decoder, metrics.writer(0));
  const std::string text = RenderPrometheusText(metrics.Snapshot());
  // Up front, in order: (x,p) (x,q) (y,p) (y,q), the four allowed; (z,*)
  // are not made, and count no overflow until a record has them.
  EXPECT_THAT(text, testing::HasSubstr("ab_total{a=\"x\",b=\"p\"} 2\n"));
  EXPECT_THAT(text, testing::HasSubstr("ab_total{a=\"x\",b=\"q\"} 1\n"));
  EXPECT_THAT(text, testing::HasSubstr("ab_total{a=\"y\",b=\"q\"} 1\n"));
  EXPECT_THAT(text, testing::HasSubstr("ab_total{a=\"y\",b=\"p\"} 0\n"));
  EXPECT_THAT(text, testing::Not(testing::HasSubstr("a=\"z\"")));
  // (w,p) and ("",q) are new sets past the limit.
  EXPECT_THAT(text, testing::HasSubstr("ab_total{a=\"__overflow__\",b=\"__overflow__\"} 2\n"));
  EXPECT_THAT(text, testing::HasSubstr("novapulse_series_overflow_total{metric=\"ab_total\"} 2\n"));
  EXPECT_THAT(text, testing::HasSubstr("b_total{b=\"p\",site=\"s1\"} 3\n"));
  EXPECT_THAT(text, testing::HasSubstr("b_total{b=\"q\",site=\"s1\"} 3\n"));
}

// Counter values of the families without labels, by name.
std::map<std::string, uint64_t> Counts(const std::vector<FamilySnapshot>& families) {
  std::map<std::string, uint64_t> counts;
  for (const FamilySnapshot& f : families) {
    if (f.def->type != MetricType::kCounter || !f.def->labels.empty()) continue;
    for (size_t s = 0; s < f.size(); ++s) counts[std::string(f.def->name)] += f.Word(s, 0);
  }
  return counts;
}

// The writer decides a record's conditions at once (a table over value
// codes and presence, the rest one by one): each family must count exactly
// the records for which spec::Holds says its `when` holds. Over 64
// conditions (more than one word of answers), and with coded fields too
// many for a table.
TEST(SpecMetrics, ConditionsAreDecidedAsEachAloneWouldDecideThem) {
  const std::vector<std::string> whens = {
      R"(a == "x")",
      R"(a in ["x", "y"] and b == "p")",
      R"(a exists)",
      R"(n exists and a == "z")",
      R"(not a exists)",
      R"(a == "x" or b == "q")",
      R"(n > 3)",
      R"(s =~ "ab.*")",
      R"(b exists and s exists)",
      R"(a != "y" and b exists)",
      R"(c1 == "v1" and c2 in ["v0", "v29"])",
      R"(c3 exists and c1 != "v0")",
  };
  for (const bool many_codes : {false, true}) {
    SCOPED_TRACE(many_codes ? "three fields of 30 values: no table" : "a table");
    std::string values;
    for (int v = 0; v < (many_codes ? 30 : 2); ++v)
      absl::StrAppend(&values, v > 0 ? ", " : "", "v", v);
    std::string text = absl::StrCat(R"(inputs:
  - name: in
    time: ts
    fields:
      ts: {type: time, format: unix_s}
      a: {type: string, values: [x, y, z], other: w}
      b: {type: string, values: [p, q], other: o}
      n: int
      s: string
      c1: {type: string, values: [)",
                                    values, R"(], other: v0}
      c2: {type: string, values: [)",
                                    values, R"(], other: v1}
      c3: {type: string, values: [)",
                                    values, R"(], other: v2}
metrics:
)");
    for (size_t m = 0; m < 70; ++m) {
      absl::StrAppend(&text, "  - {name: m", m, "_total, type: counter, when: '",
                      whens[m % whens.size()], "'}\n");
    }
    const std::shared_ptr<const spec::SpecPlan> plan = PlanOf(text, "when.yaml");
    ASSERT_NE(plan, nullptr);
    const spec::MetricSpecSet& spec = plan->spec();

    // Records over every mix: each field absent, in its list, or outside it.
    std::string lines;
    std::map<std::string, uint64_t> want;
    spec::SpecDecoder oracle(*plan);
    std::mt19937 rng(7);
    const std::vector<std::string> as = {"", "x", "y", "z", "nope"}, bs = {"", "p", "q", "r"},
                                   ss = {"", "abc", "xyz"}, cs = {"", "v0", "v1", "v29", "zz"};
    for (int r = 0; r < 600; ++r) {
      std::string line = "{\"ts\":1";
      auto put = [&](const char* key, const std::vector<std::string>& choices) {
        const std::string& v = choices[rng() % choices.size()];
        if (!v.empty()) absl::StrAppend(&line, ",\"", key, "\":\"", v, "\"");
      };
      put("a", as);
      put("b", bs);
      put("s", ss);
      put("c1", cs);
      put("c2", cs);
      put("c3", cs);
      if (rng() % 3 != 0) absl::StrAppend(&line, ",\"n\":", rng() % 7);
      line += "}";
      ASSERT_EQ(oracle.Decode(0, line), std::nullopt) << line;
      for (const spec::MetricSpec& m : spec.metrics) {
        if (spec::Holds(m.when, oracle.values(), spec.inputs[0])) ++want[m.name];
      }
      absl::StrAppend(&lines, line, "\n");
    }
    SpecMetrics metrics(plan, 1);
    spec::SpecDecoder decoder(*plan);
    std::string padded = lines + std::string(simdjson::SIMDJSON_PADDING, ' ');
    ProcessSpecLines(0, padded.data(), lines.size(), padded.size(), decoder, metrics.writer(0));
    std::map<std::string, uint64_t> got = Counts(metrics.Snapshot());
    for (const spec::MetricSpec& m : spec.metrics) {
      EXPECT_EQ(got[m.name], want[m.name])
          << m.name << " when " << whens[(&m - spec.metrics.data()) % whens.size()];
    }
    // Each condition holds for some records and not for others, so a
    // table that said always or never would show.
    for (size_t w = 0; w < whens.size(); ++w) {
      EXPECT_GT(want[absl::StrCat("m", w, "_total")], 0u) << whens[w];
      EXPECT_LT(want[absl::StrCat("m", w, "_total")], 600u) << whens[w];
    }
  }
}

// Feeds `lines` (one record each) to writer `shard`.
void Feed(SpecMetrics& metrics, int shard, const std::string& lines) {
  spec::SpecDecoder decoder(metrics.plan());
  std::string padded = lines + std::string(simdjson::SIMDJSON_PADDING, ' ');
  ProcessSpecLines(-1, padded.data(), lines.size(), padded.size(), decoder, metrics.writer(shard));
}

std::string AccessLine(std::string_view ts, std::string_view method, std::string_view route,
                       int status, double duration_ms, std::string_view error = "") {
  std::string line = absl::StrCat(R"({"ts":")", std::string(ts), R"(","method":")",
                                  std::string(method), R"(","route":")", std::string(route),
                                  R"(","status":)", status, R"(,"duration_ms":)", duration_ms);
  if (!error.empty()) absl::StrAppend(&line, R"(,"error_code":")", std::string(error), "\"");
  return line + "}\n";
}

// As NovaGiftMetrics.IdleSeriesExpireAndComeBackFromZero, on the spec.
TEST(SpecMetrics, IdleSeriesExpireAndComeBackFromZero) {
  SpecMetrics metrics(NovaGiftPlan(), 2, kDefaultSeriesLimit, nullptr,
                      MetricExpiry{.default_ms = 5 * 60'000, .by_family = {}});
  constexpr int64_t kT0Ms = 1795651200000;  // 2026-11-26T00:00:00Z
  Feed(metrics, 0, AccessLine("2026-11-26T00:00:00Z", "GET", "/old", 200, 10, "E1"));
  Feed(metrics, 1, AccessLine("2026-11-26T00:00:00Z", "GET", "/old", 200, 10));
  Feed(metrics, 0, AccessLine("2026-11-26T00:04:00Z", "GET", "/kept", 200, 10));
  Feed(metrics, 1,
       R"({"ts":"2026-11-26T00:00:00Z","id":"w1","type":"wallet.transaction","status":"queued",)"
       R"("data":{"kind":"topup","status":"ok","amount_usd":5}})"
       "\n");
  EXPECT_EQ(metrics.ExpireIdle(kT0Ms + 5 * 60'000 - 1), 0u);
  // /old: its request, duration and error series; the wallet transaction's
  // counter and amount histogram.
  EXPECT_EQ(metrics.ExpireIdle(kT0Ms + 5 * 60'000), 5u);
  std::string text = RenderPrometheusText(metrics.Snapshot());
  EXPECT_THAT(text, Not(HasSubstr("/old")));
  EXPECT_THAT(text, Not(HasSubstr("wallet_transactions_total{")));
  EXPECT_THAT(text, Not(HasSubstr("wallet_transaction_amount_usd_count{")));
  EXPECT_THAT(text,
              HasSubstr("http_requests_total{method=\"GET\",route=\"/kept\",status=\"200\"} 1\n"));
  // The outbox gauges by type never expire.
  EXPECT_THAT(text, HasSubstr("outbox_queued_total{type=\"wallet.transaction\"} 1\n"));

  // Both writers had /old memoised; a new route takes the freed ids, and
  // /old comes back as a new series.
  Feed(metrics, 0, AccessLine("2026-11-26T00:06:00Z", "POST", "/new", 201, 30));
  Feed(metrics, 1, AccessLine("2026-11-26T00:06:00Z", "GET", "/old", 200, 2000));
  Feed(metrics, 0, AccessLine("2026-11-26T00:06:00Z", "GET", "/old", 200, 2000));
  text = RenderPrometheusText(metrics.Snapshot());
  EXPECT_THAT(text,
              HasSubstr("http_requests_total{method=\"POST\",route=\"/new\",status=\"201\"} 1\n"));
  EXPECT_THAT(text,
              HasSubstr("http_request_duration_seconds_count{method=\"POST\",route=\"/new\"} 1\n"));
  EXPECT_THAT(
      text, HasSubstr("http_request_duration_seconds_sum{method=\"POST\",route=\"/new\"} 0.03\n"));
  EXPECT_THAT(text,
              HasSubstr("http_requests_total{method=\"GET\",route=\"/old\",status=\"200\"} 2\n"));
  EXPECT_THAT(text,
              HasSubstr("http_request_duration_seconds_count{method=\"GET\",route=\"/old\"} 2\n"));
  EXPECT_THAT(text,
              HasSubstr("http_request_duration_seconds_sum{method=\"GET\",route=\"/old\"} 4\n"));
  EXPECT_THAT(text, Not(HasSubstr("E1")));
}

TEST(SpecMetrics, ExpiryPerFamilyOverridesTheDefault) {
  SpecMetrics metrics(
      NovaGiftPlan(), 1, kDefaultSeriesLimit, nullptr,
      MetricExpiry{.default_ms = 0, .by_family = {{"http_request_duration_seconds", 60'000}}});
  Feed(metrics, 0, AccessLine("2026-11-26T00:00:00Z", "GET", "/a", 200, 10));
  EXPECT_EQ(metrics.ExpireIdle(1795651200000 + 3'600'000), 1u);
  Feed(metrics, 0, AccessLine("2026-11-26T00:01:00Z", "GET", "/a", 200, 10));
  // The request series kept its count; the duration series starts again.
  const std::string text = RenderPrometheusText(metrics.Snapshot());
  EXPECT_THAT(text,
              HasSubstr("http_requests_total{method=\"GET\",route=\"/a\",status=\"200\"} 2\n"));
  EXPECT_THAT(text,
              HasSubstr("http_request_duration_seconds_count{method=\"GET\",route=\"/a\"} 1\n"));
}

// The NovaGift spec's families expire exactly as the compiled-in ones do.
TEST(SpecMetrics, TheNovaGiftSpecExpiresWhatTheCompiledInPathExpires) {
  std::shared_ptr<const spec::SpecPlan> plan = NovaGiftPlan();
  std::vector<std::string> expiring;
  for (size_t f = 0; f < plan->spec().metrics.size(); ++f) {
    if (SpecMetrics::CanExpire(plan->spec(), f)) expiring.push_back(plan->spec().metrics[f].name);
  }
  EXPECT_THAT(expiring, testing::UnorderedElementsAreArray(NovaGiftMetrics::ExpiringFamilies()));
  EXPECT_FALSE(SpecMetrics::CanExpire(plan->spec(), plan->spec().metrics.size()));  // self
}

// A table over 70 presence tests would have 2^70 rows: its size is checked
// before each product (so it cannot wrap to something small), and the
// conditions are then evaluated one by one.
TEST(SpecMetrics, TooManyConditionFieldsForATableAreEvaluatedOneByOne) {
  std::string text =
      "inputs:\n  - name: in\n    time: ts\n    fields:\n      ts: {type: time, format: unix_s}\n";
  for (int f = 0; f < 70; ++f) absl::StrAppend(&text, "      f", f, ": int\n");
  absl::StrAppend(&text, "metrics:\n");
  for (int f = 0; f < 70; ++f) {
    absl::StrAppend(&text, "  - {name: m", f, "_total, type: counter, when: 'f", f, " exists'}\n");
  }
  const std::shared_ptr<const spec::SpecPlan> plan = PlanOf(text, "wide.yaml");
  ASSERT_NE(plan, nullptr);
  SpecMetrics metrics(plan, 1);
  std::string every = "{\"ts\":1";
  for (int f = 0; f < 70; ++f) absl::StrAppend(&every, ",\"f", f, "\":", f);
  Feed(metrics, 0, every + "}\n{\"ts\":1,\"f3\":0}\n");
  std::map<std::string, uint64_t> counts = Counts(metrics.Snapshot());
  for (int f = 0; f < 70; ++f) {
    EXPECT_EQ(counts[absl::StrCat("m", f, "_total")], f == 3 ? 2u : 1u) << f;
  }
}

}  // namespace
}  // namespace novapulse
