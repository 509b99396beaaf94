// Prometheus exposition of merged snapshots. The scrape path writes the text
// format directly (one reserved string, std::to_chars): at 100k series,
// building prometheus-cpp MetricFamily values and running its TextSerializer
// cost ~10x more than the merge. ToMetricFamilies stays for callers that want
// prometheus-cpp values (a Collectable, tests that check the fast writer
// against prometheus-cpp's serializer).
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
#include "rules/promql.h"

namespace novapulse {

std::vector<prometheus::MetricFamily> ToMetricFamilies(const std::vector<FamilySnapshot>& families);
// Appends the text exposition of `families` to *out. The same lines as
// prometheus-cpp's TextSerializer (HELP, TYPE, then per histogram series
// _count, _sum and the _bucket lines), except numbers: integers and integral
// values below 1e16 exactly, other doubles as the shortest text that reads back
// as the same double (prometheus-cpp prints 16 significant digits), NaN as
// "NaN"; and HELP text has backslash and newline escaped.
void WritePrometheusText(const std::vector<FamilySnapshot>& families, std::string* out);
void WritePrometheusText(const std::vector<FamilySnapshot>& families, std::ostream& out);
std::string RenderPrometheusText(const std::vector<FamilySnapshot>& families);
// Appends rule outputs (recording rules, ALERTS, ALERTS_FOR_STATE) as gauges,
// grouped by metric name; each Labels holds its __name__.
void WriteRuleSeries(const std::vector<std::pair<promql::Labels, double>>& series,
                     std::string* out);

}  // namespace novapulse

#endif  // NOVAPULSE_SINKS_EXPOSITION_H_
