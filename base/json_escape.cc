#include "base/json_escape.h"

#include <simdjson.h>

#include <array>
#include <bit>
#include <cstdint>
#include <cstring>

namespace novapulse {
namespace {

constexpr char kHex[] = "0123456789abcdef";

// Eight bytes at a time: a mask with the high bit of each byte that needs a
// look set. Each term is exact up to its first hit (a borrow only runs on
// from a hit), so the lowest set bit is the first such byte.
static_assert(std::endian::native == std::endian::little, "the first byte is the low one");
constexpr uint64_t kOnes = 0x0101010101010101ULL;
constexpr uint64_t kHigh = 0x8080808080808080ULL;

constexpr uint64_t ZeroBytes(uint64_t w) { return (w - kOnes) & ~w & kHigh; }
constexpr uint64_t Bytes(uint64_t w, char c) {
  return ZeroBytes(w ^ (kOnes * static_cast<unsigned char>(c)));
}

// kChecked: the rest of the input is known to be valid UTF-8, so of the
// bytes from 0x80 only the first of U+2028 and U+2029 (E2) needs a look, and
// only for kGo.
template <JsonEscaping kEscaping, bool kChecked>
constexpr uint64_t NeedLook(uint64_t w) {
  uint64_t m = ((w - 0x20 * kOnes) & ~w & kHigh) | Bytes(w, '"') | Bytes(w, '\\');
  if constexpr (!kChecked) m |= w & kHigh;
  if constexpr (kEscaping == JsonEscaping::kGo) {
    m |= Bytes(w, '<') | Bytes(w, '>') | Bytes(w, '&');
    if constexpr (kChecked) m |= Bytes(w, '\xE2');
  }
  return m;
}

template <JsonEscaping kEscaping, bool kChecked>
constexpr bool NeedsLook(unsigned char c) {
  if (c < 0x20 || c == '"' || c == '\\') return true;
  if (c >= 0x80) return !kChecked || (kEscaping == JsonEscaping::kGo && c == 0xE2);
  return kEscaping == JsonEscaping::kGo && (c == '<' || c == '>' || c == '&');
}

// The first byte at or after `i` that needs a look, or `size`.
template <JsonEscaping kEscaping, bool kChecked>
size_t SkipPlain(const char* data, size_t i, size_t size) {
  for (; i + 8 <= size; i += 8) {
    uint64_t w;
    std::memcpy(&w, data + i, 8);
    const uint64_t m = NeedLook<kEscaping, kChecked>(w);
    if (m != 0) return i + static_cast<size_t>(std::countr_zero(m) / 8);
  }
  while (i < size && !NeedsLook<kEscaping, kChecked>(static_cast<unsigned char>(data[i]))) ++i;
  return i;
}

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

void AppendUnicodeEscape(unsigned code, std::string* out) {
  char text[6] = {'\\', 'u'};
  for (int k = 0; k < 4; ++k) text[2 + k] = kHex[(code >> (12 - 4 * k)) & 0xF];
  out->append(text, sizeof(text));
}

// JSON's two-character escapes (\" \\ \n \r \t) by the character after the
// backslash; 0 for the rest, written \u00XX as Go writes them.
constexpr std::array<char, 128> kShortEscapes = [] {
  std::array<char, 128> t{};
  t['"'] = '"';
  t['\\'] = '\\';
  t['\n'] = 'n';
  t['\r'] = 'r';
  t['\t'] = 't';
  return t;
}();

void AppendAsciiEscape(unsigned char c, std::string* out) {
  if (const char e = kShortEscapes[c]; e != 0) {
    const char text[2] = {'\\', e};
    out->append(text, sizeof(text));
  } else {
    AppendUnicodeEscape(c, out);
  }
}

// U+2028 LINE SEPARATOR and U+2029 PARAGRAPH SEPARATOR: E2 80 A8/A9.
bool IsSeparator(const char* p) {
  return static_cast<unsigned char>(p[0]) == 0xE2 && static_cast<unsigned char>(p[1]) == 0x80 &&
         (static_cast<unsigned char>(p[2]) & 0xFE) == 0xA8;
}

// Escapes s[i...] after the plain run s[plain, i).
template <JsonEscaping kEscaping, bool kChecked>
void Append(std::string_view s, size_t plain, size_t i, std::string* out) {
  const char* const data = s.data();
  const size_t size = s.size();
  bool check_rest = !kChecked;
  while ((i = SkipPlain<kEscaping, kChecked>(data, i, size)) < size) {
    const auto c = static_cast<unsigned char>(data[i]);
    if (c < 0x80) {
      out->append(data + plain, i - plain);
      AppendAsciiEscape(c, out);
      plain = ++i;
      continue;
    }
    if constexpr (kChecked) {
      // E2 in kGo; valid UTF-8, so two more bytes follow.
      if (!IsSeparator(data + i)) {
        ++i;
        continue;
      }
      out->append(data + plain, i - plain);
      AppendUnicodeEscape(0x2028 | (static_cast<unsigned char>(data[i + 2]) & 1), out);
      i += 3;
      plain = i;
      continue;
    } else {
      // Text that is UTF-8 from its first non-ASCII byte on (nearly all) is
      // checked at once, by SIMD, and then copied in runs; else byte by byte.
      if (check_rest) {
        check_rest = false;
        if (simdjson::validate_utf8(data + i, size - i)) {
          Append<kEscaping, true>(s, plain, i, out);
          return;
        }
      }
      const size_t n = Utf8SequenceLength(s, i);
      const bool separator = kEscaping == JsonEscaping::kGo && n == 3 && IsSeparator(data + i);
      if (n != 0 && !separator) {
        i += n;
        continue;
      }
      out->append(data + plain, i - plain);
      if (n == 0) {
        out->append("\\ufffd");
        ++i;
      } else {
        AppendUnicodeEscape(0x2028 | (static_cast<unsigned char>(data[i + 2]) & 1), out);
        i += n;
      }
      plain = i;
    }
  }
  out->append(data + plain, size - plain);
}

}  // namespace

void AppendJsonEscaped(std::string_view s, std::string* out, JsonEscaping escaping) {
  if (escaping == JsonEscaping::kGo) {
    Append<JsonEscaping::kGo, false>(s, 0, 0, out);
  } else {
    Append<JsonEscaping::kPlain, false>(s, 0, 0, out);
  }
}

}  // namespace novapulse
