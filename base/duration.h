// Durations as Prometheus writes them (model.ParseDuration): the one duration
// grammar of novapulse, for config values, PromQL ranges and offsets, rule
// files' `for` and `interval`, and the command-line flags that take one.
//
// An integer and a unit, repeated, units y w d h m s ms, largest first and
// each at most once ("1h30m", "90m", "2d12h", "100ms"); "0" alone is zero. No
// fractions, signs or spaces; a year is 365 days, a week 7. At most 2^63-1
// nanoseconds (about 292 years), as in Prometheus.
//
// Pure functions; safe from any thread.
//   absl::StatusOr<absl::Duration> d = ParseDuration("1h30m");  // 90 minutes
#ifndef NOVAPULSE_BASE_DURATION_H_
#define NOVAPULSE_BASE_DURATION_H_

#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace novapulse {

// Sets *ms and returns true when `text` is a duration; else returns false and
// leaves *ms alone.
[[nodiscard]] bool ParseDuration(std::string_view text, int64_t* ms) noexcept;

// The same with a reason when it is not, e.g. "units must go from largest to
// smallest, each once". The reason never quotes `text` (it may hold a secret
// from the environment); callers name the value as they may show it.
[[nodiscard]] absl::StatusOr<absl::Duration> ParseDuration(std::string_view text);

}  // namespace novapulse

#endif  // NOVAPULSE_BASE_DURATION_H_
