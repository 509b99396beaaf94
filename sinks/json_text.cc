#include "sinks/json_text.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "absl/time/time.h"

namespace novapulse {
namespace {

constexpr char kHex[] = "0123456789abcdef";

// Length of the valid UTF-8 sequence starting at s[i], or 0 when the bytes
// there are not one (overlong, surrogate, beyond U+10FFFF, or truncated).
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte(i);
  size_t n = 0;
  unsigned char lo = 0x80;
  unsigned char hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  }
  return n;
}

void AppendUnicodeEscape(std::string* out, unsigned code) {
  out->append("\\u");
  for (int shift = 12; shift >= 0; shift -= 4) out->push_back(kHex[(code >> shift) & 0xF]);
}

template <typename Pairs>
void AppendSortedObject(std::string* out, const Pairs& pairs) {
  std::vector<std::pair<std::string_view, std::string_view>> sorted;
  sorted.reserve(pairs.size());
  for (const auto& [name, value] : pairs) sorted.emplace_back(name, value);
  std::sort(sorted.begin(), sorted.end());
  out->push_back('{');
  for (size_t i = 0; i < sorted.size(); ++i) {
    if (i > 0) out->push_back(',');
    AppendJsonString(out, sorted[i].first);
    out->push_back(':');
    AppendJsonString(out, sorted[i].second);
  }
  out->push_back('}');
}

}  // namespace

void AppendJsonString(std::string* out, std::string_view s) {
  out->push_back('"');
  for (size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"':
          out->append("\\\"");
          break;
        case '\\':
          out->append("\\\\");
          break;
        case '\n':
          out->append("\\n");
          break;
        case '\r':
          out->append("\\r");
          break;
        case '\t':
          out->append("\\t");
          break;
        case '<':
        case '>':
        case '&':
          AppendUnicodeEscape(out, c);
          break;
        default:
          if (c < 0x20) {
            AppendUnicodeEscape(out, c);
          } else {
            out->push_back(static_cast<char>(c));
          }
      }
      ++i;
      continue;
    }
    const size_t n = Utf8SequenceLength(s, i);
    if (n == 0) {
      out->append("\\ufffd");
      ++i;
      continue;
    }
    // U+2028 LINE SEPARATOR and U+2029 PARAGRAPH SEPARATOR: E2 80 A8/A9.
    if (n == 3 && c == 0xE2 && static_cast<unsigned char>(s[i + 1]) == 0x80 &&
        (static_cast<unsigned char>(s[i + 2]) & 0xFE) == 0xA8) {
      AppendUnicodeEscape(out, 0x2028 | (static_cast<unsigned char>(s[i + 2]) & 1));
    } else {
      out->append(s.substr(i, n));
    }
    i += n;
  }
  out->push_back('"');
}

void AppendJsonObject(std::string* out, const promql::Labels& labels) {
  std::vector<std::pair<std::string_view, std::string_view>> pairs;
  pairs.reserve(labels.size());
  for (const promql::Label& l : labels) pairs.emplace_back(l.name, l.value);
  AppendSortedObject(out, pairs);
}

void AppendJsonObject(std::string* out,
                      const std::vector<std::pair<std::string, std::string>>& pairs) {
  AppendSortedObject(out, pairs);
}

void AppendJsonNumber(std::string* out, double v) {
  if (!std::isfinite(v)) v = 0;
  char buf[64];
  const double abs = std::fabs(v);
  const bool exponent = abs != 0 && (abs < 1e-6 || abs >= 1e21);
  const auto [end, ec] =
      std::to_chars(buf, buf + sizeof(buf), v,
                    exponent ? std::chars_format::scientific : std::chars_format::fixed);
  std::string_view text(buf, ec == std::errc() ? static_cast<size_t>(end - buf) : 0);
  if (exponent && text.size() >= 4 && text[text.size() - 4] == 'e' &&
      text[text.size() - 3] == '-' && text[text.size() - 2] == '0') {
    // Go writes 1e-7, not 1e-07.
    out->append(text.substr(0, text.size() - 2));
    out->push_back(text.back());
    return;
  }
  out->append(text);
}

std::string GoExponentFloat(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific);
  return ec == std::errc() ? std::string(buf, end) : "NaN";
}

void AppendJsonTime(std::string* out, int64_t ms) {
  out->push_back('"');
  out->append(
      absl::FormatTime("%Y-%m-%dT%H:%M:%E*SZ", absl::FromUnixMillis(ms), absl::UTCTimeZone()));
  out->push_back('"');
}

void AppendJsonTimeOrZero(std::string* out, int64_t ms) {
  if (ms == 0) {
    out->append("\"0001-01-01T00:00:00Z\"");
    return;
  }
  AppendJsonTime(out, ms);
}

}  // namespace novapulse
