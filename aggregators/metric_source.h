// MetricSource: a part that exports metric families (the aggregate metrics,
// the Kafka consumer, the rule runner, the dead letters, ...), and
// MetricRegistry, the list of them that /metrics and `replay --output`
// collect in one pass, in the order they were added.
//
// Each part declares its own families once, in an X-macro list that makes
// both the ids and the table, so neither can drift from the other:
//
//   #define NOVAPULSE_KAFKA_METRICS(M)                                      \
//     M(kKafkaConsumerLag, "novapulse_kafka_consumer_lag", "Messages ...",  \
//       MetricType::kComputed, {"topic", "partition"})                      \
//     M(kKafkaCommitsTotal, "novapulse_kafka_commits_total", "Offset ...",  \
//       MetricType::kComputedCounter, {"result"})
//   enum KafkaMetric : size_t { NOVAPULSE_KAFKA_METRICS(NOVAPULSE_METRIC_ID) kKafkaMetricCount };
//   const std::vector<MetricDef>& KafkaMetricDefs() {
//     static const std::vector<MetricDef> kDefs = {NOVAPULSE_KAFKA_METRICS(NOVAPULSE_METRIC_DEF)};
//     return kDefs;
//   }
//
// Everything after an entry's id initialises its MetricDef, in MetricDef's
// member order (name, help, type, labels, buckets, ...).
//
// Threads: CollectMetrics is called from the HTTP server's threads while
// the parts run; each part makes its own reads safe.
#ifndef NOVAPULSE_AGGREGATORS_METRIC_SOURCE_H_
#define NOVAPULSE_AGGREGATORS_METRIC_SOURCE_H_

#include <deque>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "aggregators/metric_def.h"
#include "aggregators/metric_store.h"

#define NOVAPULSE_METRIC_ID(id, ...) id,
#define NOVAPULSE_METRIC_DEF(id, ...) ::novapulse::MetricDef{__VA_ARGS__},

namespace novapulse {

// The families collected for one exposition, with the label values their
// series keys point into.
class MetricFamilies {
 public:
  MetricFamilies() = default;
  MetricFamilies(const MetricFamilies&) = delete;
  MetricFamilies& operator=(const MetricFamilies&) = delete;
  MetricFamilies(MetricFamilies&&) = default;
  MetricFamilies& operator=(MetricFamilies&&) = default;

  // Starts a family of `def`; its series follow through Add. The reference
  // is good until the next family starts.
  FamilySnapshot& Start(const MetricDef& def);
  // A series of a computed family: its label values (copied) and value.
  void Add(FamilySnapshot& family, std::initializer_list<std::string_view> labels, double value);
  // A computed family of one series without labels.
  void AddSingle(const MetricDef& def, double value);
  // Families whose keys stay valid while their owner lives.
  void Append(std::vector<FamilySnapshot> families);

  const std::vector<FamilySnapshot>& families() const { return families_; }

 private:
  std::vector<FamilySnapshot> families_;
  std::deque<std::string> keys_;  // label values the families' keys point into
};

class MetricSource {
 public:
  virtual ~MetricSource() = default;
  // Appends this part's families, in its table's order.
  virtual void CollectMetrics(MetricFamilies* out) = 0;
};

class MetricRegistry {
 public:
  // `source` must outlive the registry's use; null is skipped, so optional
  // parts can be added as they are.
  void Add(MetricSource* source) {
    if (source != nullptr) sources_.push_back(source);
  }
  MetricFamilies Collect() const;

 private:
  std::vector<MetricSource*> sources_;
};

}  // namespace novapulse

#endif  // NOVAPULSE_AGGREGATORS_METRIC_SOURCE_H_
