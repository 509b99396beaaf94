// Service: what `novapulse run` is. Build puts the parts together from the
// config (rules, Alertmanager client, metrics and windows, checkpoint
// restore, Kafka consumer, dead letters, HTTP server), Run consumes the
// topics through the ingest pipeline until told to stop or the consumer
// fails, Shutdown writes the last checkpoint and leaves the group.
//
// Threads: Build, Run and Shutdown on one thread (the main thread, which
// owns the process's signal handling). The HTTP server, the rule
// evaluation and a ticker that moves event time on while the input is idle
// run on threads of their own.
//   absl::StatusOr<std::unique_ptr<Service>> service = Service::Build(config);
//   (*service)->Run(stop_flag);
//   const int status = (*service)->Shutdown();
//   if ((*service)->abandoned()) _exit(status);
#ifndef NOVAPULSE_PIPELINE_SERVICE_H_
#define NOVAPULSE_PIPELINE_SERVICE_H_

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "pipeline/checkpoint.h"
#include "pipeline/config.h"
#include "pipeline/event_clock.h"
#include "pipeline/http_server.h"
#include "pipeline/ingest_pipeline.h"
#include "pipeline/kafka_source.h"
#include "pipeline/metric_engine.h"
#include "pipeline/process_metrics.h"
#include "pipeline/rule_runner.h"
#include "rules/rule_file.h"
#include "sinks/alertmanager_client.h"
#include "sinks/dead_letter.h"
#include "sinks/remote_write.h"

namespace novapulse {

// What a checkpoint of `run` covers, in load order (the rules learn from
// the metrics whether the series ids moved): the metrics and the event
// clock are required, the rules (null without rules) optional.
CheckpointParts RunCheckpointParts(StatePart* metrics, EventClock* clock, RuleRunner* rules);

// The stale-series expiry of `run` (metrics.expire_after): a sweep every
// interval of wall time, with the pipeline drained, and its self metrics.
class SeriesExpiry : public MetricSource {
 public:
  // The sweep interval for the shortest expiry (ExpirySweepMs), in wall time.
  static absl::Duration Interval(const MetricsConfig& config);
  static MetricExpiry FromConfig(const MetricsConfig& config);

  explicit SeriesExpiry(absl::Duration interval) : interval_(interval) {}
  absl::Duration interval() const { return interval_; }
  // Removes the series of `metrics` idle at event time `now_ms`, and from
  // the windows of `rules` when set (RuleRunner::ExpireIdle); no writer
  // runs.
  void Sweep(MetricEngine* metrics, RuleRunner* rules, int64_t now_ms);
  void Record(double seconds) { last_seconds_.store(seconds, std::memory_order_relaxed); }
  void CollectMetrics(MetricFamilies* out) override;

 private:
  const absl::Duration interval_;
  std::atomic<uint64_t> sweeps_{0};
  std::atomic<uint64_t> removed_{0};
  std::atomic<double> last_seconds_{0};
};

class Service {
 public:
  // Every failure is logged with what could not be started, and returned.
  // `extra` (e.g. the reload status of `run`), when set, is exported on
  // /metrics after the service's own parts; it must outlive the service.
  // `carried`: the state a service stopped for a reload handed on
  // (CarriedState), restored as a checkpoint is; without checkpoint.dir
  // only (with it, the checkpoint file carries the state).
  static absl::StatusOr<std::unique_ptr<Service>> Build(const Config& config,
                                                        MetricSource* extra = nullptr,
                                                        const std::string& carried = "");
  ~Service();
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  // Consumes until `stop` is set or the Kafka consumer fails; then finishes
  // the batches in flight.
  void Run(const std::atomic<bool>& stop);
  // After Run: the final checkpoint (and its commit), then the group is
  // left. Returns the process's exit status: 0 after a clean stop, 1 when
  // the consumer failed or did not close cleanly. `leaving`: the process
  // ends (not a restart for a reload), so remote write ends its series.
  int Shutdown(bool leaving = true);
  // Set by Shutdown when the process should end without destroying the
  // service: the consumer failed, or did not close in time. Whatever must
  // outlive the process is done by then. (Destroying it anyway leaks the
  // consumer, which a thread may still be closing.)
  bool abandoned() const { return abandoned_; }

  int http_port() const;

