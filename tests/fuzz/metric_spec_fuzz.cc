// libFuzzer target: the metric spec loader. The bytes are a spec's YAML
// text; ParseMetricSpec must return a spec whose indexes all point inside it,
// or an error naming "fuzz.yaml" with a line and column; never crash.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/prom_names.h"
#include "spec/metric_spec.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

void CheckCondition(const novapulse::spec::Condition& c, size_t fields) {
  FUZZ_CHECK(c.field < static_cast<int>(fields));
  for (const novapulse::spec::Condition& child : c.children) CheckCondition(child, fields);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using novapulse::spec::MetricSpecSet;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<MetricSpecSet> spec = novapulse::spec::ParseMetricSpec(text, "fuzz.yaml");
  if (!spec.ok()) {
    FUZZ_CHECK(std::string(spec.status().message()).starts_with("fuzz.yaml:"));
    return 0;
  }
  FUZZ_CHECK(!spec->inputs.empty());
  for (const novapulse::spec::InputSpec& in : spec->inputs) {
    const int n = static_cast<int>(in.fields.size());
    FUZZ_CHECK(in.time_field >= 0 && in.time_field < n);
    for (const novapulse::spec::FieldSpec& f : in.fields) {
      FUZZ_CHECK(f.fallback < n);
      FUZZ_CHECK(!f.path.empty());
      CheckCondition(f.required_when, in.fields.size());
    }
  }
  for (const novapulse::spec::MetricSpec& m : spec->metrics) {
    FUZZ_CHECK(m.input >= 0 && m.input < static_cast<int>(spec->inputs.size()));
    const size_t fields = spec->inputs[m.input].fields.size();
    CheckCondition(m.when, fields);
    for (const novapulse::spec::LabelSpec& l : m.labels) {
      FUZZ_CHECK(l.field < static_cast<int>(fields));
    }
    FUZZ_CHECK(novapulse::IsMetricName(m.name));
  }
  return 0;
}
