#include "base/duration.h"

#include <array>
#include <limits>

#include "absl/status/status.h"

namespace novapulse {
namespace {

struct Unit {
  std::string_view name;
  int64_t ms;
};

// Largest first: the order the units must come in.
constexpr std::array<Unit, 7> kUnits = {{{"y", 365LL * 24 * 3600 * 1000},
                                         {"w", 7LL * 24 * 3600 * 1000},
                                         {"d", 24LL * 3600 * 1000},
                                         {"h", 3600LL * 1000},
                                         {"m", 60LL * 1000},
                                         {"s", 1000},
                                         {"ms", 1}}};

// Prometheus holds a duration as int64 nanoseconds.
constexpr int64_t kMaxMs = std::numeric_limits<int64_t>::max() / 1'000'000;

constexpr bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// Sets *out and returns nullptr, or returns what is wrong with `s`.
const char* Parse(std::string_view s, int64_t* out) noexcept {
  constexpr const char* kRange = "out of range (at most 292 years)";
  if (s == "0") {
    *out = 0;
    return nullptr;
  }
  if (s.empty()) return "empty duration";
  int64_t total = 0;
  size_t next_unit = 0;
  size_t i = 0;
  while (i < s.size()) {
    const size_t digits = i;
    int64_t n = 0;
    for (; i < s.size() && IsDigit(s[i]); ++i) {
      n = n * 10 + (s[i] - '0');
      if (n > kMaxMs) return kRange;  // kMaxMs * 10 + 9 fits in int64
    }
    if (i == digits) return "want an integer and a unit, e.g. 100ms, 5s, 1m, 1h30m";
    // As in Prometheus, the unit is every non-digit up to the next number.
    const size_t unit_start = i;
    while (i < s.size() && !IsDigit(s[i])) ++i;
    const std::string_view unit = s.substr(unit_start, i - unit_start);
    if (unit.empty()) return "missing unit (use y, w, d, h, m, s or ms)";
    if (unit.front() == '.') return "no fractions: write whole units, e.g. 1m30s or 1500ms";
    size_t u = 0;
    while (u < kUnits.size() && kUnits[u].name != unit) ++u;
    if (u == kUnits.size()) return "unknown unit (use y, w, d, h, m, s or ms)";
    if (u < next_unit) return "units must go from largest to smallest, each once";
    next_unit = u + 1;
    if (n > (kMaxMs - total) / kUnits[u].ms) return kRange;
    total += n * kUnits[u].ms;
  }
  *out = total;
  return nullptr;
}

}  // namespace

bool ParseDuration(std::string_view text, int64_t* ms) noexcept {
  return Parse(text, ms) == nullptr;
}

absl::StatusOr<absl::Duration> ParseDuration(std::string_view text) {
  int64_t ms = 0;
  if (const char* wrong = Parse(text, &ms); wrong != nullptr) {
    return absl::InvalidArgumentError(wrong);
  }
  return absl::Milliseconds(ms);
}

}  // namespace novapulse
