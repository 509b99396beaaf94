// A small, strict reader of the Prometheus text exposition format (0.0.4),
// written for the tests independently of prometheus-cpp: it parses what
// novapulse prints so tests can compare values, and lists every way the text
// departs from the format (ValidateExposition).
//
// Test-only, header-only; not thread-safe (plain values).
//   PromText text = ParsePromText(output);
//   EXPECT_THAT(text.errors, IsEmpty());
//   double v = text.Value("http_requests_total", {{"method", "GET"}, ...});
#ifndef NOVAPULSE_TESTS_SINKS_PROMETHEUS_TEXT_H_
#define NOVAPULSE_TESTS_SINKS_PROMETHEUS_TEXT_H_

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace novapulse::testing {

using Labels = std::vector<std::pair<std::string, std::string>>;

struct PromSample {
  std::string name;  // as written: a histogram's samples end in _bucket, _sum, _count
  Labels labels;     // in written order, unescaped
  double value = 0;
  int line = 0;
};

struct PromFamily {
  std::string name;
  std::string help;  // unescaped
  std::string type;
  bool has_help = false;
  bool has_type = false;
  std::vector<PromSample> samples;
};

// Canonical key of a series: name{a="x",b="y"} with labels sorted by name
// and values escaped, so the same series always gives the same key.
inline std::string SeriesKey(std::string_view name, Labels labels) {
  std::sort(labels.begin(), labels.end());
  std::string key(name);
  key += '{';
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i > 0) key += ',';
    key += labels[i].first;
    key += "=\"";
    for (char c : labels[i].second) {
      if (c == '\\') {
        key += "\\\\";
      } else if (c == '"') {
        key += "\\\"";
      } else if (c == '\n') {
        key += "\\n";
      } else {
        key += c;
      }
    }
    key += '"';
  }
  key += '}';
  return key;
}

// One histogram series as written: `le` -> cumulative count, _sum, _count.
struct PromHistogram {
  std::map<double, double> buckets;
  double sum = std::numeric_limits<double>::quiet_NaN();
  double count = std::numeric_limits<double>::quiet_NaN();
};

struct PromText {
  std::vector<PromFamily> families;
  std::vector<std::string> errors;       // format violations, with line numbers
  std::map<std::string, double> values;  // SeriesKey -> value, every sample

  const PromFamily* Family(std::string_view name) const {
    for (const PromFamily& f : families) {
      if (f.name == name) return &f;
    }
    return nullptr;
  }
  bool Has(std::string_view name, const Labels& labels = {}) const {
    return values.contains(SeriesKey(name, labels));
  }
  // NaN when the series is absent, so a comparison with any number fails.
  double Value(std::string_view name, const Labels& labels = {}) const {
    auto it = values.find(SeriesKey(name, labels));
    return it == values.end() ? std::numeric_limits<double>::quiet_NaN() : it->second;
  }
  // Every sample named exactly `name`, keyed by SeriesKey.
  std::map<std::string, double> Samples(std::string_view name) const {
    std::map<std::string, double> out;
    for (const PromFamily& f : families) {
      for (const PromSample& s : f.samples) {
        if (s.name == name) out[SeriesKey(s.name, s.labels)] = s.value;
      }
    }
    return out;
  }
  // Every series of histogram family `name`, keyed by SeriesKey(name, labels
  // without le).
  std::map<std::string, PromHistogram> Histograms(std::string_view name) const;
};

namespace prom_detail {

inline bool IsNameStart(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}
inline bool IsNameChar(char c) { return IsNameStart(c) || (c >= '0' && c <= '9'); }

inline bool ValidMetricName(std::string_view s) {
  if (s.empty() || !IsNameStart(s[0])) return false;
  return std::all_of(s.begin(), s.end(), IsNameChar);
}

inline bool ValidLabelName(std::string_view s) {
  if (s.empty() || !IsNameStart(s[0]) || s[0] == ':') return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return IsNameChar(c) && c != ':'; });
}

inline std::optional<double> ParseValue(std::string_view s) {
  if (s == "+Inf" || s == "Inf") return std::numeric_limits<double>::infinity();
  if (s == "-Inf") return -std::numeric_limits<double>::infinity();
  if (s == "NaN") return std::numeric_limits<double>::quiet_NaN();
  if (s.empty()) return std::nullopt;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '-' || c == '+')) {
      return std::nullopt;
    }
  }
  const std::string copy(s);
  char* end = nullptr;
  const double v = std::strtod(copy.c_str(), &end);
  if (end != copy.c_str() + copy.size()) return std::nullopt;
  return v;
}

