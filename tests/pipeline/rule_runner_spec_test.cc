// RuleRunner over the families of a metric spec rather than the compiled-in
// NovaGift table: the Caddy example's sample log, replayed in batches the
// way `replay` drives the runner, with rules that read its families.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "aggregators/spec_metrics.h"
#include "base/file.h"
#include "pipeline/record_worker.h"
#include "pipeline/rule_runner.h"
#include "spec/plan.h"

namespace novapulse {
namespace {

const std::string kExamples = std::string(NOVAPULSE_SOURCE_DIR) + "/configs/metrics/examples/";

constexpr std::string_view kRules = R"(groups:
  - name: caddy
    interval: 15s
    rules:
      - record: caddy:requests:total
        expr: sum(caddy_http_requests_total)
      - record: caddy:requests:rate1m
        expr: sum(rate(caddy_http_requests_total[1m]))
      - record: novagift:requests:total
        expr: sum(http_requests_total)
      - alert: CaddyServesRequests
        expr: sum(rate(caddy_http_requests_total[1m])) > 0
)";

TEST(RuleRunnerOverASpec, RulesReadTheSpecsFamilies) {
  absl::StatusOr<spec::MetricSpecSet> spec = spec::LoadMetricSpec(kExamples + "caddy.yaml");
  ASSERT_TRUE(spec.ok()) << spec.status();
  absl::StatusOr<std::shared_ptr<const spec::SpecPlan>> plan =
      spec::SpecPlan::Compile(*std::move(spec));
  ASSERT_TRUE(plan.ok()) << plan.status();
  absl::StatusOr<RuleSet> rules = ParseRuleFile(kRules, "caddy-rules.yml");
  ASSERT_TRUE(rules.ok()) << rules.status();
  absl::StatusOr<std::unique_ptr<RuleRunner>> runner =
      RuleRunner::Build(*std::move(rules), {}, SpecMetrics::Defs((*plan)->spec()));
  ASSERT_TRUE(runner.ok()) << runner.status();
  // The NovaGift name means nothing to this spec.
  EXPECT_EQ((*runner)->unknown_metrics(), std::vector<std::string>{"http_requests_total"});

  SpecMetrics metrics(*plan, 2, kDefaultSeriesLimit, &(*runner)->window_spec());
  (*runner)->Attach(&metrics.store());
  absl::StatusOr<std::string> log = ReadRegularFile(kExamples + "caddy-access.log");
  ASSERT_TRUE(log.ok()) << log.status();
  // The sample starts at 1796032801.16 (Unix seconds).
  (*runner)->Start(1'796'032'801'160);

  // Batches of 40 lines, taking turns on the two shards.
  int64_t newest_ms = 0;
  size_t pos = 0;
  for (int batch = 0; pos < log->size(); ++batch) {
    size_t end = pos;
    for (int n = 0; n < 40 && end < log->size(); ++n) end = log->find('\n', end) + 1;
    std::string block = log->substr(pos, end - pos);
    const size_t size = block.size();
    block.append(simdjson::SIMDJSON_PADDING, ' ');
    spec::SpecDecoder decoder(**plan);
    SpecMetrics::Writer& w = metrics.writer(batch % 2);
    w.SetWatermark(newest_ms - (*runner)->lateness_ms());
    ProcessSpecLines(0, block.data(), size, block.size(), decoder, w);
    newest_ms = std::max(newest_ms, w.EndBatch() / 1000);
    (*runner)->AdvanceTo(newest_ms - (*runner)->lateness_ms());
    pos = end;
  }
  (*runner)->Finish(newest_ms);

  double exported = 0;
  for (const FamilySnapshot& f : metrics.Snapshot()) {
    if (f.def->name != "caddy_http_requests_total") continue;
    for (size_t s = 0; s < f.size(); ++s) exported += static_cast<double>(f.Word(s, 0));
  }
  EXPECT_EQ(exported, 320);  // every line of the sample is a request

  std::map<std::string, double> outputs;
  bool firing = false;
  const RulesSnapshot snap = (*runner)->engine().Snapshot();
  for (const auto& [labels, v] : snap.series) {
    std::map<std::string, std::string> named;
    for (const promql::Label& l : labels) named[l.name] = l.value;
    outputs[named["__name__"]] = v;
    firing =
        firing || (named["__name__"] == "ALERTS" && named["alertname"] == "CaddyServesRequests" &&
                   named["alertstate"] == "firing");
  }
  // The last evaluation is at the end of the slot holding the newest
  // record: every request is in it.
  EXPECT_EQ(outputs["caddy:requests:total"], exported);
  EXPECT_GT(outputs["caddy:requests:rate1m"], 0);
  EXPECT_FALSE(outputs.contains("novagift:requests:total"));
  EXPECT_TRUE(firing);
}

}  // namespace
}  // namespace novapulse
