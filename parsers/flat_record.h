// Reading a flat record straight from simdjson's stage-1 structural index:
// the fast path for access-log lines in a block. Internal to parsers/.
//
// Stage 1 (SIMD: quotes, escapes, UTF-8, the position of every structural
// character and of every scalar's first byte) runs once over a window of a
// block's lines.
// An access-log line is a flat object, so its fields are then found by
// walking that index four entries at a time (key, ':', value, ',' or '}')
// rather than through On-Demand's general iterator.
//
// The fast path only ever accepts: any record it does not fully understand
// (escapes, nested values, numbers beyond plain decimals, any rejection at
// all) is handed to the On-Demand decoder alone, which names the reason. So
// what it accepts, and the event it decodes, are those of the On-Demand path.
//
//   FlatFields fields(block, index, count, first);
//   while (fields.Next()) { ... fields.key() ... fields.value() ... }
//   if (!fields.ended()) ... not a flat object: parse it alone ...
#ifndef NOVAPULSE_PARSERS_FLAT_RECORD_H_
#define NOVAPULSE_PARSERS_FLAT_RECORD_H_

#include <cstdint>
#include <optional>
#include <string_view>

#include "parsers/json_values.h"

namespace novapulse::json {

// The fields of a flat object whose '{' is structural `first` of `index`.
// Why the raw tokens can be trusted: stage 1 masks everything inside a
// string, so a token that opens with a quote closes before the next
// structural, with only whitespace after its closing quote (any other byte
// there would itself be a structural: the start of a scalar).
class FlatFields {
 public:
  FlatFields(const char* block, const uint32_t* index, uint32_t count, uint32_t first) noexcept
      : block_(block), index_(index), count_(count), next_(first + 1) {}

  // Moves to the next field; false at the object's end or at anything that
  // is not a flat object's next field (see ended()).
  bool Next() noexcept {
    if (ended_ || next_ + 3 >= count_) return false;
    const uint32_t key = index_[next_];
    const uint32_t value = index_[next_ + 2];
    const uint32_t after = index_[next_ + 3];
    const char separator = block_[after];
    const char first = block_[value];
    // One branch for the shape: a key, ':', a value that is not a container
    // (its insides would be walked as its parent's fields), ',' or '}'.
    // Non-short-circuit operators: each test is cheap and rarely false.
    if (!((block_[key] == '"') & (block_[index_[next_ + 1]] == ':') &
          ((separator == ',') | (separator == '}')) & (first != '{') & (first != '['))) {
      return false;
    }
    key_ = block_ + key + 1;
    value_ = detail::Trim({block_ + value, after - value});
    next_ += 4;
    if (separator == '}') {
      ended_ = true;
      close_ = after;
    }
    return true;
  }

  // The raw key after its opening quote (see KeyIs) and the value's token.
  const char* key() const noexcept { return key_; }
  std::string_view value() const noexcept { return value_; }
  // Whether the last field was followed by the object's '}': then close()
  // is its offset in the block and next() the structural after it.
  bool ended() const noexcept { return ended_; }
  uint32_t close() const noexcept { return close_; }
  uint32_t next() const noexcept { return next_; }

 private:
  const char* block_;
  const uint32_t* index_;
  uint32_t count_;
  uint32_t next_;
  const char* key_ = nullptr;
  std::string_view value_;
  bool ended_ = false;
  uint32_t close_ = 0;
};

// Typed reads of raw value tokens, with the names and meaning of Reader's:
// each accepts exactly the plain cases, in a record without a backslash,
// and decodes them as Reader would. Any reject means "not on the fast
// path" and carries no reason of its own.
class TokenReader {
 public:
  static constexpr bool escapes() noexcept { return false; }

  Reject ReadLabel(std::string_view token, std::string_view* out) const noexcept {
    if (!String(token, out) || out->size() > kMaxLabelValueBytes) return kNotFast;
    return std::nullopt;
  }

  Reject ReadOptionalLabel(std::string_view token, std::string_view* out) const noexcept {
    if (token == "null") {
      *out = {};
      return std::nullopt;
    }
    return ReadLabel(token, out);
  }

  Reject ReadInt(std::string_view token, int64_t* out) const noexcept {
    return detail::FastUnsigned(token, out) ? std::nullopt : Reject(kNotFast);
  }

  Reject ReadDouble(std::string_view token, double* out) const noexcept {
    return detail::FastUnsignedDecimal(token, out) ? std::nullopt : Reject(kNotFast);
  }

  Reject ReadTimestamp(std::string_view token, int64_t* out_us) const noexcept {
    std::string_view text;
    if (String(token, &text)) return ParseRfc3339(text, out_us) ? std::nullopt : Reject(kNotFast);
    double seconds_or_millis;
    if (detail::FastUnsignedDecimal(token, &seconds_or_millis) &&
        EpochNumberToMicros(seconds_or_millis, out_us)) {
      return std::nullopt;
    }
    return kNotFast;
  }

  // A value nobody reads must still be valid JSON (see Reader).
  Reject ValidateSkipped(std::string_view token, size_t /*depth*/) const noexcept {
    if (!token.empty() && token[0] == '"') return std::nullopt;
    return detail::IsValidToken(token) ? std::nullopt : Reject(kNotFast);
  }

 private:
  static constexpr RejectReason kNotFast = RejectReason::kMalformedJson;

  static bool String(std::string_view token, std::string_view* out) noexcept {
    if (token.size() < 2 || token[0] != '"') return false;
    *out = token.substr(1, token.size() - 2);
    return true;
  }
};

}  // namespace novapulse::json

#endif  // NOVAPULSE_PARSERS_FLAT_RECORD_H_
