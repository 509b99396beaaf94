// Prometheus remote write 1.0 (protobuf WriteRequest, snappy block
// compression) of what /metrics serves, pushed on a timer.
//
// RemoteWriteEncoder turns one collection (metric families and rule
// outputs) into WriteRequests of at most max_samples_per_send samples, all
// stamped with the collection's wall time: series as Prometheus stores a
// scrape of /metrics (which it reads as OpenMetrics): histograms as
// _bucket{le}, _sum and _count with le in OpenMetrics' canonical form
// ("1.0"), labels sorted by name, empty values left out. A series no
// receiver would take (no __name__, a label name twice) is left out and
// counted. The protobuf is written directly: the message is four small
// types, and no per-sample object is built. A series that was in the
// previous collection and is not in this one (expired, an alert resolved)
// gets a stale marker, as Prometheus writes when a series leaves a scrape.
//
// RemoteWriter runs two threads: one collects every `interval` and queues
// the encoded requests, one sends them in order. A failed send (no answer,
// 5xx, 408, 429) is retried with exponential backoff, the request staying
// at the head of the queue; any other non-2xx answer means the receiver
// refused the data itself, which a retry would not change: it is dropped
// and counted. The queue is bounded in samples (queue_samples, plus the
// request in flight); past it the oldest requests are dropped and counted,
// so a receiver that is down costs bounded memory and, once back, gets the
// newest data that fitted.
//
// Threads: stats() and CollectMetrics() from any thread; Start, Shutdown
// and the destructor belong to the owner. `collect` runs on the writer's
// thread and must be safe to call from it.
//   absl::StatusOr<std::unique_ptr<RemoteWriter>> writer = RemoteWriter::Start(
//       {.url = "http://127.0.0.1:9090/api/v1/write"}, [&] { return Collect(); });
#ifndef NOVAPULSE_SINKS_REMOTE_WRITE_H_
#define NOVAPULSE_SINKS_REMOTE_WRITE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "aggregators/metric_source.h"
#include "aggregators/metric_store.h"
#include "rules/promql.h"
#include "sinks/http_post.h"
#include "sinks/push_schedule.h"

namespace novapulse {

// One collection: the families of /metrics and the rule outputs after them.
struct RemoteWriteBatch {
  MetricFamilies families;
  std::vector<std::pair<promql::Labels, double>> rule_series;
};

// One WriteRequest, snappy-compressed, and how many samples it holds.
struct RemoteWriteRequest {
  std::string body;
  size_t samples = 0;
};

class RemoteWriteEncoder {
 public:
  using Labels = std::vector<std::pair<std::string, std::string>>;
  // `external_labels` go on every series that has no label of the name.
  explicit RemoteWriteEncoder(size_t max_samples_per_send, Labels external_labels = {})
      : max_samples_(max_samples_per_send), external_(std::move(external_labels)) {}

  // Appends the requests of `batch` at `t_ms` to *out.
  void Encode(const RemoteWriteBatch& batch, int64_t t_ms, std::vector<RemoteWriteRequest>* out);
  // Appends, at `t_ms`, a stale marker (StaleNaN, as Prometheus writes when
  // a series leaves a scrape) for each series of `previous` that the last
  // Encode did not write: an expired label set, an alert that resolved.
  // A receiver then stops returning the series at once, not 5 minutes on.
  void EncodeStale(const RemoteWriteBatch& previous, int64_t t_ms,
                   std::vector<RemoteWriteRequest>* out);
  // Appends, at `t_ms`, a stale marker for every series of `last`: the
  // writer is going away, as Prometheus writes when a target does.
  void EncodeAllStale(const RemoteWriteBatch& last, int64_t t_ms,
                      std::vector<RemoteWriteRequest>* out) {
    written_.clear();
    EncodeStale(last, t_ms, out);
  }
  // Series left out so far: no __name__, or a label name twice.
  size_t skipped() const { return skipped_; }

 private:
  using LabelPairs = std::vector<std::pair<std::string_view, std::string_view>>;
  // Calls add(labels, value, identity) for each sample of `batch` as a
  // scrape of /metrics stores it; `labels` are (name, value) pairs in any
  // order; `identity`, a hash of what names the sample, is the same for the
  // same sample in every collection.
  template <typename AddSample>
  static void ForEachSample(const RemoteWriteBatch& batch, AddSample add);
  // Sorts `labels` into sorted_.
  void Sort(const LabelPairs& labels);
  // Whether a receiver takes the series in sorted_: named, no label twice.
  bool Valid() const;
  // One sample of the series in sorted_.
  void Write(double value, int64_t t_ms, std::vector<RemoteWriteRequest>* out);
  void Flush(std::vector<RemoteWriteRequest>* out);

