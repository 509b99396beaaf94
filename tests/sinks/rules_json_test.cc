#include "sinks/rules_json.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rules/promql.h"
#include "rules/rule_engine.h"
#include "sinks/json_text.h"

namespace novapulse {
namespace {

constexpr int64_t kT0 = 1795651200LL * 1000;  // 2026-11-26T00:00:00Z, ms

std::string JsonString(std::string_view s) {
  std::string out;
  AppendJsonString(&out, s);
  return out;
}

std::string JsonNumber(double v) {
  std::string out;
  AppendJsonNumber(&out, v);
  return out;
}

// The string `json` (one JSON string literal) decodes to, or "<invalid>".
std::string Decode(const std::string& json) {
  simdjson::dom::parser parser;
  std::string_view s;
  if (parser.parse(simdjson::padded_string(json)).get(s) != simdjson::SUCCESS) return "<invalid>";
  return std::string(s);
}

TEST(JsonText, EscapesQuotesBackslashesAndControlCharacters) {
  EXPECT_EQ(JsonString("a\"b\\c"), R"j("a\"b\\c")j");
  EXPECT_EQ(JsonString("l1\nl2\r\t"), R"j("l1\nl2\r\t")j");
  EXPECT_EQ(JsonString(std::string("\x00\x01\x1f\x7f", 4)), "\"\\u0000\\u0001\\u001f\x7f\"");
  // As Go's encoding/json: HTML characters and JavaScript line separators.
  EXPECT_EQ(JsonString("<a>&"), R"j("\u003ca\u003e\u0026")j");
  EXPECT_EQ(JsonString("x\u2028y\u2029"), R"j("x\u2028y\u2029")j");
}

TEST(JsonText, PassesUtf8ThroughAndReplacesInvalidBytes) {
  EXPECT_EQ(JsonString("caf\u00e9 \u20ac \U0001F600"), "\"caf\u00e9 \u20ac \U0001F600\"");
  EXPECT_EQ(JsonString("a\xff"
                       "b"),
            R"j("a\ufffdb")j");
  EXPECT_EQ(JsonString("\xc3"), R"j("\ufffd")j");                      // truncated sequence
  EXPECT_EQ(JsonString("\xc0\xaf"), R"j("\ufffd\ufffd")j");            // overlong '/'
  EXPECT_EQ(JsonString("\xed\xa0\x80"), R"j("\ufffd\ufffd\ufffd")j");  // a surrogate
}

TEST(JsonText, EveryByteStringRoundTripsThroughAJsonParser) {
  std::string all;
  for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
  const std::string valid = "tab\t quote\" backslash\\ nl\n \u00e9\u4e2d\U0001F600 <&>";
  EXPECT_EQ(Decode(JsonString(valid)), valid);
  const std::string decoded = Decode(JsonString(all));
  ASSERT_NE(decoded, "<invalid>");
  EXPECT_EQ(decoded.substr(0, 128), all.substr(0, 128));
}

TEST(JsonText, NumbersAsGoWritesFloat64) {
  EXPECT_EQ(JsonNumber(15), "15");
  EXPECT_EQ(JsonNumber(0), "0");
  EXPECT_EQ(JsonNumber(0.5), "0.5");
  EXPECT_EQ(JsonNumber(0.000123), "0.000123");
  EXPECT_EQ(JsonNumber(1.5e-7), "1.5e-7");
  EXPECT_EQ(JsonNumber(1e21), "1e+21");
  EXPECT_EQ(JsonNumber(-2.25), "-2.25");
  EXPECT_EQ(JsonNumber(std::nan("")), "0");
  EXPECT_EQ(GoExponentFloat(1), "1e+00");
  EXPECT_EQ(GoExponentFloat(0.42), "4.2e-01");
  EXPECT_EQ(GoExponentFloat(123456.5), "1.234565e+05");
  EXPECT_EQ(GoExponentFloat(std::nan("")), "NaN");
  EXPECT_EQ(GoExponentFloat(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(GoExponentFloat(-std::numeric_limits<double>::infinity()), "-Inf");
}

TEST(JsonText, TimesAsGoRfc3339Nano) {
  std::string out;
  AppendJsonTime(&out, kT0 + 15'000);
  AppendJsonTime(&out, kT0 + 15'250);
  AppendJsonTimeOrZero(&out, 0);
  EXPECT_EQ(out, R"j("2026-11-26T00:00:15Z""2026-11-26T00:00:15.25Z""0001-01-01T00:00:00Z")j");
}

TEST(JsonText, ObjectsAreSortedByName) {
  std::string out;
  AppendJsonObject(&out, std::vector<std::pair<std::string, std::string>>{{"b", "2"}, {"a", "1"}});
  AppendJsonObject(&out, promql::Labels{});
  EXPECT_EQ(out, R"j({"a":"1","b":"2"}{})j");
}

// A real engine over a few samples of x{job="a"} and x{job="b"}.
class RulesJsonTest : public ::testing::Test {
 protected:
  void Load(const std::string& rules) {
    absl::StatusOr<RuleSet> set = ParseRuleFile(rules, "alerts/novagift.yml");
    ASSERT_TRUE(set.ok()) << set.status();
    engine_ = std::make_unique<RuleEngine>(*std::move(set), &store_);
  }
  void Step(double a, double b) {
    t_ += 15'000;
    store_.Append(store_.Ref({{"__name__", "x"}, {"job", "a"}}), t_, a);
    store_.Append(store_.Ref({{"__name__", "x"}, {"job", "b"}}), t_, b);
    engine_->EvaluateDue(t_);
  }
  // The engine's snapshot with evaluation durations (wall time) fixed.
  RulesSnapshot Snapshot() {
    RulesSnapshot snap = engine_->Snapshot();
    for (RuleStatus& r : snap.rules) r.eval_seconds = 0.00025;
    return snap;
  }

  promql::SeriesStore store_;
  std::unique_ptr<RuleEngine> engine_;
  int64_t t_ = kT0;
};

constexpr char kRules[] = R"(groups:
  - name: novagift
    interval: 15s
    rules:
      - record: job:x:sum
        expr: sum by (job) (x)
      - alert: XHigh
        expr: x > 5
        for: 30s
        keep_firing_for: 1m
        labels: {severity: page, team: "gifts & <wallet>"}
        annotations:
          summary: "x is {{ $value }} on {{ $labels.job }}"
  - name: slow
    interval: 1m
    limit: 10
    rules:
      - record: x:max
        expr: |
          max(x)
        labels: {source: "rule"}
)";

TEST_F(RulesJsonTest, AlertsListsPendingAndFiringAlertsAsPrometheusDoes) {
  Load(kRules);
  Step(6, 1);  // a: pending
  Step(7, 1);
  Step(8, 9);  // a: firing (30 s), b: pending
  EXPECT_EQ(
      AlertsJson(Snapshot()),
      R"j({"status":"success","data":{"alerts":[)j"
      R"j({"labels":{"alertname":"XHigh","job":"a","severity":"page","team":"gifts \u0026 \u003cwallet\u003e"},)j"
      R"j("annotations":{"summary":"x is 8 on a"},"state":"firing","activeAt":"2026-11-26T00:00:15Z","value":"8e+00"},)j"
      R"j({"labels":{"alertname":"XHigh","job":"b","severity":"page","team":"gifts \u0026 \u003cwallet\u003e"},)j"
      R"j("annotations":{"summary":"x is 9 on b"},"state":"pending","activeAt":"2026-11-26T00:00:45Z","value":"9e+00"}]}})j");
}

TEST_F(RulesJsonTest, RulesListsGroupsAndRulesAsPrometheusDoes) {
  Load(kRules);
  Step(6, 1);
  EXPECT_EQ(
      RulesJson(Snapshot()),
      R"j({"status":"success","data":{"groups":[)j"
      R"j({"name":"novagift","file":"alerts/novagift.yml","rules":[)j"
      R"j({"name":"job:x:sum","query":"sum by (job) (x)","health":"ok","evaluationTime":0.00025,)j"
      R"j("lastEvaluation":"2026-11-26T00:00:15Z","type":"recording"},)j"
      R"j({"state":"pending","name":"XHigh","query":"x \u003e 5","duration":30,"keepFiringFor":60,)j"
      R"j("labels":{"severity":"page","team":"gifts \u0026 \u003cwallet\u003e"},)j"
      R"j("annotations":{"summary":"x is {{ $value }} on {{ $labels.job }}"},)j"
      R"j("alerts":[{"labels":{"alertname":"XHigh","job":"a","severity":"page","team":"gifts \u0026 \u003cwallet\u003e"},)j"
      R"j("annotations":{"summary":"x is 6 on a"},"state":"pending","activeAt":"2026-11-26T00:00:15Z","value":"6e+00"}],)j"
      R"j("health":"ok","evaluationTime":0.00025,"lastEvaluation":"2026-11-26T00:00:15Z","type":"alerting"}],)j"
      R"j("interval":15,"limit":0,"evaluationTime":0.0005,"lastEvaluation":"2026-11-26T00:00:15Z"},)j"
      R"j({"name":"slow","file":"alerts/novagift.yml","rules":[)j"
      R"j({"name":"x:max","query":"max(x)","labels":{"source":"rule"},"health":"unknown",)j"
      R"j("evaluationTime":0.00025,"lastEvaluation":"0001-01-01T00:00:00Z","type":"recording"}],)j"
      R"j("interval":60,"limit":10,"evaluationTime":0.00025,"lastEvaluation":"0001-01-01T00:00:00Z"}]}})j");
}

TEST_F(RulesJsonTest, ResolvedAlertsLeaveTheListsAndTheRuleTurnsInactive) {
  Load(kRules);
  Step(6, 1);
  Step(6, 1);
  Step(6, 1);                              // firing
  for (int i = 0; i < 5; ++i) Step(1, 1);  // resolved after keep_firing_for
  const RulesSnapshot snap = Snapshot();
  ASSERT_EQ(snap.rules[1].alerts.size(), 1u);  // kept by the engine for re-sending
  EXPECT_EQ(AlertsJson(snap), R"j({"status":"success","data":{"alerts":[]}})j");
  const std::string rules = RulesJson(snap);
  EXPECT_NE(rules.find(R"j({"state":"inactive","name":"XHigh")j"), std::string::npos) << rules;
  EXPECT_NE(rules.find(R"j("alerts":[],"health":"ok")j"), std::string::npos) << rules;
}

TEST_F(RulesJsonTest, KeepFiringSinceAndLastErrorAppearWhenSet) {
  Load(R"(groups:
  - name: g
    rules:
      - alert: A
        expr: x > 5
        keep_firing_for: 1m
      - record: r
        expr: x + on() x
)");
  Step(6, 1);
  Step(1, 1);  // condition gone, still firing
  const RulesSnapshot snap = Snapshot();
  const std::string alerts = AlertsJson(snap);
  EXPECT_NE(alerts.find(R"j("state":"firing","activeAt":"2026-11-26T00:00:15Z",)j"
                        R"j("keepFiringSince":"2026-11-26T00:00:30Z","value":"6e+00")j"),
            std::string::npos)
      << alerts;
  const std::string rules = RulesJson(snap);
  EXPECT_NE(rules.find(R"j("health":"err","lastError":")j"), std::string::npos) << rules;
}

TEST_F(RulesJsonTest, OutputParsesAsJson) {
  Load(kRules);
  Step(6, 9);
  const RulesSnapshot snap = Snapshot();
  simdjson::dom::parser parser;
  for (const std::string& text : {AlertsJson(snap), RulesJson(snap)}) {
    simdjson::dom::element doc;
    ASSERT_EQ(parser.parse(simdjson::padded_string(text)).get(doc), simdjson::SUCCESS) << text;
    std::string_view status;
    ASSERT_EQ(doc["status"].get(status), simdjson::SUCCESS);
    EXPECT_EQ(status, "success");
  }
  simdjson::dom::element doc;
  const std::string rules = RulesJson(snap);
  ASSERT_EQ(parser.parse(simdjson::padded_string(rules)).get(doc), simdjson::SUCCESS);
  std::string_view team;
  ASSERT_EQ(doc.at_pointer("/data/groups/0/rules/1/labels/team").get(team), simdjson::SUCCESS);
  EXPECT_EQ(team, "gifts & <wallet>");
  simdjson::dom::array alerts;
  ASSERT_EQ(doc.at_pointer("/data/groups/0/rules/1/alerts").get(alerts), simdjson::SUCCESS);
  EXPECT_EQ(alerts.size(), 2u);
}

TEST(RulesJson, WindowMemoryBudgetAndWhichFamiliesFold) {
  RulesSnapshot snap;
  snap.windows.limit_bytes = 134217728;
  snap.windows.reserved_bytes = 1234567;
  EXPECT_EQ(RulesJson(snap),
            R"j({"status":"success","data":{"groups":[],"windowMemory":{"limitBytes":134217728,)j"
            R"j("reservedBytes":1234567,"folding":false,"foldedSeries":{}}}})j");
  snap.windows.reserved_bytes = 134217000;
  snap.windows.folded = {{"http_request_duration_seconds", 12}, {"http_requests_total", 3}};
  EXPECT_EQ(
      RulesJson(snap),
      R"j({"status":"success","data":{"groups":[],"windowMemory":{"limitBytes":134217728,)j"
      R"j("reservedBytes":134217000,"folding":true,"foldedSeries":{)j"
      R"j("http_request_duration_seconds":12,"http_requests_total":3}}},"warnings":["the window )j"
      R"j(memory budget (rules.window_memory_bytes: 134217728) is spoken for: new label sets of )j"
      R"j(http_request_duration_seconds, http_requests_total fold into their __overflow__ series )j"
      R"j(in the windows the rules read"]})j");
}

TEST(RulesJson, EmptySnapshot) {
  EXPECT_EQ(AlertsJson({}), R"j({"status":"success","data":{"alerts":[]}})j");
  EXPECT_EQ(RulesJson({}), R"j({"status":"success","data":{"groups":[]}})j");
}

}  // namespace
}  // namespace novapulse
