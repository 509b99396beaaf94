// Integer arithmetic on times: event times in ms or µs since the epoch, slot
// numbers, days. C++ division rounds toward zero; a time before a boundary
// (or before 1970) belongs to the slot, second or day that starts before it,
// so these round toward negative infinity.
//
// constexpr; safe from any thread.
//   const int64_t slot = FloorDiv(ts_ms, slot_ms);  // FloorDiv(-1, 1000) == -1
#ifndef NOVAPULSE_BASE_TIME_MATH_H_
#define NOVAPULSE_BASE_TIME_MATH_H_

#include <cstdint>

namespace novapulse {

// a / b rounded toward negative infinity; b != 0.
constexpr int64_t FloorDiv(int64_t a, int64_t b) noexcept {
  const int64_t q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

}  // namespace novapulse

#endif  // NOVAPULSE_BASE_TIME_MATH_H_
