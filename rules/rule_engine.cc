#include "rules/rule_engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <set>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "base/string_map.h"

namespace novapulse {
namespace {

constexpr std::string_view kAlertsMetric = "ALERTS";
constexpr std::string_view kForStateMetric = "ALERTS_FOR_STATE";

void DropLabel(promql::Labels* labels, std::string_view name);

// As Prometheus's labels.Builder.Set: an empty value removes the label.
void SetLabel(promql::Labels* labels, std::string_view name, std::string value) {
  if (value.empty()) {
    DropLabel(labels, name);
    return;
  }
  for (promql::Label& l : *labels) {
    if (l.name == name) {
      l.value = std::move(value);
      return;
    }
  }
  labels->push_back({std::string(name), std::move(value)});
  std::sort(labels->begin(), labels->end());
}

void DropLabel(promql::Labels* labels, std::string_view name) {
  labels->erase(std::remove_if(labels->begin(), labels->end(),
                               [name](const promql::Label& l) { return l.name == name; }),
                labels->end());
}

}  // namespace

std::string_view AlertStateName(AlertState s) {
  switch (s) {
    case AlertState::kInactive:
      return "inactive";
    case AlertState::kPending:
      return "pending";
    case AlertState::kFiring:
      return "firing";
  }
  return "inactive";
}

RuleEngine::RuleEngine(RuleSet rules, promql::SeriesStore* store)
    : rules_(std::move(rules)), store_(store), evaluator_(store) {
  int64_t slot = 0;
  std::set<std::string> produced = {std::string(kAlertsMetric), std::string(kForStateMetric)};
  for (const RuleGroupSpec& g : rules_.groups) {
    slot = std::gcd(slot, g.interval_ms);
    for (const RuleSpec& r : g.rules) {
      if (!r.alert) produced.insert(r.name);
    }
  }
  if (slot > 0) slot_ms_ = slot;
  StringMap<int64_t> reach;
  for (const RuleGroupSpec& g : rules_.groups) {
    state_.emplace_back(g.rules.size());
    for (const RuleSpec& r : g.rules) {
      for (const promql::Reach& x : promql::MetricReach(*r.expr)) {
        int64_t& ms = reach[x.metric];
        ms = std::max(ms, x.ms + g.interval_ms);
      }
    }
  }
  for (const auto& [metric, ms] : reach) {
    if (produced.contains(metric)) {
      store_->SetRetention(metric, ms);
    } else {
      input_reach_.push_back({metric, ms});
    }
  }
  std::sort(input_reach_.begin(), input_reach_.end(),
            [](const promql::Reach& a, const promql::Reach& b) { return a.metric < b.metric; });
  // Rule outputs nobody reads still need their latest sample for /metrics.
  for (const RuleGroupSpec& g : rules_.groups) {
    for (const RuleSpec& r : g.rules) {
      if (!r.alert && !reach.contains(r.name)) store_->SetRetention(r.name, g.interval_ms);
    }
  }
  if (!reach.contains(kAlertsMetric)) store_->SetRetention(kAlertsMetric, slot_ms_);
  if (!reach.contains(kForStateMetric)) store_->SetRetention(kForStateMetric, slot_ms_);
  // The rules are listed (health "unknown") before their first evaluation,
  // as Prometheus lists them.
  PublishSnapshot(0);
}

void RuleEngine::EvaluateDue(int64_t t_ms) {
  std::vector<std::pair<promql::Labels, double>> series;
  bool any = false;
  size_t flat = 0;
  if (outputs_.empty()) {
    size_t n = 0;
    for (const RuleGroupSpec& g : rules_.groups) n += g.rules.size();
    outputs_.resize(n);
  }
  for (size_t gi = 0; gi < rules_.groups.size(); ++gi) {
    const RuleGroupSpec& g = rules_.groups[gi];
    if (t_ms % g.interval_ms != 0) {
      flat += g.rules.size();
      continue;
    }
    any = true;
    for (size_t ri = 0; ri < g.rules.size(); ++ri, ++flat) {
      const RuleSpec& r = g.rules[ri];
      RuleState& st = state_[gi][ri];
      const auto start = std::chrono::steady_clock::now();
      std::vector<std::pair<promql::Labels, double>> out;
      absl::StatusOr<promql::Vector> v = evaluator_.Eval(*r.expr, t_ms);
      const bool ok = !v.ok()   ? Fail(st, std::string(v.status().message()))
                      : r.alert ? EvalAlerting(g, r, st, t_ms, *v, out)
                                : EvalRecording(g, r, st, *std::move(v), out);
      // A failed evaluation writes nothing, not even staleness markers.
      if (ok) {
        outputs_[flat] = std::move(out);
        WriteOutputs(st, outputs_[flat], t_ms);
      }
      st.eval_seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      st.last_eval_ms = t_ms;
      st.evaluated = true;
      ++evaluations_;
    }
  }
  if (!any) return;
  last_eval_ms_ = t_ms;
  PublishSnapshot(t_ms);
}

void RuleEngine::PublishSnapshot(int64_t t_ms) {
  RulesSnapshot snap;
  snap.last_eval_ms = t_ms;
  size_t flat = 0;
  for (size_t gi = 0; gi < rules_.groups.size(); ++gi) {
    for (size_t ri = 0; ri < rules_.groups[gi].rules.size(); ++ri, ++flat) {
      const RuleState& st = state_[gi][ri];
      RuleStatus status;
      status.group = &rules_.groups[gi];
      status.rule = &rules_.groups[gi].rules[ri];
      status.health = !st.evaluated ? "unknown" : st.last_error.empty() ? "ok" : "err";
      status.last_error = st.last_error;
      status.last_eval_ms = st.last_eval_ms;
      status.eval_seconds = st.eval_seconds;
      for (const auto& [key, alert] : st.active) status.alerts.push_back(alert);
      snap.rules.push_back(std::move(status));
      if (flat < outputs_.size()) {
        for (const auto& s : outputs_[flat]) snap.series.push_back(s);
      }
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  snapshot_ = std::move(snap);
}

// Appends this evaluation's outputs and a staleness marker for each series
// the rule wrote last time and not now, as Prometheus does.
void RuleEngine::WriteOutputs(RuleState& st, std::vector<std::pair<promql::Labels, double>>& out,
                              int64_t t_ms) {
  std::vector<uint32_t> refs;
  refs.reserve(out.size());
  for (const auto& [labels, v] : out) {
    const uint32_t ref = store_->Ref(labels);
    store_->Append(ref, t_ms, v);
    refs.push_back(ref);
  }
  std::sort(refs.begin(), refs.end());
  for (uint32_t old : st.last_refs) {
    if (!std::binary_search(refs.begin(), refs.end(), old)) {
      store_->Append(old, t_ms, promql::StaleNaN());
    }
  }
  st.last_refs = std::move(refs);
}

bool RuleEngine::Fail(RuleState& st, std::string error) {
  ++failures_;
  st.last_error = std::move(error);
  return false;
}

bool RuleEngine::EvalRecording(const RuleGroupSpec& g, const RuleSpec& r, RuleState& st,
                               promql::Vector v,
                               std::vector<std::pair<promql::Labels, double>>& out) {
  out.reserve(v.size());
  for (promql::Element& e : v) {
    promql::Labels labels = std::move(e.labels);
    SetLabel(&labels, "__name__", r.name);
    for (const auto& [name, t] : r.labels) SetLabel(&labels, name, t.Expand({}, 0));
    out.emplace_back(std::move(labels), e.v);
  }
  // In label order: the evaluator's order follows series creation, which
  // depends on which worker met a series first.
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t i = 1; i < out.size(); ++i) {
    if (out[i].first == out[i - 1].first) {
      return Fail(st, "vector contains metrics with the same labelset after applying rule labels");
    }
  }
  if (g.limit > 0 && out.size() > static_cast<size_t>(g.limit)) {
    return Fail(st, absl::StrCat("exceeded limit of ", g.limit, " with ", out.size(), " series"));
  }
  st.last_error.clear();
  return true;
}

bool RuleEngine::EvalAlerting(const RuleGroupSpec& g, const RuleSpec& r, RuleState& st,
                              int64_t t_ms, const promql::Vector& v,
                              std::vector<std::pair<promql::Labels, double>>& out) {
  auto notify = [&](const Alert& a, AlertState from, AlertState to) {
    if (on_transition_) on_transition_({t_ms, &r, &a, from, to});
  };
  std::set<promql::Labels> seen;
  struct Result {
    promql::Labels labels;
    std::vector<std::pair<std::string, std::string>> annotations;
    double value;
  };
  std::vector<Result> results;
  for (const promql::Element& e : v) {
    Result res;
    res.value = e.v;
    res.labels = e.labels;
    DropLabel(&res.labels, "__name__");
    for (const auto& [name, t] : r.labels) SetLabel(&res.labels, name, t.Expand(e.labels, e.v));
    SetLabel(&res.labels, "alertname", r.name);
    for (const auto& [name, t] : r.annotations) {
      res.annotations.emplace_back(name, t.Expand(e.labels, e.v));
    }
    if (!seen.insert(res.labels).second) {
      return Fail(st, "vector contains metrics with the same labelset after applying alert labels");
    }
    results.push_back(std::move(res));
  }
  // In label order, so that alerts that start together are reported in an
  // order that does not depend on how series were created.
  std::sort(results.begin(), results.end(),
            [](const Result& a, const Result& b) { return a.labels < b.labels; });
  if (g.limit > 0 && results.size() > static_cast<size_t>(g.limit)) {
    return Fail(st,
                absl::StrCat("exceeded limit of ", g.limit, " with ", results.size(), " alerts"));
  }
  st.last_error.clear();
  for (Result& res : results) {
    auto it = st.active.find(res.labels);
    if (it != st.active.end() && it->second.state != AlertState::kInactive) {
      it->second.value = res.value;
      it->second.annotations = std::move(res.annotations);
      it->second.keep_firing_since_ms = 0;
      continue;
    }
    Alert a;
    a.labels = res.labels;
    a.annotations = std::move(res.annotations);
    a.state = AlertState::kPending;
    a.value = res.value;
    a.active_at_ms = t_ms;
    Alert& stored = st.active[res.labels];
    stored = std::move(a);
    notify(stored, AlertState::kInactive, AlertState::kPending);
  }
  for (auto it = st.active.begin(); it != st.active.end();) {
    Alert& a = it->second;
    if (!seen.contains(it->first)) {
      bool keep_firing = false;
      if (a.state == AlertState::kFiring && r.keep_firing_for_ms > 0) {
        if (a.keep_firing_since_ms == 0) a.keep_firing_since_ms = t_ms;
        keep_firing = t_ms - a.keep_firing_since_ms < r.keep_firing_for_ms;
      }
      if (a.state == AlertState::kPending ||
          (a.resolved_at_ms != 0 && t_ms - a.resolved_at_ms > kResolvedRetentionMs)) {
        if (a.state == AlertState::kPending) notify(a, AlertState::kPending, AlertState::kInactive);
        it = st.active.erase(it);
        continue;
      }
      if (a.state != AlertState::kInactive && !keep_firing) {
        const AlertState from = a.state;
        a.state = AlertState::kInactive;
        a.resolved_at_ms = t_ms;
        notify(a, from, AlertState::kInactive);
      }
      if (!keep_firing) {
        ++it;
        continue;
      }
    }
    if (a.state == AlertState::kPending && t_ms - a.active_at_ms >= r.for_ms) {
      a.state = AlertState::kFiring;
      a.fired_at_ms = t_ms;
      notify(a, AlertState::kPending, AlertState::kFiring);
    }
    promql::Labels alerts = a.labels;
    SetLabel(&alerts, "__name__", std::string(kAlertsMetric));
    SetLabel(&alerts, "alertstate", std::string(AlertStateName(a.state)));
    out.emplace_back(std::move(alerts), 1.0);
    promql::Labels for_state = a.labels;
    SetLabel(&for_state, "__name__", std::string(kForStateMetric));
    out.emplace_back(std::move(for_state),  // Whole seconds, as Prometheus's ActiveAt.Unix().
                     std::floor(static_cast<double>(a.active_at_ms) / 1000.0));
    ++it;
  }
  return true;
}

std::vector<Alert> RuleEngine::AlertsToSend(int64_t t_ms, int64_t resend_ms) {
  std::vector<Alert> out;
  for (size_t gi = 0; gi < rules_.groups.size(); ++gi) {
    const int64_t delta = std::max(resend_ms, rules_.groups[gi].interval_ms);
    for (RuleState& st : state_[gi]) {
      for (auto& [key, a] : st.active) {
        if (a.state == AlertState::kPending) continue;
        const bool resolved_since = a.resolved_at_ms > a.last_sent_ms;
        const bool never_sent = a.last_sent_ms == 0;
        if (!resolved_since && !never_sent && !(a.last_sent_ms + resend_ms < t_ms)) continue;
        a.last_sent_ms = t_ms;
        a.valid_until_ms = t_ms + 4 * delta;
        out.push_back(a);
      }
    }
  }
  return out;
}

namespace {

void SaveLabels(const promql::Labels& labels, StateWriter* w) {
  w->U64(labels.size());
  for (const promql::Label& l : labels) {
    w->Str(l.name);
    w->Str(l.value);
  }
}

bool LoadLabels(StateReader* r, promql::Labels* labels) {
  size_t n = 0;
  if (!r->Count(&n, 2)) return false;
  labels->resize(n);
  for (promql::Label& l : *labels) {
    if (!r->Str(&l.name) || !r->Str(&l.value)) return false;
  }
  return true;
}

}  // namespace

void RuleEngine::SaveState(StateWriter* w) const {
  w->U64(evaluations_);
  w->U64(failures_);
  w->I64(last_eval_ms_);
  w->U64(state_.size());
  for (const std::vector<RuleState>& group : state_) {
    w->U64(group.size());
    for (const RuleState& st : group) {
      w->U64(st.active.size());
      for (const auto& [key, a] : st.active) {
        SaveLabels(a.labels, w);
        w->U64(a.annotations.size());
        for (const auto& [name, value] : a.annotations) {
          w->Str(name);
          w->Str(value);
        }
        w->U64(static_cast<uint64_t>(a.state));
        w->F64(a.value);
        for (int64_t t : {a.active_at_ms, a.fired_at_ms, a.resolved_at_ms, a.keep_firing_since_ms,
                          a.last_sent_ms, a.valid_until_ms}) {
          w->I64(t);
        }
      }
      w->U64(st.last_refs.size());
      for (uint32_t ref : st.last_refs) w->U64(ref);
      w->Str(st.last_error);
      w->I64(st.last_eval_ms);
      w->F64(st.eval_seconds);
      w->Bool(st.evaluated);
    }
  }
  w->U64(outputs_.size());
  for (const auto& out : outputs_) {
    w->U64(out.size());
    for (const auto& [labels, v] : out) {
      SaveLabels(labels, w);
      w->F64(v);
    }
  }
}

absl::Status RuleEngine::LoadState(StateReader* r) {
  size_t groups = 0;
  if (!r->U64(&evaluations_) || !r->U64(&failures_) || !r->TimeMs(&last_eval_ms_) ||
      !r->Count(&groups) || groups != state_.size()) {
    return r->Error("rules");
  }
  for (std::vector<RuleState>& group : state_) {
    size_t rules = 0;
    if (!r->Count(&rules) || rules != group.size()) return r->Error("rules");
    for (RuleState& st : group) {
      size_t active = 0;
      if (!r->Count(&active, 8)) return r->Error("alerts");
      for (size_t i = 0; i < active; ++i) {
        Alert a;
        size_t annotations = 0;
        uint64_t state = 0;
        if (!LoadLabels(r, &a.labels) || !r->Count(&annotations, 2)) return r->Error("alerts");
        a.annotations.resize(annotations);
        for (auto& [name, value] : a.annotations) {
          if (!r->Str(&name) || !r->Str(&value)) return r->Error("alerts");
        }
        if (!r->U64(&state) || state > static_cast<uint64_t>(AlertState::kFiring) ||
            !r->F64(&a.value)) {
          return r->Error("alerts");
        }
        a.state = static_cast<AlertState>(state);
        for (int64_t* t : {&a.active_at_ms, &a.fired_at_ms, &a.resolved_at_ms,
                           &a.keep_firing_since_ms, &a.last_sent_ms, &a.valid_until_ms}) {
          if (!r->TimeMs(t)) return r->Error("alerts");
        }
        promql::Labels key = a.labels;
        st.active[std::move(key)] = std::move(a);
      }
      size_t refs = 0;
      if (!r->Count(&refs)) return r->Error("rules");
      st.last_refs.resize(refs);
      for (uint32_t& ref : st.last_refs) {
        if (!r->U32(&ref) || !store_->IsLive(ref)) return r->Error("rules");
      }
      if (!r->Str(&st.last_error) || !r->TimeMs(&st.last_eval_ms) || !r->F64(&st.eval_seconds) ||
          !r->Bool(&st.evaluated)) {
        return r->Error("rules");
      }
    }
  }
  size_t outputs = 0;
  size_t rules = 0;
  for (const RuleGroupSpec& g : rules_.groups) rules += g.rules.size();
  // None before the first evaluation, else one per rule.
  if (!r->Count(&outputs) || (outputs != 0 && outputs != rules)) return r->Error("rule outputs");
  outputs_.resize(outputs);
  for (auto& out : outputs_) {
    size_t n = 0;
    if (!r->Count(&n, 10)) return r->Error("rule outputs");
    out.resize(n);
    for (auto& [labels, v] : out) {
      if (!LoadLabels(r, &labels) || !r->F64(&v)) return r->Error("rule outputs");
    }
  }
  PublishSnapshot(last_eval_ms_);
  return absl::OkStatus();
}

RulesSnapshot RuleEngine::Snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  RulesSnapshot snap = snapshot_;
  snap.windows = window_status_;
  return snap;
}

void RuleEngine::SetWindowStatus(WindowBudgetStatus status) {
  std::lock_guard<std::mutex> lock(mu_);
  window_status_ = std::move(status);
}

}  // namespace novapulse
