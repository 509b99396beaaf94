// Typed reads of simdjson On-Demand values with rejection reasons; shared by
// the access-log and outbox decoders. Internal to parsers/. Defined inline:
// they run for every field of every record.
#ifndef NOVAPULSE_PARSERS_JSON_VALUES_H_
#define NOVAPULSE_PARSERS_JSON_VALUES_H_

#include <simdjson.h>

#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

#include "parsers/event.h"
#include "parsers/timestamp.h"

namespace novapulse::json {

using Value = simdjson::ondemand::value;
using Reject = std::optional<RejectReason>;

// Maps a simdjson error to our reason.
inline RejectReason FromError(simdjson::error_code error) noexcept {
  switch (error) {
    case simdjson::INCORRECT_TYPE:
      return RejectReason::kWrongType;
    case simdjson::NUMBER_OUT_OF_RANGE:
      return RejectReason::kOutOfRange;
    case simdjson::DEPTH_ERROR:
      return RejectReason::kTooDeep;
    case simdjson::CAPACITY:
      return RejectReason::kOversize;
    default:
      return RejectReason::kMalformedJson;
  }
}

namespace detail {

// JSON's whitespace (RFC 8259: space, tab, line feed, carriage return).
inline bool IsJsonSpace(char c) noexcept { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// A value's raw token runs to the next structural character: drop the
// whitespace before it.
inline std::string_view Trim(std::string_view token) noexcept {
  while (!token.empty() && IsJsonSpace(token.back())) token.remove_suffix(1);
  return token;
}

inline bool IsDigit(char c) noexcept { return c >= '0' && c <= '9'; }

// RFC 8259 number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
// Sets *integer when there is neither fraction nor exponent.
inline bool IsJsonNumber(std::string_view t, bool* integer) noexcept {
  size_t i = 0;
  if (i < t.size() && t[i] == '-') ++i;
  if (i >= t.size() || !IsDigit(t[i])) return false;
  if (t[i] == '0') {
    ++i;
  } else {
    while (i < t.size() && IsDigit(t[i])) ++i;
  }
  *integer = true;
  if (i < t.size() && t[i] == '.') {
    *integer = false;
    if (++i >= t.size() || !IsDigit(t[i])) return false;
    while (i < t.size() && IsDigit(t[i])) ++i;
  }
  if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
    *integer = false;
    if (++i < t.size() && (t[i] == '+' || t[i] == '-')) ++i;
    if (i >= t.size() || !IsDigit(t[i])) return false;
    while (i < t.size() && IsDigit(t[i])) ++i;
  }
  return i == t.size();
}

// Whether a token is well-formed JSON of some type (containers: by their
// opening character; their insides are checked when walked).
inline bool IsValidToken(std::string_view t) noexcept {
  if (t.empty()) return false;
  bool integer;
  switch (t[0]) {
    case '"':
    case '[':
    case '{':
      return true;
    case 't':
      return t == "true";
    case 'f':
      return t == "false";
    case 'n':
      return t == "null";
    default:
      return IsJsonNumber(t, &integer);
  }
}

// The reason for a value that is not of the type a field needs: wrong_type
// when it is valid JSON of another type, malformed_json when it is not JSON.
inline RejectReason Mismatch(Value& v) noexcept {
  return IsValidToken(Trim(v.raw_json_token())) ? RejectReason::kWrongType
                                                : RejectReason::kMalformedJson;
}

// The reason a number field failed to convert.
inline RejectReason NumberFailure(Value& v, bool want_integer) noexcept {
  const std::string_view t = Trim(v.raw_json_token());
  bool integer;
  if (t.empty() || !(t[0] == '-' || IsDigit(t[0]))) return Mismatch(v);
  if (!IsJsonNumber(t, &integer)) return RejectReason::kMalformedJson;
  // A well-formed numeral that did not convert: too large (2^70, 1e400), or
  // a fraction where an integer belongs (201.5, 2e2).
  double as_double;
  if (want_integer && !integer && !v.get_double().get(as_double)) return RejectReason::kWrongType;
  return RejectReason::kOutOfRange;
}

// Plain decimals ("20.587", "200", "0.5") are most of the numbers in real
// records; these read them straight from the raw token. Anything else (a
// sign, an exponent, a leading zero, too many digits, not a number) returns
// false, and simdjson reads it with its full grammar and error reporting.
// The results are the same: an integer of at most 18 digits is exact, and a
// mantissa of at most 15 digits (below 2^53) divided by a power of ten up to
// 10^15 (both exact doubles) is one correctly rounded IEEE division, as
// simdjson's result is.
inline bool FastUnsigned(std::string_view t, int64_t* out) noexcept {
  if (t.empty() || t.size() > 18 || (t[0] == '0' && t.size() > 1)) return false;
  int64_t value = 0;
  for (const char c : t) {
    if (!IsDigit(c)) return false;
    value = value * 10 + (c - '0');
  }
  *out = value;
  return true;
}

inline bool FastUnsignedDecimal(std::string_view t, double* out) noexcept {
  static constexpr double kPow10[] = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                      1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};
  // At most 15 digits (and a point): the mantissa stays below 2^53.
  if (t.empty() || t.size() > 16) return false;
  const char* p = t.data();
  const char* const end = p + t.size();
  uint64_t mantissa = 0;
  while (p < end && IsDigit(*p)) mantissa = mantissa * 10 + static_cast<uint64_t>(*p++ - '0');
  const size_t whole = static_cast<size_t>(p - t.data());
  if (whole == 0 || (whole > 1 && t[0] == '0') || (whole == 16)) return false;
  size_t fraction = 0;
  if (p < end) {
    if (*p++ != '.') return false;
    const char* const first = p;
    while (p < end && IsDigit(*p)) mantissa = mantissa * 10 + static_cast<uint64_t>(*p++ - '0');
    fraction = static_cast<size_t>(p - first);
    if (fraction == 0 || p != end) return false;
  }
  *out = static_cast<double>(mantissa) / kPow10[fraction];
  return true;
}

// Any JSON number as simdjson reads it: plain decimals as above, the rest
// (signs, exponents, long mantissas like 1796032801.1600978) with
// std::from_chars, which rounds correctly as simdjson does. False for what
// is not a JSON number or not a finite double.
inline bool FastDouble(std::string_view t, double* out) noexcept {
  if (FastUnsignedDecimal(t, out)) return true;
  bool integer;
  if (!IsJsonNumber(t, &integer)) return false;
  const char* const end = t.data() + t.size();
  const std::from_chars_result r = std::from_chars(t.data(), end, *out);
  return r.ec == std::errc() && r.ptr == end && std::isfinite(*out);
}

// Any JSON integer that fits an int64_t, as simdjson's get_int64 reads it.
inline bool FastInt(std::string_view t, int64_t* out) noexcept {
  if (FastUnsigned(t, out)) return true;
  bool integer;
  if (!IsJsonNumber(t, &integer) || !integer) return false;
  const char* const end = t.data() + t.size();
  const std::from_chars_result r = std::from_chars(t.data(), end, *out);
  return r.ec == std::errc() && r.ptr == end;
}

}  // namespace detail

