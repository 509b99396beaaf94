// The NovaGift metric set: every family novapulse exports, declared once in
// one table (NovaGiftMetricDefs), and NovaGiftMetrics, which turns decoded
// events into cell updates.
//
// Threads: NovaGiftMetrics::Writer i belongs to worker i alone (single
// writer). Snapshot() may be called from any thread at any time; it never
// blocks a writer.
//   NovaGiftMetrics metrics(/*num_shards=*/2);
//   metrics.writer(0).Record(access_event);
//   std::vector<FamilySnapshot> families = metrics.Snapshot();
#ifndef NOVAPULSE_AGGREGATORS_NOVAGIFT_METRICS_H_
#define NOVAPULSE_AGGREGATORS_NOVAGIFT_METRICS_H_

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "aggregators/busy_ring.h"
#include "aggregators/metric_source.h"
#include "aggregators/metric_store.h"
#include "aggregators/self_metrics.h"
#include "base/state_part.h"
#include "parsers/event.h"

namespace novapulse {

// The families novapulse exports for NovaGift (see
// aggregators/metric_source.h); the order is the export order. Bucket lists
// are named in novagift_metrics.cc.
#define NOVAPULSE_NOVAGIFT_METRICS(M)                                                             \
  M(kHttpRequestsTotal, "http_requests_total", "API requests by method, route and status.",       \
    MetricType::kCounter, {"method", "route", "status"}, {})                                      \
  M(kHttpRequestDuration, "http_request_duration_seconds", "API request latency.",                \
    MetricType::kHistogram, {"method", "route"}, kLatencyBuckets)                                 \
  M(kHttpErrorsTotal, "http_errors_total",                                                        \
    "API responses that carried an error code, by route and code.", MetricType::kCounter,         \
    {"route", "error_code"}, {})                                                                  \
  M(kHttpActiveConnections, "http_active_connections",                                            \
    "Requests in progress, averaged over the last minute of event time.", MetricType::kComputed,  \
    {}, {})                                                                                       \
  M(kOutboxQueued, "outbox_queued_total",                                                         \
    "Outbox messages waiting: queued, or failed and not yet back in flight.", MetricType::kGauge, \
    {"type"}, {})                                                                                 \
  M(kOutboxInFlight, "outbox_in_flight_total", "Outbox messages being processed.",                \
    MetricType::kGauge, {"type"}, {})                                                             \
  M(kOutboxProcessed, "outbox_processed_total", "Outbox messages processed successfully.",        \
    MetricType::kCounter, {"type"}, {})                                                           \
  M(kOutboxFailed, "outbox_failed_total", "Failed outbox processing attempts.",                   \
    MetricType::kCounter, {"type"}, {})                                                           \
  M(kOutboxDead, "outbox_dead_total", "Outbox messages given up after their last attempt.",       \
    MetricType::kCounter, {"type"}, {})                                                           \
  M(kOutboxErrors, "outbox_errors_total", "Failed outbox attempts by error.",                     \
    MetricType::kCounter, {"type", "error"}, {})                                                  \
  M(kOutboxProcessingDuration, "outbox_processing_duration_seconds",                              \
    "Outbox processing time per attempt.", MetricType::kHistogram, {"type"}, kProcessingBuckets)  \
  M(kOutboxRetryCount, "outbox_retry_count",                                                      \
    "Attempts an outbox message needed, observed when it ends processed or dead.",                \
    MetricType::kHistogram, {"type"}, kAttemptBuckets)                                            \
  M(kGiftsCreated, "gifts_created_total", "Gifts created.", MetricType::kCounter,                 \
    {"mode", "theme"}, {})                                                                        \
  M(kGiftsClaimed, "gifts_claimed_total", "Gifts claimed.", MetricType::kCounter,                 \
    {"mode", "theme"}, {})                                                                        \
  M(kGiftsExpired, "gifts_expired_total", "Gifts expired unclaimed.", MetricType::kCounter,       \
    {"mode", "theme"}, {})                                                                        \
  M(kGiftValue, "gift_value_usd", "Value of created gifts in USD.", MetricType::kHistogram,       \
    {"mode"}, kUsdBuckets)                                                                        \
  M(kGiftClaimDuration, "gift_claim_duration_seconds",                                            \
    "Time from a gift's creation to its claim.", MetricType::kHistogram, {"mode"}, kClaimBuckets, \
    0, 1e-3)                                                                                      \
  M(kWalletTransactions, "wallet_transactions_total", "Wallet transactions by kind and status.",  \
    MetricType::kCounter, {"kind", "status"}, {})                                                 \
  M(kWalletAmount, "wallet_transaction_amount_usd",                                               \
    "Amounts of wallet transactions in USD, by kind and status.", MetricType::kHistogram,         \
    {"kind", "status"}, kUsdBuckets)

// The store's families: NovaGift's, then the self metrics (self_metrics.h),
// whose ids here are their places in the store.
enum NovaGiftMetric : size_t {
  NOVAPULSE_NOVAGIFT_METRICS(NOVAPULSE_METRIC_ID) NOVAPULSE_SELF_METRICS(NOVAPULSE_METRIC_ID)
      kNovaGiftMetricCount
};

const std::vector<MetricDef>& NovaGiftMetricDefs();

// Window of http_active_connections: concurrency averaged over this span.
inline constexpr int64_t kActiveWindowSeconds = 60;

class NovaGiftMetrics : public MetricSource, public StatePart {
 public:
  class Writer {
   public:
    Writer(NovaGiftMetrics* owner, int shard);
    void Record(const AccessLogEvent& e);
    void Record(const OutboxEvent& e);
    // A rejected record; `topic` kAuto when the topic could not be told.
    void Reject(Topic topic, RejectReason reason);
    ShardWriter& shard_writer() { return w_; }
    // Window slots ending at or before this are closed to the records that
    // follow (see ShardWriter::SetWatermark).
    void SetWatermark(int64_t watermark_ms) { w_.SetWatermark(watermark_ms); }
    // Ends a batch: hands spilled window updates to the store (see
    // ShardWriter::FlushSpill) and returns the newest event time recorded
    // since the last call (INT64_MIN if none).
    int64_t EndBatch();
    // The newest event time recorded since the last call of this or
    // EndBatch (INT64_MIN if none), without ending the batch.
    int64_t TakeNewest() { return std::exchange(batch_newest_us_, INT64_MIN); }
    // Forgets the series ids it keeps between batches (expiry freed some).
    void ForgetRequestIds();

