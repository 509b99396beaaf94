// Quantile estimate from histogram buckets, with Prometheus's
// histogram_quantile semantics: linear interpolation inside the bucket, the
// lower bound of the first bucket taken as 0, and a quantile that falls in
// the +Inf bucket answered with the highest finite bound.
#ifndef NOVAPULSE_AGGREGATORS_QUANTILE_H_
#define NOVAPULSE_AGGREGATORS_QUANTILE_H_

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace novapulse {

// `bounds` are the finite upper bounds; `counts` the per-bucket (not
// cumulative) counts with the +Inf bucket last. NaN when empty.
inline double HistogramQuantile(double q, const std::vector<double>& bounds,
                                const uint64_t* counts) {
  uint64_t total = 0;
  for (size_t b = 0; b <= bounds.size(); ++b) total += counts[b];
  if (total == 0 || bounds.empty() || std::isnan(q)) {
    return std::numeric_limits<double>::quiet_NaN();
  }
  if (q < 0) return -std::numeric_limits<double>::infinity();
  if (q > 1) return std::numeric_limits<double>::infinity();
  const double rank = q * static_cast<double>(total);
  uint64_t cumulative = 0;
  for (size_t b = 0; b < bounds.size(); ++b) {
    const uint64_t before = cumulative;
    cumulative += counts[b];
    if (static_cast<double>(cumulative) >= rank) {
      // The first bucket's lower bound is 0, unless its upper bound is not
      // above 0: then Prometheus answers with that bound.
      if (b == 0 && bounds[0] <= 0) return bounds[0];
      const double lower = b == 0 ? 0.0 : bounds[b - 1];
      if (counts[b] == 0) return bounds[b];
      return lower + (bounds[b] - lower) * (rank - static_cast<double>(before)) /
                         static_cast<double>(counts[b]);
    }
  }
  return bounds.back();
}

}  // namespace novapulse

#endif  // NOVAPULSE_AGGREGATORS_QUANTILE_H_
