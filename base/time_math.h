// Integer arithmetic on times: event times in ms or µs since the epoch, slot
// numbers, days. C++ division rounds toward zero; a time before a boundary
// (or before 1970) belongs to the slot, second or day that starts before it,
// so these round toward negative infinity.
//
// Safe from any thread.
//   const int64_t slot = FloorDiv(ts_ms, slot_ms);  // FloorDiv(-1, 1000) == -1
//   const int64_t now_ms = WallMillis();
#ifndef NOVAPULSE_BASE_TIME_MATH_H_
#define NOVAPULSE_BASE_TIME_MATH_H_

#include <chrono>
#include <cstdint>

namespace novapulse {

// a / b rounded toward negative infinity; b != 0.
constexpr int64_t FloorDiv(int64_t a, int64_t b) noexcept {
  const int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

// The wall clock in milliseconds since the epoch.
inline int64_t WallMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace novapulse

#endif  // NOVAPULSE_BASE_TIME_MATH_H_
