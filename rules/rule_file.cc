// Rule file loading (Prometheus's rulefmt, strictly) and alert templates.
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
#include "rules/rules.h"

namespace novapulse {
namespace {

bool IsMetricName(std::string_view s) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

bool IsLabelName(std::string_view s) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

}  // namespace

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

// Go's %.4g-style formatting (as Prometheus's humanize functions use).
std::string GoG4(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.4g", v);
  return buf;
}

std::string Humanize(double v) {
  if (v == 0 || std::isnan(v) || std::isinf(v)) return GoG4(v);
  static constexpr const char* kBig[] = {"k", "M", "G", "T", "P", "E", "Z", "Y"};
  static constexpr const char* kSmall[] = {"m", "u", "n", "p", "f", "a", "z", "y"};
  std::string prefix;
  if (std::fabs(v) >= 1) {
    for (const char* p : kBig) {
      if (std::fabs(v) < 1000) break;
      prefix = p;
      v /= 1000;
    }
  } else {
    for (const char* p : kSmall) {
      if (std::fabs(v) >= 1) break;
      prefix = p;
      v *= 1000;
    }
  }
  return GoG4(v) + prefix;
}

std::string HumanizeDuration(double v) {
  if (std::isnan(v) || std::isinf(v)) return GoG4(v);
  if (v == 0) return GoG4(v) + "s";
  if (std::fabs(v) >= 1) {
    std::string sign;
    if (v < 0) {
      sign = "-";
      v = -v;
    }
    // Go's int64(v) on amd64: values past the int64 range give INT64_MIN
    // (what Prometheus then prints); in C++ that conversion is undefined.
    const int64_t d = v < 9.2233720368547758e18 ? static_cast<int64_t>(v) : INT64_MIN;
    const int64_t seconds = d % 60;
    const int64_t minutes = (d / 60) % 60;
    const int64_t hours = (d / 3600) % 24;
    const int64_t days = d / 86400;
    if (days != 0) return absl::StrCat(sign, days, "d ", hours, "h ", minutes, "m ", seconds, "s");
    if (hours != 0) return absl::StrCat(sign, hours, "h ", minutes, "m ", seconds, "s");
    if (minutes != 0) return absl::StrCat(sign, minutes, "m ", seconds, "s");
    return sign + GoG4(v) + "s";
  }
  static constexpr const char* kSmall[] = {"m", "u", "n", "p", "f", "a", "z", "y"};
  std::string prefix;
  for (const char* p : kSmall) {
    if (std::fabs(v) >= 1) break;
    prefix = p;
    v *= 1000;
  }
  return GoG4(v) + prefix + "s";
}

// printf with one float verb (%f %e %g with flags/width/precision) and text.
bool ValidPrintfFormat(std::string_view f) {
  int verbs = 0;
  for (size_t i = 0; i < f.size(); ++i) {
    if (f[i] != '%') continue;
    if (i + 1 < f.size() && f[i + 1] == '%') {
      ++i;
      continue;
    }
    size_t j = i + 1;
    while (j < f.size() &&
           std::string_view("+- #0.123456789").find(f[j]) != std::string_view::npos) {
      ++j;
    }
    if (j >= f.size() || std::string_view("feEgGv").find(f[j]) == std::string_view::npos) {
      return false;
    }
    ++verbs;
    i = j;
  }
  return verbs == 1;
}

std::string GoPrintf(const std::string& format, double v) {
  std::string f = format;
  const size_t v_pos = f.find("%v");
  if (v_pos != std::string::npos) f.replace(v_pos, 2, "%g");
  if (std::isnan(v) || std::isinf(v)) {
    // Go prints NaN / +Inf for every float verb.
    std::string out;
    for (size_t i = 0; i < f.size(); ++i) {
      if (f[i] == '%' && i + 1 < f.size() && f[i + 1] == '%') {
        out.push_back('%');
        ++i;
      } else if (f[i] == '%') {
        size_t j = i + 1;
        while (j < f.size() && std::string_view("feEgG").find(f[j]) == std::string_view::npos) ++j;
        out += std::isnan(v) ? "NaN" : (v > 0 ? "+Inf" : "-Inf");
        i = j;
      } else {
        out.push_back(f[i]);
      }
    }
    return out;
  }
  char buf[256];
  std::snprintf(buf, sizeof(buf), f.c_str(), v);
  return buf;
}

}  // namespace

