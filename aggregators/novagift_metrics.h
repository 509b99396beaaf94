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

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "aggregators/metric_store.h"
#include "parsers/event.h"

namespace novapulse {

// Indexes into NovaGiftMetricDefs(); the order is the export order.
enum NovaGiftMetric : size_t {
  kHttpRequestsTotal,
  kHttpRequestDuration,
  kHttpErrorsTotal,
  kHttpActiveConnections,
  kOutboxQueued,
  kOutboxInFlight,
  kOutboxProcessed,
  kOutboxFailed,
  kOutboxDead,
  kOutboxErrors,
  kOutboxProcessingDuration,
  kOutboxRetryCount,
  kGiftsCreated,
  kGiftsClaimed,
  kGiftsExpired,
  kGiftValue,
  kGiftClaimDuration,
  kWalletTransactions,
  kEventsTotal,
  kParseErrorsTotal,
  kLateEventsTotal,
  kSeriesOverflowTotal,
  kSeries,
  kNewestEventTime,
  kNovaGiftMetricCount,
};

const std::vector<MetricDef>& NovaGiftMetricDefs();

// Window of http_active_connections: concurrency averaged over this span.
inline constexpr int64_t kActiveWindowSeconds = 60;

class NovaGiftMetrics {
 public:
  // A per-shard ring of busy time per event-time second, for
  // http_active_connections. Single writer, any reader.
  struct BusyRing {
    static constexpr size_t kSlots = 128;
    std::array<std::atomic<int64_t>, kSlots> second{};
    std::array<std::atomic<uint64_t>, kSlots> busy_us{};
    void Add(int64_t start_us, int64_t end_us);
  };

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
                           const WindowSpec* windows = nullptr);
  NovaGiftMetrics(const NovaGiftMetrics&) = delete;
  NovaGiftMetrics& operator=(const NovaGiftMetrics&) = delete;

  int num_shards() const { return store_.num_shards(); }
  Writer& writer(int shard) { return *writers_[shard]; }
  MetricStore& store() { return store_; }

  // Every family, merged over shards, computed gauges included.
  std::vector<FamilySnapshot> Snapshot() const;
  // Newest event time seen by any shard, microseconds; 0 before any event.
  int64_t NewestEventTime() const;

  // Checkpoints: every cumulative series, the newest event time and the
  // busy time behind http_active_connections. SaveState while no writer
  // runs; LoadState into fresh metrics before any writer runs (see
  // MetricStore::LoadCumulative for *same_ids).
  void SaveState(StateWriter* w) const;
  [[nodiscard]] absl::Status LoadState(StateReader* r, bool* same_ids);

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
