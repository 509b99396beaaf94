#include "spec/metric_spec.h"

#include <string>
#include <vector>

#include "aggregators/novagift_metrics.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pipeline/check_metrics.h"
#include "pipeline/rule_files.h"
#include "rules/rule_file.h"

namespace novapulse::spec {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::string kNovaGiftSpec =
    std::string(NOVAPULSE_SOURCE_DIR) + "/configs/metrics/novagift.yaml";

MetricSpecSet Parsed(std::string_view text) {
  absl::StatusOr<MetricSpecSet> s = ParseMetricSpec(text, "spec.yaml");
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *std::move(s) : MetricSpecSet{};
}

std::string ErrorOf(std::string_view text) {
  absl::StatusOr<MetricSpecSet> s = ParseMetricSpec(text, "spec.yaml");
  EXPECT_FALSE(s.ok()) << text;
  return s.ok() ? "" : std::string(s.status().message());
}

// A valid one-input spec; tests append metrics or change a line.
constexpr std::string_view kInput = R"(inputs:
  - name: web
    time: ts
    fields:
      ts: time
      method: {path: request.method, type: string, required: true}
      status: int
      size: {type: int, min: 0}
      duration: {type: number, scale: 0.001}
)";

TEST(MetricSpec, ShippedNovaGiftSpecDeclaresTheFamiliesOfTheTable) {
  absl::StatusOr<MetricSpecSet> spec = LoadMetricSpec(kNovaGiftSpec);
  ASSERT_TRUE(spec.ok()) << spec.status();
  ASSERT_EQ(spec->inputs.size(), 2u);
  EXPECT_EQ(spec->inputs[0].topic, TopicName(Topic::kAccessLog));
  EXPECT_EQ(spec->inputs[1].topic, TopicName(Topic::kOutbox));
  // Every NovaGift family of the compiled-in table, in its order, with its
  // help, type, labels and buckets; the self metrics stay in code.
  std::vector<const MetricDef*> table;
  for (const MetricDef& def : NovaGiftMetricDefs()) {
    if (!def.name.starts_with("novapulse_")) table.push_back(&def);
  }
  ASSERT_EQ(spec->metrics.size(), table.size());
  for (size_t i = 0; i < table.size(); ++i) {
    const MetricDef& def = *table[i];
    const MetricSpec& m = spec->metrics[i];
    SCOPED_TRACE(def.name);
    EXPECT_EQ(m.name, def.name);
    EXPECT_EQ(m.help, def.help);
    switch (def.type) {
      case MetricType::kCounter:
        EXPECT_EQ(m.kind, MetricKind::kCounter);
        break;
      case MetricType::kGauge:
        EXPECT_EQ(m.kind, MetricKind::kGauge);
        EXPECT_EQ(m.floor, 0.0);  // the table's gauges are floored at 0
        break;
      case MetricType::kHistogram:
        EXPECT_EQ(m.kind, MetricKind::kHistogram);
        EXPECT_EQ(m.sum_unit, def.sum_unit);
        break;
      default:
        EXPECT_EQ(m.kind, MetricKind::kConcurrency);
        EXPECT_EQ(m.window, absl::Seconds(kActiveWindowSeconds));
        break;
    }
    std::vector<std::string_view> labels;
    for (const LabelSpec& l : m.labels) labels.push_back(l.name);
    EXPECT_EQ(labels, def.labels);
    EXPECT_EQ(m.buckets, def.buckets);
  }
}

TEST(MetricSpec, ShippedRulesReadOnlyWhatTheSpecDefines) {
  absl::StatusOr<MetricSpecSet> spec = LoadMetricSpec(kNovaGiftSpec);
  ASSERT_TRUE(spec.ok()) << spec.status();
  absl::StatusOr<RuleSet> rules =
      LoadRuleFiles({std::string(NOVAPULSE_SOURCE_DIR) + "/configs/alerts/novagift.yml"});
  ASSERT_TRUE(rules.ok()) << rules.status();
  EXPECT_THAT(RuleMetricsNotInSpec(*rules, *spec), ElementsAre());
}