// Family a sample name belongs to, given the family in progress.
inline bool BelongsTo(const PromFamily& f, std::string_view sample) {
  if (sample == f.name) return true;
  if (f.type == "histogram") {
    for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
      if (sample.size() == f.name.size() + suffix.size() && sample.starts_with(f.name) &&
          sample.ends_with(suffix)) {
        return true;
      }
    }
  }
  return false;
}

}  // namespace prom_detail

inline PromText ParsePromText(std::string_view text) {
  using namespace prom_detail;
  PromText out;
  auto error = [&out](int line, const std::string& what) {
    out.errors.push_back("line " + std::to_string(line) + ": " + what);
  };
  auto family_for = [&out](const std::string& name) -> PromFamily& {
    if (out.families.empty() || out.families.back().name != name) {
      out.families.push_back(PromFamily{});
      out.families.back().name = name;
    }
    return out.families.back();
  };
  std::set<std::string> finished_families;
  if (!text.empty() && text.back() != '\n') error(0, "text does not end with a newline");
  int line_no = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    const std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    if (line.empty()) continue;
    if (line[0] == '#') {
      const bool help = line.starts_with("# HELP ");
      const bool type = line.starts_with("# TYPE ");
      if (!help && !type) continue;  // a plain comment
      const std::string_view rest = line.substr(7);
      const size_t sp = rest.find(' ');
      const std::string name(rest.substr(0, sp));
      const std::string_view arg = sp == std::string_view::npos ? "" : rest.substr(sp + 1);
      if (!ValidMetricName(name)) error(line_no, "bad metric name '" + name + "'");
      if (!out.families.empty() && out.families.back().name != name) {
        finished_families.insert(out.families.back().name);
      }
      if (finished_families.contains(name)) error(line_no, "family " + name + " appears twice");
      PromFamily& f = family_for(name);
      if (!f.samples.empty()) error(line_no, "HELP/TYPE after samples of " + name);
      if (help) {
        if (f.has_help) error(line_no, "second HELP for " + name);
        f.has_help = true;
        f.help.clear();
        for (size_t i = 0; i < arg.size(); ++i) {
          if (arg[i] == '\\' && i + 1 < arg.size() && (arg[i + 1] == '\\' || arg[i + 1] == 'n')) {
            f.help += arg[i + 1] == 'n' ? '\n' : '\\';
            ++i;
          } else if (arg[i] == '\\') {
            error(line_no, "bad escape in HELP of " + name);
          } else {
            f.help += arg[i];
          }
        }
      } else {
        if (f.has_type) error(line_no, "second TYPE for " + name);
        f.has_type = true;
        f.type = std::string(arg);
        static const std::set<std::string> kTypes = {"counter", "gauge", "histogram", "summary",
                                                     "untyped"};
        if (!kTypes.contains(f.type)) error(line_no, "unknown type '" + f.type + "'");
      }
      continue;
    }
    PromSample sample;
    sample.line = line_no;
    size_t i = 0;
    while (i < line.size() && IsNameChar(line[i])) ++i;
    sample.name = std::string(line.substr(0, i));
    if (!ValidMetricName(sample.name)) {
      error(line_no, "bad sample name in '" + std::string(line) + "'");
      continue;
    }
    bool ok = true;
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (ok && i < line.size() && line[i] != '}') {
        const size_t name_start = i;
        while (i < line.size() && IsNameChar(line[i])) ++i;
        const std::string label(line.substr(name_start, i - name_start));
        if (!ValidLabelName(label)) ok = false;
        if (i + 1 >= line.size() || line[i] != '=' || line[i + 1] != '"') {
          ok = false;
          break;
        }
        i += 2;
        std::string value;
        while (i < line.size() && line[i] != '"') {
          if (line[i] == '\\') {
            if (i + 1 >= line.size()) {
              ok = false;
              break;
            }
            const char e = line[i + 1];
            if (e == '\\' || e == '"') {
              value += e;
            } else if (e == 'n') {
              value += '\n';
            } else {
              ok = false;
            }
            i += 2;
          } else {
            value += line[i++];
          }
        }
        if (i >= line.size()) {
          ok = false;
          break;
        }
        ++i;  // closing quote
        for (const auto& [n, v] : sample.labels) {
          if (n == label) ok = false;
        }
        sample.labels.emplace_back(label, value);
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (i >= line.size() || line[i] != '}') ok = false;
      ++i;
    }
    if (!ok || i >= line.size() || line[i] != ' ') {
      error(line_no, "bad labels in '" + std::string(line) + "'");
      continue;
    }
    ++i;
    std::string_view value_text = line.substr(i);
    if (const size_t sp = value_text.find(' '); sp != std::string_view::npos) {
      value_text = value_text.substr(0, sp);  // a timestamp may follow
    }
    const std::optional<double> value = ParseValue(value_text);
    if (!value) {
      error(line_no, "bad value in '" + std::string(line) + "'");
      continue;
    }
    sample.value = *value;
    if (out.families.empty() || !BelongsTo(out.families.back(), sample.name)) {
      error(line_no, "sample " + sample.name + " outside its family's HELP/TYPE block");
      PromFamily& f = family_for(sample.name);
      (void)f;
    }
    const std::string key = SeriesKey(sample.name, sample.labels);
    if (!out.values.emplace(key, sample.value).second) error(line_no, "duplicate series " + key);
    out.families.back().samples.push_back(std::move(sample));
  }
  return out;
}

