// RuleRunner: event time for the rule engine. It owns the series store the
// rules read, the window history that feeds it from the metric shards, and
// the RuleEngine; the pipeline tells it how far the watermark has advanced,
// and it closes window slots and evaluates the rule groups due at each
// slot's end, in event-time order.
//
// Threads: one thread drives it (replay: the serial completion stage).
// Snapshot() of the engine may be read from any thread.
//   auto runner = RuleRunner::Build(std::move(rules), options);
//   NovaGiftMetrics metrics(threads, limit, &(*runner)->window_spec());
//   (*runner)->Attach(&metrics);  (*runner)->Start(first_event_ms);
//   (*runner)->AdvanceTo(watermark_ms);  ...  (*runner)->Finish(newest_event_ms);
#ifndef NOVAPULSE_PIPELINE_RULE_RUNNER_H_
#define NOVAPULSE_PIPELINE_RULE_RUNNER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "aggregators/novagift_metrics.h"
#include "aggregators/promql.h"
#include "aggregators/rules.h"
#include "aggregators/window.h"

namespace novapulse {

struct RuleRunnerOptions {
  int64_t lateness_ms = 30'000;  // watermark = newest event time - lateness
  size_t ring_slots = 256;
};

class RuleRunner {
 public:
  static absl::StatusOr<std::unique_ptr<RuleRunner>> Build(RuleSet rules,
                                                           const RuleRunnerOptions& options);

  // For the NovaGiftMetrics the runner will read.
  const WindowSpec& window_spec() const { return spec_; }
  // Metric names the rules read that novapulse does not export (their
  // selectors select nothing).
  const std::vector<std::string>& unknown_metrics() const { return unknown_; }
  int64_t lateness_ms() const { return options_.lateness_ms; }

  // `metrics` was built with window_spec() and outlives the runner.
  void Attach(NovaGiftMetrics* metrics);
  // Opens the window at the slot of `first_event_ms - lateness`, before any
  // writer runs.
  void Start(int64_t first_event_ms);
  bool started() const { return started_; }
  // Closes every slot ending at or before `watermark_ms` and evaluates the
  // groups due at each slot end.
  void AdvanceTo(int64_t watermark_ms);
  // End of input: closes through the slot holding `newest_event_ms`.
  void Finish(int64_t newest_event_ms);

  RuleEngine& engine() { return *engine_; }
  const WindowHistory* history() const { return history_.get(); }
  // Wall time spent evaluating rules, and slot ends evaluated.
  double eval_seconds() const { return eval_seconds_; }
  uint64_t eval_instants() const { return eval_instants_; }

 private:
  RuleRunner() = default;

  RuleRunnerOptions options_;
  WindowSpec spec_;
  std::vector<WindowHistory::Wanted> wanted_;
  std::vector<std::string> unknown_;
  promql::SeriesStore series_;
  std::unique_ptr<RuleEngine> engine_;
  std::unique_ptr<WindowHistory> history_;
  bool started_ = false;
  double eval_seconds_ = 0;
  uint64_t eval_instants_ = 0;
};

// Event time of the first / last non-blank line of `text` (NDJSON), read
// cheaply from its "ts" member without parsing the line; false when there is
// none that reads as a time.
bool FirstLineEventTime(std::string_view text, int64_t* ms);
bool LastLineEventTime(std::string_view text, int64_t* ms);

// `novapulse check-rules FILE...`: 0 when every file loads (prints what the
// rules read and the window history that takes), 1 when one does not (prints
// FILE:LINE:COL and the reason), 2 on a usage error.
int RunCheckRulesCommand(int argc, char** argv);

}  // namespace novapulse

#endif  // NOVAPULSE_PIPELINE_RULE_RUNNER_H_
