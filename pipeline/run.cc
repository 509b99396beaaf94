#include "pipeline/run.h"

#include <oneapi/tbb/concurrent_queue.h>
#include <oneapi/tbb/parallel_pipeline.h>
#include <oneapi/tbb/task_arena.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "aggregators/novagift_metrics.h"
#include "parsers/record_parser.h"
#include "pipeline/checkpoint.h"
#include "pipeline/cli.h"
#include "pipeline/config.h"
#include "pipeline/event_clock.h"
#include "pipeline/http_server.h"
#include "pipeline/kafka_dead_letters.h"
#include "pipeline/kafka_source.h"
#include "pipeline/log.h"
#include "pipeline/preflight.h"
#include "pipeline/process_metrics.h"
#include "pipeline/record_worker.h"
#include "pipeline/rule_runner.h"
#include "sinks/alertmanager_client.h"
#include "sinks/dead_letter.h"
#include "sinks/exposition.h"
#include "sinks/openmetrics.h"
#include "sinks/rules_json.h"

namespace novapulse {
namespace {

constexpr std::string_view kRunUsage = R"(Usage: novapulse run --config FILE

Consumes the access-log and outbox topics in the configured consumer group and
serves the metrics on /metrics (Prometheus text, or OpenMetrics when asked),
/healthz and /readyz. SIGTERM or SIGINT stops it cleanly: batches in flight
are finished and their offsets committed. Logs go to stderr.

Options:
  --config FILE   the service configuration (YAML; see configs/novapulse.yaml)
  -h, --help      this help
)";

// Set by the signal handler, read by the input stage.
std::atomic<bool> g_stop{false};
static_assert(std::atomic<bool>::is_always_lock_free);

void OnStopSignal(int /*signo*/) { g_stop.store(true, std::memory_order_relaxed); }

void InstallStopHandlers() {
  struct sigaction action = {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
}

struct Token {
  KafkaBatch batch;
  uint64_t accepted = 0;
  int64_t watermark_ms = INT64_MIN;
  int64_t future_limit_us = INT64_MAX;
  int64_t newest_us = INT64_MIN;
  DeadLetterBatch rejected;  // when dead letters are on
};

int64_t WallMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Event time of the oldest record of `batch` that names one (for the first
// window slot), or nullopt.
std::optional<int64_t> OldestEventTime(const KafkaBatch& batch) {
  std::optional<int64_t> oldest;
  for (const KafkaRecord& r : batch.records) {
    int64_t ms = 0;
    if (r.oversize || !FirstLineEventTime({batch.buffer.data() + r.begin, r.size}, &ms)) continue;
    if (!oldest || ms < *oldest) oldest = ms;
  }
  return oldest;
}

struct EventTime {
  RuleRunner* rules = nullptr;  // null: no rules, no windows
  EventClock* clock = nullptr;
  int64_t max_future_ms = 0;
  DeadLetterSink* dead_letters = nullptr;
};

// Parses and aggregates batches on a oneTBB parallel_pipeline of
// metrics.num_shards() workers, on a thread of its own; the Kafka thread
// takes free tokens, fills them and submits them, and may wait until every
// submitted batch is aggregated and its offsets stored (Drain), which a
// checkpoint needs. Batches complete in submission order.
//
// Threads: NextFree, Submit, Drain and Finish from the Kafka thread only.
class BatchPipeline {
 public:
  BatchPipeline(KafkaSource& source, NovaGiftMetrics& metrics, size_t max_record_bytes,
                const EventTime& time)
      : source_(source), metrics_(metrics), time_(time) {
    const int threads = metrics.num_shards();
    for (int i = 0; i < threads; ++i) {
      parsers_.push_back(std::make_unique<RecordParser>(max_record_bytes));
    }
    // At most max_tokens batches are in flight, so a pool of that many never
    // runs dry; batch buffers are reused and memory stays flat.
    const size_t max_tokens = static_cast<size_t>(threads) * 2;
    for (size_t i = 0; i < max_tokens; ++i) {
      tokens_.push_back(std::make_unique<Token>());
      free_.push(tokens_.back().get());
    }
    thread_ = std::thread([this, threads, max_tokens] { Run(threads, max_tokens); });
  }
  ~BatchPipeline() { Finish(); }

  Token* NextFree() {
    Token* token = nullptr;
    free_.pop(token);
    return token;
  }
  void Release(Token* token) { free_.push(token); }
  void Submit(Token* token) {
    ++submitted_;
    ready_.push(token);
  }
  void Drain() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return completed_ == submitted_; });
  }
  // Lets the submitted batches complete and stops the pipeline.
  void Finish() {
    if (!thread_.joinable()) return;
    ready_.push(nullptr);
    thread_.join();
  }
  // Records processed (after Drain or Finish).
  uint64_t records() {
    std::lock_guard<std::mutex> lock(mu_);
    return records_;
  }

