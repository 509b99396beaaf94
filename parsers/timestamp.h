// Event-time parsing: RFC 3339 strings and epoch numbers to microseconds.
//
// Pure functions, safe from any thread. Accepted:
//   "2026-11-27T06:21:53Z", "2026-11-27T06:21:53.123456789+05:30",
//   "2026-11-27 06:21:53.1z" (RFC 3339 allows a space and lower case),
//   epoch seconds (1795651200, 1795651200.25) or epoch milliseconds
//   (1795651200123): a number >= 1e11 is taken as milliseconds.
// Years outside 1970..9999 are rejected.
#ifndef NOVAPULSE_PARSERS_TIMESTAMP_H_
#define NOVAPULSE_PARSERS_TIMESTAMP_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace novapulse {

inline constexpr int64_t kMicrosPerSecond = 1'000'000;

// Returns false when `text` is not an RFC 3339 date-time.
[[nodiscard]] bool ParseRfc3339(std::string_view text, int64_t* out_us) noexcept;

// Returns false for negative, non-finite or too large values.
[[nodiscard]] bool EpochNumberToMicros(double value, int64_t* out_us) noexcept;

// Formats as RFC 3339 UTC with milliseconds: "2026-11-27T06:21:53.123Z".
void AppendRfc3339Millis(int64_t ts_us, std::string* out);
std::string FormatRfc3339Millis(int64_t ts_us);

}  // namespace novapulse

#endif  // NOVAPULSE_PARSERS_TIMESTAMP_H_
