#include "pipeline/rule_runner.h"

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstring>
#include <ctime>
#include <numeric>

#include "absl/strings/str_format.h"
#include "base/cli.h"
#include "base/time_math.h"
#include "parsers/timestamp.h"
#include "pipeline/rule_files.h"

namespace novapulse {
namespace {

int64_t ThreadCpuNanos() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace

absl::StatusOr<std::unique_ptr<RuleRunner>> RuleRunner::Build(
    RuleSet rules, const RuleRunnerOptions& options, const std::vector<MetricDef>& families) {
  std::unique_ptr<RuleRunner> r(new RuleRunner());
  r->options_ = options;
  r->engine_ = std::make_unique<RuleEngine>(std::move(rules), &r->series_);
  r->wanted_ = WindowHistory::Resolve(families, r->engine_->input_reach(), &r->unknown_);
  r->spec_.slot_ms = r->engine_->slot_ms();
  if (options.backfill != nullptr) {
    const std::vector<MetricDef>& defs = families;
    for (size_t m = 0; m < defs.size(); ++m) {
      if (IsComputed(defs[m].type) || defs[m].name.starts_with("novapulse_")) continue;
      auto it = std::find_if(r->wanted_.begin(), r->wanted_.end(),
                             [m](const WindowHistory::Wanted& w) { return w.metric == m; });
      WindowHistory::Wanted& w = it != r->wanted_.end() ? *it : r->wanted_.emplace_back();
      w.metric = m;
      const bool histogram = defs[m].type == MetricType::kHistogram;
      w.value = !histogram;
      w.buckets = w.sum = w.count = histogram;
    }
    r->spec_.slot_ms = std::gcd(r->spec_.slot_ms, options.backfill_step_ms);
  }
  r->spec_.ring_slots = options.ring_slots;
  r->spec_.families = WindowHistory::Families(r->wanted_);
  r->spec_.memory_bytes = options.window_memory_bytes;
  return r;
}

void RuleRunner::Attach(MetricStore* store) {
  store_ = store;
  history_ = std::make_unique<WindowHistory>(store, wanted_, &series_);
  history_->set_zero_new_series(options_.zero_new_series);
  if (options_.backfill != nullptr) {
    history_->set_sink(options_.backfill, options_.backfill_step_ms);
  }
  {
    std::lock_guard<std::mutex> lock(window_mu_);
    folded_.clear();
    for (const WindowHistory::Wanted& w : wanted_) {
      folded_.emplace_back(store->def(w.metric).name, 0);
    }
  }
  PublishWindowStatus();
}

void RuleRunner::PublishWindowStatus() {
  window_bytes_.store(history_->MemoryBytes(), std::memory_order_relaxed);
  window_series_.store(history_->series(), std::memory_order_relaxed);
  WindowBudgetStatus status;
  status.limit_bytes = history_->memory_limit();
  status.reserved_bytes = history_->reserved_bytes();
  {
    std::lock_guard<std::mutex> lock(window_mu_);
    window_reserved_ = status.reserved_bytes;
    for (const WindowHistory::Folded& f : history_->folded()) {
      for (auto& [name, n] : folded_) {
        if (name == f.metric) n = f.series;
      }
      status.folded.emplace_back(std::string(f.metric), f.series);
    }
  }
  engine_->SetWindowStatus(std::move(status));
}

void RuleRunner::Start(int64_t first_event_ms) {
  history_->Start(FloorDiv(first_event_ms - options_.lateness_ms, spec_.slot_ms));
  started_ = true;
  done_ms_ = history_->open_slot_end_ms() - 1;  // no slot ends by then
  thread_ = std::thread([this] { Loop(); });
}

void RuleRunner::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

RuleRunner::~RuleRunner() { Stop(); }

void RuleRunner::AdvanceTo(int64_t watermark_ms) {
  if (!started_) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (watermark_ms > target_ms_) {
      target_ms_ = watermark_ms;
      cv_.notify_all();
    }
  }
  if (store_->spilled_updates().load(std::memory_order_relaxed) > kMaxSpilledUpdates) {
    WaitFor(watermark_ms);
  }
}

void RuleRunner::WaitFor(int64_t watermark_ms) {
  if (!started_) return;
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return done_ms_ >= watermark_ms || stop_; });
}

double RuleRunner::EvalQuantileSeconds(double q) const {
  if (eval_instants_ == 0) return 0;
  const double rank = q * static_cast<double>(eval_instants_);
  uint64_t seen = 0;
  for (size_t b = 0; b < eval_histogram_.size(); ++b) {
    seen += eval_histogram_[b];
    if (static_cast<double>(seen) >= rank) return std::pow(10.0, (b + 1) / 10.0) / 1e9;
  }
  return std::pow(10.0, eval_histogram_.size() / 10.0) / 1e9;
}

