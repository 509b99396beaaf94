// Text for promtool rule-test files, shared by the oracle tests that write
// them: label sets in promtool's series syntax, label-value escaping, YAML
// single quoting.
//
// Test-only, header-only; pure functions.
//   out += "- series: " + YamlSingleQuoted(PromtoolLabels(labels)) + "\n";
#ifndef NOVAPULSE_TESTS_RULES_PROMTOOL_TEXT_H_
#define NOVAPULSE_TESTS_RULES_PROMTOOL_TEXT_H_

#include <string>

#include "rules/promql.h"

namespace novapulse::testing {

// A label value inside double quotes: backslash, quote and newline escaped.
inline std::string EscapeLabelValue(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}

// promtool's label syntax: {__name__="x", a="b"}.
inline std::string PromtoolLabels(const promql::Labels& ls) {
  std::string out = "{";
  for (size_t i = 0; i < ls.size(); ++i) {
    if (i > 0) out += ", ";
    out += ls[i].name + "=\"" + EscapeLabelValue(ls[i].value) + "\"";
  }
  return out + "}";
}

inline std::string YamlSingleQuoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out.push_back('\'');
    out.push_back(c);
  }
  return out + "'";
}

}  // namespace novapulse::testing

#endif  // NOVAPULSE_TESTS_RULES_PROMTOOL_TEXT_H_
