// Seeded, deterministic NovaGift traffic: access-log lines and outbox
// lifecycle lines in event-time order, with named incidents switched on over
// time spans.
//
// The generator is single-threaded and streams: it never holds more than the
// scheduled future lifecycle steps (claims and expiries waiting for their
// time). The same GenConfig always yields byte-identical output.
//
//   GenConfig config;  config.duration_us = 3600 * 1'000'000LL;
//   auto sink = MakeNdjsonDirSink("out", Compression::kZstd);  // gen/ndjson_writer.h
//   absl::StatusOr<GenStats> stats = GenerateTraffic(config, **sink);
#ifndef NOVAPULSE_GEN_TRAFFIC_GEN_H_
#define NOVAPULSE_GEN_TRAFFIC_GEN_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "parsers/event.h"

namespace novapulse {

enum class IncidentKind : uint8_t {
  kErrorSpike = 0,   // 5xx share of API responses jumps (to ~15%)
  kLatencySpike,     // API latency multiplied (p95 well above 1 s)
  kOutboxFailures,   // most outbox attempts fail; retries, some go dead
  kOutboxBacklog,    // outbox processing stalls; queued messages pile up (> 1000)
  kClaimDrop,        // claims fall to a small fraction of normal
  kExpirySpike,      // most gifts expire unclaimed
  kCreationDrought,  // gift creation nearly stops (< 10 per hour)
};
inline constexpr int kIncidentKindCount = 7;

std::string_view IncidentName(IncidentKind kind);
absl::StatusOr<IncidentKind> ParseIncidentName(std::string_view name);

struct IncidentSpan {
  IncidentKind kind = IncidentKind::kErrorSpike;
  int64_t start_us = 0;  // absolute event time
  int64_t end_us = 0;
};

// Parses "NAME@OFFSET+DURATION" where OFFSET is from the generation start and
// both are durations as in Prometheus (base/duration.h: "10h", "90m", "1h30m"),
// e.g. "error_spike@10h+30m".
absl::StatusOr<IncidentSpan> ParseIncidentSpec(std::string_view spec, int64_t gen_start_us);

struct GenConfig {
  uint64_t seed = 1;
  int64_t start_us = 1795651200LL * 1'000'000;  // 2026-11-26T00:00:00Z
  int64_t duration_us = 3600LL * 1'000'000;
  double access_rate = 100;       // mean access-log events per second (diurnal shape)
  double gifts_per_minute = 20;   // mean gift creations per minute (diurnal shape)
  double wallet_per_minute = 10;  // mean wallet transactions per minute
  std::vector<IncidentSpan> incidents;
};

// Receives generated lines (without the trailing newline) in event-time order
// per topic.
class TrafficSink {
 public:
  virtual ~TrafficSink() = default;
  virtual absl::Status Write(Topic topic, std::string_view line) = 0;
  // Flushes and closes; call once after the last Write. Buffering sinks report
  // late write errors (disk full, failed close) here.
  virtual absl::Status Finish() { return absl::OkStatus(); }
};

// Totals of what was generated, for reports and tests.
struct GenStats {
  uint64_t access_lines = 0;
  uint64_t outbox_lines = 0;
  uint64_t access_bytes = 0;  // NDJSON bytes, newlines included, before compression
  uint64_t outbox_bytes = 0;
};

// Fails with InvalidArgument for a config it cannot honour (negative rates,
// empty incident spans, a start before 1970-01-08 or an end after 9999), and
// stops at the first error of `sink.Write`, returning it unchanged.
absl::StatusOr<GenStats> GenerateTraffic(const GenConfig& config, TrafficSink& sink);

// The same, calling `progress` with the event time reached and the totals so
// far every kDefaultProgressEvery lines (for a progress display).
inline constexpr uint64_t kDefaultProgressEvery = 1 << 16;
absl::StatusOr<GenStats> GenerateTraffic(
    const GenConfig& config, TrafficSink& sink,
    absl::FunctionRef<void(int64_t event_time_us, const GenStats& so_far)> progress);

// The same, calling `progress` every `progress_every` lines (at least 1),
// before that line is written: often enough to pace the output.
absl::StatusOr<GenStats> GenerateTraffic(
    const GenConfig& config, TrafficSink& sink,
    absl::FunctionRef<void(int64_t event_time_us, const GenStats& so_far)> progress,
    uint64_t progress_every);

// Fails with InvalidArgument for a config GenerateTraffic cannot honour.
absl::Status ValidateGenConfig(const GenConfig& config);

// A duration in Prometheus's syntax (base/duration.h: "90m", "1h30m", "2d")
// in microseconds, at most 100,000 days.
absl::StatusOr<int64_t> ParseDurationUs(std::string_view s);

}  // namespace novapulse

#endif  // NOVAPULSE_GEN_TRAFFIC_GEN_H_
