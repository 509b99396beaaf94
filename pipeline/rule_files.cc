#include "pipeline/rule_files.h"

#include <utility>

#include "base/file.h"

namespace novapulse {

absl::StatusOr<RuleSet> LoadRuleFiles(const std::vector<std::string>& paths,
                                      int64_t default_interval_ms) {
  RuleSet all;
  for (const std::string& path : paths) {
    absl::StatusOr<std::string> text = ReadRegularFile(path);
    if (!text.ok()) return text.status();
    absl::StatusOr<RuleSet> one = ParseRuleFile(*text, path, default_interval_ms);
    if (!one.ok()) return one.status();
    for (RuleGroupSpec& g : one->groups) all.groups.push_back(std::move(g));
  }
  return all;
}

}  // namespace novapulse
