// Human-readable reports of a merged snapshot: the key NovaGift figures and
// the end-of-replay summary (throughput, rejections by reason).
// Pure functions over snapshots; safe from any thread.
#ifndef NOVAPULSE_SINKS_REPORT_H_
#define NOVAPULSE_SINKS_REPORT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "aggregators/metric_store.h"

namespace novapulse {

// Requests, error ratio, latency percentiles, outbox health, gifts, wallet.
std::string FormatKeyMetrics(const std::vector<FamilySnapshot>& families);

// Records, throughput, and every rejection reason with its count.
std::string FormatReplaySummary(const std::vector<FamilySnapshot>& families, uint64_t records,
                                uint64_t bytes, double seconds, int threads);

}  // namespace novapulse

#endif  // NOVAPULSE_SINKS_REPORT_H_
