#include "aggregators/novagift_metrics.h"

#include <algorithm>
#include <charconv>
#include <cstring>

#include "aggregators/metric_set_state.h"
#include "parsers/timestamp.h"

namespace novapulse {
namespace {

// API latency, 5 ms to 10 s.
const std::vector<double> kLatencyBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                             0.5,   1,    2.5,   5,    10};
// Outbox handler time per attempt, 5 ms to 30 s.
const std::vector<double> kProcessingBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                                0.5,   1,    2.5,   5,    10,  30};
const std::vector<double> kAttemptBuckets = {1, 2, 3, 4, 5, 6, 8, 10};
const std::vector<double> kUsdBuckets = {1, 5, 10, 25, 50, 100, 250, 500, 1000};
// Time to claim, 1 minute to 7 days.
const std::vector<double> kClaimBuckets = {60,    300,   900,   1800,   3600,   7200,
                                           21600, 43200, 86400, 172800, 345600, 604800};

}  // namespace

const std::vector<MetricDef>& NovaGiftMetricDefs() {
  static const std::vector<MetricDef> kDefs = {NOVAPULSE_NOVAGIFT_METRICS(NOVAPULSE_METRIC_DEF)
                                                   NOVAPULSE_SELF_METRICS(NOVAPULSE_METRIC_DEF)};
  return kDefs;
}

namespace {

bool KeepsIdsByType(size_t m) {
  switch (m) {
    case kOutboxQueued:
    case kOutboxInFlight:
    case kOutboxProcessed:
    case kOutboxFailed:
    case kOutboxDead:
    case kOutboxProcessingDuration:
    case kOutboxRetryCount:
      return true;
    default:
      return false;
  }
}

bool CanExpireFamily(size_t m) {
  // The self metrics (the families from kEventsTotal on) are a fixed set too.
  return m < kEventsTotal && !IsComputed(NovaGiftMetricDefs()[m].type) && !KeepsIdsByType(m);
}

std::vector<MetricDef> ExpiringDefs(const MetricExpiry& expiry) {
  std::vector<MetricDef> defs = NovaGiftMetricDefs();
  for (size_t m = 0; m < defs.size(); ++m) {
    if (!CanExpireFamily(m)) continue;
    defs[m].expire_after_ms = expiry.For(defs[m].name);
  }
  return defs;
}

}  // namespace

bool NovaGiftMetrics::CanExpire(std::string_view family) {
  const std::vector<MetricDef>& defs = NovaGiftMetricDefs();
  for (size_t m = 0; m < defs.size(); ++m) {
    if (defs[m].name == family) return CanExpireFamily(m);
  }
  return false;
}

std::vector<std::string> NovaGiftMetrics::ExpiringFamilies() {
  std::vector<std::string> names;
  for (size_t m = 0; m < kEventsTotal; ++m) {
    if (CanExpireFamily(m)) names.emplace_back(NovaGiftMetricDefs()[m].name);
  }
  return names;
}

size_t NovaGiftMetrics::ExpireIdle(int64_t now_ms, std::vector<MetricStore::Removed>* out) {
  std::vector<MetricStore::Removed> own;
  std::vector<MetricStore::Removed>& removed = out != nullptr ? *out : own;
  const size_t first = removed.size();
  const size_t n = store_.ExpireIdle(now_ms, &removed);
  if (n == 0) return 0;
  // The duration series each request series maps to: a removed request
  // series forgets its own, and every request series forgets a removed one.
  std::vector<uint32_t> gone_durations;
  for (size_t i = first; i < removed.size(); ++i) {
    const MetricStore::Removed& r = removed[i];
    if (r.metric == kHttpRequestsTotal) {
      duration_of_request_[r.id].store(UINT32_MAX, std::memory_order_relaxed);
    } else if (r.metric == kHttpRequestDuration) {
      gone_durations.push_back(r.id);
    }
  }
  if (!gone_durations.empty()) {
    std::sort(gone_durations.begin(), gone_durations.end());
    for (size_t i = 0; i < store_.index(kHttpRequestsTotal).capacity(); ++i) {
      const uint32_t d = duration_of_request_[i].load(std::memory_order_relaxed);
      if (std::binary_search(gone_durations.begin(), gone_durations.end(), d)) {
        duration_of_request_[i].store(UINT32_MAX, std::memory_order_relaxed);
      }
    }
  }
  for (const auto& w : writers_) w->ForgetRequestIds();
  return n;
}

