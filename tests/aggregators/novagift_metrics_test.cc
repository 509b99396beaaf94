#include "aggregators/novagift_metrics.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <ctime>
#include <initializer_list>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "aggregators/metric_store.h"
#include "base/state_codec.h"
#include "base/state_part.h"
#include "parsers/event.h"

namespace novapulse {
namespace {

constexpr int64_t kSecond = 1'000'000;

int64_t EpochUs(int year, int month, int day, int hour, int minute, int second) {
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  return static_cast<int64_t>(timegm(&tm)) * kSecond;
}

// A whole second of event time, so window arithmetic is easy to follow.
const int64_t kT0 = EpochUs(2026, 11, 27, 6, 0, 0);

AccessLogEvent Access(std::string_view method, std::string_view route, uint16_t status,
                      double duration_ms, int64_t ts_us, std::string_view error_code = "") {
  AccessLogEvent e;
  e.method = method;
  e.route = route;
  e.status = status;
  e.duration_ms = duration_ms;
  e.ts_us = ts_us;
  e.error_code = error_code;
  return e;
}

OutboxEvent Outbox(OutboxType type, OutboxStatus status, int64_t attempt = 1,
                   double processing_ms = -1, std::string_view error = "") {
  OutboxEvent e;
  e.ts_us = kT0;
  e.id = "evt-1";
  e.type = type;
  e.status = status;
  e.attempt = attempt;
  e.processing_ms = processing_ms;
  e.error = error;
  return e;
}

OutboxEvent GiftCreated(OutboxStatus status, std::string_view mode, std::string_view theme,
                        double value_usd) {
  OutboxEvent e = Outbox(OutboxType::kGiftCreated, status);
  e.mode = mode;
  e.theme = theme;
  e.value_usd = value_usd;
  return e;
}

std::string Key(std::initializer_list<std::string_view> values) {
  std::string key;
  BuildKey(&key, values);
  return key;
}

// Reads series out of a snapshot by metric and label values.
class View {
 public:
  explicit View(const NovaGiftMetrics& metrics) : families_(metrics.Snapshot()) {}

  bool Has(size_t m, std::initializer_list<std::string_view> labels) const {
    return Index(m, Key(labels)) >= 0;
  }
  uint64_t Counter(size_t m, std::initializer_list<std::string_view> labels) const {
    return Word(m, labels, 0);
  }
  double Gauge(size_t m, std::initializer_list<std::string_view> labels) const {
    const int i = Require(m, Key(labels));
    return i < 0 ? -1 : families_[m].Gauge(i);
  }
  uint64_t Bucket(size_t m, std::initializer_list<std::string_view> labels, size_t b) const {
    return Word(m, labels, b);
  }
  uint64_t Count(size_t m, std::initializer_list<std::string_view> labels) const {
    const int i = Require(m, Key(labels));
    return i < 0 ? 0 : families_[m].HistogramCount(i);
  }
  double Sum(size_t m, std::initializer_list<std::string_view> labels) const {
    const int i = Require(m, Key(labels));
    return i < 0 ? -1 : families_[m].HistogramSum(i);
  }
  // The bucket index holding every observation so far, or -1 if spread out.
  int OnlyBucket(size_t m, std::initializer_list<std::string_view> labels) const {
    const int i = Require(m, Key(labels));
    if (i < 0) return -1;
    const FamilySnapshot& f = families_[m];
    int found = -1;
    for (size_t b = 0; b + 1 < f.width; ++b) {
      if (f.Word(i, b) == 0) continue;
      if (found >= 0) return -1;
      found = static_cast<int>(b);
    }
    return found;
  }
  const FamilySnapshot& family(size_t m) const { return families_[m]; }

 private:
  int Index(size_t m, const std::string& key) const {
    const FamilySnapshot& f = families_[m];
    for (size_t i = 0; i < f.size(); ++i) {
      if (f.keys[i] == key) return static_cast<int>(i);
    }
    return -1;
  }
  int Require(size_t m, const std::string& key) const {
    const int i = Index(m, key);
    EXPECT_GE(i, 0) << families_[m].def->name << " has no series for this key";
    return i;
  }
  uint64_t Word(size_t m, std::initializer_list<std::string_view> labels, size_t w) const {
    const int i = Require(m, Key(labels));
    return i < 0 ? 0 : families_[m].Word(i, w);
  }