// True when `v` is JSON null (and consumes it).
inline bool IsNull(Value& v) noexcept {
  bool is_null = false;
  return !v.is_null().get(is_null) && is_null;
}

// Reads the values of one record. `escapes` says whether the record holds
// any backslash at all: most do not, and then no string needs a scan for
// escapes before it is read in place.
class Reader {
 public:
  explicit Reader(bool escapes) : escapes_(escapes) {}

  // Whether the record holds a backslash: without one, no key needs unescaping.
  bool escapes() const noexcept { return escapes_; }

  // A string value read in place when it has no escapes (no copy), else
  // unescaped by simdjson. Sets *is_null for a JSON null.
  Reject ReadStringFast(Value& v, std::string_view* out, bool* is_null) const noexcept {
    const std::string_view token = detail::Trim(v.raw_json_token());
    *is_null = false;
    if (token.size() >= 2 && token[0] == '"') {
      const std::string_view inner = token.substr(1, token.size() - 2);
      if (!escapes_ || std::memchr(inner.data(), '\\', inner.size()) == nullptr) {
        *out = inner;
        return std::nullopt;
      }
      if (v.get_string().get(*out)) return RejectReason::kMalformedJson;  // a bad escape
      return std::nullopt;
    }
    if (token == "null") {
      *is_null = true;
      return std::nullopt;
    }
    return detail::Mismatch(v);
  }

  Reject ReadString(Value& v, std::string_view* out) const noexcept {
    bool is_null;
    if (auto reject = ReadStringFast(v, out, &is_null)) return reject;
    if (is_null) return RejectReason::kWrongType;
    return std::nullopt;
  }

  // A string that becomes a label value: size-limited.
  Reject ReadLabel(Value& v, std::string_view* out) const noexcept {
    if (auto reject = ReadString(v, out)) return reject;
    if (out->size() > kMaxLabelValueBytes) return RejectReason::kOversize;
    return std::nullopt;
  }

  // As ReadLabel, but JSON null leaves `out` empty.
  Reject ReadOptionalLabel(Value& v, std::string_view* out) const noexcept {
    bool is_null;
    if (auto reject = ReadStringFast(v, out, &is_null)) return reject;
    if (is_null) *out = {};
    if (out->size() > kMaxLabelValueBytes) return RejectReason::kOversize;
    return std::nullopt;
  }

  Reject ReadDouble(Value& v, double* out) const noexcept {
    if (detail::FastUnsignedDecimal(detail::Trim(v.raw_json_token()), out)) return std::nullopt;
    if (v.get_double().get(*out)) return detail::NumberFailure(v, /*want_integer=*/false);
    return std::nullopt;
  }

  // As ReadDouble; *present is false (and `out` untouched) for JSON null.
  Reject ReadOptionalDouble(Value& v, double* out, bool* present) const noexcept {
    *present = !IsNull(v);
    if (!*present) return std::nullopt;
    return ReadDouble(v, out);
  }

