#include "aggregators/metric_source.h"

#include <bit>
#include <cstdint>
#include <utility>

namespace novapulse {

FamilySnapshot& MetricFamilies::Start(const MetricDef& def) {
  FamilySnapshot& family = families_.emplace_back();
  family.def = &def;
  return family;
}

void MetricFamilies::Add(FamilySnapshot& family, std::initializer_list<std::string_view> labels,
                         double value) {
  std::string& key = keys_.emplace_back();
  BuildKey(&key, labels);
  family.keys.push_back(key);
  family.words.push_back(std::bit_cast<uint64_t>(value));
}

void MetricFamilies::AddSingle(const MetricDef& def, double value) {
  FamilySnapshot& family = Start(def);
  family.keys.push_back("");
  family.words.push_back(std::bit_cast<uint64_t>(value));
}

void MetricFamilies::Append(std::vector<FamilySnapshot> families) {
  for (FamilySnapshot& f : families) families_.push_back(std::move(f));
}

MetricFamilies MetricRegistry::Collect() const {
  MetricFamilies out;
  for (MetricSource* source : sources_) source->CollectMetrics(&out);
  return out;
}

}  // namespace novapulse
