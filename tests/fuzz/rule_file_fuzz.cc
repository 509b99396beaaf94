// libFuzzer target: Prometheus rule files. The input is read as a rule file;
// it must load or fail with a "FILE:LINE:COL: reason" error, never crash or
// hang; a file that loads must build a rule engine whose evaluation over an
// empty store succeeds or records an error per rule.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "rules/promql.h"
#include "rules/rule_engine.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 16384) return 0;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<novapulse::RuleSet> set = novapulse::ParseRuleFile(text, "fuzz.yml");
  if (!set.ok()) {
    FUZZ_CHECK(std::string(set.status().message()).starts_with("fuzz.yml:"));
    return 0;
  }
  novapulse::promql::SeriesStore store;
  novapulse::RuleEngine engine(*std::move(set), &store);
  for (int64_t t = 15'000; t <= 60'000; t += 15'000) engine.EvaluateDue(t);
  (void)engine.Snapshot();
  return 0;
}
