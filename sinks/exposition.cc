#include "sinks/exposition.h"

#include <prometheus/text_serializer.h>

#include <limits>
#include <sstream>

namespace novapulse {
namespace {

prometheus::MetricType ToPrometheusType(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return prometheus::MetricType::Counter;
    case MetricType::kHistogram:
      return prometheus::MetricType::Histogram;
    case MetricType::kGauge:
    case MetricType::kComputed:
      return prometheus::MetricType::Gauge;
  }
  return prometheus::MetricType::Untyped;
}

}  // namespace

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
  prometheus::TextSerializer().Serialize(out, ToMetricFamilies(families));
}

std::string RenderPrometheusText(const std::vector<FamilySnapshot>& families) {
  std::ostringstream out;
  WritePrometheusText(families, out);
  return out.str();
}

}  // namespace novapulse