  const size_t max_samples_;
  const Labels external_;
  std::string request_;            // the WriteRequest being filled, uncompressed
  std::string series_;             // one TimeSeries, before its length is known
  LabelPairs sorted_;              // labels of one series
  std::vector<uint64_t> written_;  // identities the last Encode wrote, sorted
  size_t samples_ = 0;             // in request_
  size_t skipped_ = 0;
};

struct RemoteWriteOptions {
  // "http://[USER:PASSWORD@]HOST[:PORT]/PATH", e.g. Prometheus's
  // http://HOST:9090/api/v1/write.
  std::string url;
  absl::Duration interval = absl::Seconds(15);  // between collections
  absl::Duration timeout = absl::Seconds(30);   // per request: connect, send, answer
  size_t max_samples_per_send = 10000;
  // Samples waiting to be sent, at most; the oldest requests go first.
  size_t queue_samples = 2'000'000;
  absl::Duration backoff_min = absl::Milliseconds(30);
  absl::Duration backoff_max = absl::Seconds(5);
  // How long Shutdown() goes on sending what is queued.
  absl::Duration shutdown_flush = absl::Seconds(5);
  // RemoteWriteEncoder's external labels.
  std::vector<std::pair<std::string, std::string>> external_labels;
  // Sent with every request (RemoteWriteHeaderRefused() names those that
  // may not be); an Authorization header here takes the place of a
  // password in the url.
  std::vector<std::pair<std::string, std::string>> headers;
};

// Why a header name may not be set for remote write ("" when it may): the
// protocol's own, and hop-by-hop ones, as Prometheus refuses them.
std::string RemoteWriteHeaderRefused(std::string_view name);

struct RemoteWriteStats {
  uint64_t samples_sent = 0;     // in requests the receiver accepted
  uint64_t samples_failed = 0;   // in requests that failed, counted at each attempt
  uint64_t samples_dropped = 0;  // never delivered: queue full, refused, or left at shutdown
  uint64_t samples_invalid = 0;  // left out: no __name__, or a label name twice
  uint64_t requests_sent = 0;
  uint64_t requests_failed = 0;  // attempts
  uint64_t bytes_sent = 0;       // compressed bodies accepted
  size_t queued_samples = 0;     // waiting now, including a request in flight
  double last_send_unix_s = 0;   // wall time of the last accepted request
  std::string last_error;
};

class RemoteWriter : public MetricSource {
 public:
  using Collect = std::function<RemoteWriteBatch()>;

  // Checks the options (URL, sizes, durations) and starts the threads; the
  // first collection is one interval after the start.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<RemoteWriter>> Start(
      RemoteWriteOptions options, Collect collect);

  RemoteWriter(const RemoteWriter&) = delete;
  RemoteWriter& operator=(const RemoteWriter&) = delete;
  ~RemoteWriter() override;

  // Stops collecting, sends what is queued until the queue is empty or
  // `flush` has passed, then stops the threads. With `end_series` (and a
  // flush), a stale marker for every series of the last collection is
  // queued first, as Prometheus writes when a target goes away: a receiver
  // stops returning them at once rather than for its lookback. (Not for a
  // restart that pushes the same series again.)
  void Shutdown(absl::Duration flush, bool end_series = false);

  RemoteWriteStats stats() const;
  // novapulse_remote_write_samples_total{result}, _requests_total{result},
  // _bytes_total, _queue_samples, _last_send_timestamp_seconds.
  void CollectMetrics(MetricFamilies* out) override;

 private:
  RemoteWriter(RemoteWriteOptions options, HttpEndpoint endpoint, Collect collect);
  void CollectLoop();
  void SendLoop();
  void TrimLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const RemoteWriteOptions options_;
  const HttpEndpoint endpoint_;
  const Collect collect_;

  mutable absl::Mutex mu_;
  absl::CondVar wake_;
  std::deque<RemoteWriteRequest> queue_ ABSL_GUARDED_BY(mu_);
  size_t queued_samples_ ABSL_GUARDED_BY(mu_) = 0;  // in queue_
  size_t inflight_samples_ ABSL_GUARDED_BY(mu_) = 0;
  PushStop stop_ ABSL_GUARDED_BY(mu_);  // the sender's; begun once the collector ended
  bool collector_stop_ ABSL_GUARDED_BY(mu_) = false;
  bool end_series_ ABSL_GUARDED_BY(mu_) = false;
  RemoteWriteStats stats_ ABSL_GUARDED_BY(mu_);
  bool joined_ = false;  // owner thread only

  std::thread collector_;
  std::thread sender_;
};

}  // namespace novapulse

#endif  // NOVAPULSE_SINKS_REMOTE_WRITE_H_
