// RuleRunner: event time for the rule engine. It owns the series store the
// rules read, the window history that feeds it from the metric shards, and
// the RuleEngine; the pipeline tells it how far the watermark has advanced,
// and it closes window slots and evaluates the rule groups due at each
// slot's end, in event-time order.
//
// Threads: one thread drives it (replay: the serial completion stage) with
// Start / AdvanceTo / Finish; the slots are closed and the rules evaluated on
// the runner's own thread, so evaluation never holds up ingestion (writers
// that run ahead of it spill to the window's side buffer). The engine's
// transition callback runs on that thread; its Snapshot() may be read from
// any thread.
//   auto runner = RuleRunner::Build(std::move(rules), options);
//   NovaGiftMetrics metrics(threads, limit, &(*runner)->window_spec());
//   (*runner)->Attach(&metrics.store());  (*runner)->Start(first_event_ms);
// The metrics may be any whose store holds the families given to Build (a
// metric spec's SpecMetrics: Build(rules, options, SpecMetrics::Defs(spec))).
//   (*runner)->AdvanceTo(watermark_ms);  ...  (*runner)->Finish(newest_event_ms);
#ifndef NOVAPULSE_PIPELINE_RULE_RUNNER_H_
#define NOVAPULSE_PIPELINE_RULE_RUNNER_H_

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "aggregators/novagift_metrics.h"
#include "aggregators/window.h"
#include "base/state_part.h"
#include "rules/promql.h"
#include "rules/rule_engine.h"

namespace novapulse {

struct RuleRunnerOptions {
  int64_t lateness_ms = 30'000;  // watermark = newest event time - lateness
  size_t ring_slots = 256;
  // The window memory budget (WindowSpec::memory_bytes; 0: none).
  size_t window_memory_bytes = kDefaultWindowMemoryBytes;
  // WindowHistory::set_zero_new_series.
  bool zero_new_series = false;
  // With a sink: every exported family (not the self metrics, not computed
  // gauges) is windowed and each of its series sent to `backfill` at every
  // `backfill_step_ms` of event time.
  WindowSampleSink* backfill = nullptr;
  int64_t backfill_step_ms = 15'000;
};

class RuleRunner : public MetricSource, public StatePart {
 public:
  // `families`: those of the store the runner will read (the NovaGift
  // families and self metrics by default), by index.
  static absl::StatusOr<std::unique_ptr<RuleRunner>> Build(
      RuleSet rules, const RuleRunnerOptions& options,
      const std::vector<MetricDef>& families = NovaGiftMetricDefs());

  // For the metrics the runner will read.
  const WindowSpec& window_spec() const { return spec_; }
  // Metric names the rules read that novapulse does not export (their
  // selectors select nothing).
  const std::vector<std::string>& unknown_metrics() const { return unknown_; }
  int64_t lateness_ms() const { return options_.lateness_ms; }

  // `store` holds the families given to Build, was built with
  // window_spec() and outlives the runner.
  void Attach(MetricStore* store);
  // Opens the window at the slot of `first_event_ms - lateness`, before any
  // writer runs, and starts the evaluation thread.
  void Start(int64_t first_event_ms);
  bool started() const { return started_; }
  // Lets the evaluation thread close every slot ending at or before
  // `watermark_ms` and evaluate the groups due at each slot end. Returns at
  // once, unless the window's side buffer holds more than
  // kMaxSpilledUpdates: then it waits until that is evaluated. Writers
  // spill the updates of series the windows have not placed yet and of
  // slots beyond the ring, so when evaluation falls far behind a stream of
  // new label sets, the caller's pipeline waits instead of the buffer
  // growing with the input.
  void AdvanceTo(int64_t watermark_ms);
  static constexpr size_t kMaxSpilledUpdates = size_t{1} << 20;
  // End of input: closes through the slot holding `newest_event_ms` and
  // waits until that is evaluated.
  void Finish(int64_t newest_event_ms);
  // Waits until every slot ending at or before `watermark_ms` is evaluated.
  void WaitFor(int64_t watermark_ms);

  // Stale-series expiry with windows. Waits until the evaluation thread is
  // idle and keeps it so while `expire` (e.g. NovaGiftMetrics::ExpireIdle)
  // runs with `now_ms`, held back to where the windows are closed (so every
  // windowed update of a series it removes is folded); nothing expires
  // before the runner has started. Then the series it lists as removed leave the windows
  // (WindowHistory::Retire: a staleness marker ends them for the rules).
  // Writers must not run. Returns what `expire` returns.
  using ExpireFn =
      absl::FunctionRef<size_t(int64_t now_ms, std::vector<MetricStore::Removed>* removed)>;
  size_t ExpireIdle(int64_t now_ms, ExpireFn expire);

  // Stops the evaluation thread (whatever is not yet evaluated stays so).
  // Before the metrics it reads or anything on_evaluated uses go away; the
  // destructor calls it too.
  void Stop();
  ~RuleRunner() override;