size_t RuleRunner::ExpireIdle(int64_t now_ms, ExpireFn expire) {
  std::unique_lock<std::mutex> lock(mu_);
  // Idle, as for SaveState: the thread cannot take a new target while the
  // lock is held.
  cv_.wait(lock, [&] { return !started_ || stop_ || done_ms_ >= target_ms_; });
  // Not before the start: timed updates may wait in the spill buffers for
  // the slots the start opens (and until the first batch there are none).
  if (stop_ || !started_) return 0;
  const int64_t closed_ms = history_->open_slot() * history_->slot_ms();
  std::vector<MetricStore::Removed> removed;
  const size_t n = expire(std::min(now_ms, closed_ms), &removed);
  if (history_->Retire(removed) > 0) PublishWindowStatus();
  return n;
}

size_t ExpireSeries(RuleRunner::ExpireFn expire, RuleRunner* rules, int64_t now_ms) {
  if (rules == nullptr) return expire(now_ms, nullptr);
  return rules->ExpireIdle(now_ms, expire);
}

void RuleRunner::Finish(int64_t newest_event_ms) {
  const int64_t end = (FloorDiv(newest_event_ms, spec_.slot_ms) + 1) * spec_.slot_ms;
  AdvanceTo(end);
  WaitFor(end);
}

void RuleRunner::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [&] { return stop_ || history_->open_slot_end_ms() <= target_ms_; });
    if (stop_) return;
    const int64_t target = target_ms_;
    lock.unlock();
    while (history_->open_slot_end_ms() <= target) {
      const int64_t t = history_->open_slot_end_ms();
      history_->CloseSlot();
      // CPU time of this thread: the cost of the evaluation, not the time
      // the scheduler gave the ingestion threads meanwhile.
      const int64_t start = ThreadCpuNanos();
      engine_->EvaluateDue(t);
      const std::chrono::nanoseconds spent(ThreadCpuNanos() - start);
      eval_seconds_ += std::chrono::duration<double>(spent).count();
      ++eval_instants_;
      const double ns = std::max(1.0, static_cast<double>(spent.count()));
      ++eval_histogram_[std::min<size_t>(eval_histogram_.size() - 1,
                                         static_cast<size_t>(10 * std::log10(ns)))];
      if (on_evaluated_) on_evaluated_(t, *engine_);
      evaluations_.store(engine_->evaluations(), std::memory_order_relaxed);
      failures_.store(engine_->failures(), std::memory_order_relaxed);
      eval_nanos_.fetch_add(
          static_cast<uint64_t>(
              std::chrono::duration_cast<std::chrono::nanoseconds>(spent).count()),
          std::memory_order_relaxed);
      evaluated_ms_.store(t, std::memory_order_relaxed);
    }
    PublishWindowStatus();
    lock.lock();
    done_ms_ = history_->open_slot_end_ms() - 1;
    cv_.notify_all();
  }
}

std::string RuleRunner::StateFingerprint() const {
  std::string out = absl::StrFormat("slot=%d ring=%d lateness=%d window_memory=%d\n", spec_.slot_ms,
                                    spec_.ring_slots, options_.lateness_ms, spec_.memory_bytes);
  for (const WindowHistory::Wanted& w : wanted_) {
    absl::StrAppendFormat(&out, "window %d %d%d%d%d %d\n", w.metric, w.value, w.buckets, w.sum,
                          w.count, w.reach_ms);
  }
  for (const RuleGroupSpec& g : engine_->rules().groups) {
    absl::StrAppendFormat(&out, "group %s %d %d\n", g.name, g.interval_ms, g.limit);
    for (const RuleSpec& r : g.rules) {
      absl::StrAppendFormat(&out, "%s %s %d %d {%s}\n", r.alert ? "alert" : "record", r.name,
                            r.for_ms, r.keep_firing_for_ms, r.expr_text);
      for (const auto& [k, v] : r.raw_labels) absl::StrAppendFormat(&out, " label %s=%s\n", k, v);
      for (const auto& [k, v] : r.raw_annotations) {
        absl::StrAppendFormat(&out, " annotation %s=%s\n", k, v);
      }
    }
  }
  return out;
}

void RuleRunner::SaveState(StateWriter* w) {
  std::unique_lock<std::mutex> lock(mu_);
  // Idle: every target handed over is evaluated, and the thread cannot take
  // a new one while the lock is held.
  cv_.wait(lock, [&] { return !started_ || stop_ || done_ms_ >= target_ms_; });
  w->Bool(started_);
  if (!started_) return;
  w->U64(eval_nanos_.load(std::memory_order_relaxed));
  history_->SaveBudget(w);
  series_.SaveState(w);
  history_->SaveState(w);
  engine_->SaveState(w);
  store_->SaveWindows(w);
}