 private:
  void Run(int threads, size_t max_tokens);
  void Process(Token* token);

  KafkaSource& source_;
  NovaGiftMetrics& metrics_;
  const EventTime time_;
  std::vector<std::unique_ptr<RecordParser>> parsers_;
  std::vector<std::unique_ptr<Token>> tokens_;
  tbb::concurrent_bounded_queue<Token*> free_;
  tbb::concurrent_bounded_queue<Token*> ready_;  // nullptr: no more
  uint64_t submitted_ = 0;                       // Kafka thread
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t completed_ = 0;  // guarded by mu_
  uint64_t records_ = 0;    // guarded by mu_
  std::thread thread_;
};

void BatchPipeline::Process(Token* token) {
  const int worker = tbb::this_task_arena::current_thread_index();
  NovaGiftMetrics::Writer& writer = metrics_.writer(worker);
  RecordParser& parser = *parsers_[static_cast<size_t>(worker)];
  const KafkaBatch& batch = token->batch;
  writer.SetWatermark(token->watermark_ms);
  writer.SetFutureLimit(token->future_limit_us);
  writer.EndBatch();
  const char* base = batch.buffer.data();
  uint64_t accepted = 0;
  DeadLetterBatch* rejected = time_.dead_letters ? &token->rejected : nullptr;
  if (rejected) rejected->Clear();
  for (const KafkaRecord& r : batch.records) {
    const DeadLetterOrigin origin{.partition = r.partition, .offset = r.offset};
    if (r.oversize) {
      writer.Reject(r.topic, RejectReason::kOversize);
      // The payload was not copied: only its length is known.
      if (rejected) rejected->Add(RejectReason::kOversize, r.topic, origin, {}, r.size);
    } else if (ProcessRecord(r.topic, base + r.begin, r.size, batch.buffer.size() - r.begin, parser,
                             writer, rejected, origin)) {
      ++accepted;
    }
  }
  token->accepted = accepted;
  token->newest_us = writer.EndBatch();
}

void BatchPipeline::Run(int threads, size_t max_tokens) {
  tbb::task_arena arena(threads);
  arena.execute([&] {
    tbb::parallel_pipeline(
        max_tokens,
        tbb::make_filter<void, Token*>(tbb::filter_mode::serial_in_order,
                                       [&](tbb::flow_control& fc) -> Token* {
                                         Token* token = nullptr;
                                         ready_.pop(token);
                                         if (token == nullptr) fc.stop();
                                         return token;
                                       }) &
            tbb::make_filter<Token*, Token*>(tbb::filter_mode::parallel,
                                             [&](Token* token) -> Token* {
                                               Process(token);
                                               return token;
                                             }) &
            tbb::make_filter<Token*, void>(tbb::filter_mode::serial_in_order, [&](Token* token) {
              // Only now are the batch's messages in the metrics (and their
              // dead letters written, in order).
              if (time_.dead_letters) time_.dead_letters->Write(token->rejected);
              source_.StoreOffsets(token->batch);
              const int64_t closable = time_.clock->EndBatch(token->newest_us, WallMillis());
              if (time_.rules != nullptr) time_.rules->AdvanceTo(closable);
              const size_t n = token->batch.records.size();
              free_.push(token);
              std::lock_guard<std::mutex> lock(mu_);
              records_ += n;
              ++completed_;
              cv_.notify_all();
            }));
  });
}

// The objects that hold the aggregate state, rebuilt from scratch when a
// checkpoint cannot be loaded into them.
struct ServiceState {
  std::unique_ptr<RuleRunner> rules;
  std::unique_ptr<NovaGiftMetrics> metrics;
  std::unique_ptr<EventClock> clock;

  CheckpointedState checkpointed() const { return {metrics.get(), rules.get(), clock.get()}; }
};

