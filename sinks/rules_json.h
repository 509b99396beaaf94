// The rule engine's state as Prometheus's HTTP API returns it, for
// `GET /api/v1/alerts` and `GET /api/v1/rules` (the shapes of Prometheus's
// web/api/v1/api.go, field for field, so Grafana and promtool-style clients
// read novapulse as they read Prometheus). Times are the engine's event times.
// Differences from Prometheus: "query" is the expression as written in the
// rule file (Prometheus prints its parsed form); no query parameters
// (type=, rule_name[]=) are applied.
//
// Pure functions over a snapshot; safe from any thread.
//   handlers.rules = [&engine] { return RulesJson(engine.Snapshot()); };
#ifndef NOVAPULSE_SINKS_RULES_JSON_H_
#define NOVAPULSE_SINKS_RULES_JSON_H_

#include <string>

#include "rules/rule_engine.h"

namespace novapulse {

// {"status":"success","data":{"alerts":[{labels, annotations, state,
// activeAt, value}]}}: every pending or firing alert (resolved ones, which
// the engine keeps for re-sending, are left out as Prometheus does).
std::string AlertsJson(const RulesSnapshot& snapshot);

// {"status":"success","data":{"groups":[{name, file, rules, interval, limit,
// evaluationTime, lastEvaluation}]}}, rules in file order, alerting rules with
// state, duration, keepFiringFor, annotations and their active alerts.
// With a window memory budget, data also holds "windowMemory": {limitBytes,
// reservedBytes, folding, foldedSeries: {family: label sets folded}}, and
// while any family folds for want of budget a top-level "warnings" (as
// Prometheus's API has) says which.
std::string RulesJson(const RulesSnapshot& snapshot);

}  // namespace novapulse

#endif  // NOVAPULSE_SINKS_RULES_JSON_H_
