// libFuzzer target: event-time parsing. The bytes are tried as an RFC 3339
// string, as the text of an epoch number and as the bits of a double.
// Checks that accepted times are within 1970..9999 and that formatting an
// accepted time and parsing it back gives the same time to the millisecond.
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "parsers/timestamp.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

constexpr int64_t kMaxUs = (253402300799LL + 1) * novapulse::kMicrosPerSecond;  // 10000-01-01

void CheckRoundTrip(int64_t ts_us) {
  FUZZ_CHECK(ts_us >= 0 && ts_us < kMaxUs);
  const std::string text = novapulse::FormatRfc3339Millis(ts_us);
  FUZZ_CHECK(text.size() == 24);
  int64_t again = -1;
  FUZZ_CHECK(novapulse::ParseRfc3339(text, &again));
  FUZZ_CHECK(again == ts_us - ts_us % 1000);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  int64_t ts_us = -1;
  if (novapulse::ParseRfc3339(text, &ts_us)) CheckRoundTrip(ts_us);

  double number = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (ec == std::errc() && end != text.data() && novapulse::EpochNumberToMicros(number, &ts_us)) {
    CheckRoundTrip(ts_us);
  }
  if (size >= sizeof(double)) {
    std::memcpy(&number, data, sizeof(double));
    if (novapulse::EpochNumberToMicros(number, &ts_us)) CheckRoundTrip(ts_us);
  }
  return 0;
}
