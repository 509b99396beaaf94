#include "sinks/report.h"

#include <algorithm>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "aggregators/novagift_metrics.h"
#include "aggregators/quantile.h"

namespace novapulse {
namespace {

const FamilySnapshot* Find(const std::vector<FamilySnapshot>& families, std::string_view name) {
  for (const FamilySnapshot& f : families) {
    if (f.def->name == name) return &f;
  }
  return nullptr;
}

// Sum of a counter family, optionally only series whose label `label` passes `keep`.
template <typename Keep>
uint64_t SumCounter(const FamilySnapshot* f, size_t label, Keep keep) {
  if (f == nullptr) return 0;
  uint64_t total = 0;
  for (size_t s = 0; s < f->size(); ++s) {
    if (keep(SplitKey(f->keys[s])[label])) total += f->Word(s, 0);
  }
  return total;
}

uint64_t SumCounter(const FamilySnapshot* f) {
  return SumCounter(f, 0, [](std::string_view) { return true; });
}

double SumGauge(const FamilySnapshot* f) {
  double total = 0;
  if (f != nullptr) {
    for (size_t s = 0; s < f->size(); ++s) total += f->Gauge(s);
  }
  return total;
}

// All series of a histogram added together: per-bucket counts then the sum.
std::vector<uint64_t> MergedBuckets(const FamilySnapshot* f) {
  std::vector<uint64_t> counts(f ? f->width - 1 : 0, 0);
  if (f == nullptr) return counts;
  for (size_t s = 0; s < f->size(); ++s) {
    for (size_t b = 0; b + 1 < f->width; ++b) counts[b] += f->Word(s, b);
  }
  return counts;
}

std::string Seconds(double s) {
  if (s != s) return "n/a";
  if (s < 1) return absl::StrFormat("%.0f ms", s * 1000);
  if (s < 120) return absl::StrFormat("%.2f s", s);
  if (s < 7200) return absl::StrFormat("%.0f min", s / 60);
  return absl::StrFormat("%.1f h", s / 3600);
}

std::string Percent(uint64_t part, uint64_t whole) {
  return whole == 0 ? "n/a" : absl::StrFormat("%.2f%%", 100.0 * part / whole);
}

}  // namespace

std::string FormatKeyMetrics(const std::vector<FamilySnapshot>& fs) {
  std::string out;
  const FamilySnapshot* requests = Find(fs, "http_requests_total");
  const uint64_t total = SumCounter(requests);
  const uint64_t errors5xx =
      SumCounter(requests, 2, [](std::string_view status) { return status[0] == '5'; });
  const uint64_t errors4xx =
      SumCounter(requests, 2, [](std::string_view status) { return status[0] == '4'; });
  absl::StrAppend(&out, "API\n");
  absl::StrAppendFormat(&out, "  requests            %d\n", total);
  absl::StrAppendFormat(&out, "  5xx / 4xx           %s / %s\n", Percent(errors5xx, total),
                        Percent(errors4xx, total));
  const FamilySnapshot* latency = Find(fs, "http_request_duration_seconds");
  if (latency != nullptr) {
    const std::vector<uint64_t> b = MergedBuckets(latency);
    absl::StrAppendFormat(&out, "  latency p50/p95/p99 %s / %s / %s\n",
                          Seconds(HistogramQuantile(0.5, latency->def->buckets, b.data())),
                          Seconds(HistogramQuantile(0.95, latency->def->buckets, b.data())),
                          Seconds(HistogramQuantile(0.99, latency->def->buckets, b.data())));
  }
  absl::StrAppendFormat(&out, "  active connections  %.2f (last minute)\n",
                        SumGauge(Find(fs, "http_active_connections")));

  absl::StrAppend(&out, "Outbox\n");
  absl::StrAppendFormat(&out, "  processed %d  failed attempts %d  dead %d\n",
                        SumCounter(Find(fs, "outbox_processed_total")),
                        SumCounter(Find(fs, "outbox_failed_total")),
                        SumCounter(Find(fs, "outbox_dead_total")));
  absl::StrAppendFormat(&out, "  queued now %.0f  in flight now %.0f\n",
                        SumGauge(Find(fs, "outbox_queued_total")),
                        SumGauge(Find(fs, "outbox_in_flight_total")));
  if (const FamilySnapshot* processing = Find(fs, "outbox_processing_duration_seconds")) {
    const std::vector<uint64_t> b = MergedBuckets(processing);
    absl::StrAppendFormat(&out, "  processing p95      %s\n",
                          Seconds(HistogramQuantile(0.95, processing->def->buckets, b.data())));
  }

  const uint64_t created = SumCounter(Find(fs, "gifts_created_total"));
  const uint64_t claimed = SumCounter(Find(fs, "gifts_claimed_total"));
  const uint64_t expired = SumCounter(Find(fs, "gifts_expired_total"));
  absl::StrAppend(&out, "Gifts\n");
  absl::StrAppendFormat(&out, "  created %d  claimed %d  expired %d  expired share %s\n", created,
                        claimed, expired, Percent(expired, claimed + expired));
  if (const FamilySnapshot* claim = Find(fs, "gift_claim_duration_seconds")) {
    const std::vector<uint64_t> b = MergedBuckets(claim);
    absl::StrAppendFormat(&out, "  time to claim p50   %s\n",
                          Seconds(HistogramQuantile(0.5, claim->def->buckets, b.data())));
  }
  if (const FamilySnapshot* value = Find(fs, "gift_value_usd")) {
    double sum = 0;
    uint64_t n = 0;
    for (size_t s = 0; s < value->size(); ++s) {
      sum += value->HistogramSum(s);
      n += value->HistogramCount(s);
    }
    absl::StrAppendFormat(&out, "  mean value          %s\n",
                          n ? absl::StrFormat("$%.2f", sum / n) : "n/a");
  }
  absl::StrAppend(&out, "Wallet\n");
  absl::StrAppendFormat(&out, "  transactions %d",
                        SumCounter(Find(fs, "wallet_transactions_total")));
  // The USD moved: completed transactions' amounts (the dashboard's volume).
  if (const FamilySnapshot* amount = Find(fs, "wallet_transaction_amount_usd")) {
    double volume = 0;
    uint64_t completed = 0;
    for (size_t s = 0; s < amount->size(); ++s) {
      if (SplitKey(amount->keys[s])[1] != "completed") continue;
      volume += amount->HistogramSum(s);
      completed += amount->HistogramCount(s);
    }
    absl::StrAppendFormat(&out, "  completed %d  volume $%.2f", completed, volume);
  }
  absl::StrAppend(&out, "\n");
  return out;
}

std::string FormatReplaySummary(const std::vector<FamilySnapshot>& fs, const ReplayFigures& f) {
  std::string out;
  const FamilySnapshot* events = Find(fs, "novapulse_events_total");
  const uint64_t accepted =
      SumCounter(events, 1, [](std::string_view r) { return r == "accepted"; });
  const uint64_t rejected =
      SumCounter(events, 1, [](std::string_view r) { return r == "rejected"; });
  absl::StrAppendFormat(&out, "replayed %d records (%d accepted, %d rejected), %.1f MB in %.2f s",
                        f.records, accepted, rejected, f.bytes / 1e6, f.seconds);
  if (f.seconds > 0) {
    absl::StrAppendFormat(&out, ": %.0f events/s, %.0f MB/s on %d thread%s", f.records / f.seconds,
                          f.bytes / 1e6 / f.seconds, f.threads, f.threads == 1 ? "" : "s");
  }
  absl::StrAppend(&out, "\n");
  if (f.read_cpu_seconds > 0 || f.work_cpu_seconds > 0) {
    absl::StrAppendFormat(&out, "cpu: %.2f s reading the input, %.2f s parsing and aggregating\n",
                          f.read_cpu_seconds, f.work_cpu_seconds);
    // Reading is serial (its own thread, or the pipeline's serial input
    // stage): busy nearly all the time, it sets the pace.
    if (f.seconds >= 0.5 && f.read_cpu_seconds >= 0.9 * f.seconds) {
      absl::StrAppend(&out,
                      "reading the input (I/O, decompression) set the pace: more threads will "
                      "not make this replay faster\n");
    }
  }
  if (const FamilySnapshot* errors = Find(fs, "novapulse_parse_errors_total")) {
    std::map<std::string, uint64_t> by_reason;
    for (size_t s = 0; s < errors->size(); ++s) {
      if (errors->Word(s, 0) == 0) continue;
      const std::vector<std::string_view> labels = SplitKey(errors->keys[s]);
      by_reason[std::string(labels[1]) + " (" + std::string(labels[0]) + ")"] += errors->Word(s, 0);
    }
    if (!by_reason.empty()) absl::StrAppend(&out, "rejected by reason:\n");
    for (const auto& [reason, count] : by_reason) {
      absl::StrAppendFormat(&out, "  %-40s %d\n", reason, count);
    }
  }
  if (const FamilySnapshot* overflow = Find(fs, "novapulse_series_overflow_total")) {
    for (size_t s = 0; s < overflow->size(); ++s) {
      absl::StrAppendFormat(&out, "series limit reached: %s (%d events folded into __overflow__)\n",
                            overflow->keys[s], overflow->Word(s, 0));
    }
  }
  return out;
}

}  // namespace novapulse
