#include "parsers/event_time_sniff.h"

#include <cstdlib>
#include <cstring>
#include <string>

#include "base/time_math.h"
#include "parsers/timestamp.h"

namespace novapulse {
namespace {

// The value of the top-level-looking "ts" member of one line.
bool LineEventTime(std::string_view line, int64_t* ms) {
  size_t at = 0;
  while ((at = line.find("\"ts\"", at)) != std::string_view::npos) {
    size_t i = at + 4;
    at = i;
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    if (i >= line.size() || line[i] != ':') continue;
    ++i;
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    if (i >= line.size()) return false;
    int64_t us = 0;
    if (line[i] == '"') {
      const size_t end = line.find('"', i + 1);
      if (end == std::string_view::npos) return false;
      if (!ParseRfc3339(line.substr(i + 1, end - i - 1), &us)) return false;
    } else {
      size_t end = i;
      while (end < line.size() && std::strchr("0123456789.eE+-", line[end]) != nullptr) ++end;
      char* parsed_end = nullptr;
      const std::string number(line.substr(i, end - i));
      const double v = std::strtod(number.c_str(), &parsed_end);
      if (number.empty() || parsed_end != number.c_str() + number.size()) return false;
      if (!EpochNumberToMicros(v, &us)) return false;
    }
    *ms = FloorDiv(us, 1000);
    return true;
  }
  return false;
}

}  // namespace

bool FirstLineEventTime(std::string_view text, int64_t* ms) {
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    if (LineEventTime(text.substr(start, end - start), ms)) return true;
    start = end + 1;
  }
  return false;
}

bool LastLineEventTime(std::string_view text, int64_t* ms) {
  size_t end = text.size();
  while (end > 0) {
    const size_t nl = end > 1 ? text.rfind('\n', end - 2) : std::string_view::npos;
    const size_t start = nl == std::string_view::npos ? 0 : nl + 1;
    if (LineEventTime(text.substr(start, end - start), ms)) return true;
    if (start == 0) break;
    end = start;
  }
  return false;
}

}  // namespace novapulse
