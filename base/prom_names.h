// Prometheus's name grammar: metric names [a-zA-Z_:][a-zA-Z0-9_:]*, label
// names [a-zA-Z_][a-zA-Z0-9_]* (ASCII only, whatever the locale).
//   if (!IsLabelName(key)) return Error("not a label name");
#ifndef NOVAPULSE_BASE_PROM_NAMES_H_
#define NOVAPULSE_BASE_PROM_NAMES_H_

#include <cstddef>
#include <string_view>

namespace novapulse {

namespace detail {
constexpr bool IsPromName(std::string_view s, bool colon) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool first =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
    if (!first && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}
}  // namespace detail

[[nodiscard]] constexpr bool IsMetricName(std::string_view s) {
  return detail::IsPromName(s, true);
}
[[nodiscard]] constexpr bool IsLabelName(std::string_view s) {
  return detail::IsPromName(s, false);
}

static_assert(IsMetricName("http_requests_total") && IsMetricName("job:rate5m"));
static_assert(!IsMetricName("") && !IsMetricName("1x") && !IsLabelName("a:b"));

}  // namespace novapulse

#endif  // NOVAPULSE_BASE_PROM_NAMES_H_
