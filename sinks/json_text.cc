#include "sinks/json_text.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "absl/time/time.h"
#include "base/json_escape.h"

namespace novapulse {
namespace {

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
  AppendJsonEscaped(s, out, JsonEscaping::kGo);
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