inline std::map<std::string, PromHistogram> PromText::Histograms(std::string_view name) const {
  std::map<std::string, PromHistogram> out;
  const PromFamily* f = Family(name);
  if (f == nullptr) return out;
  for (const PromSample& s : f->samples) {
    Labels base;
    std::optional<double> le;
    for (const auto& [n, v] : s.labels) {
      if (n == "le") {
        le = prom_detail::ParseValue(v);
      } else {
        base.emplace_back(n, v);
      }
    }
    PromHistogram& h = out[SeriesKey(name, base)];
    const std::string_view suffix = std::string_view(s.name).substr(name.size());
    if (suffix == "_bucket" && le) {
      h.buckets[*le] = s.value;
    } else if (suffix == "_sum") {
      h.sum = s.value;
    } else if (suffix == "_count") {
      h.count = s.value;
    }
  }
  return out;
}

// Everything the exposition format requires beyond what the parser checks:
// HELP and TYPE for every family; histograms with ascending `le` buckets that
// are cumulative and end in +Inf equal to _count, plus a _sum; counters that
// are finite and non-negative. Returns the violations, empty when valid.
inline std::vector<std::string> ValidateExposition(const PromText& text) {
  std::vector<std::string> problems = text.errors;
  for (const PromFamily& f : text.families) {
    if (!f.has_help) problems.push_back(f.name + ": no HELP line");
    if (!f.has_type) problems.push_back(f.name + ": no TYPE line");
    if (f.type == "counter") {
      for (const PromSample& s : f.samples) {
        if (!(s.value >= 0) || std::isinf(s.value)) {
          problems.push_back(f.name + ": counter value " + std::to_string(s.value));
        }
      }
    }
    if (f.type != "histogram") continue;
    struct Series {
      std::vector<std::pair<double, double>> buckets;  // le, count in written order
      std::optional<double> sum, count;
    };
    std::map<std::string, Series> series;
    for (const PromSample& s : f.samples) {
      Labels base;
      std::optional<double> le;
      for (const auto& [n, v] : s.labels) {
        if (n == "le") {
          le = prom_detail::ParseValue(v);
          if (!le) problems.push_back(f.name + ": bad le '" + v + "'");
        } else {
          base.emplace_back(n, v);
        }
      }
      Series& h = series[SeriesKey(f.name, base)];
      if (s.name == f.name + "_bucket") {
        if (!le) {
          problems.push_back(f.name + ": bucket without le");
          continue;
        }
        h.buckets.emplace_back(*le, s.value);
      } else if (s.name == f.name + "_sum") {
        h.sum = s.value;
      } else if (s.name == f.name + "_count") {
        h.count = s.value;
      } else {
        problems.push_back(f.name + ": histogram sample named " + s.name);
      }
    }
    for (const auto& [key, h] : series) {
      if (!h.sum) problems.push_back(key + ": no _sum");
      if (!h.count) problems.push_back(key + ": no _count");
      if (h.buckets.empty()) {
        problems.push_back(key + ": no buckets");
        continue;
      }
      for (size_t b = 1; b < h.buckets.size(); ++b) {
        if (!(h.buckets[b].first > h.buckets[b - 1].first)) {
          problems.push_back(key + ": le not ascending");
        }
        if (h.buckets[b].second < h.buckets[b - 1].second) {
          problems.push_back(key + ": buckets not cumulative");
        }
      }
      if (!std::isinf(h.buckets.back().first)) problems.push_back(key + ": last bucket not +Inf");
      if (h.count && h.buckets.back().second != *h.count) {
        problems.push_back(key + ": +Inf bucket differs from _count");
      }
    }
  }
  return problems;
}

}  // namespace novapulse::testing

#endif  // NOVAPULSE_TESTS_SINKS_PROMETHEUS_TEXT_H_
