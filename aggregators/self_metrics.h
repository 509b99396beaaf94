// novapulse's own metrics about the records it reads: how many, rejected
// why, late, folded into __overflow__, series held, newest event time. One
// list, exported after the families of whatever metric set the store holds
// (the NovaGift table, or a metric spec's); the label values come from small
// fixed sets (inputs x reasons, family names), so the families carry their
// own series limit.
//   defs.insert(defs.end(), SelfMetricDefs().begin(), SelfMetricDefs().end());
//   size_t events = first_self + static_cast<size_t>(SelfMetric::kEventsTotal);
#ifndef NOVAPULSE_AGGREGATORS_SELF_METRICS_H_
#define NOVAPULSE_AGGREGATORS_SELF_METRICS_H_

#include <cstddef>
#include <vector>

#include "aggregators/metric_source.h"

namespace novapulse {

// Inputs x reasons, plus "unknown": well below this.
inline constexpr size_t kSelfSeriesLimit = 256;

#define NOVAPULSE_SELF_METRICS(M)                                                                  \
  M(kEventsTotal, "novapulse_events_total", "Records read, by topic and result.",                  \
    MetricType::kCounter, {"topic", "result"}, {}, kSelfSeriesLimit)                               \
  M(kParseErrorsTotal, "novapulse_parse_errors_total", "Rejected records by topic and reason.",    \
    MetricType::kCounter, {"topic", "reason"}, {}, kSelfSeriesLimit)                               \
  M(kLateEventsTotal, "novapulse_late_events_total",                                               \
    "Events stamped in a window slot that had already closed: counted in the cumulative "          \
    "metrics, not in the windows rules read.",                                                     \
    MetricType::kCounter, {"topic"}, {}, kSelfSeriesLimit)                                         \
  M(kSeriesOverflowTotal, "novapulse_series_overflow_total",                                       \
    "Events folded into a metric's __overflow__ series because it hit its series limit.",          \
    MetricType::kCounter, {"metric"}, {}, kSelfSeriesLimit)                                        \
  M(kSeries, "novapulse_series", "Series held per metric.", MetricType::kComputed, {"metric"}, {}) \
  M(kNewestEventTime, "novapulse_newest_event_time_seconds",                                       \
    "Event time of the newest record seen.", MetricType::kComputed, {}, {})

// Each family's place in the list.
enum class SelfMetric : size_t { NOVAPULSE_SELF_METRICS(NOVAPULSE_METRIC_ID) kCount };

const std::vector<MetricDef>& SelfMetricDefs();

}  // namespace novapulse

#endif  // NOVAPULSE_AGGREGATORS_SELF_METRICS_H_