std::string FormatGoFloat(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == 0) return std::signbit(v) ? "-0" : "0";
  // Shortest digits, then Go's %v choice (strconv 'g' with precision -1):
  // exponent form when the decimal exponent is < -4 or >= 6.
  char sci[64];
  const auto end = std::to_chars(sci, sci + sizeof(sci), v, std::chars_format::scientific).ptr;
  const std::string_view s(sci, static_cast<size_t>(end - sci));
  const size_t e = s.find('e');
  int exp = 0;
  std::from_chars(s.data() + e + 1 + (s[e + 1] == '+' ? 1 : 0), s.data() + s.size(), exp);
  if (exp < -4 || exp >= 6) {
    std::string mant(s.substr(0, e));
    return absl::StrCat(mant, "e", exp < 0 ? "-" : "+", std::abs(exp) < 10 ? "0" : "",
                        std::abs(exp));
  }
  char fixed[64];
  const auto fend = std::to_chars(fixed, fixed + sizeof(fixed), v, std::chars_format::fixed).ptr;
  return std::string(fixed, fend);
}

absl::StatusOr<AlertTemplate> AlertTemplate::Parse(std::string_view text) {
  AlertTemplate t;
  size_t i = 0;
  while (i < text.size()) {
    const size_t open = text.find("{{", i);
    if (open == std::string_view::npos) {
      t.parts_.push_back(Literal(text.substr(i)));
      break;
    }
    if (open > i) t.parts_.push_back(Literal(text.substr(i, open - i)));
    const size_t close = text.find("}}", open + 2);
    if (close == std::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(open + 1, ": unclosed action"));
    }
    std::string_view action = text.substr(open + 2, close - open - 2);
    auto trim = [](std::string_view s) {
      while (!s.empty() && (s.front() == ' ' || s.front() == '-')) s.remove_prefix(1);
      while (!s.empty() && (s.back() == ' ' || s.back() == '-')) s.remove_suffix(1);
      return s;
    };
    action = trim(action);
    Part part;
    part.literal = false;
    auto unsupported = [&] {
      return absl::InvalidArgumentError(
          absl::StrCat(open + 1, ": unsupported template action {{ ", std::string(action),
                       " }} (supported: $value, $labels.NAME, | humanize, | humanizePercentage, "
                       "| humanizeDuration, printf \"FMT\" $value)"));
    };
    auto source = [&](std::string_view s) {
      s = trim(s);
      if (s == "$value") {
        part.source = Part::Source::kValue;
        return true;
      }
      if (s.starts_with("$labels.") && IsLabelName(s.substr(8))) {
        part.source = Part::Source::kLabel;
        part.text = std::string(s.substr(8));
        return true;
      }
      return false;
    };
    if (action.starts_with("printf ")) {
      std::string_view rest = trim(action.substr(7));
      if (rest.empty() || rest.front() != '"') return unsupported();
      const size_t q = rest.find('"', 1);
      if (q == std::string_view::npos) return unsupported();
      part.printf_format = std::string(rest.substr(1, q - 1));
      if (!ValidPrintfFormat(part.printf_format) || !source(rest.substr(q + 1)) ||
          part.source != Part::Source::kValue) {
        return unsupported();
      }
      part.format = Part::Format::kPrintf;
    } else {
      const size_t pipe = action.find('|');
      if (!source(action.substr(0, pipe))) return unsupported();
      if (pipe != std::string_view::npos) {
        const std::string_view fn = trim(action.substr(pipe + 1));
        if (part.source != Part::Source::kValue) return unsupported();
        if (fn == "humanize") {
          part.format = Part::Format::kHumanize;
        } else if (fn == "humanizePercentage") {
          part.format = Part::Format::kPercentage;
        } else if (fn == "humanizeDuration") {
          part.format = Part::Format::kDuration;
        } else {
          return unsupported();
        }
      }
    }
    t.parts_.push_back(std::move(part));
    i = close + 2;
  }
  return t;
}

std::string AlertTemplate::Expand(const promql::Labels& labels, double value) const {
  std::string out;
  for (const Part& p : parts_) {
    if (p.literal) {
      out += p.text;
      continue;
    }
    if (p.source == Part::Source::kLabel) {
      for (const promql::Label& l : labels) {
        if (l.name == p.text) out += l.value;
      }
      continue;
    }
    switch (p.format) {
      case Part::Format::kDefault:
        out += FormatGoFloat(value);
        break;
      case Part::Format::kHumanize:
        out += Humanize(value);
        break;
      case Part::Format::kPercentage:
        out += GoG4(value * 100) + "%";
        break;
      case Part::Format::kDuration:
        out += HumanizeDuration(value);
        break;
      case Part::Format::kPrintf:
        out += GoPrintf(p.printf_format, value);
        break;
    }
  }
  return out;
}

absl::StatusOr<RuleSet> ParseRuleFile(std::string_view text, const std::string& file,
                                      int64_t default_interval_ms) {
  return Loader(text, file).Load(default_interval_ms);
}

}  // namespace novapulse
