#include "parsers/route.h"

namespace novapulse {
namespace {

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsHex(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

bool IsUuid(std::string_view s) {
  if (s.size() != 36) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash ? s[i] != '-' : !IsHex(s[i])) return false;
  }
  return true;
}

}  // namespace

bool IsIdSegment(std::string_view s) noexcept {
  if (s.empty()) return false;
  if (s.size() >= 48) return true;
  bool all_digits = true, all_hex = true, token = true, has_digit = false;
  for (char c : s) {
    const bool digit = IsDigit(c);
    has_digit |= digit;
    all_digits &= digit;
    all_hex &= IsHex(c);
    token &= digit || IsAlpha(c) || c == '-' || c == '_';
  }
  if (all_digits) return true;
  if (s.size() >= 16 && all_hex) return true;
  if (IsUuid(s)) return true;
  return s.size() >= 16 && token && has_digit;
}

void NormaliseRoute(std::string_view path, std::string* out) {
  out->clear();
  if (const size_t cut = path.find_first_of("?#"); cut != std::string_view::npos) {
    path = path.substr(0, cut);
  }
  size_t pos = 0;
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    if (slash == std::string_view::npos) slash = path.size();
    const std::string_view segment = path.substr(pos, slash - pos);
    if (IsIdSegment(segment)) {
      out->append(":id");
    } else {
      out->append(segment);
    }
    if (slash == path.size()) break;
    out->push_back('/');
    pos = slash + 1;
  }
}

}  // namespace novapulse