void NovaGiftMetrics::Writer::ForgetRequestIds() {
  for (size_t i = 0; i < kRequestMemoSize; ++i) request_memo_[i] = RequestIds{};
}

NovaGiftMetrics::NovaGiftMetrics(int num_shards, size_t series_limit, const WindowSpec* windows,
                                 const MetricExpiry& expiry)
    : store_(ExpiringDefs(expiry), num_shards, series_limit),
      duration_of_request_(new std::atomic<uint32_t>[store_.index(kHttpRequestsTotal).capacity()]) {
  for (size_t i = 0; i < store_.index(kHttpRequestsTotal).capacity(); ++i) {
    duration_of_request_[i].store(UINT32_MAX, std::memory_order_relaxed);
  }
  if (windows != nullptr) store_.EnableWindows(*windows);
  for (int s = 0; s < num_shards; ++s) {
    newest_.push_back(std::make_unique<ShardTime>());
    busy_.push_back(std::make_unique<BusyRing>());
  }
  for (int s = 0; s < num_shards; ++s) writers_.push_back(std::make_unique<Writer>(this, s));
}

NovaGiftMetrics::Writer::Writer(NovaGiftMetrics* owner, int shard)
    : owner_(owner), w_(&owner->store_, shard, kSeriesOverflowTotal) {
  // Known label sets are resolved up front (in the same order on every
  // shard, so ids agree) and exported as zeros until they move.
  constexpr std::string_view kUnknownTopic = "unknown";
  for (int t = 0; t <= kTopicCount; ++t) {
    const std::string_view topic =
        t < kTopicCount ? TopicName(static_cast<Topic>(t)) : kUnknownTopic;
    if (t < kTopicCount) {
      BuildKey(&key_, {topic, "accepted"});
      accepted_[t] = w_.Resolve(kEventsTotal, key_);
      late_[t] = w_.Resolve(kLateEventsTotal, topic);
    }
    BuildKey(&key_, {topic, "rejected"});
    rejected_events_[t] = w_.Resolve(kEventsTotal, key_);
    for (int r = 0; r < kRejectReasonCount; ++r) {
      BuildKey(&key_, {topic, RejectReasonName(static_cast<RejectReason>(r))});
      rejected_[t][r] = w_.Resolve(kParseErrorsTotal, key_);
    }
  }
  for (size_t m : {kOutboxQueued, kOutboxInFlight, kOutboxProcessed, kOutboxFailed, kOutboxDead,
                   kOutboxProcessingDuration, kOutboxRetryCount}) {
    for (int t = 0; t < kOutboxTypeCount; ++t) {
      by_type_[m][t] = w_.Resolve(m, OutboxTypeName(static_cast<OutboxType>(t)));
    }
  }
}

void NovaGiftMetrics::Writer::UpdateNewest(int64_t ts_us) {
  std::atomic<int64_t>& newest = owner_->newest_[w_.shard()]->newest_us;
  if (ts_us > newest.load(std::memory_order_relaxed)) {
    newest.store(ts_us, std::memory_order_relaxed);
  }
  batch_newest_us_ = std::max(batch_newest_us_, ts_us);
}

void NovaGiftMetrics::Writer::SetEventTime(Topic topic, int64_t ts_us) {
  // Microseconds to milliseconds, floored (event times are after 1970).
  if (!w_.SetEventTime(ts_us / 1000)) w_.Inc(kLateEventsTotal, late_[static_cast<int>(topic)]);
}

int64_t NovaGiftMetrics::Writer::EndBatch() {
  w_.FlushSpill();
  return TakeNewest();
}

namespace {

// Cheap mix of a request's label values, for the memo's slot.
size_t RequestSlot(std::string_view method, std::string_view route, uint16_t status) {
  uint64_t tail = 0;
  const size_t n = std::min<size_t>(route.size(), sizeof(tail));
  std::memcpy(&tail, route.data() + route.size() - n, n);
  uint64_t h = tail ^ (static_cast<uint64_t>(route.size()) << 56) ^
               (static_cast<uint64_t>(status) << 40) ^
               (method.empty() ? 0 : static_cast<uint64_t>(method[0]) << 32) ^ method.size();
  h *= 0x9e3779b97f4a7c15ULL;
  return static_cast<size_t>(h >> 56);
}

}  // namespace

