#include "sinks/openmetrics.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string_view>

#include "sinks/text_format.h"

namespace novapulse {
namespace {

using text::AppendDouble;
using text::AppendHead;
using text::AppendLabels;
using text::AppendUint;

// The MetricFamily name: a counter's without `_total`.
std::string_view FamilyName(const MetricDef& def) {
  constexpr std::string_view kTotal = "_total";
  std::string_view name = def.name;
  if ((def.type == MetricType::kCounter || def.type == MetricType::kComputedCounter) &&
      name.ends_with(kTotal)) {
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
    text::AppendFamilyHead(
        out, name, def, {.escape_quotes_in_help = true, .append_le = text::AppendCanonicalLe}, &le);
    for (size_t s = 0; s < f.size(); ++s) {
      labels.clear();
      AppendLabels(&labels, def, f.keys[s]);
      switch (def.type) {
        case MetricType::kCounter:
          AppendHead(out, name, "_total", labels);
          AppendUint(out, f.Word(s, 0));
          out->push_back('\n');
          break;
        case MetricType::kComputedCounter:
          AppendHead(out, name, "_total", labels);
          AppendDouble(out, f.Gauge(s));
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
