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

struct ReplayFigures {
  uint64_t records = 0;
  uint64_t bytes = 0;  // of lines, decompressed
  double seconds = 0;
  int threads = 1;
  // CPU time reading the input (I/O, decompression) and working on it
  // (parsing, aggregating); both 0 when not measured.
  double read_cpu_seconds = 0;
  double work_cpu_seconds = 0;
};

// Records, throughput, where the CPU time went, and every rejection reason
// with its count.
std::string FormatReplaySummary(const std::vector<FamilySnapshot>& families,
                                const ReplayFigures& figures);

}  // namespace novapulse

#endif  // NOVAPULSE_SINKS_REPORT_H_