  std::vector<FamilySnapshot> families_;
};

// Latency bucket indexes (le): 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, +Inf.
constexpr size_t kLatencyInf = 11;

TEST(NovaGiftMetrics, SnapshotHasEveryFamilyInTableOrder) {
  const NovaGiftMetrics metrics(1);
  const std::vector<FamilySnapshot> families = metrics.Snapshot();
  ASSERT_EQ(families.size(), size_t{kNovaGiftMetricCount});
  for (size_t m = 0; m < families.size(); ++m) {
    EXPECT_EQ(families[m].def->name, NovaGiftMetricDefs()[m].name);
  }
  EXPECT_EQ(families[kHttpRequestsTotal].def->name, "http_requests_total");
  EXPECT_EQ(families[kOutboxQueued].def->name, "outbox_queued_total");
  EXPECT_EQ(families[kParseErrorsTotal].def->name, "novapulse_parse_errors_total");
}

TEST(NovaGiftMetrics, CountsRequestsByMethodRouteAndStatus) {
  NovaGiftMetrics metrics(1);
  auto& w = metrics.writer(0);
  w.Record(Access("POST", "/api/gifts/:id/claim", 201, 12.5, kT0));
  w.Record(Access("POST", "/api/gifts/:id/claim", 201, 12.5, kT0));
  w.Record(Access("POST", "/api/gifts/:id/claim", 409, 3, kT0));
  w.Record(Access("GET", "/api/gifts/:id/claim", 200, 3, kT0));
  const View v(metrics);
  EXPECT_EQ(v.Counter(kHttpRequestsTotal, {"POST", "/api/gifts/:id/claim", "201"}), 2u);
  EXPECT_EQ(v.Counter(kHttpRequestsTotal, {"POST", "/api/gifts/:id/claim", "409"}), 1u);
  EXPECT_EQ(v.Counter(kHttpRequestsTotal, {"GET", "/api/gifts/:id/claim", "200"}), 1u);
  EXPECT_EQ(v.family(kHttpRequestsTotal).size(), 3u);
}

TEST(NovaGiftMetrics, RequestsOnDifferentShardsAddUpInOneSeries) {
  NovaGiftMetrics metrics(3);
  for (int s = 0; s < 3; ++s) {
    for (int i = 0; i <= s; ++i) metrics.writer(s).Record(Access("GET", "/r", 200, 1, kT0));
  }
  const View v(metrics);
  EXPECT_EQ(v.Counter(kHttpRequestsTotal, {"GET", "/r", "200"}), 6u);
  EXPECT_EQ(v.Count(kHttpRequestDuration, {"GET", "/r"}), 6u);
}

TEST(NovaGiftMetrics, ObservesDurationInSecondsWithLeBuckets) {
  NovaGiftMetrics metrics(1);
  auto& w = metrics.writer(0);
  w.Record(Access("GET", "/a", 200, 5, kT0));      // 0.005: le=0.005
  w.Record(Access("GET", "/b", 200, 12.5, kT0));   // 0.0125: le=0.025
  w.Record(Access("GET", "/c", 200, 100, kT0));    // 0.1: le=0.1
  w.Record(Access("GET", "/d", 200, 20000, kT0));  // 20 s: +Inf
  const View v(metrics);
  EXPECT_EQ(v.OnlyBucket(kHttpRequestDuration, {"GET", "/a"}), 0);
  EXPECT_EQ(v.OnlyBucket(kHttpRequestDuration, {"GET", "/b"}), 2);
  EXPECT_EQ(v.OnlyBucket(kHttpRequestDuration, {"GET", "/c"}), 4);
  EXPECT_EQ(v.OnlyBucket(kHttpRequestDuration, {"GET", "/d"}), int{kLatencyInf});
  EXPECT_DOUBLE_EQ(v.Sum(kHttpRequestDuration, {"GET", "/b"}), 0.0125);
  EXPECT_DOUBLE_EQ(v.Sum(kHttpRequestDuration, {"GET", "/d"}), 20.0);
}

TEST(NovaGiftMetrics, AbsurdDurationIsCountedWithACappedSum) {
  // 1e300 ms parses (it is a valid, non-negative number); converting it to
  // integer units must stay defined (UBSan checks this in CI).
  NovaGiftMetrics metrics(1);
  auto& w = metrics.writer(0);
  w.Record(Access("GET", "/huge", 200, 1e300, kT0));
  const View v(metrics);
  EXPECT_EQ(v.OnlyBucket(kHttpRequestDuration, {"GET", "/huge"}), int{kLatencyInf});
  EXPECT_DOUBLE_EQ(v.Sum(kHttpRequestDuration, {"GET", "/huge"}), ShardWriter::kMaxSumUnits * 1e-6);
}

TEST(NovaGiftMetrics, DurationHistogramIsPerMethodAndRouteNotStatus) {
  NovaGiftMetrics metrics(1);
  auto& w = metrics.writer(0);
  w.Record(Access("GET", "/a", 200, 10, kT0));
  w.Record(Access("GET", "/a", 500, 30, kT0));
  const View v(metrics);
  EXPECT_EQ(v.Count(kHttpRequestDuration, {"GET", "/a"}), 2u);
  EXPECT_DOUBLE_EQ(v.Sum(kHttpRequestDuration, {"GET", "/a"}), 0.04);
  EXPECT_EQ(v.family(kHttpRequestDuration).size(), 1u);
}

TEST(NovaGiftMetrics, CountsErrorsOnlyWhenAnErrorCodeIsPresent) {
  NovaGiftMetrics metrics(1);
  auto& w = metrics.writer(0);
  w.Record(Access("POST", "/api/gifts/:id/claim", 409, 3, kT0, "gift_already_claimed"));
  w.Record(Access("POST", "/api/gifts/:id/claim", 409, 3, kT0, "gift_already_claimed"));
  w.Record(Access("POST", "/api/gifts/:id/claim", 500, 3, kT0, "internal"));
  w.Record(Access("POST", "/api/gifts/:id/claim", 201, 3, kT0));
  const View v(metrics);
  EXPECT_EQ(v.Counter(kHttpErrorsTotal, {"/api/gifts/:id/claim", "gift_already_claimed"}), 2u);
  EXPECT_EQ(v.Counter(kHttpErrorsTotal, {"/api/gifts/:id/claim", "internal"}), 1u);
  EXPECT_EQ(v.family(kHttpErrorsTotal).size(), 2u);
}

double ActiveConnections(const NovaGiftMetrics& metrics) {
  const View v(metrics);
  const FamilySnapshot& f = v.family(kHttpActiveConnections);
  EXPECT_EQ(f.size(), 1u);
  return f.size() == 1 ? f.Gauge(0) : -1;
}

TEST(NovaGiftMetrics, ActiveConnectionsIsZeroBeforeAnyRequest) {
  const NovaGiftMetrics metrics(2);
  EXPECT_EQ(ActiveConnections(metrics), 0.0);
}

TEST(NovaGiftMetrics, ActiveConnectionsAveragesConcurrencyOverTheLastMinute) {
  NovaGiftMetrics metrics(1);
  // 60 back-to-back requests of 1 s, the last ending now: one request in
  // progress at every instant of the last minute.
  for (int i = 1; i <= 60; ++i) {
    metrics.writer(0).Record(Access("GET", "/r", 200, 1000, kT0 + i * kSecond));
  }
  EXPECT_NEAR(ActiveConnections(metrics), 1.0, 1e-9);
}

TEST(NovaGiftMetrics, ActiveConnectionsOfOneLongRequestCoveringTheMinuteIsOne) {
  NovaGiftMetrics metrics(1);
  metrics.writer(0).Record(Access("GET", "/long", 200, 300'000, kT0 + 300 * kSecond));
  EXPECT_NEAR(ActiveConnections(metrics), 1.0, 1e-9);
}

TEST(NovaGiftMetrics, ActiveConnectionsAddsRequestsFromAllShards) {
  NovaGiftMetrics metrics(2);
  // Two requests of 15 s inside the minute, on different shards, plus an
  // instantaneous request that sets "now" to kT0 + 60 s: 30 busy seconds out of 60.
  metrics.writer(0).Record(Access("GET", "/a", 200, 15'000, kT0 + 25 * kSecond));
  metrics.writer(1).Record(Access("GET", "/b", 200, 15'000, kT0 + 45 * kSecond));
  metrics.writer(1).Record(Access("GET", "/c", 200, 0, kT0 + 60 * kSecond));
  EXPECT_NEAR(ActiveConnections(metrics), 0.5, 1e-9);
}

TEST(NovaGiftMetrics, ActiveConnectionsForgetsRequestsOlderThanAMinute) {
  NovaGiftMetrics metrics(1);
  metrics.writer(0).Record(Access("GET", "/old", 200, 10'000, kT0 + 10 * kSecond));
  metrics.writer(0).Record(Access("GET", "/now", 200, 0, kT0 + 200 * kSecond));
  EXPECT_EQ(ActiveConnections(metrics), 0.0);
}

TEST(NovaGiftMetrics, ActiveConnectionsUsesEventTimeNotArrivalOrder) {
  NovaGiftMetrics metrics(1);
  // The newest request arrives first; the older one, still inside the minute, counts.
  metrics.writer(0).Record(Access("GET", "/a", 200, 0, kT0 + 60 * kSecond));
  metrics.writer(0).Record(Access("GET", "/b", 200, 30'000, kT0 + 40 * kSecond));
  EXPECT_NEAR(ActiveConnections(metrics), 0.5, 1e-9);
}

TEST(NovaGiftMetrics, QueuedThenInFlightMovesBetweenTheGauges) {
  NovaGiftMetrics metrics(1);
  auto& w = metrics.writer(0);
  w.Record(GiftCreated(OutboxStatus::kQueued, "link", "birthday", 10));
  w.Record(GiftCreated(OutboxStatus::kQueued, "link", "birthday", 10));
  {
    const View v(metrics);
    EXPECT_EQ(v.Gauge(kOutboxQueued, {"gift.created"}), 2.0);
    EXPECT_EQ(v.Gauge(kOutboxInFlight, {"gift.created"}), 0.0);
  }
  w.Record(Outbox(OutboxType::kGiftCreated, OutboxStatus::kInFlight));
  const View v(metrics);
  EXPECT_EQ(v.Gauge(kOutboxQueued, {"gift.created"}), 1.0);
  EXPECT_EQ(v.Gauge(kOutboxInFlight, {"gift.created"}), 1.0);
  EXPECT_EQ(v.Gauge(kOutboxQueued, {"gift.claimed"}), 0.0);
}

TEST(NovaGiftMetrics, ProcessedCountsAndObservesAttemptsAndProcessingTime) {
  NovaGiftMetrics metrics(1);
  auto& w = metrics.writer(0);
  w.Record(GiftCreated(OutboxStatus::kQueued, "link", "birthday", 10));
  w.Record(Outbox(OutboxType::kGiftCreated, OutboxStatus::kInFlight));
  w.Record(Outbox(OutboxType::kGiftCreated, OutboxStatus::kProcessed, 1, 35.2));
  const View v(metrics);
  EXPECT_EQ(v.Gauge(kOutboxQueued, {"gift.created"}), 0.0);
  EXPECT_EQ(v.Gauge(kOutboxInFlight, {"gift.created"}), 0.0);
  EXPECT_EQ(v.Counter(kOutboxProcessed, {"gift.created"}), 1u);
  EXPECT_EQ(v.OnlyBucket(kOutboxRetryCount, {"gift.created"}), 0);  // le=1
  EXPECT_DOUBLE_EQ(v.Sum(kOutboxRetryCount, {"gift.created"}), 1.0);
  EXPECT_EQ(v.OnlyBucket(kOutboxProcessingDuration, {"gift.created"}), 3);  // le=0.05
  EXPECT_DOUBLE_EQ(v.Sum(kOutboxProcessingDuration, {"gift.created"}), 0.0352);
}

TEST(NovaGiftMetrics, ProcessedWithoutProcessingTimeObservesNoDuration) {
  NovaGiftMetrics metrics(1);
  metrics.writer(0).Record(Outbox(OutboxType::kGiftClaimed, OutboxStatus::kProcessed));
  const View v(metrics);
  EXPECT_EQ(v.Count(kOutboxProcessingDuration, {"gift.claimed"}), 0u);
  EXPECT_EQ(v.Count(kOutboxRetryCount, {"gift.claimed"}), 1u);
}

TEST(NovaGiftMetrics, FailedReturnsToWaitingAndCountsTheRetry) {
  NovaGiftMetrics metrics(1);
  auto& w = metrics.writer(0);
  w.Record(GiftCreated(OutboxStatus::kQueued, "link", "birthday", 10));
  w.Record(Outbox(OutboxType::kGiftCreated, OutboxStatus::kInFlight));
  w.Record(Outbox(OutboxType::kGiftCreated, OutboxStatus::kFailed, 1, 1200, "timeout"));
  {
    const View v(metrics);
    EXPECT_EQ(v.Gauge(kOutboxQueued, {"gift.created"}), 1.0);  // waiting for its retry
    EXPECT_EQ(v.Gauge(kOutboxInFlight, {"gift.created"}), 0.0);
    EXPECT_EQ(v.Counter(kOutboxFailed, {"gift.created"}), 1u);
    EXPECT_EQ(v.Counter(kOutboxErrors, {"gift.created", "timeout"}), 1u);
    EXPECT_EQ(v.OnlyBucket(kOutboxProcessingDuration, {"gift.created"}), 8);  // le=2.5
    EXPECT_EQ(v.Counter(kOutboxProcessed, {"gift.created"}), 0u);
    EXPECT_EQ(v.Count(kOutboxRetryCount, {"gift.created"}), 0u);
  }
  w.Record(Outbox(OutboxType::kGiftCreated, OutboxStatus::kInFlight, 2));
  {
    const View v(metrics);
    EXPECT_EQ(v.Gauge(kOutboxQueued, {"gift.created"}), 0.0);
    EXPECT_EQ(v.Gauge(kOutboxInFlight, {"gift.created"}), 1.0);
  }
  w.Record(Outbox(OutboxType::kGiftCreated, OutboxStatus::kProcessed, 2, 20));
  const View v(metrics);
  EXPECT_EQ(v.Gauge(kOutboxQueued, {"gift.created"}), 0.0);
  EXPECT_EQ(v.Gauge(kOutboxInFlight, {"gift.created"}), 0.0);
  EXPECT_EQ(v.Counter(kOutboxProcessed, {"gift.created"}), 1u);
  EXPECT_EQ(v.Counter(kOutboxFailed, {"gift.created"}), 1u);
  EXPECT_EQ(v.OnlyBucket(kOutboxRetryCount, {"gift.created"}), 1);  // le=2
  EXPECT_EQ(v.Count(kOutboxProcessingDuration, {"gift.created"}), 2u);
}

TEST(NovaGiftMetrics, FailedWithoutAnErrorCountsUnderUnknown) {
  NovaGiftMetrics metrics(1);
  metrics.writer(0).Record(Outbox(OutboxType::kWalletTransaction, OutboxStatus::kFailed));
  const View v(metrics);
  EXPECT_EQ(v.Counter(kOutboxErrors, {"wallet.transaction", "unknown"}), 1u);
}

TEST(NovaGiftMetrics, DeadLeavesTheWaitingGaugeAndObservesAttempts) {
  NovaGiftMetrics metrics(1);
  auto& w = metrics.writer(0);
  w.Record(Outbox(OutboxType::kGiftExpired, OutboxStatus::kQueued));
  for (int attempt = 1; attempt <= 5; ++attempt) {
    w.Record(Outbox(OutboxType::kGiftExpired, OutboxStatus::kInFlight, attempt));
    w.Record(Outbox(OutboxType::kGiftExpired, OutboxStatus::kFailed, attempt, 10, "timeout"));
  }
  w.Record(Outbox(OutboxType::kGiftExpired, OutboxStatus::kDead, 5));
  const View v(metrics);
  EXPECT_EQ(v.Gauge(kOutboxQueued, {"gift.expired"}), 0.0);
  EXPECT_EQ(v.Gauge(kOutboxInFlight, {"gift.expired"}), 0.0);
  EXPECT_EQ(v.Counter(kOutboxDead, {"gift.expired"}), 1u);
  EXPECT_EQ(v.Counter(kOutboxFailed, {"gift.expired"}), 5u);
  EXPECT_EQ(v.Counter(kOutboxErrors, {"gift.expired", "timeout"}), 5u);
  EXPECT_EQ(v.Counter(kOutboxProcessed, {"gift.expired"}), 0u);
  EXPECT_EQ(v.OnlyBucket(kOutboxRetryCount, {"gift.expired"}), 4);  // le=5
}

TEST(NovaGiftMetrics, ExitSeenBeforeEntryNeverShowsNegative) {
  NovaGiftMetrics metrics(2);
  // The in_flight step lands on shard 1 before shard 0 sees the queued step.
  metrics.writer(1).Record(Outbox(OutboxType::kGiftClaimed, OutboxStatus::kInFlight));
  {
    const View v(metrics);
    EXPECT_EQ(v.Gauge(kOutboxQueued, {"gift.claimed"}), 0.0);
    EXPECT_EQ(v.Gauge(kOutboxInFlight, {"gift.claimed"}), 1.0);
  }
  OutboxEvent queued = Outbox(OutboxType::kGiftClaimed, OutboxStatus::kQueued);
  queued.mode = "link";
  queued.theme = "t";
  queued.has_created_at = true;
  queued.created_at_us = kT0 - 10 * kSecond;
  metrics.writer(0).Record(queued);
  const View v(metrics);
  EXPECT_EQ(v.Gauge(kOutboxQueued, {"gift.claimed"}), 0.0);
  EXPECT_EQ(v.Gauge(kOutboxInFlight, {"gift.claimed"}), 1.0);
}

TEST(NovaGiftMetrics, GiftCreatedIsCountedOnlyOnQueued) {
  NovaGiftMetrics metrics(1);
  auto& w = metrics.writer(0);
  for (OutboxStatus status : {OutboxStatus::kQueued, OutboxStatus::kInFlight, OutboxStatus::kFailed,
                              OutboxStatus::kInFlight, OutboxStatus::kProcessed}) {
    w.Record(GiftCreated(status, "link", "birthday", 25.5));
  }
  w.Record(GiftCreated(OutboxStatus::kQueued, "email", "birthday", 400));
  const View v(metrics);
  EXPECT_EQ(v.Counter(kGiftsCreated, {"link", "birthday"}), 1u);
  EXPECT_EQ(v.Counter(kGiftsCreated, {"email", "birthday"}), 1u);
  EXPECT_EQ(v.family(kGiftsCreated).size(), 2u);
  // USD buckets: 1, 5, 10, 25, 50, 100, 250, 500, 1000, +Inf.
  EXPECT_EQ(v.OnlyBucket(kGiftValue, {"link"}), 4);   // 25.5: le=50
  EXPECT_EQ(v.OnlyBucket(kGiftValue, {"email"}), 7);  // 400: le=500
  EXPECT_DOUBLE_EQ(v.Sum(kGiftValue, {"link"}), 25.5);
}

TEST(NovaGiftMetrics, GiftValueOnABucketBoundLandsInThatBucket) {
  NovaGiftMetrics metrics(1);
  metrics.writer(0).Record(GiftCreated(OutboxStatus::kQueued, "link", "t", 25));
  metrics.writer(0).Record(GiftCreated(OutboxStatus::kQueued, "link", "t", 5000));
  const View v(metrics);
  EXPECT_EQ(v.Bucket(kGiftValue, {"link"}, 3), 1u);  // le=25
  EXPECT_EQ(v.Bucket(kGiftValue, {"link"}, 9), 1u);  // +Inf
}

OutboxEvent GiftClaimed(std::string_view mode, int64_t created_at_us, int64_t ts_us) {
  OutboxEvent e = Outbox(OutboxType::kGiftClaimed, OutboxStatus::kQueued);
  e.mode = mode;
  e.theme = "birthday";
  e.value_usd = 10;
  e.has_created_at = true;
  e.created_at_us = created_at_us;
  e.ts_us = ts_us;
  return e;
}

TEST(NovaGiftMetrics, GiftClaimedCountsAndObservesTimeSinceCreation) {
  NovaGiftMetrics metrics(1);
  metrics.writer(0).Record(GiftClaimed("link", kT0, kT0 + 3600 * kSecond));
  metrics.writer(0).Record(GiftClaimed("link", kT0, kT0 + 90 * kSecond));
  OutboxEvent processed = GiftClaimed("link", kT0, kT0 + 7 * 86400 * kSecond);
  processed.status = OutboxStatus::kProcessed;
  metrics.writer(0).Record(processed);  // not a business fact
  const View v(metrics);
  EXPECT_EQ(v.Counter(kGiftsClaimed, {"link", "birthday"}), 2u);
  // Claim buckets: 60, 300, 900, 1800, 3600, ...
  EXPECT_EQ(v.Bucket(kGiftClaimDuration, {"link"}, 4), 1u);  // 3600: le=3600
  EXPECT_EQ(v.Bucket(kGiftClaimDuration, {"link"}, 1), 1u);  // 90: le=300
  EXPECT_EQ(v.Count(kGiftClaimDuration, {"link"}), 2u);
  EXPECT_DOUBLE_EQ(v.Sum(kGiftClaimDuration, {"link"}), 3690.0);
  EXPECT_EQ(v.family(kGiftValue).size(), 0u);  // a claim is not a new gift's value
}

TEST(NovaGiftMetrics, ClaimStampedBeforeItsCreationCountsAsInstant) {
  NovaGiftMetrics metrics(1);
  metrics.writer(0).Record(GiftClaimed("email", kT0 + 5 * kSecond, kT0));
  const View v(metrics);
  EXPECT_EQ(v.OnlyBucket(kGiftClaimDuration, {"email"}), 0);
  EXPECT_DOUBLE_EQ(v.Sum(kGiftClaimDuration, {"email"}), 0.0);
}

TEST(NovaGiftMetrics, GiftExpiredIsCountedOnlyOnQueued) {
  NovaGiftMetrics metrics(1);
  OutboxEvent e = Outbox(OutboxType::kGiftExpired, OutboxStatus::kQueued);
  e.mode = "email";
  e.theme = "thanks";
  metrics.writer(0).Record(e);
  e.status = OutboxStatus::kInFlight;
  metrics.writer(0).Record(e);
  e.status = OutboxStatus::kProcessed;
  metrics.writer(0).Record(e);
  const View v(metrics);
  EXPECT_EQ(v.Counter(kGiftsExpired, {"email", "thanks"}), 1u);
}

TEST(NovaGiftMetrics, WalletTransactionsAreCountedByKindAndStatusOnQueued) {
  NovaGiftMetrics metrics(1);
  auto wallet = [](OutboxStatus status, std::string_view kind, std::string_view tx_status,
                   double usd = 10) {
    OutboxEvent e = Outbox(OutboxType::kWalletTransaction, status);
    e.wallet_kind = kind;
    e.wallet_status = tx_status;
    e.amount_usd = usd;
    return e;
  };
  auto& w = metrics.writer(0);
  w.Record(wallet(OutboxStatus::kQueued, "top_up", "ok", 12.5));
  w.Record(wallet(OutboxStatus::kQueued, "top_up", "ok", 30));
  w.Record(wallet(OutboxStatus::kQueued, "top_up", "declined"));
  w.Record(wallet(OutboxStatus::kQueued, "refund", "ok"));
  w.Record(wallet(OutboxStatus::kProcessed, "refund", "ok"));
  const View v(metrics);
  EXPECT_EQ(v.Counter(kWalletTransactions, {"top_up", "ok"}), 2u);
  EXPECT_EQ(v.Counter(kWalletTransactions, {"top_up", "declined"}), 1u);
  EXPECT_EQ(v.Counter(kWalletTransactions, {"refund", "ok"}), 1u);
  // The USD volume: amounts observed once per transaction, on queued.
  EXPECT_EQ(v.Count(kWalletAmount, {"top_up", "ok"}), 2u);
  EXPECT_DOUBLE_EQ(v.Sum(kWalletAmount, {"top_up", "ok"}), 42.5);
  EXPECT_DOUBLE_EQ(v.Sum(kWalletAmount, {"refund", "ok"}), 10);
}

TEST(NovaGiftMetrics, RejectCountsParseErrorsByTopicAndReason) {
  NovaGiftMetrics metrics(2);
  metrics.writer(0).Reject(Topic::kAccessLog, RejectReason::kMalformedJson);
  metrics.writer(1).Reject(Topic::kAccessLog, RejectReason::kMalformedJson);
  metrics.writer(1).Reject(Topic::kOutbox, RejectReason::kUnknownType);
  metrics.writer(0).Reject(Topic::kAuto, RejectReason::kUnknownTopic);
  const View v(metrics);
  EXPECT_EQ(v.Counter(kParseErrorsTotal, {"novagift.access-log", "malformed_json"}), 2u);
  EXPECT_EQ(v.Counter(kParseErrorsTotal, {"novagift.outbox", "unknown_type"}), 1u);
  EXPECT_EQ(v.Counter(kParseErrorsTotal, {"unknown", "unknown_topic"}), 1u);
  EXPECT_EQ(v.Counter(kParseErrorsTotal, {"novagift.outbox", "malformed_json"}), 0u);
  EXPECT_EQ(v.Counter(kEventsTotal, {"novagift.access-log", "rejected"}), 2u);
  EXPECT_EQ(v.Counter(kEventsTotal, {"novagift.outbox", "rejected"}), 1u);
  EXPECT_EQ(v.Counter(kEventsTotal, {"unknown", "rejected"}), 1u);
  EXPECT_EQ(v.Counter(kEventsTotal, {"novagift.access-log", "accepted"}), 0u);
}

TEST(NovaGiftMetrics, RecordCountsAcceptedEventsByTopic) {
  NovaGiftMetrics metrics(1);
  metrics.writer(0).Record(Access("GET", "/r", 200, 1, kT0));
  metrics.writer(0).Record(Access("GET", "/r", 200, 1, kT0));
  metrics.writer(0).Record(Outbox(OutboxType::kGiftCreated, OutboxStatus::kInFlight));
  const View v(metrics);
  EXPECT_EQ(v.Counter(kEventsTotal, {"novagift.access-log", "accepted"}), 2u);
  EXPECT_EQ(v.Counter(kEventsTotal, {"novagift.outbox", "accepted"}), 1u);
  EXPECT_EQ(v.Counter(kEventsTotal, {"novagift.outbox", "rejected"}), 0u);
}

TEST(NovaGiftMetrics, KnownLabelSetsAreExportedAsZeroBeforeAnyEvent) {
  const NovaGiftMetrics metrics(2);
  const View v(metrics);
  for (std::string_view topic : {"novagift.access-log", "novagift.outbox", "unknown"}) {
    for (int r = 0; r < kRejectReasonCount; ++r) {
      EXPECT_EQ(
          v.Counter(kParseErrorsTotal, {topic, RejectReasonName(static_cast<RejectReason>(r))}),
          0u);
    }
    EXPECT_EQ(v.Counter(kEventsTotal, {topic, "rejected"}), 0u);
  }
  EXPECT_EQ(v.family(kParseErrorsTotal).size(), size_t{3 * kRejectReasonCount});
  EXPECT_EQ(v.family(kEventsTotal).size(), 5u);
  for (int t = 0; t < kOutboxTypeCount; ++t) {
    const std::string_view type = OutboxTypeName(static_cast<OutboxType>(t));
    EXPECT_EQ(v.Gauge(kOutboxQueued, {type}), 0.0);
    EXPECT_EQ(v.Counter(kOutboxProcessed, {type}), 0u);
    EXPECT_EQ(v.Count(kOutboxRetryCount, {type}), 0u);
  }
}

TEST(NovaGiftMetrics, NewestEventTimeIsTheMaximumOverShards) {
  NovaGiftMetrics metrics(2);
  EXPECT_EQ(metrics.NewestEventTime(), 0);
  metrics.writer(0).Record(Access("GET", "/r", 200, 1, kT0 + 5 * kSecond));
  metrics.writer(1).Record(Access("GET", "/r", 200, 1, kT0 + 2 * kSecond));
  metrics.writer(1).Record(Outbox(OutboxType::kGiftCreated, OutboxStatus::kInFlight));  // kT0
  EXPECT_EQ(metrics.NewestEventTime(), kT0 + 5 * kSecond);
  const View v(metrics);
  ASSERT_EQ(v.family(kNewestEventTime).size(), 1u);
  EXPECT_DOUBLE_EQ(v.family(kNewestEventTime).Gauge(0),
                   static_cast<double>(kT0 + 5 * kSecond) / kSecond);
}

TEST(NovaGiftMetrics, SeriesGaugeReportsSeriesHeldPerMetric) {
  NovaGiftMetrics metrics(1);
  metrics.writer(0).Record(Access("GET", "/a", 200, 1, kT0));
  metrics.writer(0).Record(Access("GET", "/b", 200, 1, kT0));
  metrics.writer(0).Record(Access("GET", "/b", 500, 1, kT0));
  const View v(metrics);
  const FamilySnapshot& f = v.family(kSeries);
  bool found_requests = false, found_duration = false;
  for (size_t i = 0; i < f.size(); ++i) {
    if (f.keys[i] == "http_requests_total") {
      found_requests = true;
      EXPECT_EQ(f.Gauge(i), 3.0);
    }
    if (f.keys[i] == "http_request_duration_seconds") {
      found_duration = true;
      EXPECT_EQ(f.Gauge(i), 2.0);
    }
  }
  EXPECT_TRUE(found_requests);
  EXPECT_TRUE(found_duration);
}

TEST(NovaGiftMetrics, SelfMetricsKeepTheirOwnSeriesLimit) {
  // The configured limit is for label values from the input; the 36
  // parse-error series are a fixed set and must all exist even below it.
  NovaGiftMetrics metrics(1, /*series_limit=*/2);
  metrics.writer(0).Reject(Topic::kOutbox, RejectReason::kDuplicateField);
  const View v(metrics);
  EXPECT_EQ(v.family(kParseErrorsTotal).size(), size_t{3 * kRejectReasonCount});
  EXPECT_EQ(v.Counter(kParseErrorsTotal, {"novagift.outbox", "duplicate_field"}), 1u);
  EXPECT_FALSE(v.Has(kSeriesOverflowTotal, {"novapulse_parse_errors_total"}));
  EXPECT_FALSE(v.Has(kSeriesOverflowTotal, {"novapulse_events_total"}));
}

TEST(NovaGiftMetrics, RoutesPastTheSeriesLimitFoldIntoOverflowAndAreCounted) {
  constexpr size_t kLimit = 4;
  NovaGiftMetrics metrics(2, kLimit);
  for (size_t i = 0; i < kLimit + 5; ++i) {
    metrics.writer(i % 2).Record(Access("GET", "/r" + std::to_string(i), 200, 1, kT0));
  }
  // An overflowed route seen again is folded (and counted) again.
  metrics.writer(0).Record(Access("GET", "/r" + std::to_string(kLimit + 1), 200, 1, kT0));
  const View v(metrics);
  EXPECT_EQ(v.family(kHttpRequestsTotal).size(), kLimit + 1);
  EXPECT_EQ(v.Counter(kHttpRequestsTotal, {"__overflow__", "__overflow__", "__overflow__"}), 6u);
  EXPECT_EQ(v.Count(kHttpRequestDuration, {"__overflow__", "__overflow__"}), 6u);
  EXPECT_EQ(v.Counter(kHttpRequestsTotal, {"GET", "/r0", "200"}), 1u);
  EXPECT_EQ(v.Counter(kSeriesOverflowTotal, {"http_requests_total"}), 6u);
  EXPECT_EQ(v.Counter(kSeriesOverflowTotal, {"http_request_duration_seconds"}), 6u);
}

// One writer thread per shard, a reader taking snapshots all the while.
TEST(NovaGiftMetrics, ConcurrentSnapshotsAreMonotonicAndFinalTotalsAreExact) {
  constexpr int kShards = 4;
  constexpr int kRequests = 20000;  // per shard
  constexpr int kRoutes = 8;
  constexpr int kMessages = 2000;  // per shard, each queued -> in_flight -> processed
  NovaGiftMetrics metrics(kShards);
  std::vector<std::string> routes;
  for (int r = 0; r < kRoutes; ++r) routes.push_back("/api/r" + std::to_string(r));

  std::atomic<int> running{kShards};
  std::vector<std::thread> writers;
  for (int s = 0; s < kShards; ++s) {
    writers.emplace_back([&, s] {
      NovaGiftMetrics::Writer& w = metrics.writer(s);
      for (int i = 0; i < kRequests; ++i) {
        w.Record(Access("GET", routes[i % kRoutes], 200, 20, kT0 + i * 1000));
        if (i < kMessages) {
          w.Record(GiftCreated(OutboxStatus::kQueued, "link", "t", 10));
          w.Record(Outbox(OutboxType::kGiftCreated, OutboxStatus::kInFlight));
          w.Record(Outbox(OutboxType::kGiftCreated, OutboxStatus::kProcessed, 1, 5));
        }
        if (i % 100 == 0) w.Reject(Topic::kAccessLog, RejectReason::kMissingField);
      }
      running.fetch_sub(1, std::memory_order_release);
    });
  }

  std::vector<uint64_t> last_requests(kRoutes, 0);
  uint64_t last_processed = 0, last_errors = 0, last_observations = 0;
  bool monotonic = true;
  while (running.load(std::memory_order_acquire) > 0) {
    const std::vector<FamilySnapshot> snap = metrics.Snapshot();
    const FamilySnapshot& requests = snap[kHttpRequestsTotal];
    for (size_t i = 0; i < requests.size(); ++i) {
      const size_t r = std::stoul(std::string(SplitKey(requests.keys[i])[1]).substr(6));
      if (requests.Word(i, 0) < last_requests[r]) monotonic = false;
      last_requests[r] = requests.Word(i, 0);
    }
    uint64_t processed = 0, errors = 0, observations = 0;
    for (size_t i = 0; i < snap[kOutboxProcessed].size(); ++i) {
      processed += snap[kOutboxProcessed].Word(i, 0);
    }
    for (size_t i = 0; i < snap[kParseErrorsTotal].size(); ++i) {
      errors += snap[kParseErrorsTotal].Word(i, 0);
    }
    for (size_t i = 0; i < snap[kHttpRequestDuration].size(); ++i) {
      observations += snap[kHttpRequestDuration].HistogramCount(i);
    }
    if (processed < last_processed || errors < last_errors || observations < last_observations) {
      monotonic = false;
    }
    last_processed = processed;
    last_errors = errors;
    last_observations = observations;
  }
  for (auto& t : writers) t.join();
  EXPECT_TRUE(monotonic);

  const View v(metrics);
  for (const std::string& route : routes) {
    EXPECT_EQ(v.Counter(kHttpRequestsTotal, {"GET", route, "200"}),
              uint64_t{kShards} * kRequests / kRoutes);
    EXPECT_EQ(v.Bucket(kHttpRequestDuration, {"GET", route}, 2),  // 0.02: le=0.025
              uint64_t{kShards} * kRequests / kRoutes);
  }
  EXPECT_EQ(v.Counter(kOutboxProcessed, {"gift.created"}), uint64_t{kShards} * kMessages);
  EXPECT_EQ(v.Counter(kGiftsCreated, {"link", "t"}), uint64_t{kShards} * kMessages);
  EXPECT_EQ(v.Gauge(kOutboxQueued, {"gift.created"}), 0.0);
  EXPECT_EQ(v.Gauge(kOutboxInFlight, {"gift.created"}), 0.0);
  EXPECT_EQ(v.Count(kOutboxRetryCount, {"gift.created"}), uint64_t{kShards} * kMessages);
  EXPECT_EQ(v.Counter(kParseErrorsTotal, {"novagift.access-log", "missing_field"}),
            uint64_t{kShards} * kRequests / 100);
  EXPECT_EQ(v.Counter(kEventsTotal, {"novagift.access-log", "accepted"}),
            uint64_t{kShards} * kRequests);
  EXPECT_EQ(v.Counter(kEventsTotal, {"novagift.outbox", "accepted"}),
            uint64_t{kShards} * kMessages * 3);
  EXPECT_EQ(metrics.NewestEventTime(), kT0 + (kRequests - 1) * 1000);
}

MetricExpiry ExpireAfter(int64_t ms, std::vector<std::pair<std::string, int64_t>> by_family = {}) {
  return MetricExpiry{.default_ms = ms, .by_family = std::move(by_family)};
}

constexpr int64_t kMinuteUs = 60 * kSecond;

TEST(NovaGiftMetrics, IdleSeriesExpireAndComeBackFromZero) {
  NovaGiftMetrics metrics(2, kDefaultSeriesLimit, nullptr, ExpireAfter(5 * 60'000));
  metrics.writer(0).Record(Access("GET", "/old", 200, 10, kT0, "E1"));
  metrics.writer(1).Record(Access("GET", "/old", 200, 10, kT0));
  metrics.writer(0).Record(Access("GET", "/kept", 200, 10, kT0 + 4 * kMinuteUs));
  metrics.writer(1).Record(Outbox(OutboxType::kWalletTransaction, OutboxStatus::kQueued));
  EXPECT_EQ(metrics.ExpireIdle(kT0 / 1000 + 5 * 60'000 - 1), 0u);
  // /old: its request, duration and error series; the wallet transaction's
  // counter and amount histogram, stamped kT0 too.
  EXPECT_EQ(metrics.ExpireIdle(kT0 / 1000 + 5 * 60'000), 5u);
  {
    const View v(metrics);
    EXPECT_EQ(v.family(kWalletTransactions).size(), 0u);
    EXPECT_EQ(v.family(kWalletAmount).size(), 0u);
    EXPECT_FALSE(v.Has(kHttpRequestsTotal, {"GET", "/old", "200"}));
    EXPECT_FALSE(v.Has(kHttpRequestDuration, {"GET", "/old"}));
    EXPECT_FALSE(v.Has(kHttpErrorsTotal, {"/old", "E1"}));
    EXPECT_EQ(v.Counter(kHttpRequestsTotal, {"GET", "/kept", "200"}), 1u);
    // The outbox gauges by type never expire.
    EXPECT_EQ(v.Gauge(kOutboxQueued, {"wallet.transaction"}), 1.0);
  }
  // Both writers had /old memoised; a new route takes the freed ids, and
  // /old comes back as a new series.
  metrics.writer(0).Record(Access("POST", "/new", 201, 30, kT0 + 6 * kMinuteUs));
  metrics.writer(1).Record(Access("GET", "/old", 200, 2000, kT0 + 6 * kMinuteUs));
  metrics.writer(0).Record(Access("GET", "/old", 200, 2000, kT0 + 6 * kMinuteUs));
  const View v(metrics);
  EXPECT_EQ(v.Counter(kHttpRequestsTotal, {"POST", "/new", "201"}), 1u);
  EXPECT_EQ(v.Count(kHttpRequestDuration, {"POST", "/new"}), 1u);
  EXPECT_DOUBLE_EQ(v.Sum(kHttpRequestDuration, {"POST", "/new"}), 0.03);
  EXPECT_EQ(v.Counter(kHttpRequestsTotal, {"GET", "/old", "200"}), 2u);
  EXPECT_EQ(v.Count(kHttpRequestDuration, {"GET", "/old"}), 2u);
  EXPECT_DOUBLE_EQ(v.Sum(kHttpRequestDuration, {"GET", "/old"}), 4.0);
  EXPECT_FALSE(v.Has(kHttpErrorsTotal, {"/old", "E1"}));
}

TEST(NovaGiftMetrics, ExpiryPerFamilyOverridesTheDefault) {
  NovaGiftMetrics metrics(1, kDefaultSeriesLimit, nullptr,
                          ExpireAfter(0, {{"http_request_duration_seconds", 60'000}}));
  metrics.writer(0).Record(Access("GET", "/a", 200, 10, kT0));
  EXPECT_EQ(metrics.ExpireIdle(kT0 / 1000 + 3'600'000), 1u);
  metrics.writer(0).Record(Access("GET", "/a", 200, 10, kT0 + kMinuteUs));
  // The request series kept its count; the duration series starts again,
  // and the request series' cached duration id was forgotten.
  const View v(metrics);
  EXPECT_EQ(v.Counter(kHttpRequestsTotal, {"GET", "/a", "200"}), 2u);
  EXPECT_EQ(v.Count(kHttpRequestDuration, {"GET", "/a"}), 1u);
}

TEST(NovaGiftMetrics, OnlyFamiliesOfOpenLabelSetsCanExpire) {
  EXPECT_TRUE(NovaGiftMetrics::CanExpire("http_requests_total"));
  EXPECT_TRUE(NovaGiftMetrics::CanExpire("gifts_created_total"));
  EXPECT_TRUE(NovaGiftMetrics::CanExpire("outbox_errors_total"));
  EXPECT_FALSE(NovaGiftMetrics::CanExpire("outbox_queued_total"));
  EXPECT_FALSE(NovaGiftMetrics::CanExpire("http_active_connections"));
  EXPECT_FALSE(NovaGiftMetrics::CanExpire("novapulse_events_total"));
  EXPECT_FALSE(NovaGiftMetrics::CanExpire("no_such_metric"));
  const std::vector<std::string> names = NovaGiftMetrics::ExpiringFamilies();
  EXPECT_NE(std::find(names.begin(), names.end(), "http_request_duration_seconds"), names.end());
  EXPECT_EQ(std::find(names.begin(), names.end(), "outbox_retry_count"), names.end());
}

// Requests to /early at kT0 and to /late 10 minutes later, saved from
// `saved` (whose expiry may differ) and loaded into `restored`.
void RestoreEarlyAndLate(NovaGiftMetrics& saved, NovaGiftMetrics* restored) {
  saved.writer(0).Record(Access("GET", "/early", 200, 10, kT0));
  saved.writer(0).Record(Access("GET", "/late", 200, 10, kT0 + 10 * kMinuteUs));
  StateWriter w;
  saved.SaveState(&w);
  StateReader r(w.bytes());
  StateLoad load{.wall_ms = 0, .series_ids_moved = false, .sectioned = true};
  const absl::Status loaded = restored->LoadState(&r, &load);
  EXPECT_TRUE(loaded.ok()) << loaded;
}

TEST(NovaGiftMetrics, CheckpointKeepsEachSeriesEventTime) {
  NovaGiftMetrics metrics(1, kDefaultSeriesLimit, nullptr, ExpireAfter(60'000));
  NovaGiftMetrics restored(1, kDefaultSeriesLimit, nullptr, ExpireAfter(60'000));
  RestoreEarlyAndLate(metrics, &restored);
  // /early is 10 minutes idle at the newest event: it goes, /late stays.
  EXPECT_EQ(restored.ExpireIdle(kT0 / 1000 + 10 * 60'000), 2u);
  const View v(restored);
  EXPECT_FALSE(v.Has(kHttpRequestsTotal, {"GET", "/early", "200"}));
  EXPECT_EQ(v.Counter(kHttpRequestsTotal, {"GET", "/late", "200"}), 1u);
}

TEST(NovaGiftMetrics, CheckpointWithoutEventTimesStampsTheNewestEventTime) {
  NovaGiftMetrics metrics(1);  // saved without expiry: no times
  NovaGiftMetrics restored(1, kDefaultSeriesLimit, nullptr, ExpireAfter(60'000));
  RestoreEarlyAndLate(metrics, &restored);
  EXPECT_EQ(restored.ExpireIdle(kT0 / 1000 + 11 * 60'000 - 1), 0u);
  EXPECT_EQ(restored.ExpireIdle(kT0 / 1000 + 11 * 60'000), 4u);
}

TEST(NovaGiftMetrics, ARequestSeriesFindsItsDurationSeriesOnceExpiryMakesRoom) {
  // Requests expire after 3 minutes, durations after 5: for a while the
  // duration family is full while the request family has room.
  NovaGiftMetrics metrics(1, /*series_limit=*/2, nullptr,
                          ExpireAfter(0, {{"http_requests_total", 3 * 60'000},
                                          {"http_request_duration_seconds", 5 * 60'000}}));
  auto& w = metrics.writer(0);
  w.Record(Access("GET", "/a", 200, 10, kT0));
  w.Record(Access("GET", "/b", 200, 10, kT0));
  EXPECT_EQ(metrics.ExpireIdle(kT0 / 1000 + 3 * 60'000), 2u);   // the requests
  w.Record(Access("GET", "/c", 200, 10, kT0 + 3 * kMinuteUs));  // duration folds
  EXPECT_EQ(metrics.ExpireIdle(kT0 / 1000 + 5 * 60'000), 2u);   // the durations
  w.Record(Access("GET", "/c", 200, 10, kT0 + 5 * kMinuteUs));
  const View v(metrics);
  EXPECT_EQ(v.Counter(kHttpRequestsTotal, {"GET", "/c", "200"}), 2u);
  EXPECT_EQ(v.Count(kHttpRequestDuration, {"GET", "/c"}), 1u);
  EXPECT_EQ(v.Counter(kSeriesOverflowTotal, {"http_request_duration_seconds"}), 1u);
}

}  // namespace
}  // namespace novapulse
