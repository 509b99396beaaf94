#include "sinks/openmetrics.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string_view>

namespace novapulse {
namespace {

// The number helpers repeat sinks/exposition.cc's on purpose: the two
// formats disagree on how le values and integral doubles read, and each
// writer keeps its own rules in one place.

void AppendUint(std::string* out, uint64_t v) {
  char buf[24];
  out->append(buf, std::to_chars(buf, buf + sizeof(buf), v).ptr);
}

// Integral values below 1e16 as integers, others as the shortest text that
// reads back as the same double; OpenMetrics spells infinities "+Inf"/"-Inf".
void AppendDouble(std::string* out, double v) {
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

// Canonical float form for le: integral bounds carry ".0".
void AppendLe(std::string* out, double v) {
  const size_t start = out->size();
  AppendDouble(out, v);
  if (std::isfinite(v) && out->find_first_of(".eE", start) == std::string::npos) {
    out->append(".0");
  }
}

// OpenMetrics escapes backslash, newline and double quote in HELP and in
// label values alike.
void AppendEscaped(std::string* out, std::string_view s) {
  for (char c : s) {
    if (c == '\\' || c == '\n' || c == '"') {
      out->push_back('\\');
      out->push_back(c == '\n' ? 'n' : c);
    } else {
      out->push_back(c);
    }
  }
}

// `name="value",...` of one series, without braces; empty without labels.
void AppendLabels(std::string* out, const MetricDef& def, std::string_view key) {
  size_t start = 0;
  for (size_t l = 0; l < def.labels.size(); ++l) {
    if (start > key.size()) break;  // fewer values than labels
    size_t sep = key.find(kLabelSeparator, start);
    if (sep == std::string_view::npos) sep = key.size();
    if (l > 0) out->push_back(',');
    out->append(def.labels[l]);
    out->append("=\"");
    AppendEscaped(out, key.substr(start, sep - start));
    out->push_back('"');
    start = sep + 1;
  }
}

// `name suffix{labels} ` (no braces when there are no labels).
void AppendHead(std::string* out, std::string_view name, std::string_view suffix,
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

std::string_view TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kHistogram:
      return "histogram";
    case MetricType::kGauge:
    case MetricType::kComputed:
      return "gauge";
  }
  return "unknown";
}

// The MetricFamily name: a counter's without `_total`.
std::string_view FamilyName(const MetricDef& def) {
  constexpr std::string_view kTotal = "_total";
  std::string_view name = def.name;
  if (def.type == MetricType::kCounter && name.ends_with(kTotal)) {
    name.remove_suffix(kTotal.size());
  }
  return name;
}

}  // namespace

void WriteOpenMetricsText(const std::vector<FamilySnapshot>& families, std::string* out) {
  std::string labels;
  std::vector<std::string> le;
  for (const FamilySnapshot& f : families) {
    const MetricDef& def = *f.def;
    const std::string_view name = FamilyName(def);
    if (!def.help.empty()) {
      out->append("# HELP ");
      out->append(name);
      out->push_back(' ');
      AppendEscaped(out, def.help);
      out->push_back('\n');
    }
    out->append("# TYPE ");
    out->append(name);
    out->push_back(' ');
    out->append(TypeName(def.type));
    out->push_back('\n');
    if (def.type == MetricType::kHistogram) {
      le.clear();
      for (size_t b = 0; b <= def.buckets.size(); ++b) {
        std::string& bound = le.emplace_back("le=\"");
        AppendLe(&bound,
                 b < def.buckets.size() ? def.buckets[b] : std::numeric_limits<double>::infinity());
        bound.push_back('"');
      }
    }
    for (size_t s = 0; s < f.size(); ++s) {
      labels.clear();
      AppendLabels(&labels, def, f.keys[s]);
      switch (def.type) {
        case MetricType::kCounter:
          AppendHead(out, name, "_total", labels);
          AppendUint(out, f.Word(s, 0));
          out->push_back('\n');
          break;
        case MetricType::kGauge:
        case MetricType::kComputed:
          AppendHead(out, name, "", labels);
          AppendDouble(out, f.Gauge(s));
          out->push_back('\n');
          break;
        case MetricType::kHistogram: {
          std::string bucket_labels = labels;
          if (!bucket_labels.empty()) bucket_labels.push_back(',');
          uint64_t cumulative = 0;
          for (size_t b = 0; b < le.size(); ++b) {
            cumulative += f.Word(s, b);
            out->append(name);
            out->append("_bucket{");
            out->append(bucket_labels);
            out->append(le[b]);
            out->append("} ");
            AppendUint(out, cumulative);
            out->push_back('\n');
          }
          AppendHead(out, name, "_count", labels);
          AppendUint(out, cumulative);
          out->push_back('\n');
          AppendHead(out, name, "_sum", labels);
          AppendDouble(out, f.HistogramSum(s));
          out->push_back('\n');
          break;
        }
      }
    }
  }
  out->append("# EOF\n");
}

std::string RenderOpenMetricsText(const std::vector<FamilySnapshot>& families) {
  std::string text;
  WriteOpenMetricsText(families, &text);
  return text;
}

}  // namespace novapulse