TEST(MetricSpec, RuleReadingAnUndefinedMetricIsNamedWithItsLine) {
  const MetricSpecSet spec = Parsed(std::string(kInput) + R"(metrics:
  - {name: web_requests_total, type: counter}
)");
  absl::StatusOr<RuleSet> rules = ParseRuleFile(R"(groups:
  - name: g
    rules:
      - record: job:ok:rate5m
        expr: rate(web_requests_total[5m])
      - alert: Slow
        expr: job:ok:rate5m > 1 and rate(web_reqests_total[5m]) > 0
)",
                                                "r.yml");
  ASSERT_TRUE(rules.ok()) << rules.status();
  EXPECT_THAT(RuleMetricsNotInSpec(*rules, spec),
              ElementsAre("r.yml:6: alert Slow reads web_reqests_total, which spec.yaml does not "
                          "define (nor does a recording rule)"));
}

TEST(MetricSpec, FieldsTakeNestedPathsShorthandAndTransforms) {
  const MetricSpecSet spec = Parsed(
      std::string(kInput) +
      R"(      host: {type: string, lowercase: true, map: {a: b}, values: [x, y], other: other}
      uri: {type: string, replace: {regex: '\?.*', with: ''}, normalize: path}
      user: {type: string, extract: '^(\w+)@', fallback: method}
metrics:
  - name: web_requests_total
    type: counter
    help: Requests.
    labels: [method, {code: status}, {env: {value: prod}}]
    when: status >= 500 and host == "x"
  - name: web_size_bytes
    type: histogram
    value: size
    buckets: [100, 1000]
)");
  ASSERT_EQ(spec.inputs.size(), 1u);
  const InputSpec& in = spec.inputs[0];
  EXPECT_EQ(in.topic, "web");
  EXPECT_EQ(in.fields[in.time_field].name, "ts");
  EXPECT_TRUE(in.fields[in.time_field].required);
  EXPECT_THAT(in.fields[1].path, ElementsAre("request", "method"));
  EXPECT_EQ(in.fields[2].type, FieldType::kInt);
  EXPECT_EQ(in.fields[4].scale, 0.001);
  const FieldSpec& host = in.fields[5];
  ASSERT_EQ(host.transforms.size(), 2u);
  EXPECT_EQ(host.transforms[0].kind, Transform::Kind::kLowercase);
  EXPECT_EQ(host.transforms[1].kind, Transform::Kind::kMap);
  EXPECT_THAT(host.values, ElementsAre("x", "y", "other"));
  EXPECT_EQ(in.fields[7].fallback, 1);
  const MetricSpec& m = spec.metrics[0];
  EXPECT_EQ(m.input, 0);
  ASSERT_EQ(m.labels.size(), 3u);
  EXPECT_EQ(m.labels[1].name, "code");
  EXPECT_EQ(m.labels[1].field, 2);
  EXPECT_EQ(m.labels[2].field, -1);
  EXPECT_EQ(m.labels[2].value, "prod");
  EXPECT_EQ(m.when.op, Condition::Op::kAnd);
  EXPECT_EQ(spec.metrics[1].value.field, 3);
  EXPECT_THAT(spec.ExportedNames(),
              ElementsAre("web_requests_total", "web_size_bytes", "web_size_bytes_bucket",
                          "web_size_bytes_sum", "web_size_bytes_count"));
}

