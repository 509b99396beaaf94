#include "pipeline/service.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <future>
#include <string>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/log.h"
#include "base/time_math.h"
#include "pipeline/process_metrics.h"
#include "pipeline/rule_files.h"
#include "sinks/exposition.h"
#include "sinks/kafka_dead_letters.h"
#include "sinks/openmetrics.h"
#include "sinks/rules_json.h"

namespace novapulse {
namespace {

// Event time of the oldest record of `batch` that names one (for the first
// window slot), or nullopt.
std::optional<int64_t> OldestEventTime(const KafkaBatch& batch, MetricEngine& engine) {
  std::optional<int64_t> oldest;
  for (const KafkaRecord& r : batch.records) {
    int64_t ms = 0;
    if (r.oversize ||
        !engine.EdgeEventTime(r.input, {batch.buffer.data() + r.begin, r.size}, false, &ms)) {
      continue;
    }
    if (!oldest || ms < *oldest) oldest = ms;
  }
  return oldest;
}

// Logs what could not be started and passes the error on.
absl::Status NotStarted(std::string_view what, const absl::Status& error) {
  Log(LogLevel::kError, what, {{"error", std::string(error.message())}});
  return error;
}

}  // namespace

Service::Service(const Config& config, MetricSource* extra)
    : config_(config),
      extra_metrics_(extra),
      threads_(config.pipeline.threads > 0 ? static_cast<int>(config.pipeline.threads)
                                           : AvailableCpus()),
      topics_(InputTopics(config)) {}

Service::~Service() {
  // Also when Run never ran, or Build failed after the server started.
  StopReaders(absl::ZeroDuration());
  // A consumer still closing on a thread of its own is left to it.
  if (abandoned_) static_cast<void>(kafka_.release());
}

absl::StatusOr<std::unique_ptr<Service>> Service::Build(const Config& config, MetricSource* extra,
                                                        const std::string& carried) {
  std::unique_ptr<Service> service(new Service(config, extra));
  if (absl::Status built = service->BuildParts(carried); !built.ok()) return built;
  return service;
}

absl::Status Service::BuildParts(const std::string& carried) {
  if (!config_.rules.files.empty()) {
    absl::StatusOr<RuleSet> set = LoadRuleFiles(
        config_.rules.files, absl::ToInt64Milliseconds(config_.rules.evaluation_interval));
    if (!set.ok()) return NotStarted("invalid rule file", set.status());
    rule_set_ = *std::move(set);
  }
  if (rule_set_ && !config_.alertmanager.urls.empty()) {
    AlertmanagerClientOptions am;
    am.urls = config_.alertmanager.urls;
    absl::StatusOr<std::unique_ptr<AlertmanagerClient>> client =
        AlertmanagerClient::Start(std::move(am));
    if (!client.ok()) return NotStarted("alertmanager client not started", client.status());
    alertmanager_ = *std::move(client);
  }
  absl::StatusOr<State> built = BuildState();
  if (!built.ok()) return NotStarted("rules not loaded", built.status());
  state_ = *std::move(built);
  if (state_.rules) {
    for (const std::string& name : state_.rules->unknown_metrics()) {
      Log(LogLevel::kWarn, "rules read a metric novapulse does not export", {{"metric", name}});
    }
  }

  if (config_.metrics.expires()) {
    expiry_ = std::make_unique<SeriesExpiry>(SeriesExpiry::Interval(config_.metrics));
  }

  std::vector<KafkaPartitionOffset> resume;
  if (!config_.checkpoint.dir.empty()) {
    absl::StatusOr<std::unique_ptr<CheckpointFile>> file =
        CheckpointFile::Build(config_.checkpoint);
    if (!file.ok()) return NotStarted("checkpoints not available", file.status());
    checkpoints_ = *std::move(file);
    resume = Restore();
  } else if (!carried.empty()) {
    RestoreCarried(carried);
  }

  absl::StatusOr<std::unique_ptr<KafkaSource>> source =
      KafkaSource::Build(config_.kafka, /*checkpointed=*/checkpoints_ != nullptr, topics_);
  if (!source.ok()) return NotStarted("kafka consumer not started", source.status());
  kafka_ = *std::move(source);
  kafka_->SetResumeOffsets(resume);

  if (absl::Status opened = OpenDeadLetters(); !opened.ok()) return opened;
  RegisterMetrics();
  if (absl::Status started = StartHttp(); !started.ok()) return started;
  return StartRemoteWrite();
}

absl::StatusOr<Service::State> Service::BuildState() const {
  State state;
  const int64_t lateness_ms = absl::ToInt64Milliseconds(config_.pipeline.allowed_lateness);
  if (rule_set_) {
    RuleRunnerOptions options;
    options.lateness_ms = lateness_ms;
    options.window_memory_bytes = static_cast<size_t>(config_.rules.window_memory_bytes);
    options.zero_new_series = config_.rules.zero_new_series;
    absl::StatusOr<std::unique_ptr<RuleRunner>> runner = RuleRunner::Build(
        *rule_set_, options,
        MetricDefsOf(config_.metrics.plan.get(), SeriesExpiry::FromConfig(config_.metrics)));
    if (!runner.ok()) return runner.status();
    state.rules = *std::move(runner);
    if (AlertmanagerClient* alertmanager = alertmanager_.get()) {
      const int64_t resend_ms = absl::ToInt64Milliseconds(config_.alertmanager.resend_delay);
      // On the evaluation thread, after each instant; Enqueue never blocks.
      state.rules->set_on_evaluated([alertmanager, resend_ms](int64_t t_ms, RuleEngine& engine) {
        std::vector<Alert> due = engine.AlertsToSend(t_ms, resend_ms);
        if (!due.empty()) alertmanager->Enqueue(due);
      });
    }
  }
  state.metrics = MakeMetricEngine(config_.metrics.plan, threads_,
                                   static_cast<size_t>(config_.pipeline.series_limit),
                                   state.rules ? &state.rules->window_spec() : nullptr,
                                   SeriesExpiry::FromConfig(config_.metrics),
                                   static_cast<size_t>(config_.kafka.max_message_bytes));
  if (state.rules) state.rules->Attach(&state.metrics->store());
  state.clock = std::make_unique<EventClock>(lateness_ms, /*idle_after_ms=*/5'000);
  return state;
}

CheckpointParts RunCheckpointParts(StatePart* metrics, EventClock* clock, RuleRunner* rules) {
  CheckpointParts parts;
  parts.Add(metrics, CheckpointParts::Need::kRequired)
      .Add(clock, CheckpointParts::Need::kRequired)
      .Add(rules, CheckpointParts::Need::kOptional);
  return parts;
}

std::vector<KafkaPartitionOffset> Service::Restore() {
  CheckpointFile& file = *checkpoints_;
  absl::StatusOr<CheckpointPayload> payload = file.Read();
  absl::Status error = payload.status();
  if (payload.ok()) {
    absl::StatusOr<RestoredCheckpoint> restored =
        DecodeCheckpoint(payload->bytes, state_.checkpointed(), WallMillis(), payload->version);
    if (restored.ok()) {
      std::vector<KafkaPartitionOffset> offsets;
      for (const CheckpointOffset& o : restored->offsets) {
        // Offsets of a topic no longer read are dropped.
        const auto read = std::find(topics_.begin(), topics_.end(), o.topic);
        if (read == topics_.end()) continue;
        offsets.push_back({static_cast<int>(read - topics_.begin()), o.partition, o.next_offset});
      }
      std::vector<std::string> parts;
      for (const RestoredCheckpoint::Part& part : restored->parts) {
        if (part.restored) parts.push_back(part.name);
      }
      Log(LogLevel::kInfo, "state restored from the checkpoint",
          {{"path", file.path()},
           {"age_seconds", absl::StrCat((WallMillis() - restored->written_ms) / 1000)},
           {"partitions", absl::StrCat(offsets.size())},
           {"format_version", absl::StrCat(payload->version)},
           {"parts", absl::StrJoin(parts, ",")}});
      for (const RestoredCheckpoint::Part& part : restored->parts) {
        if (part.restored && !part.note.empty()) {
          Log(LogLevel::kInfo, "checkpoint part restored in part",
              {{"part", part.name}, {"note", part.note}});
        }
        if (part.restored) continue;
        Log(LogLevel::kWarn, "checkpoint part not restored: it starts empty",
            {{"part", part.name}, {"reason", part.note}});
      }
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
  absl::StatusOr<State> fresh = BuildState();
  if (fresh.ok()) state_ = *std::move(fresh);
  return {};
}

void Service::RestoreCarried(const std::string& carried) {
  absl::StatusOr<RestoredCheckpoint> restored =
      DecodeCheckpoint(carried, state_.checkpointed(), WallMillis());
  if (!restored.ok()) {
    Log(LogLevel::kWarn, "state not carried over the reload: it starts empty",
        {{"error", std::string(restored.status().message())}});
    absl::StatusOr<State> fresh = BuildState();
    if (fresh.ok()) state_ = *std::move(fresh);
    return;
  }
  for (const RestoredCheckpoint::Part& part : restored->parts) {
    if (part.restored) {
      Log(LogLevel::kInfo, "state carried over the reload",
          {{"part", part.name}, {"note", part.note.empty() ? "unchanged" : part.note}});
    } else {
      Log(LogLevel::kWarn, "state not carried over the reload: it starts empty",
          {{"part", part.name}, {"reason", part.note}});
    }
  }
}

std::string Service::CarriedState() {
  if (checkpoints_ || !state_.metrics || abandoned_) return "";
  return EncodeCheckpoint(state_.checkpointed(), {}, WallMillis());
}

absl::Status Service::OpenDeadLetters() {
  const DeadLetterConfig& config = config_.dead_letter;
  if (!config.path.empty()) {
    absl::StatusOr<std::unique_ptr<DeadLetterWriter>> opened =
        DeadLetterWriter::Open({.path = config.path,
                                .max_bytes = static_cast<uint64_t>(config.max_bytes),
                                .keep = static_cast<int>(config.keep),
                                .topic_names = topics_});
    if (!opened.ok()) return NotStarted("dead-letter file not opened", opened.status());
    dead_letters_ = *std::move(opened);
  } else if (!config.topic.empty()) {
    absl::StatusOr<std::unique_ptr<KafkaDeadLetters>> producer = KafkaDeadLetters::Build(
        {.brokers = config_.kafka.brokers,
         .properties = {config_.kafka.properties.begin(), config_.kafka.properties.end()},
         .topic = config.topic,
         .topic_names = topics_});
    if (!producer.ok()) return NotStarted("dead-letter producer not started", producer.status());
    dead_letters_ = *std::move(producer);
  }
  return absl::OkStatus();
}

std::string Service::MetricsText(bool openmetrics) const {
  const MetricFamilies families = registry_.Collect();
  if (openmetrics) return RenderOpenMetricsText(families.families());
  std::string text = RenderPrometheusText(families.families());
  if (state_.rules) WriteRuleSeries(state_.rules->engine().Snapshot().series, &text);
  return text;
}

bool Service::Ready(std::string* reason) const {
  if (const std::string fatal = kafka_->fatal_error(); !fatal.empty()) {
    *reason = absl::StrCat("kafka consumer failed: ", fatal);
    return false;
  }
  if (!kafka_->Reachable(reason)) return false;
  if (kafka_->assigned_partitions() == 0) {
    *reason = "no kafka partitions assigned";
    return false;
  }
  int64_t lag = 0;
  int unknown = 0;
  for (const KafkaPartitionLag& p : kafka_->Lag()) {
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
  const int64_t max_lag = config_.http.max_lag_ready;
  if (lag > max_lag) {
    *reason = absl::StrCat("consumer lag ", lag, " above http.max_lag_ready ", max_lag);
    return false;
  }
  return true;
}

absl::Status Service::StartHttp() {
  HttpServer::Handlers handlers;
  RuleRunner* rules = state_.rules.get();
  handlers.alerts = [rules] {
    return AlertsJson(rules ? rules->engine().Snapshot() : RulesSnapshot());
  };
  handlers.rules = [rules] {
    return RulesJson(rules ? rules->engine().Snapshot() : RulesSnapshot());
  };
  handlers.metrics = [this](bool openmetrics) { return MetricsText(openmetrics); };
  handlers.healthy = [this](std::string* reason) {
    const std::string fatal = kafka_->fatal_error();
    if (fatal.empty()) return true;
    *reason = absl::StrCat("kafka consumer failed: ", fatal);
    return false;
  };
  handlers.ready = [this](std::string* reason) { return Ready(reason); };
  absl::StatusOr<std::unique_ptr<HttpServer>> server =
      HttpServer::Start(HttpOptionsFromConfig(config_.http), std::move(handlers));
  if (!server.ok()) return NotStarted("http server not started", server.status());
  server_ = *std::move(server);
  http_metrics_.Set(server_.get());
  Log(LogLevel::kInfo, "novapulse running",
      {{"listen", config_.http.listen},
       {"port", absl::StrCat(server_->port())},
       {"threads", absl::StrCat(threads_)}});
  return absl::OkStatus();
}

void Service::RegisterMetrics() {
  registry_ = MetricRegistry();
  registry_.Add(&state_.metrics->source());
  registry_.Add(dead_letters_.get());
  registry_.Add(kafka_.get());
  registry_.Add(state_.rules.get());
  registry_.Add(alertmanager_.get());
  registry_.Add(checkpoints_.get());
  registry_.Add(expiry_.get());
  registry_.Add(&http_metrics_);
  registry_.Add(&remote_write_metrics_);
  registry_.Add(&process_metrics_);
  registry_.Add(extra_metrics_);
}

// How long a clean stop goes on pushing what the remote writer has queued.
constexpr absl::Duration kRemoteWriteFlush = absl::Seconds(5);

absl::Status Service::StartRemoteWrite() {
  if (config_.remote_write.url.empty()) return absl::OkStatus();
  RemoteWriteOptions options;
  options.url = config_.remote_write.url;
  options.interval = config_.remote_write.interval;
  options.timeout = config_.remote_write.timeout;
  options.max_samples_per_send = static_cast<size_t>(config_.remote_write.max_samples_per_send);
  options.queue_samples = static_cast<size_t>(config_.remote_write.queue_samples);
  options.external_labels.assign(config_.remote_write.external_labels.begin(),
                                 config_.remote_write.external_labels.end());
  options.headers.assign(config_.remote_write.headers.begin(), config_.remote_write.headers.end());
  if (!config_.remote_write.bearer_token.empty()) {
    options.headers.emplace_back("Authorization", "Bearer " + config_.remote_write.bearer_token);
  }
  absl::StatusOr<std::unique_ptr<RemoteWriter>> writer =
      RemoteWriter::Start(std::move(options), [this] {
        RemoteWriteBatch batch;
        batch.families = registry_.Collect();
        if (state_.rules) batch.rule_series = state_.rules->engine().Snapshot().series;
        return batch;
      });
  if (!writer.ok()) return NotStarted("remote write not started", writer.status());
  remote_write_ = *std::move(writer);
  remote_write_metrics_.Set(remote_write_.get());
  return absl::OkStatus();
}

void Service::StopReaders(absl::Duration flush, bool end_series) {
  remote_write_metrics_.Set(nullptr);
  if (remote_write_) remote_write_->Shutdown(flush, end_series);
  remote_write_.reset();
  http_metrics_.Set(nullptr);
  server_.reset();
}

int Service::http_port() const { return server_ ? server_->port() : 0; }

void Service::Checkpoint(std::string_view why, Commit commit) {
  // A checkpoint covers every batch submitted so far: the pipeline is
  // drained first. Only then are its offsets committed, if at all: not when
  // the partitions were lost or the consumer failed, as the commit would be
  // refused.
  const auto start = std::chrono::steady_clock::now();
  if (pipeline_) pipeline_->Drain();
  std::vector<CheckpointOffset> named;
  for (const KafkaPartitionOffset& o : kafka_->CoveredOffsets()) {
    named.push_back({topics_[static_cast<size_t>(o.input)], o.partition, o.next_offset});
  }
  const std::string payload = EncodeCheckpoint(state_.checkpointed(), named, WallMillis());
  const absl::Status written = checkpoints_->Write(payload);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  checkpoints_->Record(written.ok(), seconds, payload.size());
  if (!written.ok()) {
    Log(LogLevel::kError, "checkpoint failed: offsets not committed",
        {{"reason", std::string(why)}, {"error", std::string(written.message())}});
    return;
  }
  if (commit != Commit::kNone) kafka_->Commit(kafka_->ProcessedOffsets(), commit == Commit::kSync);
  Log(why == "interval" ? LogLevel::kDebug : LogLevel::kInfo, "checkpoint written",
      {{"reason", std::string(why)},
       {"bytes", absl::StrCat(payload.size())},
       {"ms", absl::StrFormat("%.1f", seconds * 1e3)}});
}

absl::Duration SeriesExpiry::Interval(const MetricsConfig& config) {
  return absl::Milliseconds(ExpirySweepMs(absl::ToInt64Milliseconds(config.shortest())));
}

MetricExpiry SeriesExpiry::FromConfig(const MetricsConfig& config) {
  MetricExpiry expiry{.default_ms = absl::ToInt64Milliseconds(config.expire_after),
                      .by_family = {}};
  for (const auto& [name, after] : config.families) {
    expiry.by_family.emplace_back(name, absl::ToInt64Milliseconds(after));
  }
  return expiry;
}

void SeriesExpiry::Sweep(MetricEngine* metrics, RuleRunner* rules, int64_t now_ms) {
  const size_t removed = ExpireSeries(*metrics, rules, now_ms);
  sweeps_.fetch_add(1, std::memory_order_relaxed);
  removed_.fetch_add(removed, std::memory_order_relaxed);
  if (removed > 0) {
    Log(LogLevel::kDebug, "stale series expired",
        {{"series", absl::StrCat(removed)}, {"event_time_ms", absl::StrCat(now_ms)}});
  }
}

#define NOVAPULSE_EXPIRY_METRICS(M)                                                                \
  M(kSeriesExpired, "novapulse_series_expired_total",                                              \
    "Series removed because no event updated them for metrics.expire_after of event time.",        \
    MetricType::kComputedCounter, {}, {})                                                          \
  M(kExpirySweeps, "novapulse_series_expiry_sweeps_total", "Stale-series expiry sweeps run.",      \
    MetricType::kComputedCounter, {}, {})                                                          \
  M(kExpirySweepDuration, "novapulse_series_expiry_sweep_duration_seconds",                        \
    "Time the last expiry sweep took, draining the pipeline included.", MetricType::kComputed, {}, \
    {})

namespace {
enum ExpiryMetric : size_t { NOVAPULSE_EXPIRY_METRICS(NOVAPULSE_METRIC_ID) };
const std::vector<MetricDef>& ExpiryMetricDefs() {
  static const std::vector<MetricDef> kDefs = {NOVAPULSE_EXPIRY_METRICS(NOVAPULSE_METRIC_DEF)};
  return kDefs;
}
}  // namespace

void SeriesExpiry::CollectMetrics(MetricFamilies* out) {
  const std::vector<MetricDef>& defs = ExpiryMetricDefs();
  out->AddSingle(defs[kSeriesExpired],
                 static_cast<double>(removed_.load(std::memory_order_relaxed)));
  out->AddSingle(defs[kExpirySweeps], static_cast<double>(sweeps_.load(std::memory_order_relaxed)));
  out->AddSingle(defs[kExpirySweepDuration], last_seconds_.load(std::memory_order_relaxed));
}

void Service::Expire(int64_t now_ms) {
  const auto start = std::chrono::steady_clock::now();
  // Expiry frees series ids: no worker may hold one meanwhile.
  pipeline_->Drain();
  expiry_->Sweep(state_.metrics.get(), state_.rules.get(), now_ms);
  expiry_->Record(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

void Service::Run(const std::atomic<bool>& stop) {
  MetricEngine& metrics = *state_.metrics;
  RuleRunner* rules = state_.rules.get();
  EventClock& clock = *state_.clock;
  KafkaSource& kafka = *kafka_;

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
  watermarks_ = std::make_unique<EventClockWatermark>(
      clock, absl::ToInt64Milliseconds(config_.pipeline.max_future));
  kafka.set_on_assignment([this](int input, int32_t partition, bool assigned) {
    watermarks_->Assigned(input, partition, assigned);
  });
  // At most 2 batches a worker are in flight, and the pool holds no more:
  // batch buffers are reused and memory stays flat.
  const size_t in_flight = static_cast<size_t>(threads_) * 2;
  DeadLetterSink* dead_letters = dead_letters_.get();
  pipeline_ = std::make_unique<IngestPipeline>(
      IngestOptions{.threads = threads_,
                    .max_record_bytes = static_cast<size_t>(config_.kafka.max_message_bytes),
                    .in_flight = in_flight,
                    .batches = in_flight,
                    .dead_letters = dead_letters != nullptr},
      metrics, *watermarks_, rules, [&kafka, dead_letters](IngestBatch& batch) {
        if (dead_letters) dead_letters->Write(batch.rejected);
        kafka.StoreOffsets(batch.messages);
      });
  std::thread workers([this] { pipeline_->Run(); });

  if (checkpoints_) {
    kafka.set_on_revoke([this](bool lost) {
      if (final_checkpoint_) return;
      if (lost) {
        Checkpoint("lost", Commit::kNone);
      } else {
        Checkpoint("revoke", Commit::kSync);
      }
    });
  }
  const absl::Duration interval = config_.checkpoint.interval;
  absl::Time next_checkpoint = absl::Now() + interval;
  absl::Time next_sweep = expiry_ ? absl::Now() + expiry_->interval() : absl::InfiniteFuture();
  while (true) {
    IngestBatch* batch = pipeline_->NextFree();
    batch->from_kafka = true;
    const absl::Time idle_until =
        std::min(checkpoints_ ? next_checkpoint : absl::InfiniteFuture(), next_sweep);
    if (!kafka.Fill(&batch->messages, stop, idle_until)) {
      pipeline_->Release(batch);
      break;
    }
    if (batch->messages.records.empty() && batch->messages.ends.empty()) {
      pipeline_->Release(batch);
    } else {
      if (rules != nullptr && !rules->started()) {
        if (std::optional<int64_t> first = OldestEventTime(batch->messages, metrics)) {
          rules->Start(*first);
        }
      }
      pipeline_->Submit(batch);
    }
    if (checkpoints_ && absl::Now() >= next_checkpoint) {
      Checkpoint("interval", Commit::kAsync);
      next_checkpoint = absl::Now() + interval;
    }
    if (expiry_ && absl::Now() >= next_sweep) {
      // The watermark, but not past the newest event: while the input is
      // idle (producers stopped, brokers unreachable) the watermark moves
      // on with the wall clock, and nothing has gone stale in event time.
      Expire(std::min(clock.watermark_ms(), metrics.NewestEventTime() / 1000));
      next_sweep = absl::Now() + expiry_->interval();
    }
  }
  pipeline_->EndInput();
  workers.join();
  ticking.store(false, std::memory_order_relaxed);
  ticker.join();
}

int Service::Shutdown(bool leaving) {
  const std::string fatal = kafka_->fatal_error();
  if (checkpoints_) {
    Checkpoint(fatal.empty() ? "shutdown" : "consumer failed",
               fatal.empty() ? Commit::kSync : Commit::kNone);
    final_checkpoint_ = true;
  }
  const uint64_t records = pipeline_ ? pipeline_->records() : 0;
  // The evaluation thread reads the metrics and feeds the Alertmanager
  // client: it stops before either goes away.
  if (state_.rules) state_.rules->Stop();
  if (dead_letters_ && !dead_letters_->error().ok()) {
    Log(LogLevel::kError, "dead letters dropped",
        {{"dropped", absl::StrCat(dead_letters_->dropped())},
         {"error", std::string(dead_letters_->error().message())}});
  }
  Log(LogLevel::kInfo, "stopping: batches finished", {{"records", absl::StrCat(records)}});
  // KafkaSource::Close bounds its wait for the group, but librdkafka calls
  // it makes (unassigning the revoked partitions) have been seen, rarely,
  // to block for good after many quick restarts of a member. Everything that
  // must outlive the process is done by now (the final checkpoint and its
  // commit), so past the limit the process leaves without the consumer,
  // which the group times out; dead letters still queued are flushed first.
  auto abandon = [this](int status) {
    StopReaders(absl::ZeroDuration());  // nothing may read what is torn down next
    dead_letters_.reset();
    abandoned_ = true;
    return status;
  };
  if (!fatal.empty()) {
    // librdkafka cannot go on after a fatal error: a supervisor restarts the
    // process, which resumes from the checkpoint just written (or from the
    // committed offsets). Leaving the dead consumer alone keeps this quick.
    Log(LogLevel::kError, "exiting: the kafka consumer failed", {{"error", fatal}});
    return abandon(1);
  }
  // The closer may outlive this call when the service is abandoned.
  auto close_done = std::make_shared<std::promise<absl::Status>>();
  std::future<absl::Status> close_result = close_done->get_future();
  std::thread closer([close_done, kafka = kafka_.get()] { close_done->set_value(kafka->Close()); });
  constexpr std::chrono::seconds kCloseLimit(8);
  if (close_result.wait_for(kCloseLimit) != std::future_status::ready) {
    Log(LogLevel::kWarn, "the kafka consumer did not close in time: exiting without it",
        {{"waited", absl::StrCat(kCloseLimit.count(), "s")}});
    closer.detach();
    return abandon(0);
  }
  closer.join();
  const absl::Status closed = close_result.get();
  // Metrics stay served until the consumer has left the group. A process
  // that leaves ends its pushed series; one that restarts for a reload
  // pushes them again.
  StopReaders(kRemoteWriteFlush, /*end_series=*/leaving);
  if (!closed.ok()) {
    Log(LogLevel::kError, "kafka consumer did not close cleanly",
        {{"error", std::string(closed.message())}});
    return 1;
  }
  Log(LogLevel::kInfo, "novapulse stopped");
  return 0;
}

}  // namespace novapulse