absl::Status RuleRunner::LoadState(StateReader* r, StateLoad* load) {
  if (load->series_ids_moved) {
    return absl::FailedPreconditionError("the series limit changed since the checkpoint");
  }
  bool started = false;
  if (!r->Bool(&started)) return r->Error("rules");
  if (!started) return absl::OkStatus();
  uint64_t eval_nanos = 0;
  if (!r->U64(&eval_nanos)) return r->Error("rules");
  if (absl::Status s = history_->LoadBudget(r); !s.ok()) return s;
  // In the order saved: the history's and the engine's refs point into the
  // series store.
  if (absl::Status s = series_.LoadState(r); !s.ok()) return s;
  if (absl::Status s = history_->LoadState(r); !s.ok()) return s;
  if (absl::Status s = engine_->LoadState(r); !s.ok()) return s;
  if (absl::Status s = store_->LoadWindows(r); !s.ok()) return s;
  eval_nanos_.store(eval_nanos, std::memory_order_relaxed);
  evaluations_.store(engine_->evaluations(), std::memory_order_relaxed);
  failures_.store(engine_->failures(), std::memory_order_relaxed);
  evaluated_ms_.store(engine_->Snapshot().last_eval_ms, std::memory_order_relaxed);
  PublishWindowStatus();
  started_ = true;
  // Saved idle: every slot before the open one was evaluated.
  done_ms_ = history_->open_slot_end_ms() - 1;
  target_ms_ = done_ms_;
  thread_ = std::thread([this] { Loop(); });
  return absl::OkStatus();
}

namespace {

#define NOVAPULSE_RULE_METRICS(M)                                                                 \
  M(kRuleEvaluations, "novapulse_rule_evaluations_total", "Rule evaluations.",                    \
    MetricType::kComputedCounter, {}, {})                                                         \
  M(kRuleFailures, "novapulse_rule_evaluation_failures_total",                                    \
    "Rule evaluations that failed (see /api/v1/rules for the error).",                            \
    MetricType::kComputedCounter, {}, {})                                                         \
  M(kRuleSeconds, "novapulse_rule_evaluation_seconds_total", "CPU time spent evaluating rules.",  \
    MetricType::kComputedCounter, {}, {})                                                         \
  M(kWatermark, "novapulse_watermark_seconds",                                                    \
    "Event time up to which window slots are closed and rules evaluated.", MetricType::kComputed, \
    {}, {})                                                                                       \
  M(kWindowMemory, "novapulse_window_memory_bytes",                                               \
    "Heap bytes of the window history the rules read (slot rings and samples).",                  \
    MetricType::kComputed, {}, {})                                                                \
  M(kWindowSeries, "novapulse_window_series", "Sample streams kept in the window history.",       \
    MetricType::kComputed, {}, {})                                                                \
  M(kWindowBytesPerSeries, "novapulse_window_bytes_per_series",                                   \
    "Window history bytes per sample stream.", MetricType::kComputed, {}, {})                     \
  M(kWindowMemoryLimit, "novapulse_window_memory_limit_bytes",                                    \
    "The window memory budget (rules.window_memory_bytes); 0: none.", MetricType::kComputed, {},  \
    {})                                                                                           \
  M(kWindowMemoryReserved, "novapulse_window_memory_reserved_bytes",                              \
    "Window memory the series given a window of their own may grow to, with one __overflow__ "    \
    "series per family; a new label set that would take it past the budget folds into "           \
    "__overflow__.",                                                                              \
    MetricType::kComputed, {}, {})                                                                \
  M(kWindowSeriesFolded, "novapulse_window_series_folded_total",                                  \
    "Label sets the windows the rules read fold into their family's __overflow__ series "         \
    "because the window memory budget is spoken for.",                                            \
    MetricType::kComputedCounter, {"metric"}, {})

enum RuleMetric : size_t { NOVAPULSE_RULE_METRICS(NOVAPULSE_METRIC_ID) };

const std::vector<MetricDef>& RuleMetricDefs() {
  static const std::vector<MetricDef> kDefs = {NOVAPULSE_RULE_METRICS(NOVAPULSE_METRIC_DEF)};
  return kDefs;
}

}  // namespace

