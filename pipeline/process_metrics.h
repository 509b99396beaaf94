// Process metrics, as the Prometheus client libraries name them: CPU time,
// resident memory, start time and open descriptors of this process, read
// from /proc at scrape time (Linux only); and the CPUs it may use.
//
// Pure functions apart from reading /proc; safe from any thread.
//   absl::StatusOr<ProcessStats> stats = ReadProcessStats();
//   if (stats.ok()) AppendProcessFamilies(*stats, &families);
#ifndef NOVAPULSE_PIPELINE_PROCESS_METRICS_H_
#define NOVAPULSE_PIPELINE_PROCESS_METRICS_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "aggregators/metric_def.h"
#include "aggregators/metric_store.h"

namespace novapulse {

struct ProcessStats {
  double cpu_seconds = 0;         // user + system time
  double resident_bytes = 0;      // resident set size
  double start_time_seconds = 0;  // since the Unix epoch
  double open_fds = 0;
};

// CPUs this process may run on (its affinity mask, as `taskset` sets it):
// the default number of workers.
int AvailableCpus();

// Reads /proc/self/stat, /proc/self/statm, /proc/stat and /proc/self/fd.
// Errors name the file that could not be read or parsed.
[[nodiscard]] absl::StatusOr<ProcessStats> ReadProcessStats();

// Indexes into ProcessMetricDefs(); the order is the export order.
enum ProcessMetric : size_t {
  kProcessCpuSeconds,
  kProcessResidentMemory,
  kProcessStartTime,
  kProcessOpenFds,
  kProcessMetricCount,
};

const std::vector<MetricDef>& ProcessMetricDefs();

// Appends one family per ProcessMetricDefs() entry, in that order.
void AppendProcessFamilies(const ProcessStats& stats, std::vector<FamilySnapshot>* families);

}  // namespace novapulse

#endif  // NOVAPULSE_PIPELINE_PROCESS_METRICS_H_