  Reject ReadInt(Value& v, int64_t* out) const noexcept {
    if (detail::FastUnsigned(detail::Trim(v.raw_json_token()), out)) return std::nullopt;
    if (v.get_int64().get(*out)) return detail::NumberFailure(v, /*want_integer=*/true);
    return std::nullopt;
  }

  Reject ReadTimestamp(Value& v, int64_t* out_us) const noexcept {
    const std::string_view token = detail::Trim(v.raw_json_token());
    if (!token.empty() && token[0] == '"') {
      std::string_view text;
      bool is_null;
      if (auto reject = ReadStringFast(v, &text, &is_null)) return reject;
      if (!ParseRfc3339(text, out_us)) return RejectReason::kBadTimestamp;
      return std::nullopt;
    }
    if (!token.empty() && (token[0] == '-' || detail::IsDigit(token[0]))) {
      double seconds_or_millis;
      if (v.get_double().get(seconds_or_millis)) {
        const RejectReason reason = detail::NumberFailure(v, /*want_integer=*/false);
        return reason == RejectReason::kOutOfRange ? RejectReason::kBadTimestamp : reason;
      }
      if (!EpochNumberToMicros(seconds_or_millis, out_us)) return RejectReason::kBadTimestamp;
      return std::nullopt;
    }
    return detail::Mismatch(v);
  }

  // Checks a value nobody reads: On-Demand parsing skips such values without
  // validating them, so invalid JSON inside an ignored field would otherwise
  // pass. `depth` is the value's nesting level (a top-level field's value is 2).
  Reject ValidateSkipped(Value& v, size_t depth) const noexcept {
    // Most skipped values are strings in records without escapes: stage 1
    // has checked those already. Kept small enough to inline.
    const std::string_view token = v.raw_json_token();
    if (!escapes_ && !token.empty() && token[0] == '"') return std::nullopt;
    return ValidateSkippedToken(v, detail::Trim(token), depth);
  }

 private:
  Reject ValidateSkippedToken(Value& v, std::string_view token, size_t depth) const noexcept {
    if (token.empty()) return RejectReason::kMalformedJson;
    switch (token[0]) {
      case '"':
        if (escapes_ && std::memchr(token.data(), '\\', token.size()) != nullptr) {
          std::string_view unescaped;
          if (v.get_string().get(unescaped)) return RejectReason::kMalformedJson;
        }
        return std::nullopt;
      case '[': {
        if (depth >= kMaxJsonDepth) return RejectReason::kTooDeep;
        simdjson::ondemand::array array;
        if (auto error = v.get_array().get(array)) return FromError(error);
        for (auto element_result : array) {
          Value element;
          // get() is &&-qualified; the move only selects it.
          if (auto error =
                  std::move(element_result).get(element)) {  // NOLINT(performance-move-const-arg)
            return FromError(error);
          }
          if (auto reject = ValidateSkipped(element, depth + 1)) return reject;
        }
        return std::nullopt;
      }
      case '{': {
        if (depth >= kMaxJsonDepth) return RejectReason::kTooDeep;
        simdjson::ondemand::object object;
        if (auto error = v.get_object().get(object)) return FromError(error);
        for (auto field_result : object) {
          simdjson::ondemand::field field;
          if (auto error = std::move(field_result).get(field)) return FromError(error);
          if (auto reject = ValidateSkipped(field.value(), depth + 1)) return reject;
        }
        return std::nullopt;
      }
      default:
        return detail::IsValidToken(token) ? std::nullopt : Reject(RejectReason::kMalformedJson);
    }
  }

  bool escapes_;
};

// True when the raw (still escaped) key at `key` is exactly `name`. The
// comparison includes the closing quote and has a constant length, so it
// compiles to a couple of loads; reading past a short key is safe because
// the input is padded.
template <size_t N>
inline bool KeyIs(const char* key, const char (&name)[N]) noexcept {
  return std::memcmp(key, name, N - 1) == 0 && key[N - 1] == '"';
}

// For a key no schema name matched as written: its unescaped form when it
// has escapes (so "\u0074s" still reads as "ts"), else an empty view.
inline std::string_view UnescapedIfEscaped(simdjson::ondemand::field& field,
                                           const char* key) noexcept {
  // stage 1 has validated the document's strings, so the closing quote exists.
  const char* p = key;
  while (*p != '"' && *p != '\\') ++p;
  std::string_view unescaped;
  if (*p == '"' || field.unescaped_key().get(unescaped)) return {};
  return unescaped;
}

// Tracks which known fields were seen, to reject duplicates.
class SeenFields {
 public:
  // Returns false when `bit` was already seen.
  bool Mark(int bit) noexcept {
    const uint32_t mask = 1u << bit;
    if (seen_ & mask) return false;
    seen_ |= mask;
    return true;
  }
  bool Has(int bit) const noexcept { return (seen_ & (1u << bit)) != 0; }

 private:
  uint32_t seen_ = 0;
};

}  // namespace novapulse::json

#endif  // NOVAPULSE_PARSERS_JSON_VALUES_H_
