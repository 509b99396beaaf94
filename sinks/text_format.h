// Text building blocks shared by the Prometheus and OpenMetrics writers.
// Internal to sinks/. Pure functions; safe from any thread.
#ifndef NOVAPULSE_SINKS_TEXT_FORMAT_H_
#define NOVAPULSE_SINKS_TEXT_FORMAT_H_

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "aggregators/metric_def.h"

namespace novapulse::text {

inline void AppendUint(std::string* out, uint64_t v) {
  char buf[24];
  out->append(buf, std::to_chars(buf, buf + sizeof(buf), v).ptr);
}

// Integral values below 1e16 print as integers, as prometheus-cpp's
// 16-digit "%g" does ("1000000", not shortest "1e+06"); everything else as the
// shortest text that reads back as the same double. Both formats spell the
// infinities "+Inf"/"-Inf" and not-a-number "NaN".
inline void AppendDouble(std::string* out, double v) {
  if (std::isnan(v)) {
    out->append("NaN");
  } else if (std::isinf(v)) {
    out->append(v < 0 ? "-Inf" : "+Inf");
  } else if (std::fabs(v) < 1e16 && v == std::trunc(v)) {
    char buf[24];
    out->append(buf, std::to_chars(buf, buf + sizeof(buf), static_cast<int64_t>(v)).ptr);
  } else {
    char buf[32];
    out->append(buf, std::to_chars(buf, buf + sizeof(buf), v).ptr);
  }
}

// A histogram bound as an `le` label value in OpenMetrics' canonical float
// form: integral bounds carry ".0" ("1.0", not "1"), +Inf is "+Inf".
// Prometheus 2.x stores le strings as written, so every writer that feeds the
// same Prometheus must spell a bound the same way.
inline void AppendCanonicalLe(std::string* out, double v) {
  const size_t start = out->size();
  AppendDouble(out, v);
  if (std::isfinite(v) && out->find_first_of(".eE", start) == std::string::npos) {
    out->append(".0");
  }
}

// Escapes backslash and newline, and double quote when `quote`.
inline void AppendEscaped(std::string* out, std::string_view s, bool quote) {
  for (char c : s) {
    if (c == '\\' || c == '\n' || (quote && c == '"')) {
      out->push_back('\\');
      out->push_back(c == '\n' ? 'n' : c);
    } else {
      out->push_back(c);
    }
  }
}

// `name="value",...` of one series, without braces; empty without labels.
inline void AppendLabels(std::string* out, const MetricDef& def, std::string_view key) {
  size_t start = 0;
  for (size_t l = 0; l < def.labels.size(); ++l) {
    if (start > key.size()) break;  // fewer values than labels
    size_t sep = key.find(kLabelSeparator, start);
    if (sep == std::string_view::npos) sep = key.size();
    if (l > 0) out->push_back(',');
    out->append(def.labels[l]);
    out->append("=\"");
    AppendEscaped(out, key.substr(start, sep - start), /*quote=*/true);
    out->push_back('"');
    start = sep + 1;
  }
}

// `name suffix{labels} ` (no braces when there are no labels).
inline void AppendHead(std::string* out, std::string_view name, std::string_view suffix,
                       std::string_view labels) {
  out->append(name);
  out->append(suffix);
  if (!labels.empty()) {
    out->push_back('{');
    out->append(labels);
    out->push_back('}');
  }
  out->push_back(' ');
}

inline std::string_view TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
    case MetricType::kComputedCounter:
      return "counter";
    case MetricType::kHistogram:
      return "histogram";
    case MetricType::kGauge:
    case MetricType::kComputed:
      return "gauge";
  }
  return "untyped";
}

// How the two text formats differ in a family's head.
struct HeadStyle {
  bool escape_quotes_in_help = false;  // OpenMetrics escapes '"' in HELP too
  void (*append_le)(std::string* out, double bound) = AppendDouble;
};

// A family's "# HELP" (when it has help) and "# TYPE" lines under `name`,
// and for a histogram each bucket's le="..." label (+Inf last) in *le.
inline void AppendFamilyHead(std::string* out, std::string_view name, const MetricDef& def,
                             const HeadStyle& style, std::vector<std::string>* le) {
  if (!def.help.empty()) {
    out->append("# HELP ");
    out->append(name);
    out->push_back(' ');
    AppendEscaped(out, def.help, style.escape_quotes_in_help);
    out->push_back('\n');
  }
  out->append("# TYPE ");
  out->append(name);
  out->push_back(' ');
  out->append(TypeName(def.type));
  out->push_back('\n');
  if (def.type != MetricType::kHistogram) return;
  le->clear();
  for (size_t b = 0; b <= def.buckets.size(); ++b) {
    std::string& bound = le->emplace_back("le=\"");
    style.append_le(
        &bound, b < def.buckets.size() ? def.buckets[b] : std::numeric_limits<double>::infinity());
    bound.push_back('"');
  }
}

}  // namespace novapulse::text

#endif  // NOVAPULSE_SINKS_TEXT_FORMAT_H_
