// Benchmark input: NDJSON lines from the seeded traffic generator
// (gen/traffic_gen.h), each in its own buffer followed by simdjson's
// padding, as the pipeline's chunk buffers provide, so parsers read them in
// place without a copy.
//
// Each corpus is generated once per process, on first use, and is read-only
// afterwards: benchmark threads may share it.
//   const std::vector<PaddedLine>& lines = AccessCorpus();
//   parser.ParseAccessLog(lines[i].data(), lines[i].size(), lines[i].capacity(), &event);
#ifndef NOVAPULSE_BENCH_BENCH_CORPUS_H_
#define NOVAPULSE_BENCH_BENCH_CORPUS_H_

#include <simdjson.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "gen/traffic_gen.h"
#include "parsers/event.h"

namespace novapulse::bench {

// Lines per corpus: ~2.4 MB of access lines, more than L2 holds, so the
// parsers are not measured on a hot cache of a handful of lines.
inline constexpr size_t kCorpusLines = 8192;

class PaddedLine {
 public:
  explicit PaddedLine(std::string_view line) : size_(line.size()) {
    buffer_.reserve(line.size() + simdjson::SIMDJSON_PADDING);
    buffer_.assign(line);
    buffer_.append(simdjson::SIMDJSON_PADDING, ' ');
  }
  const char* data() const { return buffer_.data(); }
  size_t size() const { return size_; }
  size_t capacity() const { return buffer_.size(); }
  std::string_view view() const { return {buffer_.data(), size_}; }

 private:
  std::string buffer_;
  size_t size_;
};

namespace internal {

// Keeps the first `limit` lines of one topic, then stops the generator.
class CollectingSink : public TrafficSink {
 public:
  CollectingSink(Topic topic, size_t limit) : topic_(topic), limit_(limit) {}
  absl::Status Write(Topic topic, std::string_view line) override {
    if (topic != topic_) return absl::OkStatus();
    lines_.emplace_back(line);
    return lines_.size() < limit_ ? absl::OkStatus() : absl::CancelledError("corpus full");
  }
  std::vector<PaddedLine> Take() { return std::move(lines_); }

 private:
  Topic topic_;
  size_t limit_;
  std::vector<PaddedLine> lines_;
};

inline std::vector<PaddedLine> Generate(GenConfig config, Topic topic) {
  // 09:00 UTC, where the generator's diurnal rate factor is 1.0.
  config.start_us = (1795651200LL + 9 * 3600) * 1'000'000;
  config.duration_us = 48LL * 3600 * 1'000'000;  // ended early by the sink
  CollectingSink sink(topic, kCorpusLines);
  absl::StatusOr<GenStats> stats = GenerateTraffic(config, sink);
  if (!stats.ok() && !absl::IsCancelled(stats.status())) {
    std::fprintf(stderr, "corpus generation failed: %s\n", stats.status().ToString().c_str());
    std::abort();
  }
  return sink.Take();
}

}  // namespace internal

// Access-log lines at the default route and status mix (about 5% without a
// `route`, so the parser normalises their `path`).
inline const std::vector<PaddedLine>& AccessCorpus() {
  static const std::vector<PaddedLine> lines = [] {
    GenConfig config;
    config.seed = 42;
    config.gifts_per_minute = 0;
    config.wallet_per_minute = 0;
    return internal::Generate(config, Topic::kAccessLog);
  }();
  return lines;
}

// Outbox lines of all four types and all statuses, with claims and expiries
// of gifts created before the start.
inline const std::vector<PaddedLine>& OutboxCorpus() {
  static const std::vector<PaddedLine> lines = [] {
    GenConfig config;
    config.seed = 42;
    config.access_rate = 0;
    config.gifts_per_minute = 120;
    config.wallet_per_minute = 60;
    return internal::Generate(config, Topic::kOutbox);
  }();
  return lines;
}

// The string value of `"key":"..."` in a generated line (no escapes occur in
// the generator's values); empty when absent.
inline std::string_view JsonStringField(std::string_view line, std::string_view key) {
  std::string pattern = "\"";
  pattern.append(key);
  pattern.append("\":\"");
  const size_t start = line.find(pattern);
  if (start == std::string_view::npos) return {};
  const size_t value = start + pattern.size();
  const size_t end = line.find('"', value);
  return end == std::string_view::npos ? std::string_view() : line.substr(value, end - value);
}

}  // namespace novapulse::bench

#endif  // NOVAPULSE_BENCH_BENCH_CORPUS_H_
