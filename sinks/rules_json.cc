#include "sinks/rules_json.h"

#include <algorithm>
#include <string>
#include <string_view>

#include "absl/strings/ascii.h"
#include "sinks/json_text.h"

namespace novapulse {
namespace {

bool Active(const Alert& a) { return a.resolved_at_ms == 0; }

void AppendAlert(std::string* out, const Alert& a) {
  out->append("{\"labels\":");
  AppendJsonObject(out, a.labels);
  out->append(",\"annotations\":");
  AppendJsonObject(out, a.annotations);
  out->append(",\"state\":");
  AppendJsonString(out, AlertStateName(a.state));
  out->append(",\"activeAt\":");
  AppendJsonTime(out, a.active_at_ms);
  if (a.keep_firing_since_ms != 0) {
    out->append(",\"keepFiringSince\":");
    AppendJsonTime(out, a.keep_firing_since_ms);
  }
  out->append(",\"value\":");
  AppendJsonString(out, GoExponentFloat(a.value));
  out->push_back('}');
}

void AppendActiveAlerts(std::string* out, const RuleStatus& status) {
  out->push_back('[');
  bool first = true;
  for (const Alert& a : status.alerts) {
    if (!Active(a)) continue;
    if (!first) out->push_back(',');
    first = false;
    AppendAlert(out, a);
  }
  out->push_back(']');
}

// The rule's state: its most advanced alert's (firing > pending > inactive).
AlertState RuleState(const RuleStatus& status) {
  AlertState state = AlertState::kInactive;
  for (const Alert& a : status.alerts) {
    if (a.state == AlertState::kFiring) return AlertState::kFiring;
    if (a.state == AlertState::kPending) state = AlertState::kPending;
  }
  return state;
}

void AppendRule(std::string* out, const RuleStatus& status) {
  const RuleSpec& r = *status.rule;
  const std::string query(absl::StripAsciiWhitespace(r.expr_text));
  out->push_back('{');
  if (r.alert) {
    out->append("\"state\":");
    AppendJsonString(out, AlertStateName(RuleState(status)));
    out->append(",\"name\":");
    AppendJsonString(out, r.name);
    out->append(",\"query\":");
    AppendJsonString(out, query);
    out->append(",\"duration\":");
    AppendJsonNumber(out, static_cast<double>(r.for_ms) / 1000);
    out->append(",\"keepFiringFor\":");
    AppendJsonNumber(out, static_cast<double>(r.keep_firing_for_ms) / 1000);
    out->append(",\"labels\":");
    AppendJsonObject(out, r.raw_labels);
    out->append(",\"annotations\":");
    AppendJsonObject(out, r.raw_annotations);
    out->append(",\"alerts\":");
    AppendActiveAlerts(out, status);
  } else {
    out->append("\"name\":");
    AppendJsonString(out, r.name);
    out->append(",\"query\":");
    AppendJsonString(out, query);
    // Prometheus omits empty recording-rule labels (omitempty).
    if (!r.raw_labels.empty()) {
      out->append(",\"labels\":");
      AppendJsonObject(out, r.raw_labels);
    }
  }
  out->append(",\"health\":");
  AppendJsonString(out, status.health);
  if (!status.last_error.empty()) {
    out->append(",\"lastError\":");
    AppendJsonString(out, status.last_error);
  }
  out->append(",\"evaluationTime\":");
  AppendJsonNumber(out, status.eval_seconds);
  out->append(",\"lastEvaluation\":");
  AppendJsonTimeOrZero(out, status.last_eval_ms);
  out->append(r.alert ? ",\"type\":\"alerting\"}" : ",\"type\":\"recording\"}");
}

// Rules [begin, end) all belong to one group.
void AppendGroup(std::string* out, const RulesSnapshot& snapshot, size_t begin, size_t end) {
  const RuleGroupSpec& g = *snapshot.rules[begin].group;
  double eval_seconds = 0;
  int64_t last_eval_ms = 0;
  out->append("{\"name\":");
  AppendJsonString(out, g.name);
  out->append(",\"file\":");
  AppendJsonString(out, g.file);
  out->append(",\"rules\":[");
  for (size_t i = begin; i < end; ++i) {
    if (i > begin) out->push_back(',');
    AppendRule(out, snapshot.rules[i]);
    eval_seconds += snapshot.rules[i].eval_seconds;
    last_eval_ms = std::max(last_eval_ms, snapshot.rules[i].last_eval_ms);
  }
  out->append("],\"interval\":");
  AppendJsonNumber(out, static_cast<double>(g.interval_ms) / 1000);
  out->append(",\"limit\":");
  out->append(std::to_string(g.limit));
  out->append(",\"evaluationTime\":");
  AppendJsonNumber(out, eval_seconds);
  out->append(",\"lastEvaluation\":");
  AppendJsonTimeOrZero(out, last_eval_ms);
  out->push_back('}');
}

// The window memory budget, when there is one: its figures, and the
// families folding label sets into __overflow__ for want of it.
void AppendWindows(std::string* out, const WindowBudgetStatus& w) {
  out->append(",\"windowMemory\":{\"limitBytes\":");
  out->append(std::to_string(w.limit_bytes));
  out->append(",\"reservedBytes\":");
  out->append(std::to_string(w.reserved_bytes));
  out->append(",\"folding\":");
  out->append(w.folded.empty() ? "false" : "true");
  out->append(",\"foldedSeries\":{");
  for (size_t i = 0; i < w.folded.size(); ++i) {
    if (i > 0) out->push_back(',');
    AppendJsonString(out, w.folded[i].first);
    out->push_back(':');
    out->append(std::to_string(w.folded[i].second));
  }
  out->append("}}");
}

// Prometheus's API carries notes for the reader in a top-level "warnings".
void AppendWindowWarning(std::string* out, const WindowBudgetStatus& w) {
  std::string families;
  for (const auto& [name, n] : w.folded) {
    if (!families.empty()) families += ", ";
    families += name;
  }
  out->append(",\"warnings\":[");
  AppendJsonString(
      out, "the window memory budget (rules.window_memory_bytes: " + std::to_string(w.limit_bytes) +
               ") is spoken for: new label sets of " + families +
               " fold into their __overflow__ series in the windows the rules read");
  out->push_back(']');
}

}  // namespace

std::string AlertsJson(const RulesSnapshot& snapshot) {
  std::string out = "{\"status\":\"success\",\"data\":{\"alerts\":[";
  bool first = true;
  for (const RuleStatus& status : snapshot.rules) {
    if (!status.rule->alert) continue;
    for (const Alert& a : status.alerts) {
      if (!Active(a)) continue;
      if (!first) out.push_back(',');
      first = false;
      AppendAlert(&out, a);
    }
  }
  out.append("]}}");
  return out;
}

std::string RulesJson(const RulesSnapshot& snapshot) {
  std::string out = "{\"status\":\"success\",\"data\":{\"groups\":[";
  for (size_t begin = 0; begin < snapshot.rules.size();) {
    size_t end = begin + 1;
    while (end < snapshot.rules.size() &&
           snapshot.rules[end].group == snapshot.rules[begin].group) {
      ++end;
    }
    if (begin > 0) out.push_back(',');
    AppendGroup(&out, snapshot, begin, end);
    begin = end;
  }
  out.push_back(']');
  if (snapshot.windows.limit_bytes > 0) AppendWindows(&out, snapshot.windows);
  out.push_back('}');
  if (!snapshot.windows.folded.empty()) AppendWindowWarning(&out, snapshot.windows);
  out.push_back('}');
  return out;
}

}  // namespace novapulse
