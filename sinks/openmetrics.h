// OpenMetrics 1.0 text exposition of merged snapshots, served by /metrics
// when a scraper asks for application/openmetrics-text. It differs from the
// Prometheus text format (sinks/exposition.h) where OpenMetrics says so:
// a counter family is named without its `_total` suffix in HELP and TYPE and
// its samples carry it; a histogram lists its cumulative `_bucket` lines
// (le in canonical float form, "1.0" rather than "1") before `_count` and
// `_sum`; HELP escapes double quotes too; and the text ends with "# EOF".
//
// Pure functions over snapshots; safe from any thread.
//   std::string text = RenderOpenMetricsText(metrics.Snapshot());
#ifndef NOVAPULSE_SINKS_OPENMETRICS_H_
#define NOVAPULSE_SINKS_OPENMETRICS_H_

#include <string>
#include <vector>

#include "aggregators/metric_store.h"

namespace novapulse {

// Appends the OpenMetrics text of `families`, "# EOF\n" included, to *out.
void WriteOpenMetricsText(const std::vector<FamilySnapshot>& families, std::string* out);
std::string RenderOpenMetricsText(const std::vector<FamilySnapshot>& families);

}  // namespace novapulse

#endif  // NOVAPULSE_SINKS_OPENMETRICS_H_
