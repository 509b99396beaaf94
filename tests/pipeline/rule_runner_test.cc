// RuleRunner under a window memory budget: label sets past it fold into
// __overflow__, rules over the windows still see the family's totals, and
// the self metrics and /api/v1/rules say which families fold.
#include "pipeline/rule_runner.h"

#include <gtest/gtest.h>
#include <simdjson.h>

#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sinks/exposition.h"
#include "sinks/rules_json.h"

namespace novapulse {
namespace {

constexpr std::string_view kRules = R"(groups:
  - name: t
    interval: 15s
    rules:
      - record: requests:total
        expr: sum(http_requests_total)
      - record: requests:slow
        expr: sum(http_request_duration_seconds_bucket{le="+Inf"}) - sum(http_request_duration_seconds_bucket{le="0.25"})
      - record: requests:rate1m
        expr: sum(rate(http_requests_total[1m]))
)";

constexpr int64_t kStartUs = 1'795'651'200'000'000;  // 2026-11-27T00:00:00Z
constexpr size_t kBudget = size_t{1} << 20;

// The objects replay drives, fed in batches of 100 requests (one every
// 100 ms of event time, each on a route of its own) that take turns on the
// shards, starting at `first_shard`.
struct Driver {
  Driver(int shards, size_t budget, int first_shard = 0) : first_shard(first_shard) {
    absl::StatusOr<RuleSet> rules = ParseRuleFile(kRules, "test.yml");
    EXPECT_TRUE(rules.ok()) << rules.status();
    RuleRunnerOptions options;
    options.window_memory_bytes = budget;
    runner = *RuleRunner::Build(*std::move(rules), options);
    metrics =
        std::make_unique<NovaGiftMetrics>(shards, kDefaultSeriesLimit, &runner->window_spec());
    runner->Attach(&metrics->store());
    runner->Start(kStartUs / 1000);
  }

  void Feed(int requests) {
    constexpr int kBatch = 100;
    for (int b = 0; b < requests; b += kBatch) {
      NovaGiftMetrics::Writer& w =
          metrics->writer((first_shard + b / kBatch) % metrics->num_shards());
      w.SetWatermark(newest_ms - runner->lateness_ms());
      for (int i = b; i < b + kBatch && i < requests; ++i) {
        char route[32];
        std::snprintf(route, sizeof(route), "/r%06d", i);
        AccessLogEvent e;
        e.ts_us = kStartUs + int64_t{i} * 100'000;
        e.method = "GET";
        e.route = route;
        e.status = 200;
        e.duration_ms = i % 3 == 0 ? 400 : 20;
        w.Record(e);
      }
      newest_ms = std::max(newest_ms, w.EndBatch() / 1000);
      runner->AdvanceTo(newest_ms - runner->lateness_ms());
    }
    runner->Finish(newest_ms);
  }

  std::map<std::string, double> Outputs() const {
    std::map<std::string, double> out;
    for (const auto& [labels, v] : runner->engine().Snapshot().series) {
      for (const promql::Label& l : labels) {
        if (l.name == "__name__") out[l.value] = v;
      }
    }
    return out;
  }

  std::string SelfMetrics() const {
    MetricFamilies families;
    runner->CollectMetrics(&families);
    return RenderPrometheusText(families.families());
  }

