#include "aggregators/self_metrics.h"

namespace novapulse {

const std::vector<MetricDef>& SelfMetricDefs() {
  static const std::vector<MetricDef> kDefs = {NOVAPULSE_SELF_METRICS(NOVAPULSE_METRIC_DEF)};
  return kDefs;
}

}  // namespace novapulse
