// Alert templates: the subset of Go's text/template that Prometheus rule
// files use in alert labels and annotations, with Prometheus's humanize
// functions, expanded per alert against its labels and value.
//   absl::StatusOr<AlertTemplate> t = AlertTemplate::Parse("{{ $value | humanize }}");
//   std::string text = t->Expand(labels, 0.25);
#ifndef NOVAPULSE_RULES_ALERT_TEMPLATE_H_
#define NOVAPULSE_RULES_ALERT_TEMPLATE_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "rules/promql.h"

namespace novapulse {

// A text/template subset for alert labels and annotations: literal text and
// actions {{ $value }}, {{ $labels.NAME }}, {{ $value | humanize }},
// humanizePercentage, humanizeDuration, {{ printf "%.2f" $value }}.
class AlertTemplate {
 public:
  // Errors read "COL: message" (1-based column within `text`).
  static absl::StatusOr<AlertTemplate> Parse(std::string_view text);
  std::string Expand(const promql::Labels& labels, double value) const;
  bool is_literal() const { return parts_.size() <= 1 && (parts_.empty() || parts_[0].literal); }

 private:
  struct Part {
    bool literal = true;
    std::string text;  // literal text, or the label name for $labels.NAME
    enum class Source { kValue, kLabel } source = Source::kValue;
    enum class Format {
      kDefault,
      kHumanize,
      kPercentage,
      kDuration,
      kPrintf
    } format = Format::kDefault;
    std::string printf_format;
  };
  static Part Literal(std::string_view text) {
    Part p;
    p.text = std::string(text);
    return p;
  }
  std::vector<Part> parts_;
};

// Go's %v of a float64 (what {{ $value }} prints).
std::string FormatGoFloat(double v);

}  // namespace novapulse

#endif  // NOVAPULSE_RULES_ALERT_TEMPLATE_H_
