// The rule engine: evaluates a RuleSet in event time with Prometheus's alert
// state semantics (pending -> firing -> resolved, `for`, `keep_firing_for`,
// resolved alerts kept 15 minutes), writing recording-rule outputs, ALERTS
// and ALERTS_FOR_STATE back to the series store the rules read.
//
// Threads: a RuleEngine belongs to one thread (the pipeline's evaluation
// stage); Snapshot() copies what other threads may read (HTTP API,
// Alertmanager client) under a mutex.
//   RuleEngine engine(*ParseRuleFile(text, file), &series);
//   engine.EvaluateDue(t_ms);  // at each slot end
#ifndef NOVAPULSE_RULES_RULE_ENGINE_H_
#define NOVAPULSE_RULES_RULE_ENGINE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "rules/promql.h"
#include "rules/rule_file.h"

namespace novapulse {

enum class AlertState { kInactive, kPending, kFiring };
std::string_view AlertStateName(AlertState s);

struct Alert {
  promql::Labels labels;  // with alertname, sorted
  std::vector<std::pair<std::string, std::string>> annotations;
  AlertState state = AlertState::kPending;
  double value = 0;
  int64_t active_at_ms = 0;
  int64_t fired_at_ms = 0;
  int64_t resolved_at_ms = 0;  // 0 while active
  int64_t keep_firing_since_ms = 0;
  int64_t last_sent_ms = 0;
  int64_t valid_until_ms = 0;
};

// One alert's change of state, for the backtest timeline.
struct AlertTransition {
  int64_t t_ms = 0;
  const RuleSpec* rule = nullptr;
  const Alert* alert = nullptr;  // valid during the callback only
  AlertState from = AlertState::kInactive;
  AlertState to = AlertState::kInactive;
};

// What HTTP readers and the Alertmanager client see: a copy.
struct RuleStatus {
  const RuleGroupSpec* group = nullptr;
  const RuleSpec* rule = nullptr;
  std::string health = "unknown";  // ok | err | unknown
  std::string last_error;
  int64_t last_eval_ms = 0;
  double eval_seconds = 0;
  std::vector<Alert> alerts;  // alerting rules: active and recently resolved
};
// The window memory budget as the rule runner last saw it (see
// WindowHistory), for /api/v1/rules.
struct WindowBudgetStatus {
  uint64_t limit_bytes = 0;  // 0: no windows, or no budget
  uint64_t reserved_bytes = 0;
  // Families that folded label sets into their __overflow__ series for want
  // of budget, and how many.
  std::vector<std::pair<std::string, uint64_t>> folded;
};
struct RulesSnapshot {
  std::vector<RuleStatus> rules;
  // Latest recording-rule outputs, ALERTS and ALERTS_FOR_STATE (at the last
  // evaluation), for /metrics.
  std::vector<std::pair<promql::Labels, double>> series;
  int64_t last_eval_ms = 0;
  WindowBudgetStatus windows;
};

class RuleEngine {
 public:
  // How long a resolved alert is kept (and re-sent), as Prometheus does.
  static constexpr int64_t kResolvedRetentionMs = 15 * 60 * 1000;

  // `store` holds the metrics' window history and receives the rules'
  // outputs; it must outlive the engine.
  RuleEngine(RuleSet rules, promql::SeriesStore* store);

  // The slot every group interval is a multiple of (their gcd).
  int64_t slot_ms() const { return slot_ms_; }
  // Metrics the rules read, other than the rules' own outputs and ALERTS.
  const std::vector<promql::Reach>& input_reach() const { return input_reach_; }
  const RuleSet& rules() const { return rules_; }

  // Evaluates, in file order, every group whose interval divides `t_ms`.
  void EvaluateDue(int64_t t_ms);
  // Called on each state change of an alert (pending, firing, resolved).
  void set_on_transition(std::function<void(const AlertTransition&)> f) {
    on_transition_ = std::move(f);
  }
  // Alerts to send to Alertmanager at `t_ms` (Prometheus's needsSending):
  // firing ones not sent within `resend_ms`, and newly resolved ones.
  std::vector<Alert> AlertsToSend(int64_t t_ms, int64_t resend_ms);

  RulesSnapshot Snapshot() const;
  uint64_t evaluations() const { return evaluations_; }
  // What Snapshot() says of the windows the rules read; any thread.
  void SetWindowStatus(WindowBudgetStatus status);

  // Checkpoints: every rule's state (alerts with their active, fired, resolved
  // and sent times; the outputs of the last evaluation), for an engine built
  // from the same rules. The store's samples are saved by the store.
  void SaveState(StateWriter* w) const;
  [[nodiscard]] absl::Status LoadState(StateReader* r);
  uint64_t failures() const { return failures_; }

 private:
  struct RuleState {
    std::map<std::vector<promql::Label>, Alert> active;  // by label set
    std::vector<uint32_t> last_refs;  // output series written at the last evaluation
    std::string last_error;
    int64_t last_eval_ms = 0;
    double eval_seconds = 0;
    bool evaluated = false;
  };
  // Turn a rule's evaluated vector `v` into its outputs (and, for alerts,
  // its alert states). Both return false on an error, recorded by Fail().
  bool EvalRecording(const RuleGroupSpec& g, const RuleSpec& r, RuleState& st, promql::Vector v,
                     std::vector<std::pair<promql::Labels, double>>& out);
  bool EvalAlerting(const RuleGroupSpec& g, const RuleSpec& r, RuleState& st, int64_t t_ms,
                    const promql::Vector& v, std::vector<std::pair<promql::Labels, double>>& out);
  // Counts a failed evaluation and keeps its error; returns false.
  bool Fail(RuleState& st, std::string error);
  // Publishes what Snapshot() returns, as of the evaluation at `t_ms`.
  void PublishSnapshot(int64_t t_ms);
  void WriteOutputs(RuleState& st, std::vector<std::pair<promql::Labels, double>>& out,
                    int64_t t_ms);

  RuleSet rules_;
  promql::SeriesStore* store_;
  promql::Evaluator evaluator_;
  int64_t slot_ms_ = kDefaultRuleIntervalMs;
  int64_t last_eval_ms_ = 0;
  std::vector<promql::Reach> input_reach_;
  std::vector<std::vector<RuleState>> state_;  // [group][rule]
  std::function<void(const AlertTransition&)> on_transition_;
  uint64_t evaluations_ = 0;
  uint64_t failures_ = 0;

  mutable std::mutex mu_;
  RulesSnapshot snapshot_;                                               // guarded by mu_
  WindowBudgetStatus window_status_;                                     // guarded by mu_
  std::vector<std::vector<std::pair<promql::Labels, double>>> outputs_;  // [flat rule]
};

}  // namespace novapulse

#endif  // NOVAPULSE_RULES_RULE_ENGINE_H_
