#include "gen/gen_command.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "base/cli.h"
#include "base/str_cat.h"
#include "gen/kafka_sink.h"
#include "gen/ndjson_writer.h"
#include "gen/traffic_gen.h"

namespace novapulse {
namespace {

constexpr int64_t kUsPerSec = 1'000'000;

constexpr std::string_view kGenUsage =
    R"(Usage: novapulse gen (--out DIR | --kafka BROKERS) [OPTIONS]

Generates seeded, deterministic NovaGift traffic: access-log lines (topic
novagift.access-log) and outbox lifecycle lines (topic novagift.outbox). Rates
follow a UTC day: ~0.3x at night, ~1.7x in the afternoon, 1.0x on average. The
same flags give identical lines.

--out DIR writes DIR/access-log.ndjson and DIR/outbox.ndjson, with .gz or .zst
appended when compressed, as fast as it can.

--kafka BROKERS produces each line as one Kafka message: access lines without a
key, outbox lines keyed by their "id", so each message's lifecycle stays in one
partition, in order. Event time is paced to wall time x --speed, so at the
default speed 1 --rate N is also the mean access-log events per second of wall
time. The end report gives the lines delivered per topic, delivery failures and
the achieved rate.

Options:
  --out DIR                    output directory, created if missing
  --kafka BROKERS              produce to these brokers, e.g. 127.0.0.1:9092
                               (exactly one of --out and --kafka is required)
  --duration DUR               event time to generate: 45s, 90m, 1h30m, 2d (default 1h)
  --start RFC3339              event time of the start (default 2026-11-26T00:00:00Z)
  --rate N                     mean access-log events per second (default 100)
  --gifts-per-minute N         mean gift creations per minute (default 20)
  --wallet-per-minute N        mean wallet transactions per minute (default 10)
  --seed N                     PRNG seed (default 1)
  --incident NAME@OFFSET+DUR   switch an incident on from OFFSET after the start for
                               DUR, e.g. error_spike@10h+30m; repeatable
  --compress none|gzip|zstd    compress the output files (default none; --out only)
  --help                       show this help

Kafka options (--kafka only):
  --speed X|max                event seconds per wall second (default 1: real time;
                               max: as fast as the broker takes them)
  --access-topic NAME          topic of access-log lines (default novagift.access-log)
  --outbox-topic NAME          topic of outbox lines (default novagift.outbox)
  --kafka-property KEY=VALUE   librdkafka producer property, repeatable; overrides the
                               defaults acks=all, enable.idempotence=true,
                               compression.codec=lz4, linger.ms=5,
                               batch.num.messages=100000

Incidents:
  error_spike        5xx share of API responses rises to ~15%
  latency_spike      API latency x10 on every route (p95 above 1 s)
  outbox_failures    ~70% of outbox attempts fail; retries, many messages go dead
  outbox_backlog     outbox processing stalls, queued messages pile up (past 1000
                     after ~15-30 min at default rates); drained afterwards
  claim_drop         90% of the gift claims due in the span do not happen
  expiry_spike       extra gift expiries; expired share of claims+expiries ~70%
  creation_drought   gift creation falls to ~2 per hour
)";

int UsageError(absl::string_view message) {
  std::fprintf(stderr, "novapulse gen: %.*s\nRun 'novapulse gen --help' for usage.\n",
               static_cast<int>(message.size()), message.data());
  return 2;
}

std::string HumanBytes(uint64_t bytes) {
  if (bytes >= (1ULL << 30)) return absl::StrFormat("%.2f GiB", bytes / double(1ULL << 30));
  if (bytes >= (1ULL << 20)) return absl::StrFormat("%.1f MiB", bytes / double(1ULL << 20));
  if (bytes >= (1ULL << 10)) return absl::StrFormat("%.1f KiB", bytes / double(1ULL << 10));
  return Cat(bytes, " B");
}

using Clock = std::chrono::steady_clock;

struct GenOptions {
  GenConfig config;
  std::string out_dir;
  Compression compression = Compression::kNone;
  KafkaSinkConfig kafka;
  double speed = 1;  // event seconds per wall second; infinity: unpaced
};

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double PerSecond(uint64_t n, double seconds) {
  return seconds > 0 ? static_cast<double>(n) / seconds : 0.0;
}

int RunToFiles(const GenOptions& options) {
  const GenConfig& config = options.config;
  absl::StatusOr<std::unique_ptr<TrafficSink>> sink =
      MakeNdjsonDirSink(options.out_dir, options.compression);
  if (!sink.ok()) {
    std::fprintf(stderr, "novapulse gen: %s\n", std::string(sink.status().message()).c_str());
    return 1;
  }

  const bool show_progress = ::isatty(2) == 1;
  const auto wall_start = Clock::now();
  auto last_shown = wall_start;
  const auto progress = [&](int64_t t_us, const GenStats& so_far) {
    if (!show_progress) return;
    const auto now = Clock::now();
    if (now - last_shown < std::chrono::milliseconds(250)) return;
    last_shown = now;
    const double done = 100.0 * static_cast<double>(t_us - config.start_us) /
                        static_cast<double>(std::max<int64_t>(1, config.duration_us));
    const uint64_t lines = so_far.access_lines + so_far.outbox_lines;
    std::fprintf(stderr, "\r\x1b[Knovapulse gen: %5.1f%% of event time, %llu lines", done,
                 static_cast<unsigned long long>(lines));
  };
  absl::StatusOr<GenStats> stats = GenerateTraffic(config, **sink, progress);
  absl::Status finished = (*sink)->Finish();
  const double elapsed = SecondsSince(wall_start);
  if (show_progress) std::fputs("\r\x1b[K", stderr);
  if (!stats.ok() || !finished.ok()) {
    const absl::Status& s = stats.ok() ? finished : stats.status();
    std::fprintf(stderr, "novapulse gen: %s\n", std::string(s.message()).c_str());
    return 1;
  }

  const uint64_t lines = stats->access_lines + stats->outbox_lines;
  std::string files;
  for (Topic topic : {Topic::kAccessLog, Topic::kOutbox}) {
    const std::string path = NdjsonPath(options.out_dir, topic, options.compression);
    std::error_code ec;
    const uintmax_t size = std::filesystem::file_size(path, ec);
    absl::StrAppend(&files, files.empty() ? "" : ", ", path, " (",
                    ec ? std::string("size unknown") : HumanBytes(size), ")");
  }
  // The daily curve makes the mean over a part of a day differ from --rate
  // (at night it is ~0.3x): say what this span came to.
  const double event_seconds = static_cast<double>(options.config.duration_us) / 1e6;
  std::fprintf(stderr,
               "novapulse gen: %llu access-log lines, %llu outbox lines, %s of NDJSON\n"
               "novapulse gen: mean %.1f access-log events per second of event time (--rate "
               "%g is the mean over a whole UTC day)\n"
               "novapulse gen: 2 files: %s\n"
               "novapulse gen: %.2f s, %.0f lines/s\n",
               static_cast<unsigned long long>(stats->access_lines),
               static_cast<unsigned long long>(stats->outbox_lines),
               HumanBytes(stats->access_bytes + stats->outbox_bytes).c_str(),
               PerSecond(stats->access_lines, event_seconds), options.config.access_rate,
               files.c_str(), elapsed, PerSecond(lines, elapsed));
  return 0;
}

int RunToKafka(const GenOptions& options) {
  const GenConfig& config = options.config;
  absl::StatusOr<std::unique_ptr<KafkaSink>> sink = KafkaSink::Create(options.kafka);
  if (!sink.ok()) {
    std::fprintf(stderr, "novapulse gen: %s\n", std::string(sink.status().message()).c_str());
    return 1;
  }
  const KafkaSinkCounts& counts = (*sink)->counts();

  const bool paced = std::isfinite(options.speed);
  // Paced, the generator checks the clock about every 10 ms of event time at
  // the mean rate; sleeping that coarsely keeps the overhead negligible.
  const uint64_t check_every =
      paced
          ? static_cast<uint64_t>(std::clamp(config.access_rate * options.speed / 100, 1.0, 1000.0))
          : 1000;
  const bool show_progress = ::isatty(2) == 1;
  const auto wall_start = Clock::now();
  auto last_shown = wall_start;
  const auto pace = [&](int64_t t_us, const GenStats& so_far) {
    if (paced) {
      const std::chrono::duration<double> event_elapsed(
          static_cast<double>(t_us - config.start_us) / kUsPerSec / options.speed);
      const auto due = wall_start + std::chrono::duration_cast<Clock::duration>(event_elapsed);
      if (due > Clock::now()) std::this_thread::sleep_until(due);
    }
    if (!show_progress) return;
    const auto now = Clock::now();
    if (now - last_shown < std::chrono::seconds(1)) return;
    last_shown = now;
    const double done = 100.0 * static_cast<double>(t_us - config.start_us) /
                        static_cast<double>(std::max<int64_t>(1, config.duration_us));
    const double elapsed = std::chrono::duration<double>(now - wall_start).count();
    const uint64_t lines = so_far.access_lines + so_far.outbox_lines;
    const uint64_t delivered = counts.delivered[0] + counts.delivered[1];
    std::fprintf(stderr,
                 "\r\x1b[Knovapulse gen: %5.1f%% of event time, %llu lines, %llu delivered, "
                 "%.0f access-log events/s",
                 done, static_cast<unsigned long long>(lines),
                 static_cast<unsigned long long>(delivered),
                 PerSecond(so_far.access_lines, elapsed));
  };
  absl::StatusOr<GenStats> stats = GenerateTraffic(config, **sink, pace, check_every);
  absl::Status finished = (*sink)->Finish();
  const double elapsed = SecondsSince(wall_start);
  if (show_progress) std::fputs("\r\x1b[K", stderr);

  for (Topic topic : {Topic::kAccessLog, Topic::kOutbox}) {
    const size_t t = static_cast<size_t>(topic);
    std::fprintf(stderr, "novapulse gen: %s: %llu lines produced, %llu delivered\n",
                 (*sink)->topic_name(topic).c_str(),
                 static_cast<unsigned long long>(counts.produced[t]),
                 static_cast<unsigned long long>(counts.delivered[t]));
  }
  const uint64_t delivered = counts.delivered[0] + counts.delivered[1];
  std::fprintf(stderr,
               "novapulse gen: %llu delivery failures\n"
               "novapulse gen: %.2f s, %.0f access-log events/s, %.0f lines/s\n",
               static_cast<unsigned long long>(counts.failed), elapsed,
               PerSecond(counts.delivered[0], elapsed), PerSecond(delivered, elapsed));
  if (!stats.ok() || !finished.ok()) {
    const absl::Status& s = stats.ok() ? finished : stats.status();
    std::fprintf(stderr, "novapulse gen: %s\n", std::string(s.message()).c_str());
    return 1;
  }
  return 0;
}

// What the flags said, before they are checked together.
struct GenFlags {
  GenOptions options;
  std::string start_text = "2026-11-26T00:00:00Z";
  std::vector<std::string> incident_specs;
  std::vector<std::string> kafka_only_flags;  // given, but meaningless without --kafka
  bool compress_given = false;
};

// The exit status when the command ends here (help, usage error).
std::optional<int> ParseGenFlags(int argc, char** argv, GenFlags* flags) {
  GenOptions& options = flags->options;
  GenConfig& config = options.config;
  std::string& start_text = flags->start_text;
  std::vector<std::string>& incident_specs = flags->incident_specs;
  std::vector<std::string>& kafka_only_flags = flags->kafka_only_flags;
  bool& compress_given = flags->compress_given;
  ArgParser args(argc, argv, kGenUsage);
  while (args.Next()) {
    if (args.Is("--out")) {
      options.out_dir = args.Value();
      if (!args.failed() && options.out_dir.empty()) return args.Fail("--out: want a directory");
    } else if (args.Is("--kafka")) {
      options.kafka.brokers = args.Value();
      if (!args.failed() && options.kafka.brokers.empty()) {
        return args.Fail("--kafka: want brokers, e.g. 127.0.0.1:9092");
      }
    } else if (args.Is("--duration")) {
      const std::string value = args.Value();
      if (args.failed()) break;
      absl::StatusOr<int64_t> d = ParseDurationUs(value);
      if (!d.ok() || *d <= 0) {
        return args.Fail("--duration: bad value '" + value + "': " +
                         (d.ok() ? "want a positive duration" : std::string(d.status().message())));
      }
      config.duration_us = *d;
    } else if (args.Is("--start")) {
      start_text = args.Value();
    } else if (args.Is("--rate")) {
      config.access_rate = args.Double(0, 1e9);
    } else if (args.Is("--gifts-per-minute")) {
      config.gifts_per_minute = args.Double(0, 1e9);
    } else if (args.Is("--wallet-per-minute")) {
      config.wallet_per_minute = args.Double(0, 1e9);
    } else if (args.Is("--seed")) {
      config.seed = static_cast<uint64_t>(args.Int(0, INT64_MAX));
    } else if (args.Is("--incident")) {
      incident_specs.push_back(args.Value());
    } else if (args.Is("--compress")) {
      compress_given = true;
      const std::string value = args.Value();
      if (value == "none") {
        options.compression = Compression::kNone;
      } else if (value == "gzip") {
        options.compression = Compression::kGzip;
      } else if (value == "zstd") {
        options.compression = Compression::kZstd;
      } else if (!args.failed()) {
        return args.Fail("--compress: bad value '" + value + "': want none, gzip or zstd");
      }
    } else if (args.Is("--speed")) {
      kafka_only_flags.emplace_back("--speed");
      const std::string value = args.Value();
      double speed = 0;
      if (value == "max") {
        options.speed = std::numeric_limits<double>::infinity();
      } else if (absl::SimpleAtod(value, &speed) && std::isfinite(speed) && speed > 0) {
        options.speed = speed;
      } else if (!args.failed()) {
        return args.Fail("--speed: bad value '" + value + "': want a positive number or max");
      }
    } else if (args.Is("--access-topic") || args.Is("--outbox-topic")) {
      const bool access = args.Is("--access-topic");
      kafka_only_flags.emplace_back(access ? "--access-topic" : "--outbox-topic");
      std::string value = args.Value();
      if (!args.failed() && value.empty()) {
        return args.Fail(Cat(access ? "--access-topic" : "--outbox-topic", ": want a topic name"));
      }
      (access ? options.kafka.access_topic : options.kafka.outbox_topic) = std::move(value);
    } else if (args.Is("--kafka-property")) {
      kafka_only_flags.emplace_back("--kafka-property");
      const std::string value = args.Value();
      const size_t eq = value.find('=');
      if (eq == std::string::npos || eq == 0) {
        if (!args.failed()) {
          return args.Fail("--kafka-property: bad value '" + value + "': want KEY=VALUE");
        }
      } else {
        options.kafka.properties.emplace_back(value.substr(0, eq), value.substr(eq + 1));
      }
    } else if (args.IsPositional()) {
      return args.Fail("unexpected argument '" + std::string(args.Positional()) + "'");
    } else {
      return args.UnknownFlag();
    }
    if (args.failed()) return args.exit_code();
  }
  if (args.failed()) return args.exit_code();
  if (args.help()) return 0;
  return std::nullopt;
}

// Checks the flags together and completes the config from them: the exit
// status of a usage error, or nullopt.
std::optional<int> CheckGenFlags(GenFlags* flags) {
  GenOptions& options = flags->options;
  GenConfig& config = options.config;
  const bool kafka = !options.kafka.brokers.empty();
  if (kafka && !options.out_dir.empty()) {
    return UsageError("--out and --kafka are mutually exclusive");
  }
  if (!kafka && options.out_dir.empty()) {
    return UsageError("--out DIR or --kafka BROKERS is required");
  }
  if (!kafka && !flags->kafka_only_flags.empty()) {
    return UsageError(Cat(flags->kafka_only_flags.front(), " needs --kafka"));
  }
  if (kafka && flags->compress_given) {
    return UsageError("--compress applies to --out files only");
  }
  const std::string& start_text = flags->start_text;

  absl::Time start;
  std::string time_error;
  if (!absl::ParseTime(absl::RFC3339_full, start_text, &start, &time_error)) {
    return UsageError(Cat("bad value '", start_text,
                          "' for --start: want RFC 3339, e.g. 2026-11-26T00:00:00Z (", time_error,
                          ")"));
  }
  config.start_us = absl::ToUnixMicros(start);
  for (const std::string& spec : flags->incident_specs) {
    absl::StatusOr<IncidentSpan> span = ParseIncidentSpec(spec, config.start_us);
    if (!span.ok()) return UsageError(span.status().message());
    if (span->end_us <= config.start_us || span->start_us >= config.start_us + config.duration_us) {
      std::fprintf(stderr,
                   "novapulse gen: warning: incident '%s' lies outside the generated time\n",
                   spec.c_str());
    }
    config.incidents.push_back(*span);
  }
  if (absl::Status s = ValidateGenConfig(config); !s.ok()) return UsageError(s.message());
  return std::nullopt;
}

}  // namespace

int RunGenCommand(int argc, char** argv) {
  GenFlags flags;
  if (std::optional<int> done = ParseGenFlags(argc, argv, &flags)) return *done;
  if (std::optional<int> bad = CheckGenFlags(&flags)) return *bad;
  const GenOptions& options = flags.options;
  return options.kafka.brokers.empty() ? RunToFiles(options) : RunToKafka(options);
}

}  // namespace novapulse