void RuleRunner::CollectMetrics(MetricFamilies* out) {
  const std::vector<MetricDef>& defs = RuleMetricDefs();
  const double bytes = static_cast<double>(window_bytes_.load(std::memory_order_relaxed));
  const double series = static_cast<double>(window_series_.load(std::memory_order_relaxed));
  const int64_t evaluated = evaluated_ms_.load(std::memory_order_relaxed);
  out->AddSingle(defs[kRuleEvaluations],
                 static_cast<double>(evaluations_.load(std::memory_order_relaxed)));
  out->AddSingle(defs[kRuleFailures],
                 static_cast<double>(failures_.load(std::memory_order_relaxed)));
  out->AddSingle(defs[kRuleSeconds],
                 static_cast<double>(eval_nanos_.load(std::memory_order_relaxed)) / 1e9);
  out->AddSingle(defs[kWatermark],
                 evaluated == INT64_MIN ? 0.0 : static_cast<double>(evaluated) / 1000.0);
  out->AddSingle(defs[kWindowMemory], bytes);
  out->AddSingle(defs[kWindowSeries], series);
  out->AddSingle(defs[kWindowBytesPerSeries], series > 0 ? bytes / series : 0.0);
  out->AddSingle(defs[kWindowMemoryLimit], static_cast<double>(spec_.memory_bytes));
  std::lock_guard<std::mutex> lock(window_mu_);
  out->AddSingle(defs[kWindowMemoryReserved], static_cast<double>(window_reserved_));
  FamilySnapshot& folded = out->Start(defs[kWindowSeriesFolded]);
  for (const auto& [name, n] : folded_) out->Add(folded, {name}, static_cast<double>(n));
}

namespace {

constexpr std::string_view kCheckRulesUsage = R"(Usage: novapulse check-rules [OPTIONS] FILE...

Loads Prometheus rule files as novapulse evaluates them: every expression
must stay inside novapulse's PromQL subset, and every error names
FILE:LINE:COLUMN. Prints, per file, how many groups and alerting and
recording rules it holds; then the evaluation slot, the metrics the rules
read with how far back, and the window history that costs per series.

Options:
  -h, --help    this help
)";

}  // namespace

int RunCheckRulesCommand(int argc, char** argv) {
  ArgParser args(argc, argv, kCheckRulesUsage);
  std::vector<std::string> files;
  while (args.Next()) {
    if (args.IsPositional()) {
      files.push_back(std::string(args.Positional()));
    } else {
      return args.UnknownFlag();
    }
    if (args.failed()) return args.exit_code();
  }
  if (args.help()) return 0;
  if (files.empty()) return args.Fail("no rule files");
  int status = 0;
  RuleSet all;
  for (const std::string& file : files) {
    absl::StatusOr<RuleSet> set = LoadRuleFiles({file});
    if (!set.ok()) {
      std::fprintf(stderr, "%s\n", std::string(set.status().message()).c_str());
      status = 1;
      continue;
    }
    size_t alerts = 0;
    size_t records = 0;
    for (const RuleGroupSpec& g : set->groups) {
      for (const RuleSpec& r : g.rules) (r.alert ? alerts : records) += 1;
    }
    std::printf("%s: ok, %zu group(s), %zu alerting and %zu recording rule(s)\n", file.c_str(),
                set->groups.size(), alerts, records);
    for (RuleGroupSpec& g : set->groups) all.groups.push_back(std::move(g));
  }
  if (status != 0 || all.groups.empty()) return status;
  absl::StatusOr<std::unique_ptr<RuleRunner>> runner = RuleRunner::Build(std::move(all), {});
  if (!runner.ok()) {
    std::fprintf(stderr, "%s\n", std::string(runner.status().message()).c_str());
    return 1;
  }
  RuleRunner& r = **runner;
  const int64_t slot = r.window_spec().slot_ms;
  std::printf("evaluation slot: %s\n", absl::FormatDuration(absl::Milliseconds(slot)).c_str());
  std::printf(
      "metrics read (window history per series: one 16-byte sample per slot over the "
      "reach, plus a %zu-slot ring of 8-byte deltas per shard):\n",
      r.window_spec().ring_slots);
  for (const promql::Reach& reach : r.engine().input_reach()) {
    const int64_t samples = reach.ms / slot + 2;
    std::printf("  %-48s reach %-8s %6lld samples  ~%lld bytes per series\n", reach.metric.c_str(),
                absl::FormatDuration(absl::Milliseconds(reach.ms)).c_str(),
                static_cast<long long>(samples), static_cast<long long>(samples) * 16);
  }
  for (const std::string& name : r.unknown_metrics()) {
    std::printf("note: %s is not exported by novapulse; its selectors select nothing\n",
                name.c_str());
  }
  return 0;
}

}  // namespace novapulse