absl::StatusOr<ServiceState> BuildServiceState(const Config& config, const RuleSet* rule_set,
                                               AlertmanagerClient* alertmanager, int threads) {
  ServiceState state;
  const int64_t lateness_ms = absl::ToInt64Milliseconds(config.pipeline.allowed_lateness);
  if (rule_set != nullptr) {
    RuleRunnerOptions options;
    options.lateness_ms = lateness_ms;
    options.window_memory_bytes = static_cast<size_t>(config.rules.window_memory_bytes);
    absl::StatusOr<std::unique_ptr<RuleRunner>> runner = RuleRunner::Build(*rule_set, options);
    if (!runner.ok()) return runner.status();
    state.rules = *std::move(runner);
    if (alertmanager != nullptr) {
      const int64_t resend_ms = absl::ToInt64Milliseconds(config.alertmanager.resend_delay);
      // On the evaluation thread, after each instant; Enqueue never blocks.
      state.rules->set_on_evaluated([alertmanager, resend_ms](int64_t t_ms, RuleEngine& engine) {
        std::vector<Alert> due = engine.AlertsToSend(t_ms, resend_ms);
        if (!due.empty()) alertmanager->Enqueue(due);
      });
    }
  }
  state.metrics =
      std::make_unique<NovaGiftMetrics>(threads, static_cast<size_t>(config.pipeline.series_limit),
                                        state.rules ? &state.rules->window_spec() : nullptr);
  if (state.rules) state.rules->Attach(state.metrics.get());
  state.clock = std::make_unique<EventClock>(lateness_ms, /*idle_after_ms=*/5'000);
  return state;
}

// Loads the checkpoint into `state`; on failure sets it aside and rebuilds
// `state` empty. Returns the offsets to resume from.
std::vector<KafkaPartitionOffset> Restore(
    CheckpointFile& file, const Config& config,
    const std::function<absl::StatusOr<ServiceState>()>& build, ServiceState* state) {
  absl::StatusOr<std::string> payload = file.Read();
  absl::Status error = payload.status();
  if (payload.ok()) {
    absl::StatusOr<RestoredCheckpoint> restored =
        DecodeCheckpoint(*payload, state->checkpointed(), WallMillis());
    if (restored.ok()) {
      std::vector<KafkaPartitionOffset> offsets;
      for (const CheckpointOffset& o : restored->offsets) {
        if (o.topic == config.kafka.topics.access_log || o.topic == config.kafka.topics.outbox) {
          offsets.push_back(
              {o.topic == config.kafka.topics.outbox ? Topic::kOutbox : Topic::kAccessLog,
               o.partition, o.next_offset});
        }
      }
      Log(LogLevel::kInfo, "state restored from the checkpoint",
          {{"path", file.path()},
           {"age_seconds", absl::StrCat((WallMillis() - restored->written_ms) / 1000)},
           {"partitions", absl::StrCat(offsets.size())},
           {"rules_state", restored->rules_restored ? "restored" : restored->rules_note}});
      return offsets;
    }
    error = restored.status();
  }
  if (absl::IsNotFound(error)) {
    Log(LogLevel::kInfo, "no checkpoint yet: starting from the committed offsets",
        {{"path", file.path()}});
    return {};
  }
  const std::string aside = file.SetAside();
  Log(LogLevel::kError, "checkpoint not loaded: set aside, starting from the committed offsets",
      {{"error", std::string(error.message())}, {"moved_to", aside}});
  // The objects may be partly loaded.
  absl::StatusOr<ServiceState> fresh = build();
  if (fresh.ok()) *state = *std::move(fresh);
  return {};
}

}  // namespace

