// Prometheus exposition of merged snapshots: FamilySnapshot values become
// prometheus-cpp MetricFamily values, serialised by its TextSerializer.
//
// Pure functions over snapshots; safe from any thread.
//   std::string text = RenderPrometheusText(metrics.Snapshot());
#ifndef NOVAPULSE_SINKS_EXPOSITION_H_
#define NOVAPULSE_SINKS_EXPOSITION_H_

#include <prometheus/metric_family.h>

#include <ostream>
#include <string>
#include <vector>

#include "aggregators/metric_store.h"

namespace novapulse {

std::vector<prometheus::MetricFamily> ToMetricFamilies(const std::vector<FamilySnapshot>& families);
void WritePrometheusText(const std::vector<FamilySnapshot>& families, std::ostream& out);
std::string RenderPrometheusText(const std::vector<FamilySnapshot>& families);

}  // namespace novapulse

#endif  // NOVAPULSE_SINKS_EXPOSITION_H_
