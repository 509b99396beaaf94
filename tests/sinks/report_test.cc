#include "sinks/report.h"

#include <string>

#include "aggregators/novagift_metrics.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace novapulse {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr int64_t kT0 = 1795651200LL * 1'000'000;  // 2026-11-26T00:00:00Z
constexpr int64_t kSecond = 1'000'000;

AccessLogEvent Access(std::string_view route, uint16_t status, double duration_ms) {
  AccessLogEvent e;
  e.ts_us = kT0;
  e.method = "GET";
  e.route = route;
  e.status = status;
  e.duration_ms = duration_ms;
  return e;
}

OutboxEvent Outbox(OutboxType type, OutboxStatus status) {
  OutboxEvent e;
  e.ts_us = kT0;
  e.id = "evt";
  e.type = type;
  e.status = status;
  return e;
}

OutboxEvent Gift(OutboxType type, double value, int64_t age_seconds = 0) {
  OutboxEvent e = Outbox(type, OutboxStatus::kQueued);
  e.mode = "instant";
  e.theme = "birthday";
  e.value_usd = value;
  e.created_at_us = kT0 - age_seconds * kSecond;
  e.has_created_at = true;
  return e;
}

TEST(FormatKeyMetrics, SummarisesRequestsOutboxGiftsAndWallet) {
  NovaGiftMetrics metrics(2);
  NovaGiftMetrics::Writer& a = metrics.writer(0);
  NovaGiftMetrics::Writer& b = metrics.writer(1);
  // 10 requests of 12.5 ms: one 500, two 404.
  for (int i = 0; i < 7; ++i) (i % 2 ? a : b).Record(Access("/r", 200, 12.5));
  a.Record(Access("/r", 500, 12.5));
  b.Record(Access("/r", 404, 12.5));
  a.Record(Access("/s", 404, 12.5));
  for (int i = 0; i < 3; ++i) a.Record(Outbox(OutboxType::kGiftCreated, OutboxStatus::kProcessed));
  for (int i = 0; i < 2; ++i) b.Record(Outbox(OutboxType::kGiftClaimed, OutboxStatus::kFailed));
  b.Record(Outbox(OutboxType::kGiftClaimed, OutboxStatus::kDead));
  for (double value : {10, 20, 30, 40}) a.Record(Gift(OutboxType::kGiftCreated, value));
  // Claims after 100 s, 200 s and 400 s.
  for (int64_t age : {100, 200, 400}) b.Record(Gift(OutboxType::kGiftClaimed, 0, age));
  a.Record(Gift(OutboxType::kGiftExpired, 0));
  OutboxEvent wallet = Outbox(OutboxType::kWalletTransaction, OutboxStatus::kQueued);
  wallet.wallet_kind = "topup";
  wallet.wallet_status = "completed";
  wallet.amount_usd = 5;
  a.Record(wallet);
  b.Record(wallet);
  wallet.wallet_status = "failed";
  wallet.amount_usd = 70;
  a.Record(wallet);

  const std::string report = FormatKeyMetrics(metrics.Snapshot());
  EXPECT_THAT(report, HasSubstr("requests            10\n"));
  EXPECT_THAT(report, HasSubstr("5xx / 4xx           10.00% / 20.00%\n"));
  // All in (10 ms, 25 ms]: interpolated like histogram_quantile.
  EXPECT_THAT(report, HasSubstr("latency p50/p95/p99 18 ms / 24 ms / 25 ms\n"));
  EXPECT_THAT(report, HasSubstr("processed 3  failed attempts 2  dead 1\n"));
  EXPECT_THAT(report, HasSubstr("created 4  claimed 3  expired 1  expired share 25.00%\n"));
  // Rank 1.5 of 3 falls in (60 s, 300 s] holding two claims: 60 + 240 * 1.5 / 2.
  EXPECT_THAT(report, HasSubstr("time to claim p50   4 min\n"));
  EXPECT_THAT(report, HasSubstr("mean value          $25.00\n"));
  // Failed transactions count, but move no money.
  EXPECT_THAT(report, HasSubstr("transactions 3  completed 2  volume $10.00\n"));
}

