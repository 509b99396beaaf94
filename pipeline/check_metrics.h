// `novapulse check-metrics FILE [--rules FILE]...`: validates a metric spec
// (spec/metric_spec.h) and, with --rules, that every metric the rule files
// read is one the spec exports (or a rule records, or novapulse's own).
// Prints "FILE: ok" and what the spec declares, or every error as
// FILE:LINE:COL: path: reason. Touches nothing; not tied to any thread.
//   return RunCheckMetricsCommand(argc - 1, argv + 1);
#ifndef NOVAPULSE_PIPELINE_CHECK_METRICS_H_
#define NOVAPULSE_PIPELINE_CHECK_METRICS_H_

#include <string>
#include <vector>

#include "rules/rule_file.h"
#include "spec/metric_spec.h"

namespace novapulse {

// One "FILE:LINE: rule NAME reads METRIC, ..." per metric a rule reads that
// neither the spec, a recording rule, ALERTS nor novapulse's self metrics
// provide; empty when every selector can select something.
std::vector<std::string> RuleMetricsNotInSpec(const RuleSet& rules,
                                              const spec::MetricSpecSet& spec);

// A readable summary of the spec: its inputs with the fields they read, its
// metrics with their type and labels.
std::string SpecSummary(const spec::MetricSpecSet& spec);

// 0 when valid, 1 on a spec or rule error, 2 on a usage error.
int RunCheckMetricsCommand(int argc, char** argv);

}  // namespace novapulse

#endif  // NOVAPULSE_PIPELINE_CHECK_METRICS_H_
