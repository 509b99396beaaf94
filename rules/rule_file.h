// Prometheus rule files (rulefmt, strictly): groups of recording and alerting
// rules, parsed from text with their PromQL and templates. Pure; the files
// are read by pipeline/rule_files.h.
//   absl::StatusOr<RuleSet> rules = ParseRuleFile(text, "novagift.yml");
#ifndef NOVAPULSE_RULES_RULE_FILE_H_
#define NOVAPULSE_RULES_RULE_FILE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "rules/alert_template.h"
#include "rules/promql.h"

namespace novapulse {

struct RuleSpec {
  bool alert = false;
  std::string name;  // the record or alert name
  std::string expr_text;
  promql::ExprPtr expr;
  int64_t for_ms = 0;
  int64_t keep_firing_for_ms = 0;
  std::vector<std::pair<std::string, AlertTemplate>> labels;       // sorted by name
  std::vector<std::pair<std::string, AlertTemplate>> annotations;  // sorted by name
  std::vector<std::pair<std::string, std::string>> raw_labels;     // as written
  std::vector<std::pair<std::string, std::string>> raw_annotations;
  std::string file;
  int line = 0;
};

struct RuleGroupSpec {
  std::string name;
  std::string file;
  int64_t interval_ms = 0;
  int limit = 0;
  std::vector<RuleSpec> rules;
};

struct RuleSet {
  std::vector<RuleGroupSpec> groups;
};

inline constexpr int64_t kDefaultRuleIntervalMs = 15'000;

// Parses a Prometheus rule file's text; `file` names it in errors. Every
// error names FILE:LINE:COL and what is wrong, including PromQL outside
// novapulse's subset. An empty file has no groups, as in Prometheus.
// (pipeline/rule_files.h reads the files.)
absl::StatusOr<RuleSet> ParseRuleFile(std::string_view text, const std::string& file,
                                      int64_t default_interval_ms = kDefaultRuleIntervalMs);

}  // namespace novapulse

#endif  // NOVAPULSE_RULES_RULE_FILE_H_
