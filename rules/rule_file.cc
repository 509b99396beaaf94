// Rule file loading (Prometheus's rulefmt, strictly).
#include "rules/rule_file.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <set>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/duration.h"
#include "base/prom_names.h"

namespace novapulse {
namespace {

class Loader {
 public:
  Loader(std::string_view text, const std::string& file) : text_(text), file_(file) {
    std::string line;
    std::istringstream in{std::string(text)};
    while (std::getline(in, line)) lines_.push_back(line);
  }

  absl::StatusOr<RuleSet> Load(int64_t default_interval_ms) {
    // yaml-cpp throws on a conversion the file's shape does not allow (a
    // mapping where a key or name should be): an error at its position, never
    // an exception out of the loader.
    try {
      return LoadOrThrow(default_interval_ms);
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(
          absl::StrCat(file_, ":", e.mark.line + 1, ":", e.mark.column + 1,
                       ": expected a plain string here (", e.msg, ")"));
    }
  }

 private:
  absl::StatusOr<RuleSet> LoadOrThrow(int64_t default_interval_ms) {
    YAML::Node root;
    try {
      root = YAML::Load(std::string(text_));
    } catch (const YAML::Exception& e) {
      return absl::InvalidArgumentError(
          absl::StrCat(file_, ":", e.mark.line + 1, ":", e.mark.column + 1, ": ", e.msg));
    }
    RuleSet set;
    if (!root || root.IsNull()) return set;  // an empty file has no groups
    if (!root.IsMap()) return Error(root.Mark(), "expected a mapping with 'groups'");
    for (const auto& kv : root) {
      const std::string key = kv.first.as<std::string>();
      if (key != "groups") return Error(kv.first.Mark(), "unknown field '" + key + "'");
    }
    const YAML::Node groups = root["groups"];
    if (!groups || groups.IsNull()) return set;
    if (!groups.IsSequence()) return Error(groups.Mark(), "'groups' must be a list");
    std::set<std::string> names;
    for (const YAML::Node& g : groups) {
      RuleGroupSpec group;
      group.file = file_;
      group.interval_ms = default_interval_ms;
      if (!g.IsMap()) return Error(g.Mark(), "a group must be a mapping");
      for (const auto& kv : g) {
        const std::string key = kv.first.as<std::string>();
        const YAML::Node& v = kv.second;
        if (key == "name") {
          if (!v.IsScalar() || v.Scalar().empty()) return Error(v.Mark(), "group name must be set");
          group.name = v.Scalar();
        } else if (key == "interval") {
          if (!v.IsScalar() || !ParseDuration(v.Scalar(), &group.interval_ms) ||
              group.interval_ms <= 0) {
            return Error(v.Mark(), "interval must be a positive duration like 15s or 1m");
          }
        } else if (key == "limit") {
          int limit = 0;
          if (!v.IsScalar() ||
              std::from_chars(v.Scalar().data(), v.Scalar().data() + v.Scalar().size(), limit).ec !=
                  std::errc() ||
              limit < 0) {
            return Error(v.Mark(), "limit must be a non-negative integer");
          }
          group.limit = limit;
        } else if (key == "rules") {
          // Below.
        } else {
          return Error(kv.first.Mark(), "unknown group field '" + key + "'");
        }
      }
      if (group.name.empty()) return Error(g.Mark(), "group name must be set");
      if (!names.insert(group.name).second) {
        return Error(g["name"].Mark(), "group name '" + group.name + "' is repeated in the file");
      }
      const YAML::Node rules = g["rules"];
      if (rules && !rules.IsNull()) {
        if (!rules.IsSequence()) return Error(rules.Mark(), "'rules' must be a list");
        for (const YAML::Node& r : rules) {
          absl::StatusOr<RuleSpec> rule = LoadRule(r);
          if (!rule.ok()) return rule.status();
          group.rules.push_back(*std::move(rule));
        }
      }
      set.groups.push_back(std::move(group));
    }
    return set;
  }

