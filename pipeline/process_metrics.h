// Process metrics, as the Prometheus client libraries name them: CPU time,
// resident memory, start time and open descriptors of this process, read
// from /proc at scrape time (Linux only); and the CPUs it may use.
//
// Pure functions apart from reading /proc; safe from any thread.
//   registry.Add(&process_metrics);  // a ProcessMetrics: read at each collection
#ifndef NOVAPULSE_PIPELINE_PROCESS_METRICS_H_
#define NOVAPULSE_PIPELINE_PROCESS_METRICS_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "aggregators/metric_def.h"
#include "aggregators/metric_source.h"
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

// The process's metric families (see aggregators/metric_source.h), in
// export order.
#define NOVAPULSE_PROCESS_METRICS(M)                                                           \
  M(kProcessCpuSeconds, "process_cpu_seconds_total",                                           \
    "Total user and system CPU time spent in seconds.", MetricType::kComputedCounter, {}, {})  \
  M(kProcessResidentMemory, "process_resident_memory_bytes", "Resident memory size in bytes.", \
    MetricType::kComputed, {}, {})                                                             \
  M(kProcessStartTime, "process_start_time_seconds",                                           \
    "Start time of the process since unix epoch in seconds.", MetricType::kComputed, {}, {})   \
  M(kProcessOpenFds, "process_open_fds", "Number of open file descriptors.",                   \
    MetricType::kComputed, {}, {})

enum ProcessMetric : size_t { NOVAPULSE_PROCESS_METRICS(NOVAPULSE_METRIC_ID) kProcessMetricCount };

const std::vector<MetricDef>& ProcessMetricDefs();

// Appends one family per ProcessMetricDefs() entry, in that order.
void AppendProcessFamilies(const ProcessStats& stats, MetricFamilies* out);

// The process metrics as read at each collection; none when /proc cannot be
// read (logged at debug level).
class ProcessMetrics final : public MetricSource {
 public:
  void CollectMetrics(MetricFamilies* out) override;
};

}  // namespace novapulse

#endif  // NOVAPULSE_PIPELINE_PROCESS_METRICS_H_
