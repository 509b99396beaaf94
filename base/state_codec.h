// StateWriter and StateReader: the byte encoding of checkpointed state
// (pipeline/checkpoint.h). Integers are LEB128 varints (signed ones
// zigzagged), doubles their 8 bytes little-endian, strings a length and their
// bytes. The reader checks every read against the end of its input and
// every count against the bytes left, so a damaged payload fails cleanly
// instead of allocating or reading past the end; after the first failure
// every read fails and ok() is false.
//
// Threads: one thread per writer or reader.
//   StateWriter w;  w.U64(n);  w.Str("name");
//   StateReader r(w.bytes());  uint64_t n;  std::string name;
//   if (!r.U64(&n) || !r.Str(&name)) return r.Error("metrics");
#ifndef NOVAPULSE_BASE_STATE_CODEC_H_
#define NOVAPULSE_BASE_STATE_CODEC_H_

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace novapulse {

// Times in saved state (ms since the epoch) lie within years 0 to 10000, so
// that differences of two of them cannot overflow.
inline constexpr int64_t kMaxStateTimeMs = 253'402'300'800'000;

class StateWriter {
 public:
  void U64(uint64_t v) {
    while (v >= 0x80) {
      bytes_.push_back(static_cast<char>(v | 0x80));
      v >>= 7;
    }
    bytes_.push_back(static_cast<char>(v));
  }
  void I64(int64_t v) {
    U64((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63));  // zigzag
  }
  void F64(double v) {
    const uint64_t bits = std::bit_cast<uint64_t>(v);
    char b[8];
    for (int i = 0; i < 8; ++i) b[i] = static_cast<char>(bits >> (8 * i));
    bytes_.append(b, 8);
  }
  void Bool(bool v) { bytes_.push_back(v ? 1 : 0); }
  void Str(std::string_view s) {
    U64(s.size());
    bytes_.append(s);
  }

  const std::string& bytes() const { return bytes_; }
  std::string& mutable_bytes() { return bytes_; }

 private:
  std::string bytes_;
};

class StateReader {
 public:
  explicit StateReader(std::string_view bytes)
      : p_(bytes.data()), end_(bytes.data() + bytes.size()) {}

  [[nodiscard]] bool U64(uint64_t* v) {
    uint64_t out = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ == end_) return Fail();
      const auto byte = static_cast<uint8_t>(*p_++);
      out |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) {
        *v = out;
        return ok_;
      }
    }
    return Fail();
  }
  [[nodiscard]] bool I64(int64_t* v) {
    uint64_t z = 0;
    if (!U64(&z)) return false;
    *v = static_cast<int64_t>(z >> 1) ^ -static_cast<int64_t>(z & 1);
    return true;
  }
  // A time in milliseconds (see kMaxStateTimeMs), or INT64_MIN for "none"
  // when `unset_ok`.
  [[nodiscard]] bool TimeMs(int64_t* v, bool unset_ok = false) {
    if (!I64(v)) return false;
    if ((*v == INT64_MIN && unset_ok) || (*v >= -kMaxStateTimeMs && *v <= kMaxStateTimeMs)) {
      return true;
    }
    return Fail();
  }
  [[nodiscard]] bool U32(uint32_t* v) {
    uint64_t w = 0;
    if (!U64(&w) || w > UINT32_MAX) return Fail();
    *v = static_cast<uint32_t>(w);
    return true;
  }
  [[nodiscard]] bool F64(double* v) {
    if (end_ - p_ < 8) return Fail();
    uint64_t bits = 0;
    for (int i = 0; i < 8; ++i)
      bits |= static_cast<uint64_t>(static_cast<uint8_t>(p_[i])) << (8 * i);
    p_ += 8;
    *v = std::bit_cast<double>(bits);
    return ok_;
  }
  [[nodiscard]] bool Bool(bool* v) {
    if (p_ == end_ || static_cast<uint8_t>(*p_) > 1) return Fail();
    *v = *p_++ == 1;
    return ok_;
  }
  [[nodiscard]] bool Str(std::string* s) {
    std::string_view view;
    if (!View(&view)) return false;
    s->assign(view);
    return true;
  }
  // A string's bytes in place; valid as long as the input.
  [[nodiscard]] bool View(std::string_view* s) {
    uint64_t n = 0;
    if (!U64(&n) || n > static_cast<uint64_t>(end_ - p_)) return Fail();
    *s = std::string_view(p_, n);
    p_ += n;
    return ok_;
  }
  // A count of items that each take at least `min_bytes` bytes: fails when
  // the input cannot hold that many, so a damaged count never allocates.
  [[nodiscard]] bool Count(size_t* n, size_t min_bytes = 1) {
    uint64_t v = 0;
    if (!U64(&v) || v > static_cast<uint64_t>(end_ - p_) / std::max<size_t>(1, min_bytes)) {
      return Fail();
    }
    *n = static_cast<size_t>(v);
    return true;
  }

  bool ok() const { return ok_; }
  bool at_end() const { return p_ == end_; }
  // Leaves the rest unread (a part that keeps only what it can match).
  void SkipRest() { p_ = end_; }
  // The error to return once a read failed: names the section.
  absl::Status Error(std::string_view section) const {
    return absl::DataLossError(
        absl::StrCat("checkpoint section ", std::string(section), " is damaged"));
  }

 private:
  bool Fail() {
    ok_ = false;
    p_ = end_;
    return false;
  }

  const char* p_;
  const char* end_;
  bool ok_ = true;
};

}  // namespace novapulse

#endif  // NOVAPULSE_BASE_STATE_CODEC_H_