  // Called on the evaluation thread after each evaluated instant, with the
  // engine (e.g. to hand alerts to Alertmanager). Set before Start().
  void set_on_evaluated(std::function<void(int64_t t_ms, RuleEngine& engine)> f) {
    on_evaluated_ = std::move(f);
  }
  // The rule and window self metrics (novapulse_rule_*, novapulse_window_*,
  // novapulse_watermark_seconds); the rules' outputs are read separately
  // (engine().Snapshot()). Any thread.
  void CollectMetrics(MetricFamilies* out) override;

  // Checkpoints (section "rules"). The fingerprint names the rules, slot and
  // ring sizes, the window memory budget and the windowed families: saved
  // state loads only under the same fingerprint.
  std::string_view StateName() const override { return "rules"; }
  std::string StateFingerprint() const override;
  std::string_view StateChanged() const override {
    return "the rules or the window settings changed since the checkpoint";
  }
  // Waits until the evaluation thread has caught up, then saves the window
  // history (store slot cells included), the series store and the engine
  // while holding it. Writers must not run meanwhile. Any thread but the
  // evaluation thread.
  void SaveState(StateWriter* w) override;
  // Into a runner just attached and not started; starts the evaluation
  // thread when the saved runner had started. FailedPrecondition, with
  // nothing loaded, when the saved windows do not fit this runner's budget
  // (more threads than when saved: see WindowHistory::LoadBudget).
  // FailedPrecondition too when the metrics' series ids moved since (the
  // series limit changed).
  [[nodiscard]] absl::Status LoadState(StateReader* r, StateLoad* load) override;

  RuleEngine& engine() { return *engine_; }
  const WindowHistory* history() const { return history_.get(); }
  // CPU time spent evaluating rules, and slot ends evaluated (read after
  // Finish or WaitFor).
  double eval_seconds() const { return eval_seconds_; }
  uint64_t eval_instants() const { return eval_instants_; }
  // The q-quantile (0..1) of the CPU time one instant's evaluation took,
  // in seconds, from a histogram with 10 buckets per decade (so within
  // about 26%); read after Finish or WaitFor.
  double EvalQuantileSeconds(double q) const;

 private:
  RuleRunner() = default;
  void Loop();
  // Publishes the window budget's figures to the self metrics and the
  // engine's snapshot; the evaluation thread, or before it starts.
  void PublishWindowStatus();

  RuleRunnerOptions options_;
  WindowSpec spec_;
  std::vector<WindowHistory::Wanted> wanted_;
  std::vector<std::string> unknown_;
  promql::SeriesStore series_;
  std::unique_ptr<RuleEngine> engine_;
  std::unique_ptr<WindowHistory> history_;
  MetricStore* store_ = nullptr;
  bool started_ = false;
  double eval_seconds_ = 0;  // evaluation thread
  uint64_t eval_instants_ = 0;
  std::array<uint64_t, 100> eval_histogram_{};  // bucket b: [10^(b/10), 10^((b+1)/10)) ns

  std::function<void(int64_t, RuleEngine&)> on_evaluated_;
  // Self metrics, written by the evaluation thread.
  std::atomic<uint64_t> evaluations_{0};
  std::atomic<uint64_t> failures_{0};
  std::atomic<uint64_t> eval_nanos_{0};
  std::atomic<int64_t> evaluated_ms_{INT64_MIN};
  std::atomic<uint64_t> window_bytes_{0};
  std::atomic<uint64_t> window_series_{0};
  mutable std::mutex window_mu_;
  // Reserved bytes and, per windowed family, label sets folded for want of budget.
  uint64_t window_reserved_ = 0;                               // guarded by window_mu_
  std::vector<std::pair<std::string_view, uint64_t>> folded_;  // guarded by window_mu_

  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  int64_t target_ms_ = INT64_MIN;  // guarded by mu_: close slots ending by this
  int64_t done_ms_ = INT64_MIN;    // guarded by mu_: every slot ending by this is evaluated
  bool stop_ = false;              // guarded by mu_
};

// Stale-series expiry at event time `now_ms` by `expire` (a metric set's
// ExpireIdle), through the windows of `rules` when set
// (RuleRunner::ExpireIdle). No writer may run. Returns the series removed.
size_t ExpireSeries(RuleRunner::ExpireFn expire, RuleRunner* rules, int64_t now_ms);
// The same for a metric set (NovaGiftMetrics, SpecMetrics) or a
// MetricEngine: anything with ExpireIdle.
template <typename Metrics>
size_t ExpireSeries(Metrics& metrics, RuleRunner* rules, int64_t now_ms) {
  return ExpireSeries(
      [&metrics](int64_t now, std::vector<MetricStore::Removed>* r) {
        return metrics.ExpireIdle(now, r);
      },
      rules, now_ms);
}

// `novapulse check-rules FILE...`: 0 when every file loads (prints what the
// rules read and the window history that takes), 1 when one does not (prints
// FILE:LINE:COL and the reason), 2 on a usage error.
int RunCheckRulesCommand(int argc, char** argv);

}  // namespace novapulse

#endif  // NOVAPULSE_PIPELINE_RULE_RUNNER_H_