TEST(MetricSpec, ErrorsNameFileLineAndColumn) {
  const std::string metrics = R"(metrics:
  - name: web_requests_total
    type: counter
    labels: [methd]
    colour: red
  - name: 9bad
    type: histogram
    value: method
  - name: web_requests_total
    type: gauge
    ops: [{add: 1, when: 'status == "x"'}]
  - name: web_x
    type: counter
    labels: [{__bad: method}]
    when: status >== 5
)";
  const std::string error = ErrorOf(std::string(kInput) + metrics);
  EXPECT_THAT(error, HasSubstr("spec.yaml:13:14: metrics[0].labels[0]: unknown field 'methd' of "
                               "input 'web'"));
  EXPECT_THAT(error, HasSubstr("spec.yaml:14:5: metrics[0]: unknown key 'colour' (allowed:"));
  EXPECT_THAT(error, HasSubstr("spec.yaml:15:11: metrics[1].name: '9bad' is not a valid metric "
                               "name"));
  EXPECT_THAT(error, HasSubstr("spec.yaml:17:12: metrics[1].value: 'method' is a string field; a "
                               "value needs a number"));
  EXPECT_THAT(error, HasSubstr("spec.yaml:15:5: metrics[1]: missing required key 'buckets'"));
  EXPECT_THAT(error, HasSubstr("metrics[2].ops[0].when: bad condition: 'status' is an int field, "
                               "compared with the string x"));
  EXPECT_THAT(error, HasSubstr("metric name 'web_requests_total' is exported twice"));
  EXPECT_THAT(error, HasSubstr("spec.yaml:23:15: metrics[3].labels[0]: '__bad' is not a valid "
                               "label name"));
  // The column of the condition's own mistake: "status >== 5" starts at
  // column 11, its stray '=' is at 20.
  EXPECT_THAT(error, HasSubstr("spec.yaml:24:20: metrics[3].when: bad condition: unexpected "
                               "character '='"));
}

TEST(MetricSpec, InputMistakes) {
  EXPECT_THAT(ErrorOf(R"(inputs:
  - name: web
    time: when
    format: logfmt
    fields:
      ts: {type: time, format: unix_hours}
      a: {type: number, lowercase: true}
      b: {type: string, extract: 'no group'}
      c: {type: string, replace: {regex: '(', with: x}}
      d: {type: string, fallback: a}
metrics: []
)"),
              ::testing::AllOf(
                  HasSubstr("spec.yaml:3:11: inputs[0].time: unknown field 'when'"),
                  HasSubstr("spec.yaml:4:13: inputs[0].format: format 'logfmt' is not supported "
                            "yet"),
                  HasSubstr("spec.yaml:6:32: inputs[0].fields.ts.format: expected one of auto, "
                            "rfc3339, unix_s, unix_ms, unix_us, unix_ns, got 'unix_hours'"),
                  HasSubstr("inputs[0].fields.a.lowercase: only string fields take this key"),
                  HasSubstr("inputs[0].fields.b.extract: extract needs a capturing group"),
                  HasSubstr("inputs[0].fields.c.replace.regex: bad regular expression"),
                  HasSubstr("inputs[0].fields.d.fallback: 'a' is a number field, 'd' a string "
                            "field")));
}

TEST(MetricSpec, FallbackMayNameAFieldDeclaredAfterIt) {
  const MetricSpecSet spec = Parsed(R"(inputs:
  - name: a
    time: start
    fields:
      start: {path: StartUTC, type: time, fallback: logged}
      logged: {path: time, type: time, format: rfc3339}
metrics: []
)");
  ASSERT_EQ(spec.inputs.size(), 1u);
  EXPECT_EQ(spec.inputs[0].fields[0].fallback, 1);
  EXPECT_THAT(ErrorOf(R"(inputs:
  - name: a
    time: start
    fields:
      start: {type: time, fallback: logged}
      logged: string
metrics: []
)"),
              HasSubstr("spec.yaml:5:37: inputs[0].fields.start.fallback: 'logged' is a string "
                        "field, 'start' a time field"));
}

TEST(MetricSpec, SeveralInputsNeedTheMetricsToNameTheirs) {
  const std::string two = std::string(kInput) + R"(  - name: jobs
    time: at
    fields: {at: time}
metrics:
  - {name: a_total, type: counter}
  - {name: b_total, type: counter, input: job}
)";
  const std::string error = ErrorOf(two);
  EXPECT_THAT(error, HasSubstr("metrics[0]: missing required key 'input' (the spec has several "
                               "inputs)"));
  EXPECT_THAT(error, HasSubstr("metrics[1].input: unknown input 'job' (inputs: web, jobs)"));
}

TEST(MetricSpec, NotYamlOrEmptyIsAnErrorWithAPosition) {
  EXPECT_THAT(ErrorOf(""), HasSubstr("spec.yaml:1:1"));
  EXPECT_THAT(ErrorOf("inputs: [\n"), HasSubstr("spec.yaml:"));
  EXPECT_THAT(ErrorOf("- 1\n"), HasSubstr("spec.yaml:1:1"));
}

}  // namespace
}  // namespace novapulse::spec