void NovaGiftMetrics::Writer::ResolveRequest(const AccessLogEvent& e, uint32_t* requests_out,
                                             uint32_t* duration_out) {
  static_assert(kRequestMemoSize == 256, "RequestSlot returns 8 bits");
  RequestIds& memo = request_memo_[RequestSlot(e.method, e.route, e.status)];
  if (memo.status == e.status && memo.method == e.method && memo.route == e.route) {
    *requests_out = memo.requests;
    *duration_out = memo.duration;
    return;
  }
  char status_buf[4];
  const auto status_end = std::to_chars(status_buf, status_buf + sizeof(status_buf), e.status).ptr;
  const std::string_view status(status_buf, status_end - status_buf);
  BuildKey(&key_, {e.method, e.route, status});
  const uint32_t requests = w_.Resolve(kHttpRequestsTotal, key_);
  std::atomic<uint32_t>& known = owner_->duration_of_request_[requests];
  uint32_t duration = known.load(std::memory_order_relaxed);
  const bool real = requests < owner_->store_.index(kHttpRequestsTotal).limit();
  if (duration == UINT32_MAX) {
    BuildKey(&key_, {e.method, e.route});
    duration = w_.Resolve(kHttpRequestDuration, key_);
    // The overflow series stands for many (method, route) pairs: not cached
    // (for an overflowed request series, nor as the duration of a real one:
    // expiry may make room for it later, and each fold must be counted).
    if (real && duration < owner_->store_.index(kHttpRequestDuration).limit()) {
      known.store(duration, std::memory_order_relaxed);
    }
  }
  // Only when neither lookup overflowed: an overflowed lookup counts in
  // novapulse_series_overflow_total each time.
  if (real && duration < owner_->store_.index(kHttpRequestDuration).limit()) {
    memo.method.assign(e.method);
    memo.route.assign(e.route);
    memo.status = e.status;
    memo.requests = requests;
    memo.duration = duration;
  }
  *requests_out = requests;
  *duration_out = duration;
}

void NovaGiftMetrics::Writer::Record(const AccessLogEvent& e) {
  SetEventTime(Topic::kAccessLog, e.ts_us);
  uint32_t requests, duration;
  ResolveRequest(e, &requests, &duration);
  w_.Inc(kHttpRequestsTotal, requests);
  w_.Observe(kHttpRequestDuration, duration, e.duration_ms / 1000.0);
  if (!e.error_code.empty()) {
    BuildKey(&key_, {e.route, e.error_code});
    w_.Inc(kHttpErrorsTotal, w_.Resolve(kHttpErrorsTotal, key_));
  }
  // Capped before the conversion; the ring only looks at the last two minutes.
  const int64_t duration_us = static_cast<int64_t>(std::min(e.duration_ms, 1e9) * 1000.0);
  owner_->busy_[w_.shard()]->Add(e.ts_us - duration_us, e.ts_us);
  UpdateNewest(e.ts_us);
  w_.Inc(kEventsTotal, accepted_[static_cast<int>(Topic::kAccessLog)]);
}

