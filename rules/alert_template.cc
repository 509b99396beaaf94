// Alert templates and the Go/Prometheus number formatting they print with.
#include "rules/alert_template.h"

#include <charconv>
#include <cmath>
#include <cstdio>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/prom_names.h"

namespace novapulse {
namespace {

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

}  // namespace novapulse
