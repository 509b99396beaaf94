// Helpers shared by the libFuzzer targets in this folder: a buffer that holds
// the input followed by exactly simdjson's padding (so ASan reports any read
// beyond what the parsers' contract allows), and a check that aborts with a
// message, which libFuzzer records as a crash.
//
// Test-only, header-only; each fuzz target runs on one thread.
#ifndef NOVAPULSE_TESTS_FUZZ_FUZZ_SUPPORT_H_
#define NOVAPULSE_TESTS_FUZZ_FUZZ_SUPPORT_H_

#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string_view>

namespace novapulse::fuzz {

// The input copied into a heap block of exactly size + SIMDJSON_PADDING bytes.
class PaddedInput {
 public:
  PaddedInput(const uint8_t* data, size_t size)
      : size_(size),
        capacity_(size + simdjson::SIMDJSON_PADDING),
        bytes_(std::make_unique<char[]>(capacity_)) {
    if (size > 0) std::memcpy(bytes_.get(), data, size);
    std::memset(bytes_.get() + size, ' ', simdjson::SIMDJSON_PADDING);
  }
  const char* data() const { return bytes_.get(); }
  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }
  std::string_view view() const { return {bytes_.get(), size_}; }

 private:
  size_t size_;
  size_t capacity_;
  std::unique_ptr<char[]> bytes_;
};

[[noreturn]] inline void Fail(const char* what, const char* file, int line) {
  std::fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", file, line, what);
  std::abort();
}

inline bool IsValidUtf8(std::string_view s) { return simdjson::validate_utf8(s.data(), s.size()); }

}  // namespace novapulse::fuzz

#define FUZZ_CHECK(cond) \
  ((cond) ? static_cast<void>(0) : ::novapulse::fuzz::Fail(#cond, __FILE__, __LINE__))

#endif  // NOVAPULSE_TESTS_FUZZ_FUZZ_SUPPORT_H_
