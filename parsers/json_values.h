// Typed reads of simdjson On-Demand values with rejection reasons; shared by
// the access-log and outbox decoders. Internal to parsers/. Defined inline:
// they run for every field of every record.
#ifndef NOVAPULSE_PARSERS_JSON_VALUES_H_
#define NOVAPULSE_PARSERS_JSON_VALUES_H_

#include <simdjson.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string_view>

#include "parsers/event.h"
#include "parsers/timestamp.h"

namespace novapulse::json {

using Value = simdjson::ondemand::value;
using Reject = std::optional<RejectReason>;

// Maps a simdjson error to our reason for a value that was expected to be a
// scalar of some type.
inline RejectReason FromError(simdjson::error_code error) noexcept;
namespace detail {

inline bool LooksNumeric(std::string_view token) noexcept {
  if (token.empty()) return false;
  for (char c : token) {
    if (!((c >= '0' && c <= '9') || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E')) {
      return false;
    }
  }
  return true;
}

// A number that fails to convert is out of range when it is a well-formed
// numeral (1e400, 2^70), and malformed otherwise (12abc, -).
inline RejectReason NumberError(Value& v, simdjson::error_code error) noexcept {
  if (error == simdjson::NUMBER_OUT_OF_RANGE) {
    return RejectReason::kOutOfRange;
  }
  if (error == simdjson::NUMBER_ERROR) {
    std::string_view token = v.raw_json_token();
    {
      while (!token.empty() && (token.back() == ' ' || token.back() == '\t' ||
                                token.back() == '\n' || token.back() == '\r')) {
        token.remove_suffix(1);
      }
      if (LooksNumeric(token)) return RejectReason::kOutOfRange;
    }
    return RejectReason::kMalformedJson;
  }
  return FromError(error);
}

}  // namespace detail

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

inline bool IsNull(Value& v) noexcept {
  bool is_null = false;
  return !v.is_null().get(is_null) && is_null;
}

inline Reject ReadString(Value& v, std::string_view* out) noexcept {
  if (auto error = v.get_string().get(*out)) return FromError(error);
  return std::nullopt;
}

// A string value read in place when it has no escapes (no copy), else
// unescaped by simdjson. Sets *is_null for a JSON null.
inline Reject ReadStringFast(Value& v, std::string_view* out, bool* is_null) noexcept {
  std::string_view token = v.raw_json_token();
  *is_null = false;
  if (!token.empty() && token[0] == '"') {
    // The token runs to the next structural character: trim trailing blanks.
    size_t end = token.size();
    while (end > 1 && token[end - 1] != '"') --end;
    const std::string_view inner = token.substr(1, end > 1 ? end - 2 : 0);
    if (end > 1 && inner.find('\\') == std::string_view::npos) {
      *out = inner;
      return std::nullopt;
    }
  } else if (!token.empty() && token[0] == 'n') {
    *is_null = IsNull(v);
    if (*is_null) return std::nullopt;
  }
  if (auto error = v.get_string().get(*out)) return FromError(error);
  return std::nullopt;
}

inline Reject ReadLabel(Value& v, std::string_view* out) noexcept {
  bool is_null;
  if (auto reject = ReadStringFast(v, out, &is_null)) return reject;
  if (is_null) return RejectReason::kWrongType;
  if (out->size() > kMaxLabelValueBytes) return RejectReason::kOversize;
  return std::nullopt;
}

inline Reject ReadDouble(Value& v, double* out) noexcept {
  if (auto error = v.get_double().get(*out)) {
    // get_double reports strings and the like as INCORRECT_TYPE, bad numerals
    // as NUMBER_ERROR; tell them apart by the value's type.
    simdjson::ondemand::json_type type;
    if (v.type().get(type)) return RejectReason::kMalformedJson;
    if (type != simdjson::ondemand::json_type::number) return RejectReason::kWrongType;
    return detail::NumberError(v, error);
  }
  return std::nullopt;
}

inline Reject ReadOptionalLabel(Value& v, std::string_view* out) noexcept {
  bool is_null;
  if (auto reject = ReadStringFast(v, out, &is_null)) return reject;
  if (is_null) *out = {};
  if (out->size() > kMaxLabelValueBytes) return RejectReason::kOversize;
  return std::nullopt;
}

inline Reject ReadOptionalDouble(Value& v, double* out) noexcept {
  double value;
  if (auto error = v.get_double().get(value)) {
    if (error == simdjson::INCORRECT_TYPE && IsNull(v)) return std::nullopt;
    return ReadDouble(v, out);
  }
  *out = value;
  return std::nullopt;
}

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

inline Reject ReadInt(Value& v, int64_t* out) noexcept {
  simdjson::ondemand::json_type type;
  if (auto error = v.type().get(type)) return FromError(error);
  if (type != simdjson::ondemand::json_type::number) return RejectReason::kWrongType;
  if (auto error = v.get_int64().get(*out)) {
    // 201.0 or 2e2 is a number but not an integer: wrong type, unless it is a
    // numeral too large for 64 bits.
    if (error == simdjson::INCORRECT_TYPE) {
      double d;
      if (!v.get_double().get(d)) return RejectReason::kWrongType;
    }
    return detail::NumberError(v, error);
  }
  return std::nullopt;
}

inline Reject ReadTimestamp(Value& v, int64_t* out_us) noexcept {
  simdjson::ondemand::json_type type;
  if (auto error = v.type().get(type)) return FromError(error);
  if (type == simdjson::ondemand::json_type::string) {
    std::string_view text;
    bool is_null;
    if (auto reject = ReadStringFast(v, &text, &is_null)) return reject;
    if (!ParseRfc3339(text, out_us)) return RejectReason::kBadTimestamp;
    return std::nullopt;
  }
  if (type == simdjson::ondemand::json_type::number) {
    double seconds_or_millis;
    if (auto error = v.get_double().get(seconds_or_millis)) {
      const RejectReason reason = detail::NumberError(v, error);
      return reason == RejectReason::kOutOfRange ? RejectReason::kBadTimestamp : reason;
    }
    if (!EpochNumberToMicros(seconds_or_millis, out_us)) return RejectReason::kBadTimestamp;
    return std::nullopt;
  }
  return RejectReason::kWrongType;
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