TEST(FormatKeyMetrics, SaysNotAvailableWhenThereIsNothingToRate) {
  NovaGiftMetrics metrics(1);
  const std::string report = FormatKeyMetrics(metrics.Snapshot());
  EXPECT_THAT(report, HasSubstr("requests            0\n"));
  EXPECT_THAT(report, HasSubstr("5xx / 4xx           n/a / n/a\n"));
  EXPECT_THAT(report, HasSubstr("latency p50/p95/p99 n/a / n/a / n/a\n"));
  EXPECT_THAT(report, HasSubstr("expired share n/a\n"));
  EXPECT_THAT(report, HasSubstr("mean value          n/a\n"));
  EXPECT_THAT(report, Not(HasSubstr("nan")));
}

TEST(FormatReplaySummary, CountsRecordsThroughputAndEveryReason) {
  NovaGiftMetrics metrics(2);
  for (int i = 0; i < 7; ++i) metrics.writer(i % 2).Record(Access("/r", 200, 1));
  metrics.writer(0).Reject(Topic::kAccessLog, RejectReason::kMalformedJson);
  metrics.writer(1).Reject(Topic::kAccessLog, RejectReason::kMalformedJson);
  metrics.writer(1).Reject(Topic::kOutbox, RejectReason::kUnknownType);
  const std::string summary = FormatReplaySummary(
      metrics.Snapshot(), {.records = 10, .bytes = 2'000'000, .seconds = 2.0, .threads = 2});
  EXPECT_THAT(summary, HasSubstr("replayed 10 records (7 accepted, 3 rejected), 2.0 MB in 2.00 s: "
                                 "5 events/s, 1 MB/s on 2 threads\n"));
  EXPECT_THAT(summary, HasSubstr("rejected by reason:\n"));
  EXPECT_THAT(summary, HasSubstr("  malformed_json (novagift.access-log)     2\n"));
  EXPECT_THAT(summary, HasSubstr("  unknown_type (novagift.outbox)           1\n"));
  // Reasons that never happened are not listed.
  EXPECT_THAT(summary, Not(HasSubstr("oversize")));
  EXPECT_THAT(summary, Not(HasSubstr("series limit")));
  // Not measured, not shown.
  EXPECT_THAT(summary, Not(HasSubstr("cpu:")));
}

TEST(FormatReplaySummary, SaysWhereTheCpuTimeWentAndWhenReadingSetThePace) {
  NovaGiftMetrics metrics(2);
  const std::string parse_bound =
      FormatReplaySummary(metrics.Snapshot(), {.records = 100,
                                               .seconds = 2.0,
                                               .threads = 2,
                                               .read_cpu_seconds = 0.4,
                                               .work_cpu_seconds = 3.5});
  EXPECT_THAT(parse_bound,
              HasSubstr("cpu: 0.40 s reading the input, 3.50 s parsing and aggregating\n"));
  EXPECT_THAT(parse_bound, Not(HasSubstr("set the pace")));
  // A gzip file: the one reader thread was busy 95% of the replay.
  const std::string read_bound = FormatReplaySummary(metrics.Snapshot(), {.records = 100,
                                                                          .seconds = 2.0,
                                                                          .threads = 2,
                                                                          .read_cpu_seconds = 1.9,
                                                                          .work_cpu_seconds = 1.0});
  EXPECT_THAT(read_bound, HasSubstr("reading the input (I/O, decompression) set the pace: more "
                                    "threads will not make this replay faster\n"));
}

TEST(FormatReplaySummary, OneThreadIsSingularAndZeroTimeHasNoRate) {
  NovaGiftMetrics metrics(1);
  EXPECT_THAT(FormatReplaySummary(metrics.Snapshot(), {.seconds = 1.0}),
              HasSubstr("on 1 thread\n"));
  const std::string instant = FormatReplaySummary(metrics.Snapshot(), {});
  EXPECT_EQ(instant, "replayed 0 records (0 accepted, 0 rejected), 0.0 MB in 0.00 s\n");
}

TEST(FormatReplaySummary, NamesMetricsThatHitTheSeriesLimit) {
  NovaGiftMetrics metrics(1, /*series_limit=*/2);
  for (std::string_view route : {"/a", "/b", "/c", "/d"}) {
    metrics.writer(0).Record(Access(route, 200, 1));
  }
  const std::string summary =
      FormatReplaySummary(metrics.Snapshot(), {.records = 4, .bytes = 400, .seconds = 1.0});
  EXPECT_THAT(summary, HasSubstr("series limit reached: http_requests_total (2 events folded into "
                                 "__overflow__)\n"));
}

}  // namespace
}  // namespace novapulse
