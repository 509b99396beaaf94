#include "pipeline/run.h"

#include <oneapi/tbb/concurrent_queue.h>
#include <oneapi/tbb/parallel_pipeline.h>
#include <oneapi/tbb/task_arena.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "aggregators/novagift_metrics.h"
#include "parsers/record_parser.h"
#include "pipeline/cli.h"
#include "pipeline/config.h"
#include "pipeline/event_clock.h"
#include "pipeline/http_server.h"
#include "pipeline/kafka_source.h"
#include "pipeline/log.h"
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
  DeadLetterWriter* dead_letters = nullptr;
};

// Runs the pipeline until g_stop; returns the records processed.
uint64_t Consume(KafkaSource& source, NovaGiftMetrics& metrics, size_t max_record_bytes,
                 const EventTime& time) {
  const int threads = metrics.num_shards();
  std::vector<std::unique_ptr<RecordParser>> parsers;
  parsers.reserve(static_cast<size_t>(threads));
  for (int i = 0; i < threads; ++i)
    parsers.push_back(std::make_unique<RecordParser>(max_record_bytes));

  // At most max_tokens batches are in flight, so a pool of that many never
  // runs dry; batch buffers are reused and memory stays flat.
  const size_t max_tokens = static_cast<size_t>(threads) * 2;
  std::vector<std::unique_ptr<Token>> tokens;
  tbb::concurrent_bounded_queue<Token*> free_tokens;
  for (size_t i = 0; i < max_tokens; ++i) {
    tokens.push_back(std::make_unique<Token>());
    free_tokens.push(tokens.back().get());
  }

  uint64_t records = 0;  // owned by the serial completion stage
  tbb::task_arena arena(threads);
  arena.execute([&] {
    tbb::parallel_pipeline(
        max_tokens,
        tbb::make_filter<void, Token*>(
            tbb::filter_mode::serial_in_order,
            [&](tbb::flow_control& fc) -> Token* {
              Token* token;
              free_tokens.pop(token);
              if (!source.Fill(&token->batch, g_stop)) {
                free_tokens.push(token);
                fc.stop();
                return nullptr;
              }
              if (time.rules != nullptr && !time.rules->started()) {
                if (std::optional<int64_t> first = OldestEventTime(token->batch)) {
                  time.rules->Start(*first);
                }
              }
              token->future_limit_us = (WallMillis() + time.max_future_ms) * 1000;
              token->watermark_ms = time.clock->BeginBatch();
              return token;
            }) &
            tbb::make_filter<Token*, Token*>(
                tbb::filter_mode::parallel,
                [&](Token* token) -> Token* {
                  const int worker = tbb::this_task_arena::current_thread_index();
                  NovaGiftMetrics::Writer& writer = metrics.writer(worker);
                  RecordParser& parser = *parsers[static_cast<size_t>(worker)];
                  const KafkaBatch& batch = token->batch;
                  writer.SetWatermark(token->watermark_ms);
                  writer.SetFutureLimit(token->future_limit_us);
                  writer.EndBatch();
                  const char* base = batch.buffer.data();
                  uint64_t accepted = 0;
                  DeadLetterBatch* rejected = time.dead_letters ? &token->rejected : nullptr;
                  if (rejected) rejected->Clear();
                  for (const KafkaRecord& r : batch.records) {
                    const DeadLetterOrigin origin{.partition = r.partition, .offset = r.offset};
                    if (r.oversize) {
                      writer.Reject(r.topic, RejectReason::kOversize);
                      // The payload was not copied: only its length is known.
                      if (rejected)
                        rejected->Add(RejectReason::kOversize, r.topic, origin, {}, r.size);
                    } else if (ProcessRecord(r.topic, base + r.begin, r.size,
                                             batch.buffer.size() - r.begin, parser, writer,
                                             rejected, origin)) {
                      ++accepted;
                    }
                  }
                  token->accepted = accepted;
                  token->newest_us = writer.EndBatch();
                  return token;
                }) &
            tbb::make_filter<Token*, void>(tbb::filter_mode::serial_in_order, [&](Token* token) {
              // Only now are the batch's messages in the metrics (and their
              // dead letters written, in order).
              if (time.dead_letters) time.dead_letters->Write(token->rejected);
              source.StoreOffsets(token->batch);
              records += token->batch.records.size();
              const int64_t closable = time.clock->EndBatch(token->newest_us, WallMillis());
              if (time.rules != nullptr) time.rules->AdvanceTo(closable);
              free_tokens.push(token);
            }));
  });
  return records;
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
  InstallStopHandlers();

  int threads = static_cast<int>(config->pipeline.threads);
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int64_t lateness_ms = absl::ToInt64Milliseconds(config->pipeline.allowed_lateness);

  std::unique_ptr<RuleRunner> rules;
  if (!config->rules.files.empty()) {
    absl::StatusOr<RuleSet> set = LoadRuleFiles(
        config->rules.files, absl::ToInt64Milliseconds(config->rules.evaluation_interval));
    if (!set.ok()) {
      Log(LogLevel::kError, "invalid rule file", {{"error", std::string(set.status().message())}});
      return 1;
    }
    RuleRunnerOptions options;
    options.lateness_ms = lateness_ms;
    absl::StatusOr<std::unique_ptr<RuleRunner>> runner =
        RuleRunner::Build(*std::move(set), options);
    if (!runner.ok()) {
      Log(LogLevel::kError, "rules not loaded",
          {{"error", std::string(runner.status().message())}});
      return 1;
    }
    rules = *std::move(runner);
    for (const std::string& name : rules->unknown_metrics()) {
      Log(LogLevel::kWarn, "rules read a metric novapulse does not export", {{"metric", name}});
    }
  }
  std::unique_ptr<AlertmanagerClient> alertmanager;
  if (rules && !config->alertmanager.urls.empty()) {
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
    const int64_t resend_ms = absl::ToInt64Milliseconds(config->alertmanager.resend_delay);
    // On the evaluation thread, after each instant; Enqueue never blocks.
    rules->set_on_evaluated(
        [client = alertmanager.get(), resend_ms](int64_t t_ms, RuleEngine& engine) {
          std::vector<Alert> due = engine.AlertsToSend(t_ms, resend_ms);
          if (!due.empty()) client->Enqueue(due);
        });
  }
  NovaGiftMetrics metrics(threads, static_cast<size_t>(config->pipeline.series_limit),
                          rules ? &rules->window_spec() : nullptr);
  if (rules) rules->Attach(&metrics);
  EventClock clock(lateness_ms, /*idle_after_ms=*/5'000);

  absl::StatusOr<std::unique_ptr<KafkaSource>> source = KafkaSource::Create(config->kafka);
  if (!source.ok()) {
    Log(LogLevel::kError, "kafka consumer not started",
        {{"error", std::string(source.status().message())}});
    return 1;
  }
  KafkaSource& kafka = **source;

  std::unique_ptr<DeadLetterWriter> dead_letters;
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
  }

  HttpServer::Handlers handlers;
  handlers.alerts = [&rules] {
    return AlertsJson(rules ? rules->engine().Snapshot() : RulesSnapshot());
  };
  handlers.rules = [&rules] {
    return RulesJson(rules ? rules->engine().Snapshot() : RulesSnapshot());
  };
  handlers.metrics = [&metrics, &kafka, &rules, &dead_letters, &alertmanager](bool openmetrics) {
    std::vector<FamilySnapshot> families = metrics.Snapshot();
    if (dead_letters) dead_letters->AppendFamilies(&families);
    std::deque<std::string> keys;  // label values of the Kafka families
    kafka.AppendFamilies(&keys, &families);
    if (rules) rules->AppendFamilies(&keys, &families);
    if (alertmanager) alertmanager->AppendFamilies(&keys, &families);
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
  handlers.ready = [&kafka, max_lag = config->http.max_lag_ready](std::string* reason) {
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
  time.rules = rules.get();
  time.clock = &clock;
  time.max_future_ms = absl::ToInt64Milliseconds(config->pipeline.max_future);
  time.dead_letters = dead_letters.get();
  const uint64_t records =
      Consume(kafka, metrics, static_cast<size_t>(config->kafka.max_message_bytes), time);
  ticking.store(false, std::memory_order_relaxed);
  ticker.join();
  // The evaluation thread reads the metrics and feeds the Alertmanager
  // client: it stops before either goes away.
  if (rules) rules->Stop();
  if (dead_letters && !dead_letters->error().ok()) {
    Log(LogLevel::kError, "dead letters dropped",
        {{"dropped", absl::StrCat(dead_letters->dropped())},
         {"error", std::string(dead_letters->error().message())}});
  }
  Log(LogLevel::kInfo, "stopping: batches finished", {{"records", absl::StrCat(records)}});
  const absl::Status closed = kafka.Close();
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