   private:
    // A label set of http_requests_total this worker has resolved, with its
    // series ids. Records repeat a few dozen label sets: the memo skips
    // building the key and probing the shared index for each.
    struct RequestIds {
      std::string method;
      std::string route;
      uint16_t status = 0;  // 0: empty entry (statuses are 100-599)
      uint32_t requests = 0;
      uint32_t duration = 0;
    };
    static constexpr size_t kRequestMemoSize = 256;

    void UpdateNewest(int64_t ts_us);
    void SetEventTime(Topic topic, int64_t ts_us);
    // Series ids of the event's (method, route, status) and (method, route).
    void ResolveRequest(const AccessLogEvent& e, uint32_t* requests, uint32_t* duration);

    NovaGiftMetrics* owner_;
    ShardWriter w_;
    std::string key_;
    std::array<uint32_t, kTopicCount> accepted_{};
    std::array<uint32_t, kTopicCount> late_{};
    int64_t batch_newest_us_ = INT64_MIN;
    std::array<std::array<uint32_t, kRejectReasonCount>, kTopicCount + 1> rejected_{};
    std::array<uint32_t, kTopicCount + 1> rejected_events_{};
    // Outbox families labelled by type only: ids per type.
    std::array<std::array<uint32_t, kOutboxTypeCount>, kNovaGiftMetricCount> by_type_{};
    // Direct-mapped by a hash of the label values; a collision only costs a
    // lookup. Holds real series only (an overflowed lookup must count).
    std::unique_ptr<RequestIds[]> request_memo_{new RequestIds[kRequestMemoSize]};
  };

  // With `windows`, the families it names also keep per-slot history (see
  // WindowHistory).
  explicit NovaGiftMetrics(int num_shards, size_t series_limit = kDefaultSeriesLimit,
                           const WindowSpec* windows = nullptr, const MetricExpiry& expiry = {});

  // Whether the series of a family can expire: not the self metrics, not the
  // outbox families labelled by type only (a fixed set, whose ids the
  // writers keep), not computed gauges.
  static bool CanExpire(std::string_view family);
  static std::vector<std::string> ExpiringFamilies();
  // Stale-series expiry at event time `now_ms` (MetricStore::ExpireIdle,
  // which appends what it removed to `removed`), and the writers forget the
  // ids it freed. Only while no writer runs. Returns the series removed.
  size_t ExpireIdle(int64_t now_ms, std::vector<MetricStore::Removed>* removed = nullptr);
  NovaGiftMetrics(const NovaGiftMetrics&) = delete;
  NovaGiftMetrics& operator=(const NovaGiftMetrics&) = delete;

  int num_shards() const { return store_.num_shards(); }
  Writer& writer(int shard) { return *writers_[shard]; }
  MetricStore& store() { return store_; }

  // Every family, merged over shards, computed gauges included.
  std::vector<FamilySnapshot> Snapshot() const;
  // Snapshot(), for a MetricRegistry.
  void CollectMetrics(MetricFamilies* out) override { out->Append(Snapshot()); }
  // Newest event time seen by any shard, microseconds; 0 before any event.
  int64_t NewestEventTime() const;

  // Checkpoints (section "metrics", fingerprint: the metric set): every
  // cumulative series, the newest event time, the busy time behind
  // http_active_connections and each series' newest event time (for
  // expiry; a checkpoint without them stamps every series with the newest
  // event time). SaveState while no writer runs; LoadState into
  // fresh metrics before any writer runs. Sets load->series_ids_moved when a
  // series got another id (see MetricStore::LoadCumulative).
  std::string_view StateName() const override { return "metrics"; }
  std::string StateFingerprint() const override { return store_.Fingerprint(); }
  std::string_view StateChanged() const override {
    return "the checkpoint was written for another metric set (a different novapulse version)";
  }
  void SaveState(StateWriter* w) override;
  [[nodiscard]] absl::Status LoadState(StateReader* r, StateLoad* load) override;

 private:
  struct alignas(64) ShardTime {
    std::atomic<int64_t> newest_us{0};
  };
  double ActiveConnections(int64_t now_us) const;

  MetricStore store_;
  // http_request_duration_seconds id of each http_requests_total series
  // (UINT32_MAX until known): one lookup per access event instead of two.
  // Written by whichever worker first sees the series; every writer stores
  // the same value.
  std::unique_ptr<std::atomic<uint32_t>[]> duration_of_request_;
  std::vector<std::unique_ptr<ShardTime>> newest_;
  std::vector<std::unique_ptr<BusyRing>> busy_;
  std::vector<std::unique_ptr<Writer>> writers_;
};

}  // namespace novapulse

#endif  // NOVAPULSE_AGGREGATORS_NOVAGIFT_METRICS_H_