  // After Shutdown, without checkpoint.dir: the aggregate state as a
  // checkpoint payload, for the service a reload starts next (Build's
  // `carried`), so that the families its config did not change keep their
  // values. Empty with checkpoint.dir. The offsets are those committed on
  // shutdown; a commit that failed there makes this at-least-once, as
  // `run` without checkpoints is.
  std::string CarriedState();

 private:
  // The objects that hold the aggregate state, rebuilt from scratch when a
  // checkpoint cannot be loaded into them.
  struct State {
    State() = default;
    State(State&&) = default;
    State& operator=(State&&) = default;
    // The rule runner's evaluation thread reads the metrics: it stops first.
    ~State() {
      if (rules) rules->Stop();
    }

    std::unique_ptr<RuleRunner> rules;
    // The metric set (the compiled-in NovaGift set or metrics.spec's) and
    // its engine.
    std::unique_ptr<MetricEngine> metrics;
    std::unique_ptr<EventClock> clock;

    CheckpointParts checkpointed() const {
      return RunCheckpointParts(&metrics->state(), clock.get(), rules.get());
    }
  };
  enum class Commit { kNone, kAsync, kSync };

  Service(const Config& config, MetricSource* extra);
  absl::Status BuildParts(const std::string& carried);
  // Loads `carried` (see Build) into state_; what did not load starts
  // empty.
  void RestoreCarried(const std::string& carried);
  absl::StatusOr<State> BuildState() const;
  // Loads the checkpoint into state_; on failure sets it aside and rebuilds
  // state_ empty. Returns the offsets to resume from.
  std::vector<KafkaPartitionOffset> Restore();
  absl::Status OpenDeadLetters();
  absl::Status StartHttp();
  absl::Status StartRemoteWrite();
  // Stops what reads the parts from threads of its own: the remote writer
  // (sending what is queued for up to `flush`) and the HTTP server.
  // Idempotent.
  void StopReaders(absl::Duration flush, bool end_series = false);
  // What registry_ collects: every part, in export order.
  void RegisterMetrics();
  std::string MetricsText(bool openmetrics) const;
  bool Ready(std::string* reason) const;
  // Drains the pipeline, writes a checkpoint and then commits its offsets
  // as `commit` says.
  void Checkpoint(std::string_view why, Commit commit);

  const Config config_;
  MetricSource* const extra_metrics_;
  const int threads_;
  const std::vector<std::string> topics_;  // by input number (InputTopics)
  std::optional<RuleSet> rule_set_;
  std::unique_ptr<AlertmanagerClient> alertmanager_;
  State state_;
  std::unique_ptr<CheckpointFile> checkpoints_;
  std::unique_ptr<KafkaSource> kafka_;
  std::unique_ptr<DeadLetterSink> dead_letters_;
  ProcessMetrics process_metrics_;
  // A part made after the registry (the HTTP server, the remote writer):
  // the registry holds this forwarder from the start, so it is never changed
  // while scrapes read it. Set(nullptr) returns once no collect runs in the
  // part, which may then be destroyed. Declared before the registry and the
  // parts' readers, so it outlives them.
  class LateSource : public MetricSource {
   public:
    void CollectMetrics(MetricFamilies* out) override {
      absl::ReaderMutexLock lock(&mu_);
      if (source_ != nullptr) source_->CollectMetrics(out);
    }
    void Set(MetricSource* source) {
      absl::WriterMutexLock lock(&mu_);
      source_ = source;
    }

   private:
    absl::Mutex mu_;
    MetricSource* source_ ABSL_GUARDED_BY(mu_) = nullptr;
  };
  LateSource http_metrics_;
  LateSource remote_write_metrics_;
  std::unique_ptr<SeriesExpiry> expiry_;  // null without metrics.expire_after
  // What /metrics collects, in export order.
  MetricRegistry registry_;
  std::unique_ptr<HttpServer> server_;
  // Pushes what /metrics serves; reads registry_ and the rules on its thread.
  std::unique_ptr<RemoteWriter> remote_write_;
  std::unique_ptr<EventClockWatermark> watermarks_;
  std::unique_ptr<IngestPipeline> pipeline_;
  // Drains the pipeline and removes the idle series.
  void Expire(int64_t now_ms);
  bool final_checkpoint_ = false;
  bool abandoned_ = false;
};

}  // namespace novapulse

#endif  // NOVAPULSE_PIPELINE_SERVICE_H_
