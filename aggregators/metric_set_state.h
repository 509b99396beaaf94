// The checkpoint section of a metric set (NovaGiftMetrics, SpecMetrics),
// one layout for both: every cumulative series of the store, the newest
// event time, the busy rings of each concurrency gauge (merged, see
// SaveBusyRings) and, with expiry on, each series' newest event time.
//
// Save while no writer runs; Load into a fresh set before any writer runs.
#ifndef NOVAPULSE_AGGREGATORS_METRIC_SET_STATE_H_
#define NOVAPULSE_AGGREGATORS_METRIC_SET_STATE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "aggregators/busy_ring.h"
#include "aggregators/metric_store.h"
#include "base/state_codec.h"
#include "base/state_part.h"

namespace novapulse {

// Each concurrency gauge's rings (one per shard), in family order.
using BusyRingSets = std::vector<std::vector<std::unique_ptr<BusyRing>>*>;

void SaveMetricSetState(const MetricStore& store, int64_t newest_us, const BusyRingSets& rings,
                        StateWriter* w);
// Sets *newest_us to the saved newest event time, and load->series_ids_moved
// when a series got another id (MetricStore::LoadCumulative).
[[nodiscard]] absl::Status LoadMetricSetState(MetricStore& store, const BusyRingSets& rings,
                                              StateReader* r, StateLoad* load, int64_t* newest_us);

// The same, saved under another fingerprint (`saved`: a metric spec
// changed): the families whose definition is the same keep their values,
// the others start empty and *note names them. The busy rings and the
// series' event times are not carried over (the concurrency gauges fill
// again within their window; every series is stamped with the newest event
// time for expiry), and the series ids move. FailedPrecondition when the
// section cannot be matched.
[[nodiscard]] absl::Status LoadChangedMetricSetState(MetricStore& store, std::string_view saved,
                                                     StateReader* r, StateLoad* load,
                                                     int64_t* newest_us, std::string* note);

}  // namespace novapulse

#endif  // NOVAPULSE_AGGREGATORS_METRIC_SET_STATE_H_