  absl::Status Error(const YAML::Mark& mark, std::string_view message) const {
    return absl::InvalidArgumentError(
        absl::StrCat(file_, ":", mark.line + 1, ":", mark.column + 1, ": ", std::string(message)));
  }

  // Maps "L:C: message" of an expression parse error to the file position.
  absl::Status ExprError(const YAML::Node& node, std::string_view message) const {
    int line = 1;
    int col = 1;
    std::string_view rest = message;
    auto number = [&rest](int* out) {
      const auto r = std::from_chars(rest.data(), rest.data() + rest.size(), *out);
      if (r.ec != std::errc() || r.ptr == rest.data() + rest.size() || *r.ptr != ':') return false;
      rest.remove_prefix(static_cast<size_t>(r.ptr - rest.data()) + 1);
      return true;
    };
    std::string_view text = message;
    if (number(&line) && number(&col)) {
      text = rest;
      while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
    }
    const YAML::Mark mark = node.Mark();
    int file_line = mark.line + 1;
    int file_col = mark.column + 1;
    const std::string& src = mark.line >= 0 && static_cast<size_t>(mark.line) < lines_.size()
                                 ? lines_[static_cast<size_t>(mark.line)]
                                 : std::string();
    const char lead =
        mark.column >= 0 && static_cast<size_t>(mark.column) < src.size() ? src[mark.column] : ' ';
    if (lead == '|' || lead == '>') {
      // Block scalar: the text starts on the next line, at its indentation.
      file_line = mark.line + 1 + line;
      // The block's indentation is its first line's.
      const size_t idx = static_cast<size_t>(mark.line) + 1;
      int indent = 0;
      if (idx < lines_.size()) {
        while (static_cast<size_t>(indent) < lines_[idx].size() && lines_[idx][indent] == ' ') {
          ++indent;
        }
      }
      file_col = indent + col;
    } else {
      const int quote = (lead == '"' || lead == '\'') ? 1 : 0;
      file_line = mark.line + line;
      file_col = line == 1 ? mark.column + quote + col : col;
    }
    return absl::InvalidArgumentError(
        absl::StrCat(file_, ":", file_line, ":", file_col, ": ", std::string(text)));
  }

  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> StringMap(
      const YAML::Node& node, bool label_names) const {
    std::vector<std::pair<std::string, std::string>> out;
    if (!node || node.IsNull()) return out;
    if (!node.IsMap()) return Error(node.Mark(), "expected a mapping of strings");
    for (const auto& kv : node) {
      const std::string key = kv.first.as<std::string>();
      if (!kv.second.IsScalar()) return Error(kv.second.Mark(), "expected a string value");
      if (label_names && (!IsLabelName(key) || key == "__name__")) {
        return Error(kv.first.Mark(), "invalid label name '" + key + "'");
      }
      if (!label_names && !IsLabelName(key)) {
        return Error(kv.first.Mark(), "invalid annotation name '" + key + "'");
      }
      out.emplace_back(key, kv.second.Scalar());
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  absl::StatusOr<std::vector<std::pair<std::string, AlertTemplate>>> Templates(
      const YAML::Node& node, const std::vector<std::pair<std::string, std::string>>& raw) const {
    std::vector<std::pair<std::string, AlertTemplate>> out;
    for (const auto& [name, text] : raw) {
      absl::StatusOr<AlertTemplate> t = AlertTemplate::Parse(text);
      if (!t.ok()) {
        return Error(node[name].Mark(),
                     absl::StrCat("template of '", name, "': ", std::string(t.status().message())));
      }
      out.emplace_back(name, *std::move(t));
    }
    return out;
  }

  absl::StatusOr<RuleSpec> LoadRule(const YAML::Node& r) const {
    if (!r.IsMap()) return Error(r.Mark(), "a rule must be a mapping");
    RuleSpec rule;
    rule.file = file_;
    rule.line = r.Mark().line + 1;
    YAML::Node expr_node;
    bool has_expr = false;  // a default YAML::Node is a defined null, not absent
    for (const auto& kv : r) {
      const std::string key = kv.first.as<std::string>();
      const YAML::Node& v = kv.second;
      if (key == "record" || key == "alert") {
        if (!rule.name.empty()) return Error(kv.first.Mark(), "only one of 'record' and 'alert'");
        if (!v.IsScalar() || v.Scalar().empty()) return Error(v.Mark(), key + " must be a name");
        rule.alert = key == "alert";
        rule.name = v.Scalar();
        if (!rule.alert && !IsMetricName(rule.name)) {
          return Error(v.Mark(), "invalid recording rule name '" + rule.name + "'");
        }
      } else if (key == "expr") {
        if (!v.IsScalar() || v.Scalar().empty()) return Error(v.Mark(), "expr must be set");
        expr_node = v;
        has_expr = true;
        rule.expr_text = v.Scalar();
      } else if (key == "for" || key == "keep_firing_for") {
        int64_t ms = 0;
        if (!v.IsScalar() || !ParseDuration(v.Scalar(), &ms)) {
          return Error(v.Mark(), key + " must be a duration like 5m");
        }
        (key == "for" ? rule.for_ms : rule.keep_firing_for_ms) = ms;
      } else if (key == "labels") {
        absl::StatusOr<std::vector<std::pair<std::string, std::string>>> m = StringMap(v, true);
        if (!m.ok()) return m.status();
        rule.raw_labels = *std::move(m);
      } else if (key == "annotations") {
        absl::StatusOr<std::vector<std::pair<std::string, std::string>>> m = StringMap(v, false);
        if (!m.ok()) return m.status();
        rule.raw_annotations = *std::move(m);
      } else {
        return Error(kv.first.Mark(), "unknown rule field '" + key + "'");
      }
    }
    if (rule.name.empty()) return Error(r.Mark(), "a rule needs 'record' or 'alert'");
    if (!has_expr) return Error(r.Mark(), "rule '" + rule.name + "' has no expr");
    if (!rule.alert) {
      if (r["for"]) return Error(r["for"].Mark(), "'for' is only for alerting rules");
      if (r["keep_firing_for"]) {
        return Error(r["keep_firing_for"].Mark(), "'keep_firing_for' is only for alerting rules");
      }
      if (r["annotations"]) {
        return Error(r["annotations"].Mark(), "annotations are only for alerting rules");
      }
    }
    absl::StatusOr<promql::ExprPtr> expr = promql::Parse(rule.expr_text);
    if (!expr.ok()) return ExprError(expr_node, std::string(expr.status().message()));
    const promql::ValueType type = promql::TypeOf(**expr);
    if (type != promql::ValueType::kVector && type != promql::ValueType::kScalar) {
      return Error(expr_node.Mark(), "expr must be an instant vector or a scalar");
    }
    rule.expr = *std::move(expr);
    absl::StatusOr<std::vector<std::pair<std::string, AlertTemplate>>> labels =
        Templates(r["labels"], rule.raw_labels);
    if (!labels.ok()) return labels.status();
    rule.labels = *std::move(labels);
    absl::StatusOr<std::vector<std::pair<std::string, AlertTemplate>>> annotations =
        Templates(r["annotations"], rule.raw_annotations);
    if (!annotations.ok()) return annotations.status();
    rule.annotations = *std::move(annotations);
    if (!rule.alert) {
      for (const auto& [name, t] : rule.labels) {
        if (!t.is_literal()) {
          return Error(r["labels"][name].Mark(), "recording rule labels cannot be templates");
        }
      }
    }
    return rule;
  }

  std::string_view text_;
  std::string file_;
  std::vector<std::string> lines_;
};

}  // namespace

absl::StatusOr<RuleSet> ParseRuleFile(std::string_view text, const std::string& file,
                                      int64_t default_interval_ms) {
  return Loader(text, file).Load(default_interval_ms);
}

}  // namespace novapulse
