#include "sinks/exposition.h"

#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string_view>

#include "sinks/text_format.h"

namespace novapulse {
namespace {

prometheus::MetricType ToPrometheusType(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
    case MetricType::kComputedCounter:
      return prometheus::MetricType::Counter;
    case MetricType::kHistogram:
      return prometheus::MetricType::Histogram;
    case MetricType::kGauge:
    case MetricType::kComputed:
      return prometheus::MetricType::Gauge;
  }
  return prometheus::MetricType::Untyped;
}

using text::AppendDouble;
using text::AppendHead;
using text::AppendLabels;
using text::AppendUint;

// A rough size of the text, so the output string grows once or twice, not
// per line.
size_t EstimateBytes(const std::vector<FamilySnapshot>& families) {
  size_t bytes = 0;
  for (const FamilySnapshot& f : families) {
    const MetricDef& def = *f.def;
    size_t label_names = 0;
    for (std::string_view l : def.labels) label_names += l.size() + 4;
    const size_t lines = def.type == MetricType::kHistogram ? def.buckets.size() + 3 : 1;
    bytes += def.name.size() + def.help.size() + 32;
    for (std::string_view key : f.keys) {
      bytes += lines * (def.name.size() + key.size() + label_names + 32);
    }
  }
  return bytes;
}

}  // namespace

void WritePrometheusText(const std::vector<FamilySnapshot>& families, std::string* out) {
  out->reserve(out->size() + EstimateBytes(families));
  std::string labels;
  std::vector<std::string> le;
  for (const FamilySnapshot& f : families) {
    const MetricDef& def = *f.def;
    text::AppendFamilyHead(out, def.name, def, {}, &le);
    for (size_t s = 0; s < f.size(); ++s) {
      labels.clear();
      AppendLabels(&labels, def, f.keys[s]);
      switch (def.type) {
        case MetricType::kCounter:
          AppendHead(out, def.name, "", labels);
          AppendUint(out, f.Word(s, 0));
          out->push_back('\n');
          break;
        case MetricType::kGauge:
        case MetricType::kComputed:
        case MetricType::kComputedCounter:
          AppendHead(out, def.name, "", labels);
          AppendDouble(out, f.Gauge(s));
          out->push_back('\n');
          break;
        case MetricType::kHistogram: {
          const uint64_t count = f.HistogramCount(s);
          AppendHead(out, def.name, "_count", labels);
          AppendUint(out, count);
          out->push_back('\n');
          AppendHead(out, def.name, "_sum", labels);
          AppendDouble(out, f.HistogramSum(s));
          out->push_back('\n');
          if (!labels.empty()) labels.push_back(',');
          uint64_t cumulative = 0;
          for (size_t b = 0; b < le.size(); ++b) {
            cumulative += f.Word(s, b);
            out->append(def.name);
            out->append("_bucket{");
            out->append(labels);
            out->append(le[b]);
            out->append("} ");
            AppendUint(out, cumulative);
            out->push_back('\n');
          }
          break;
        }
      }
    }
  }
}

std::vector<prometheus::MetricFamily> ToMetricFamilies(
    const std::vector<FamilySnapshot>& families) {
  std::vector<prometheus::MetricFamily> out;
  out.reserve(families.size());
  for (const FamilySnapshot& f : families) {
    const MetricDef& def = *f.def;
    prometheus::MetricFamily mf;
    mf.name = std::string(def.name);
    mf.help = std::string(def.help);
    mf.type = ToPrometheusType(def.type);
    mf.metric.reserve(f.size());
    for (size_t s = 0; s < f.size(); ++s) {
      prometheus::ClientMetric cm;
      if (!def.labels.empty()) {
        const std::vector<std::string_view> values = SplitKey(f.keys[s]);
        for (size_t l = 0; l < def.labels.size() && l < values.size(); ++l) {
          cm.label.push_back({std::string(def.labels[l]), std::string(values[l])});
        }
      }
      switch (def.type) {
        case MetricType::kCounter:
          cm.counter.value = static_cast<double>(f.Word(s, 0));
          break;
        case MetricType::kComputedCounter:
          cm.counter.value = f.Gauge(s);
          break;
        case MetricType::kGauge:
        case MetricType::kComputed:
          cm.gauge.value = f.Gauge(s);
          break;
        case MetricType::kHistogram: {
          uint64_t cumulative = 0;
          for (size_t b = 0; b <= def.buckets.size(); ++b) {
            cumulative += f.Word(s, b);
            cm.histogram.bucket.push_back(
                {cumulative, b < def.buckets.size() ? def.buckets[b]
                                                    : std::numeric_limits<double>::infinity()});
          }
          cm.histogram.sample_count = cumulative;
          cm.histogram.sample_sum = f.HistogramSum(s);
          break;
        }
      }
      mf.metric.push_back(std::move(cm));
    }
    out.push_back(std::move(mf));
  }
  return out;
}

void WritePrometheusText(const std::vector<FamilySnapshot>& families, std::ostream& out) {
  std::string text;
  WritePrometheusText(families, &text);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
}

std::string RenderPrometheusText(const std::vector<FamilySnapshot>& families) {
  std::string text;
  WritePrometheusText(families, &text);
  return text;
}

void WriteRuleSeries(const std::vector<std::pair<promql::Labels, double>>& series,
                     std::string* out) {
  std::vector<const std::pair<promql::Labels, double>*> sorted;
  auto name_of = [](const promql::Labels& labels) -> std::string_view {
    for (const promql::Label& l : labels) {
      if (l.name == "__name__") return l.value;
    }
    return {};
  };
  sorted.reserve(series.size());
  for (const auto& s : series) sorted.push_back(&s);
  // By name, then labels: the same outputs always render the same text.
  std::sort(sorted.begin(), sorted.end(), [&](auto* a, auto* b) {
    const std::string_view na = name_of(a->first);
    const std::string_view nb = name_of(b->first);
    return na != nb ? na < nb : a->first < b->first;
  });
  std::string_view current;
  for (const auto* s : sorted) {
    const std::string_view name = name_of(s->first);
    if (name.empty()) continue;
    if (name != current) {
      out->append("# TYPE ");
      out->append(name);
      out->append(" gauge\n");
      current = name;
    }
    out->append(name);
    bool first = true;
    for (const promql::Label& l : s->first) {
      if (l.name == "__name__") continue;
      out->push_back(first ? '{' : ',');
      first = false;
      out->append(l.name);
      out->append("=\"");
      text::AppendEscaped(out, l.value, /*quote=*/true);
      out->push_back('"');
    }
    if (!first) out->push_back('}');
    out->push_back(' ');
    text::AppendDouble(out, s->second);
    out->push_back('\n');
  }
}

}  // namespace novapulse
