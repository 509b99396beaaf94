// MetricDef: the static description of one metric family (name, help, type,
// label names, histogram buckets). Declared once per metric in a table (see
// novagift_metrics.cc); everything else refers to metrics by index.
#ifndef NOVAPULSE_AGGREGATORS_METRIC_DEF_H_
#define NOVAPULSE_AGGREGATORS_METRIC_DEF_H_

#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace novapulse {

enum class MetricType : uint8_t {
  kCounter,    // one u64 word per series per shard, summed
  kGauge,      // one i64 word of deltas per series per shard, summed, floored at 0
  kHistogram,  // per-bucket u64 counts (+Inf last), then the sum in sum_units
  kComputed,   // a gauge computed at snapshot time, not stored in cells
  // A counter computed at snapshot time, not stored in cells; its word holds
  // double bits, as a computed gauge's does, so it can be fractional
  // (process_cpu_seconds_total).
  kComputedCounter,
};

// Computed families have no series index and no cells.
inline constexpr bool IsComputed(MetricType type) {
  return type == MetricType::kComputed || type == MetricType::kComputedCounter;
}

struct MetricDef {
  std::string_view name;
  std::string_view help;
  MetricType type = MetricType::kCounter;
  std::vector<std::string_view> labels;
  std::vector<double> buckets;  // histogram upper bounds, ascending, without +Inf
  // Families whose label values come from a fixed, small set (the self
  // metrics) carry their own limit instead of the configured one.
  size_t fixed_series_limit = 0;
  // Histogram sums are kept as integer counts of this unit, so they add up
  // exactly and the same in any order: replay output does not depend on
  // which worker saw which event.
  double sum_unit = 1e-6;
  // Stale-series expiry: a series whose newest event is this much older
  // than the expiry sweep's time is removed (MetricStore::ExpireIdle). 0:
  // never. Not for families whose series ids a writer keeps across batches
  // (the self metrics, the outbox gauges by type).
  int64_t expire_after_ms = 0;

  // Words each series occupies in a shard.
  size_t Width() const { return type == MetricType::kHistogram ? buckets.size() + 2 : 1; }
};

// Label values of one series are joined with this byte into the series key.
// 0xFF never occurs in UTF-8, and parsers only pass valid UTF-8, so the join
// is unambiguous.
inline constexpr char kLabelSeparator = '\xff';
inline constexpr std::string_view kOverflowLabelValue = "__overflow__";
// Checkpoints: the key saved for a free series id (expiry removed its
// series). 0xFE never occurs in UTF-8 either.
inline constexpr std::string_view kFreeSeriesKey = "\xfe";

// Stale-series expiry (MetricDef::expire_after_ms, in ms; 0: never): the
// families named in `by_family` take theirs, every other family whose
// series can expire takes `default_ms`.
struct MetricExpiry {
  int64_t default_ms = 0;
  std::vector<std::pair<std::string, int64_t>> by_family;

  // The expiry of a family that can expire.
  int64_t For(std::string_view family) const {
    for (const auto& [name, ms] : by_family) {
      if (name == family) return ms;
    }
    return default_ms;
  }
};

// How often expiry sweeps for the shortest expiry: a tenth of it, within
// [1 s, 30 s], so a series outlives its expiry by at most a tenth.
inline int64_t ExpirySweepMs(int64_t shortest_ms) {
  return std::clamp<int64_t>(shortest_ms / 10, 1'000, 30'000);
}

}  // namespace novapulse

#endif  // NOVAPULSE_AGGREGATORS_METRIC_DEF_H_
