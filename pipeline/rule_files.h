// Reads Prometheus rule files from disk into one RuleSet: the file side of
// rules/, whose parser takes text.
//   absl::StatusOr<RuleSet> rules = LoadRuleFiles({"configs/alerts/novagift.yml"});
#ifndef NOVAPULSE_PIPELINE_RULE_FILES_H_
#define NOVAPULSE_PIPELINE_RULE_FILES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "rules/rule_file.h"

namespace novapulse {

// Loads the files in order, their groups in one RuleSet. Errors are
// ParseRuleFile's; a path that cannot be opened or is not a regular file (a
// directory) is an error naming it.
absl::StatusOr<RuleSet> LoadRuleFiles(const std::vector<std::string>& paths,
                                      int64_t default_interval_ms = kDefaultRuleIntervalMs);

}  // namespace novapulse

#endif  // NOVAPULSE_PIPELINE_RULE_FILES_H_