  int first_shard;
  std::unique_ptr<RuleRunner> runner;
  std::unique_ptr<NovaGiftMetrics> metrics;
  int64_t newest_ms = kStartUs / 1000;
};

TEST(RuleRunner, RulesOverFoldedWindowsSeeTheFamilysTotals) {
  constexpr int kRequests = 12'000;  // 20 minutes
  Driver bounded(2, kBudget);
  Driver unbounded(2, 0);
  bounded.Feed(kRequests);
  unbounded.Feed(kRequests);

  const std::vector<WindowHistory::Folded> folded = bounded.runner->history()->folded();
  ASSERT_EQ(folded.size(), 2u);
  EXPECT_EQ(folded[0].metric, "http_request_duration_seconds");
  EXPECT_EQ(folded[1].metric, "http_requests_total");
  EXPECT_GT(folded[1].series, kRequests / 2u);
  EXPECT_TRUE(unbounded.runner->history()->folded().empty());
  EXPECT_LE(bounded.runner->history()->MemoryBytes(), kBudget);
  EXPECT_GT(unbounded.runner->history()->MemoryBytes(), 20 * kBudget);

  const std::map<std::string, double> got = bounded.Outputs();
  const std::map<std::string, double> want = unbounded.Outputs();
  // Every request of the last evaluated slot end (the newest 30 s wait for
  // the watermark) is counted, folded or not.
  EXPECT_EQ(got.at("requests:total"), want.at("requests:total"));
  EXPECT_GT(got.at("requests:total"), kRequests - 600);
  EXPECT_EQ(got.at("requests:slow"), want.at("requests:slow"));
  EXPECT_NEAR(got.at("requests:slow"), got.at("requests:total") / 3, 1);

  const std::string metrics = bounded.SelfMetrics();
  EXPECT_NE(metrics.find("novapulse_window_memory_limit_bytes 1048576\n"), std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("novapulse_window_series_folded_total{metric=\"http_requests_total\"} " +
                         std::to_string(folded[1].series) + "\n"),
            std::string::npos)
      << metrics;
  EXPECT_NE(metrics.find("novapulse_window_series_folded_total{metric=\"http_request_duration_"
                         "seconds\"} " +
                         std::to_string(folded[0].series) + "\n"),
            std::string::npos)
      << metrics;
  EXPECT_NE(unbounded.SelfMetrics().find(
                "novapulse_window_series_folded_total{metric=\"http_requests_total\"} 0\n"),
            std::string::npos);
}

TEST(RuleRunner, RulesJsonSaysWhichFamiliesFold) {
  Driver bounded(2, kBudget);
  bounded.Feed(3'000);
  const std::string json = RulesJson(bounded.runner->engine().Snapshot());
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(simdjson::padded_string(json)).get(doc), simdjson::SUCCESS) << json;
  uint64_t limit = 0;
  uint64_t reserved = 0;
  bool folding = false;
  uint64_t requests = 0;
  std::string_view warning;
  ASSERT_EQ(doc.at_pointer("/data/windowMemory/limitBytes").get(limit), simdjson::SUCCESS);
  ASSERT_EQ(doc.at_pointer("/data/windowMemory/reservedBytes").get(reserved), simdjson::SUCCESS);
  ASSERT_EQ(doc.at_pointer("/data/windowMemory/folding").get(folding), simdjson::SUCCESS);
  ASSERT_EQ(doc.at_pointer("/data/windowMemory/foldedSeries/http_requests_total").get(requests),
            simdjson::SUCCESS);
  ASSERT_EQ(doc.at_pointer("/warnings/0").get(warning), simdjson::SUCCESS);
  EXPECT_EQ(limit, kBudget);
  EXPECT_LE(reserved, kBudget);
  EXPECT_GT(reserved, kBudget * 3 / 4);
  EXPECT_TRUE(folding);
  EXPECT_EQ(requests, bounded.runner->history()->folded()[1].series);
  EXPECT_NE(warning.find("http_request_duration_seconds, http_requests_total fold into their "
                         "__overflow__ series"),
            std::string::npos)
      << warning;

  // Under the budget: the figures, and no warning.
  Driver roomy(2, 64 * kBudget);
  roomy.Feed(300);
  const std::string calm = RulesJson(roomy.runner->engine().Snapshot());
  EXPECT_NE(calm.find("\"folding\":false,\"foldedSeries\":{}}"), std::string::npos) << calm;
  EXPECT_EQ(calm.find("warnings"), std::string::npos) << calm;
}

TEST(RuleRunner, FoldingDoesNotDependOnWhichWorkerSawASeries) {
  Driver a(2, kBudget, /*first_shard=*/0);
  Driver b(2, kBudget, /*first_shard=*/1);
  a.Feed(6'000);
  b.Feed(6'000);
  EXPECT_EQ(a.Outputs(), b.Outputs());
  // The window figures, not the CPU time spent.
  auto windows = [](const Driver& d) {
    const std::string metrics = d.SelfMetrics();
    const std::string json = RulesJson(d.runner->engine().Snapshot());
    return metrics.substr(metrics.find("novapulse_window_memory_bytes ")) +
           json.substr(json.find("\"windowMemory\""));
  };
  EXPECT_EQ(windows(a), windows(b));
  EXPECT_NE(windows(a).find("\"folding\":true"), std::string::npos) << windows(a);
}

}  // namespace
}  // namespace novapulse