int RunServiceCommand(int argc, char** argv) {
  ArgParser args(argc, argv, kRunUsage);
  std::string config_path;
  while (args.Next()) {
    if (args.Is("--config")) {
      config_path = args.Value();
    } else {
      return args.UnknownFlag();
    }
    if (args.failed()) return args.exit_code();
  }
  if (args.help()) return 0;
  if (config_path.empty()) return args.Fail("--config FILE is required");

  absl::StatusOr<Config> config = LoadConfig(config_path);
  if (!config.ok()) {
    Log(LogLevel::kError, "invalid config", {{"error", std::string(config.status().message())}});
    return 1;
  }
  SetLogConfig(config->log);
  // What check-config checks: every problem at once, before anything starts.
  if (absl::Status usable = CheckStartupResources(*config); !usable.ok()) {
    Log(LogLevel::kError, "not started", {{"error", std::string(usable.message())}});
    return 1;
  }
  InstallStopHandlers();

  int threads = static_cast<int>(config->pipeline.threads);
  if (threads <= 0) threads = AvailableCpus();

  std::optional<RuleSet> rule_set;
  if (!config->rules.files.empty()) {
    absl::StatusOr<RuleSet> set = LoadRuleFiles(
        config->rules.files, absl::ToInt64Milliseconds(config->rules.evaluation_interval));
    if (!set.ok()) {
      Log(LogLevel::kError, "invalid rule file", {{"error", std::string(set.status().message())}});
      return 1;
    }
    rule_set = *std::move(set);
  }
  std::unique_ptr<AlertmanagerClient> alertmanager;
  if (rule_set && !config->alertmanager.urls.empty()) {
    AlertmanagerClientOptions am;
    am.urls = config->alertmanager.urls;
    absl::StatusOr<std::unique_ptr<AlertmanagerClient>> client =
        AlertmanagerClient::Start(std::move(am));
    if (!client.ok()) {
      Log(LogLevel::kError, "alertmanager client not started",
          {{"error", std::string(client.status().message())}});
      return 1;
    }
    alertmanager = *std::move(client);
  }
  auto build = [&] {
    return BuildServiceState(*config, rule_set ? &*rule_set : nullptr, alertmanager.get(), threads);
  };
  absl::StatusOr<ServiceState> built = build();
  if (!built.ok()) {
    Log(LogLevel::kError, "rules not loaded", {{"error", std::string(built.status().message())}});
    return 1;
  }
  ServiceState state = *std::move(built);
  if (state.rules) {
    for (const std::string& name : state.rules->unknown_metrics()) {
      Log(LogLevel::kWarn, "rules read a metric novapulse does not export", {{"metric", name}});
    }
  }

  std::unique_ptr<CheckpointFile> checkpoints;
  std::vector<KafkaPartitionOffset> resume;
  if (!config->checkpoint.dir.empty()) {
    absl::StatusOr<std::unique_ptr<CheckpointFile>> file =
        CheckpointFile::Build(config->checkpoint);
    if (!file.ok()) {
      Log(LogLevel::kError, "checkpoints not available",
          {{"error", std::string(file.status().message())}});
      return 1;
    }
    checkpoints = *std::move(file);
    resume = Restore(*checkpoints, *config, build, &state);
  }
  NovaGiftMetrics& metrics = *state.metrics;
  RuleRunner* rules = state.rules.get();
  EventClock& clock = *state.clock;

  absl::StatusOr<std::unique_ptr<KafkaSource>> source =
      KafkaSource::Build(config->kafka, /*checkpointed=*/checkpoints != nullptr);
  if (!source.ok()) {
    Log(LogLevel::kError, "kafka consumer not started",
        {{"error", std::string(source.status().message())}});
    return 1;
  }
  KafkaSource& kafka = **source;
  kafka.SetResumeOffsets(resume);

  std::unique_ptr<DeadLetterSink> dead_letters;
  if (!config->dead_letter.path.empty()) {
    absl::StatusOr<std::unique_ptr<DeadLetterWriter>> opened = DeadLetterWriter::Open(
        {.path = config->dead_letter.path,
         .max_bytes = static_cast<uint64_t>(config->dead_letter.max_bytes),
         .keep = static_cast<int>(config->dead_letter.keep),
         .topic_names = {config->kafka.topics.access_log, config->kafka.topics.outbox, "unknown"}});
    if (!opened.ok()) {
      Log(LogLevel::kError, "dead-letter file not opened",
          {{"error", std::string(opened.status().message())}});
      return 1;
    }
    dead_letters = *std::move(opened);
  } else if (!config->dead_letter.topic.empty()) {
    absl::StatusOr<std::unique_ptr<KafkaDeadLetters>> producer =
        KafkaDeadLetters::Build(config->kafka, config->dead_letter);
    if (!producer.ok()) {
      Log(LogLevel::kError, "dead-letter producer not started",
          {{"error", std::string(producer.status().message())}});
      return 1;
    }
    dead_letters = *std::move(producer);
  }

  HttpServer::Handlers handlers;
  handlers.alerts = [rules] {
    return AlertsJson(rules ? rules->engine().Snapshot() : RulesSnapshot());
  };
  handlers.rules = [rules] {
    return RulesJson(rules ? rules->engine().Snapshot() : RulesSnapshot());
  };
  handlers.metrics = [&metrics, &kafka, rules, &dead_letters, &alertmanager,
                      &checkpoints](bool openmetrics) {
    std::vector<FamilySnapshot> families = metrics.Snapshot();
    if (dead_letters) dead_letters->AppendFamilies(&families);
    std::deque<std::string> keys;  // label values of the Kafka families
    kafka.AppendFamilies(&keys, &families);
    if (rules) rules->AppendFamilies(&keys, &families);
    if (alertmanager) alertmanager->AppendFamilies(&keys, &families);
    if (checkpoints) checkpoints->AppendFamilies(&families);
    if (absl::StatusOr<ProcessStats> process = ReadProcessStats(); process.ok()) {
      AppendProcessFamilies(*process, &families);
    } else {
      Log(LogLevel::kDebug, "process metrics unavailable",
          {{"error", std::string(process.status().message())}});
    }
    if (openmetrics) return RenderOpenMetricsText(families);
    std::string text = RenderPrometheusText(families);
    if (rules) WriteRuleSeries(rules->engine().Snapshot().series, &text);
    return text;
  };
  handlers.healthy = [&kafka](std::string* reason) {
    const std::string fatal = kafka.fatal_error();
    if (fatal.empty()) return true;
    *reason = absl::StrCat("kafka consumer failed: ", fatal);
    return false;
  };
  handlers.ready = [&kafka, max_lag = config->http.max_lag_ready](std::string* reason) {
    if (const std::string fatal = kafka.fatal_error(); !fatal.empty()) {
      *reason = absl::StrCat("kafka consumer failed: ", fatal);
      return false;
    }
    if (!kafka.Reachable(reason)) return false;
    if (kafka.assigned_partitions() == 0) {
      *reason = "no kafka partitions assigned";
      return false;
    }
    int64_t lag = 0;
    int unknown = 0;
    for (const KafkaPartitionLag& p : kafka.Lag()) {
      if (p.lag < 0) {
        ++unknown;
      } else {
        lag += p.lag;
      }
    }
    if (unknown > 0) {
      *reason = absl::StrCat("consumer lag not yet known for ", unknown, " partitions");
      return false;
    }
    if (lag > max_lag) {
      *reason = absl::StrCat("consumer lag ", lag, " above http.max_lag_ready ", max_lag);
      return false;
    }
    return true;
  };
  absl::StatusOr<std::unique_ptr<HttpServer>> server =
      HttpServer::Start(HttpOptionsFromConfig(config->http), std::move(handlers));
  if (!server.ok()) {
    Log(LogLevel::kError, "http server not started",
        {{"error", std::string(server.status().message())}});
    return 1;
  }
  Log(LogLevel::kInfo, "novapulse running",
      {{"listen", config->http.listen},
       {"port", absl::StrCat((*server)->port())},
       {"threads", absl::StrCat(threads)}});

  // While the input is idle, event time moves on with the wall clock.
  std::atomic<bool> ticking{true};
  std::thread ticker([&] {
    while (ticking.load(std::memory_order_relaxed)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      if (std::optional<int64_t> closable = clock.Tick(WallMillis()); closable && rules) {
        rules->AdvanceTo(*closable);
      }
    }
  });
  EventTime time;
  time.rules = rules;
  time.clock = &clock;
  time.max_future_ms = absl::ToInt64Milliseconds(config->pipeline.max_future);
  time.dead_letters = dead_letters.get();
  BatchPipeline pipeline(kafka, metrics, static_cast<size_t>(config->kafka.max_message_bytes),
                         time);

  // A checkpoint covers every batch submitted so far: the pipeline is
  // drained first. Only then are its offsets committed, if at all: not when
  // the partitions were lost or the consumer failed, as the commit would be
  // refused.
  enum class Commit { kNone, kAsync, kSync };
  bool final_checkpoint = false;
  auto checkpoint = [&](std::string_view why, Commit commit) {
    const auto start = std::chrono::steady_clock::now();
    pipeline.Drain();
    std::vector<CheckpointOffset> named;
    for (const KafkaPartitionOffset& o : kafka.CoveredOffsets()) {
      named.push_back({o.topic == Topic::kOutbox ? config->kafka.topics.outbox
                                                 : config->kafka.topics.access_log,
                       o.partition, o.next_offset});
    }
    const std::string payload = EncodeCheckpoint(state.checkpointed(), named, WallMillis());
    const absl::Status written = checkpoints->Write(payload);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    checkpoints->Record(written.ok(), seconds, payload.size());
    if (!written.ok()) {
      Log(LogLevel::kError, "checkpoint failed: offsets not committed",
          {{"reason", std::string(why)}, {"error", std::string(written.message())}});
      return;
    }
    if (commit != Commit::kNone) kafka.Commit(kafka.ProcessedOffsets(), commit == Commit::kSync);
    Log(why == "interval" ? LogLevel::kDebug : LogLevel::kInfo, "checkpoint written",
        {{"reason", std::string(why)},
         {"bytes", absl::StrCat(payload.size())},
         {"ms", absl::StrFormat("%.1f", seconds * 1e3)}});
  };
  if (checkpoints) {
    kafka.set_on_revoke([&](bool lost) {
      if (final_checkpoint) return;
      if (lost) {
        checkpoint("lost", Commit::kNone);
      } else {
        checkpoint("revoke", Commit::kSync);
      }
    });
  }
  const absl::Duration interval = config->checkpoint.interval;
  absl::Time next_checkpoint = absl::Now() + interval;
  while (true) {
    Token* token = pipeline.NextFree();
    const absl::Time idle_until = checkpoints ? next_checkpoint : absl::InfiniteFuture();
    if (!kafka.Fill(&token->batch, g_stop, idle_until)) {
      pipeline.Release(token);
      break;
    }
    if (token->batch.records.empty()) {
      pipeline.Release(token);
    } else {
      if (rules != nullptr && !rules->started()) {
        if (std::optional<int64_t> first = OldestEventTime(token->batch)) rules->Start(*first);
      }
      token->future_limit_us = (WallMillis() + time.max_future_ms) * 1000;
      token->watermark_ms = clock.BeginBatch();
      pipeline.Submit(token);
    }
    if (checkpoints && absl::Now() >= next_checkpoint) {
      checkpoint("interval", Commit::kAsync);
      next_checkpoint = absl::Now() + interval;
    }
  }
  pipeline.Finish();
  ticking.store(false, std::memory_order_relaxed);
  ticker.join();
  const std::string fatal = kafka.fatal_error();
  if (checkpoints) {
    checkpoint(fatal.empty() ? "shutdown" : "consumer failed",
               fatal.empty() ? Commit::kSync : Commit::kNone);
    final_checkpoint = true;
  }
  const uint64_t records = pipeline.records();
  // The evaluation thread reads the metrics and feeds the Alertmanager
  // client: it stops before either goes away.
  if (rules) rules->Stop();
  if (dead_letters && !dead_letters->error().ok()) {
    Log(LogLevel::kError, "dead letters dropped",
        {{"dropped", absl::StrCat(dead_letters->dropped())},
         {"error", std::string(dead_letters->error().message())}});
  }
  Log(LogLevel::kInfo, "stopping: batches finished", {{"records", absl::StrCat(records)}});
  // KafkaSource::Close bounds its wait for the group, but librdkafka calls
  // it makes (unassigning the revoked partitions) have been seen, rarely,
  // to block for good after many quick restarts of a member. Everything that
  // must outlive the process is done by now (the final checkpoint and its
  // commit), so past the limit the process leaves without the consumer,
  // which the group times out; dead letters still queued are flushed first.
  if (!fatal.empty()) {
    // librdkafka cannot go on after a fatal error: a supervisor restarts the
    // process, which resumes from the checkpoint just written (or from the
    // committed offsets). Leaving the dead consumer alone keeps this quick.
    Log(LogLevel::kError, "exiting: the kafka consumer failed", {{"error", fatal}});
    server->reset();
    dead_letters.reset();
    std::fflush(nullptr);
    _exit(1);
  }
  std::promise<absl::Status> close_done;
  std::future<absl::Status> close_result = close_done.get_future();
  std::thread closer([&] { close_done.set_value(kafka.Close()); });
  constexpr std::chrono::seconds kCloseLimit(8);
  if (close_result.wait_for(kCloseLimit) != std::future_status::ready) {
    Log(LogLevel::kWarn, "the kafka consumer did not close in time: exiting without it",
        {{"waited", absl::StrCat(kCloseLimit.count(), "s")}});
    server->reset();  // no scrape may read what is torn down next
    dead_letters.reset();
    std::fflush(nullptr);
    _exit(0);
  }
  closer.join();
  const absl::Status closed = close_result.get();
  // Metrics stay served until the consumer has left the group.
  server->reset();
  if (!closed.ok()) {
    Log(LogLevel::kError, "kafka consumer did not close cleanly",
        {{"error", std::string(closed.message())}});
    return 1;
  }
  Log(LogLevel::kInfo, "novapulse stopped");
  return 0;
}

}  // namespace novapulse
