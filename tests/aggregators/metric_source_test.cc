// MetricRegistry collects every part's families in the order the parts were
// added, and MetricFamilies keeps the label values its series point into.
#include "aggregators/metric_source.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "aggregators/novagift_metrics.h"
#include "sinks/exposition.h"

namespace novapulse {
namespace {

#define TEST_METRICS(M)                                                                      \
  M(kTestQueue, "test_queue_length", "Items waiting.", MetricType::kComputed, {"queue"}, {}) \
  M(kTestRuns, "test_runs_total", "Runs.", MetricType::kComputedCounter, {}, {})

enum TestMetric : size_t { TEST_METRICS(NOVAPULSE_METRIC_ID) kTestMetricCount };

const std::vector<MetricDef>& TestMetricDefs() {
  static const std::vector<MetricDef> kDefs = {TEST_METRICS(NOVAPULSE_METRIC_DEF)};
  return kDefs;
}

// A part whose label values are built on the fly and gone after collection.
class Queues : public MetricSource {
 public:
  void CollectMetrics(MetricFamilies* out) override {
    FamilySnapshot& queue = out->Start(TestMetricDefs()[kTestQueue]);
    for (int i = 0; i < 3; ++i) {
      const std::string name = "queue-" + std::to_string(i);
      out->Add(queue, {name}, 10.0 * i);
    }
    out->AddSingle(TestMetricDefs()[kTestRuns], ++runs_);
  }

 private:
  double runs_ = 0;
};

TEST(MetricSource, TheListMakesIdsAndTableInStep) {
  ASSERT_EQ(TestMetricDefs().size(), kTestMetricCount);
  EXPECT_EQ(TestMetricDefs()[kTestQueue].name, "test_queue_length");
  EXPECT_EQ(TestMetricDefs()[kTestRuns].type, MetricType::kComputedCounter);
  EXPECT_EQ(TestMetricDefs()[kTestQueue].labels, std::vector<std::string_view>{"queue"});
  // The shipped tables are made the same way.
  ASSERT_EQ(NovaGiftMetricDefs().size(), kNovaGiftMetricCount);
  EXPECT_EQ(NovaGiftMetricDefs()[kEventsTotal].name, "novapulse_events_total");
  EXPECT_EQ(NovaGiftMetricDefs()[kGiftClaimDuration].sum_unit, 1e-3);
}

TEST(MetricSource, RegistryCollectsInOrderAndKeepsLabelValues) {
  NovaGiftMetrics metrics(1);
  Queues queues;
  MetricRegistry registry;
  registry.Add(&queues);
  registry.Add(nullptr);  // an optional part that is not there
  registry.Add(&metrics);
  const MetricFamilies collected = registry.Collect();
  const std::vector<FamilySnapshot>& families = collected.families();
  ASSERT_EQ(families.size(), 2 + kNovaGiftMetricCount);
  EXPECT_EQ(families[0].def->name, "test_queue_length");
  EXPECT_EQ(families[1].def->name, "test_runs_total");
  EXPECT_EQ(families[2].def->name, NovaGiftMetricDefs()[0].name);
  const std::string text = RenderPrometheusText(families);
  EXPECT_THAT(text, ::testing::HasSubstr("test_queue_length{queue=\"queue-0\"} 0\n"
                                         "test_queue_length{queue=\"queue-1\"} 10\n"
                                         "test_queue_length{queue=\"queue-2\"} 20\n"));
  EXPECT_THAT(text, ::testing::HasSubstr("test_runs_total 1\n"));
  EXPECT_THAT(RenderPrometheusText(registry.Collect().families()),
              ::testing::HasSubstr("test_runs_total 2\n"));
}

}  // namespace
}  // namespace novapulse