void NovaGiftMetrics::Writer::Record(const OutboxEvent& e) {
  SetEventTime(Topic::kOutbox, e.ts_us);
  const int t = static_cast<int>(e.type);
  auto gauge = [&](size_t m, int64_t delta) { w_.GaugeAdd(m, by_type_[m][t], delta); };
  auto processing = [&] {
    if (e.processing_ms >= 0) {
      w_.Observe(kOutboxProcessingDuration, by_type_[kOutboxProcessingDuration][t],
                 e.processing_ms / 1000.0);
    }
  };
  switch (e.status) {
    case OutboxStatus::kQueued:
      gauge(kOutboxQueued, +1);
      break;
    case OutboxStatus::kInFlight:
      gauge(kOutboxQueued, -1);
      gauge(kOutboxInFlight, +1);
      break;
    case OutboxStatus::kProcessed:
      gauge(kOutboxInFlight, -1);
      w_.Inc(kOutboxProcessed, by_type_[kOutboxProcessed][t]);
      processing();
      w_.Observe(kOutboxRetryCount, by_type_[kOutboxRetryCount][t], static_cast<double>(e.attempt));
      break;
    case OutboxStatus::kFailed:
      gauge(kOutboxInFlight, -1);
      gauge(kOutboxQueued, +1);  // waiting for its retry
      w_.Inc(kOutboxFailed, by_type_[kOutboxFailed][t]);
      BuildKey(&key_, {OutboxTypeName(e.type), e.error.empty() ? "unknown" : e.error});
      w_.Inc(kOutboxErrors, w_.Resolve(kOutboxErrors, key_));
      processing();
      break;
    case OutboxStatus::kDead:
      gauge(kOutboxQueued, -1);
      w_.Inc(kOutboxDead, by_type_[kOutboxDead][t]);
      w_.Observe(kOutboxRetryCount, by_type_[kOutboxRetryCount][t], static_cast<double>(e.attempt));
      break;
  }
  if (e.status == OutboxStatus::kQueued) {
    switch (e.type) {
      case OutboxType::kGiftCreated:
        BuildKey(&key_, {e.mode, e.theme});
        w_.Inc(kGiftsCreated, w_.Resolve(kGiftsCreated, key_));
        w_.Observe(kGiftValue, w_.Resolve(kGiftValue, e.mode), e.value_usd);
        break;
      case OutboxType::kGiftClaimed: {
        BuildKey(&key_, {e.mode, e.theme});
        w_.Inc(kGiftsClaimed, w_.Resolve(kGiftsClaimed, key_));
        // A claim stamped before its creation (clock skew) counts as instant.
        const double seconds =
            std::max<int64_t>(0, e.ts_us - e.created_at_us) / static_cast<double>(kMicrosPerSecond);
        w_.Observe(kGiftClaimDuration, w_.Resolve(kGiftClaimDuration, e.mode), seconds);
        break;
      }
      case OutboxType::kGiftExpired:
        BuildKey(&key_, {e.mode, e.theme});
        w_.Inc(kGiftsExpired, w_.Resolve(kGiftsExpired, key_));
        break;
      case OutboxType::kWalletTransaction:
        BuildKey(&key_, {e.wallet_kind, e.wallet_status});
        w_.Inc(kWalletTransactions, w_.Resolve(kWalletTransactions, key_));
        w_.Observe(kWalletAmount, w_.Resolve(kWalletAmount, key_), e.amount_usd);
        break;
    }
  }
  UpdateNewest(e.ts_us);
  w_.Inc(kEventsTotal, accepted_[static_cast<int>(Topic::kOutbox)]);
}

void NovaGiftMetrics::Writer::Reject(Topic topic, RejectReason reason) {
  w_.ClearEventTime();
  const int t = topic == Topic::kAuto ? kTopicCount : static_cast<int>(topic);
  w_.Inc(kParseErrorsTotal, rejected_[t][static_cast<int>(reason)]);
  w_.Inc(kEventsTotal, rejected_events_[t]);
}

int64_t NovaGiftMetrics::NewestEventTime() const {
  int64_t newest = 0;
  for (const auto& s : newest_)
    newest = std::max(newest, s->newest_us.load(std::memory_order_relaxed));
  return newest;
}

double NovaGiftMetrics::ActiveConnections(int64_t now_us) const {
  return AverageBusy(busy_, now_us, kActiveWindowSeconds);
}

void NovaGiftMetrics::SaveState(StateWriter* w) {
  SaveMetricSetState(store_, NewestEventTime(), {&busy_}, w);
}

absl::Status NovaGiftMetrics::LoadState(StateReader* r, StateLoad* load) {
  int64_t newest = 0;
  absl::Status loaded = LoadMetricSetState(store_, {&busy_}, r, load, &newest);
  newest_[0]->newest_us.store(newest, std::memory_order_relaxed);
  return loaded;
}

std::vector<FamilySnapshot> NovaGiftMetrics::Snapshot() const {
  const int64_t newest = NewestEventTime();
  return store_.Snapshot([&](size_t m, MetricStore::AddSeries add) {
    switch (m) {
      case kHttpActiveConnections:
        add("", newest > 0 ? ActiveConnections(newest) : 0.0);
        break;
      case kSeries:
        store_.AddSeriesCounts(add);
        break;
      case kNewestEventTime:
        add("", static_cast<double>(newest) / kMicrosPerSecond);
        break;
    }
  });
}

}  // namespace novapulse
