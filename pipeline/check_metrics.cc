#include "pipeline/check_metrics.h"

#include <cstdio>
#include <set>
#include <string_view>

#include "absl/strings/str_join.h"
#include "aggregators/self_metrics.h"
#include "base/cli.h"
#include "base/str_cat.h"
#include "pipeline/rule_files.h"
#include "rules/promql.h"

namespace novapulse {
namespace {

constexpr std::string_view kUsage = R"(Usage: novapulse check-metrics [OPTIONS] FILE

Validates a metric spec (YAML): its inputs, their fields and transforms, its
metrics, their labels, conditions and buckets. Prints "FILE: ok" and what the
spec declares, or every error as FILE:LINE:COLUMN: path: reason.

Options:
  --rules FILE   also check a Prometheus rule file (repeatable): every metric
                 its rules read must be one the spec exports, one a rule
                 records, or one of novapulse's own (novapulse_*)
  -h, --help     this help

Exit status: 0 valid, 1 invalid, 2 usage error.
)";

}  // namespace

std::vector<std::string> RuleMetricsNotInSpec(const RuleSet& rules,
                                              const spec::MetricSpecSet& spec) {
  std::set<std::string> known = {"ALERTS", "ALERTS_FOR_STATE"};
  for (const spec::MetricSpec& m : spec.metrics) {
    // Concurrency gauges are computed when scraped: no window keeps them.
    if (m.kind == spec::MetricKind::kConcurrency) continue;
    known.insert(m.name);
    if (m.kind == spec::MetricKind::kHistogram) {
      for (const char* suffix : {"_bucket", "_sum", "_count"}) known.insert(m.name + suffix);
    }
  }
  for (const MetricDef& def : SelfMetricDefs()) {
    if (!IsComputed(def.type)) known.emplace(def.name);
  }
  for (const RuleGroupSpec& g : rules.groups) {
    for (const RuleSpec& r : g.rules) {
      if (!r.alert) known.insert(r.name);
    }
  }
  std::vector<std::string> errors;
  for (const RuleGroupSpec& g : rules.groups) {
    for (const RuleSpec& r : g.rules) {
      std::set<std::string> reported;
      for (const promql::Reach& x : promql::MetricReach(*r.expr)) {
        if (known.contains(x.metric) || !reported.insert(x.metric).second) continue;
        errors.push_back(Cat(r.file, ":", r.line, ": ", r.alert ? "alert " : "record ", r.name,
                             " reads ", x.metric, ", which ", spec.file,
                             " does not define (nor does a recording rule)"));
      }
    }
  }
  return errors;
}

std::string SpecSummary(const spec::MetricSpecSet& spec) {
  std::string out;
  for (const spec::InputSpec& in : spec.inputs) {
    std::vector<std::string> fields;
    for (const spec::FieldSpec& f : in.fields) {
      const std::string path = absl::StrJoin(f.path, ".");
      fields.push_back(path == f.name
                           ? Cat(f.name, " (", spec::FieldTypeName(f.type), ")")
                           : Cat(f.name, " = ", path, " (", spec::FieldTypeName(f.type), ")"));
    }
    absl::StrAppend(&out, Cat("input ", in.name, " (topic ", in.topic, "): time ",
                              in.time_field >= 0 ? in.fields[in.time_field].name : "?", ", fields ",
                              absl::StrJoin(fields, ", "), "\n"));
  }
  for (const spec::MetricSpec& m : spec.metrics) {
    std::vector<std::string> labels;
    for (const spec::LabelSpec& l : m.labels) labels.push_back(l.name);
    absl::StrAppend(&out, Cat("metric ", m.name, " ", spec::MetricKindName(m.kind), " {",
                              absl::StrJoin(labels, ","), "} from ",
                              m.input >= 0 ? spec.inputs[m.input].name : "?", "\n"));
  }
  return out;
}

int RunCheckMetricsCommand(int argc, char** argv) {
  ArgParser args(argc, argv, kUsage);
  std::vector<std::string> files;
  std::vector<std::string> rule_files;
  while (args.Next()) {
    if (args.Is("--rules")) {
      rule_files.push_back(args.Value());
    } else if (args.IsPositional()) {
      files.emplace_back(args.Positional());
    } else {
      return args.UnknownFlag();
    }
    if (args.failed()) return args.exit_code();
  }
  if (args.help()) return 0;
  if (files.size() != 1) return args.Fail("want exactly one metric spec FILE");
  const absl::StatusOr<spec::MetricSpecSet> spec = spec::LoadMetricSpec(files[0]);
  if (!spec.ok()) {
    std::fprintf(stderr, "%s\n", std::string(spec.status().message()).c_str());
    return 1;
  }
  if (!rule_files.empty()) {
    const absl::StatusOr<RuleSet> rules = LoadRuleFiles(rule_files);
    if (!rules.ok()) {
      std::fprintf(stderr, "%s\n", std::string(rules.status().message()).c_str());
      return 1;
    }
    const std::vector<std::string> errors = RuleMetricsNotInSpec(*rules, *spec);
    for (const std::string& e : errors) std::fprintf(stderr, "%s\n", e.c_str());
    if (!errors.empty()) return 1;
  }
  std::printf("%s: ok, %zu input(s), %zu metric(s)\n%s", files[0].c_str(), spec->inputs.size(),
              spec->metrics.size(), SpecSummary(*spec).c_str());
  return 0;
}

}  // namespace novapulse
