// AlertmanagerClient: delivers the rule engine's alerts to every configured
// Alertmanager (as Prometheus's notifier does, each receives every alert)
// with `POST <url>/api/v2/alerts`, in batches of Alertmanager's v2 JSON.
//
// Each URL has its own bounded queue and sender thread, so one Alertmanager
// that is down or slow never delays another. When a queue is full the oldest
// alerts are dropped and counted, as Prometheus does: the engine re-sends
// firing alerts every resend delay, so the newest state is what matters. A
// failed POST (connection error, timeout, 5xx, 408, 429) is retried with
// exponential backoff, the batch staying at the head of its queue; any other
// non-2xx answer means Alertmanager rejected the batch itself, which a retry
// would not change, so it is counted as errors and dropped.
//
// Alert times are the engine's event times, sent as they are (startsAt =
// fired_at, or active_at; endsAt = resolved_at when resolved, else
// valid_until): the client never compares them with its own clock.
//
// Threads: Enqueue() and stats() may be called from any thread; Enqueue()
// takes a short lock and never waits for the network. Shutdown() and the
// destructor belong to the owner.
//   absl::StatusOr<std::unique_ptr<AlertmanagerClient>> client =
//       AlertmanagerClient::Start(AlertmanagerClientOptions{.urls = config.alertmanager.urls});
//   (*client)->Enqueue(engine.AlertsToSend(t_ms, absl::ToInt64Milliseconds(resend_delay)));
//   // self metrics: novapulse_alertmanager_alerts_sent_total{url} = stats().urls[i].sent, ...
#ifndef NOVAPULSE_SINKS_ALERTMANAGER_CLIENT_H_
#define NOVAPULSE_SINKS_ALERTMANAGER_CLIENT_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "aggregators/metric_source.h"
#include "aggregators/metric_store.h"
#include "rules/promql.h"
#include "rules/rule_engine.h"
#include "sinks/http_post.h"
#include "sinks/push_schedule.h"

namespace novapulse {

struct AlertmanagerClientOptions {
  // Base URLs, "http://HOST[:PORT][/PREFIX]" (port 80 by default); alerts go
  // to PREFIX/api/v2/alerts. "http://user:password@host" sends basic auth.
  std::vector<std::string> urls;
  size_t queue_capacity = 10000;               // alerts waiting per URL
  size_t max_batch = 64;                       // alerts per POST
  absl::Duration timeout = absl::Seconds(10);  // per POST: connect, send, response
  absl::Duration backoff_min = absl::Milliseconds(100);
  absl::Duration backoff_max = absl::Seconds(30);
  // Added to every alert's labels unless the alert has the label already
  // (Prometheus's global external_labels).
  promql::Labels external_labels;
  std::string generator_url;  // "generatorURL" of every alert; omitted when empty
  // How long the destructor goes on trying to deliver what is queued.
  absl::Duration shutdown_flush = absl::Seconds(5);
};

// Counters per URL, in the order of the options' urls.
struct AlertmanagerUrlStats {
  std::string url;
  uint64_t sent = 0;       // alerts Alertmanager accepted (2xx)
  uint64_t errors = 0;     // alerts in POSTs that failed, counted at each attempt
  uint64_t dropped = 0;    // alerts never delivered: queue full, rejected, or left at shutdown
  size_t queued = 0;       // alerts waiting now, including a batch in flight
  std::string last_error;  // why the last failed POST failed; empty when none has
};
struct AlertmanagerStats {
  std::vector<AlertmanagerUrlStats> urls;
  uint64_t dropped = 0;  // sum over urls
};

// One alert in Alertmanager's v2 form:
// {"labels":{...},"annotations":{...},"startsAt":T,"endsAt":T,"generatorURL":U}.
// endsAt is left out when the alert has neither resolved_at nor valid_until.
std::string AlertmanagerAlertJson(const Alert& alert, const promql::Labels& external_labels,
                                  std::string_view generator_url);

class AlertmanagerClient : public MetricSource {
 public:
  // Checks the options (a URL that is not http://..., capacity or batch 0,
  // backoff_min > backoff_max) and starts one sender thread per URL.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<AlertmanagerClient>> Start(
      AlertmanagerClientOptions options);

  AlertmanagerClient(const AlertmanagerClient&) = delete;
  AlertmanagerClient& operator=(const AlertmanagerClient&) = delete;
  // Shutdown(options.shutdown_flush) unless already shut down.
  ~AlertmanagerClient() override;

  // Queues the alerts for every URL; never blocks on the network. After
  // Shutdown() the alerts are counted as dropped.
  void Enqueue(const std::vector<Alert>& alerts);

  // Stops accepting alerts, goes on sending what is queued until the queues
  // are empty or `flush` has passed (a POST in flight is cut at the deadline),
  // then stops the threads; what is left is counted as dropped.
  void Shutdown(absl::Duration flush);

  AlertmanagerStats stats() const;
  // novapulse_alertmanager_alerts_sent_total{url},
  // novapulse_alertmanager_errors_total{url},
  // novapulse_alertmanager_dropped_total{url} and
  // novapulse_alertmanager_queue_length{url}.
  void CollectMetrics(MetricFamilies* out) override;

 private:
  struct Target {
    HttpEndpoint endpoint;  // path: PREFIX/api/v2/alerts
    // The rest is guarded by the client's mu_ (an annotation cannot name it
    // from here).
    std::deque<std::shared_ptr<const std::string>> queue;
    size_t inflight = 0;     // alerts in the POST being made
    std::string last_error;  // of the last failed POST
    uint64_t sent = 0;
    uint64_t errors = 0;
    uint64_t dropped = 0;
    std::thread thread;
  };

  explicit AlertmanagerClient(AlertmanagerClientOptions options);
  // A target's sender thread.
  void Run(Target* target);
  // Drops the oldest alerts of target->queue beyond the capacity.
  void TrimLocked(Target* target) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const AlertmanagerClientOptions options_;
  std::vector<std::unique_ptr<Target>> targets_;  // fixed after Start()

  mutable absl::Mutex mu_;
  absl::CondVar wake_;  // alerts queued, or shutting down
  PushStop stop_ ABSL_GUARDED_BY(mu_);
  bool joined_ = false;  // owner thread only
};

}  // namespace novapulse

#endif  // NOVAPULSE_SINKS_ALERTMANAGER_CLIENT_H_
