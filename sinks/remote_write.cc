#include "sinks/remote_write.h"

#include <snappy.h>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstring>
#include <limits>
#include <optional>
#include <string_view>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/hash/hash.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "base/log.h"
#include "base/time_math.h"
#include "sinks/text_format.h"

namespace novapulse {
namespace {

// Protobuf wire format: just what WriteRequest needs.
constexpr uint8_t kLen = 2;      // length-delimited
constexpr uint8_t kFixed64 = 1;  // double
constexpr uint8_t kVarint = 0;

void AppendVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

size_t VarintSize(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

void AppendTag(std::string* out, uint32_t field, uint8_t wire_type) {
  out->push_back(static_cast<char>((field << 3) | wire_type));
}

void AppendBytesField(std::string* out, uint32_t field, std::string_view bytes) {
  AppendTag(out, field, kLen);
  AppendVarint(out, bytes.size());
  out->append(bytes);
}

size_t BytesFieldSize(size_t n) { return 1 + VarintSize(n) + n; }

}  // namespace

void RemoteWriteEncoder::Sort(const LabelPairs& labels) {
  sorted_.assign(labels.begin(), labels.end());
  for (const auto& external : external_) {
    if (std::none_of(labels.begin(), labels.end(),
                     [&external](const auto& l) { return l.first == external.first; })) {
      sorted_.emplace_back(external.first, external.second);
    }
  }
  std::sort(sorted_.begin(), sorted_.end());
}

std::string RemoteWriteHeaderRefused(std::string_view name) {
  static constexpr std::string_view kReserved[] = {"Authorization",
                                                   "Host",
                                                   "Content-Encoding",
                                                   "Content-Type",
                                                   "Content-Length",
                                                   "Connection",
                                                   "Keep-Alive",
                                                   "Transfer-Encoding",
                                                   "Upgrade",
                                                   "Proxy-Authorization",
                                                   "Proxy-Connection",
                                                   "TE",
                                                   "Trailer",
                                                   "User-Agent",
                                                   "X-Prometheus-Remote-Write-Version"};
  // An RFC 9110 token.
  constexpr std::string_view kTokenPunctuation = "!#$%&'*+-.^_`|~";
  if (name.empty() || !std::all_of(name.begin(), name.end(), [&](char c) {
        return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
               kTokenPunctuation.find(c) != std::string_view::npos;
      })) {
    return "not a header name";
  }
  for (const std::string_view r : kReserved) {
    const bool same =
        r.size() == name.size() && std::equal(r.begin(), r.end(), name.begin(), [](char a, char b) {
          return absl::ascii_tolower(static_cast<unsigned char>(a)) ==
                 absl::ascii_tolower(static_cast<unsigned char>(b));
        });
    if (same) {
      return std::string(r) + " is set by novapulse" +
             (r == "Authorization" ? " (use bearer_token, or a password in the url)" : "");
    }
  }
  return "";
}

bool RemoteWriteEncoder::Valid() const {
  // A receiver refuses a whole request for one series without a name or
  // with a label twice: such a series is left out and counted instead.
  const bool named = std::any_of(sorted_.begin(), sorted_.end(), [](const auto& l) {
    return l.first == "__name__" && !l.second.empty();
  });
  const bool twice =
      std::adjacent_find(sorted_.begin(), sorted_.end(), [](const auto& a, const auto& b) {
        return a.first == b.first;
      }) != sorted_.end();
  return named && !twice;
}

void RemoteWriteEncoder::Write(double value, int64_t t_ms, std::vector<RemoteWriteRequest>* out) {
  // TimeSeries { repeated Label labels = 1; repeated Sample samples = 2; }
  // Label { string name = 1; string value = 2; }
  // Sample { double value = 1; int64 timestamp = 2; }
  series_.clear();
  for (const auto& [name, v] : sorted_) {
    if (v.empty()) continue;  // absent, as a scrape stores it
    AppendTag(&series_, 1, kLen);
    AppendVarint(&series_, BytesFieldSize(name.size()) + BytesFieldSize(v.size()));
    AppendBytesField(&series_, 1, name);
    AppendBytesField(&series_, 2, v);
  }
  const size_t sample_size = 1 + 8 + 1 + VarintSize(static_cast<uint64_t>(t_ms));
  AppendTag(&series_, 2, kLen);
  AppendVarint(&series_, sample_size);
  AppendTag(&series_, 1, kFixed64);
  const uint64_t bits = std::bit_cast<uint64_t>(value);
  for (int i = 0; i < 8; ++i) series_.push_back(static_cast<char>((bits >> (8 * i)) & 0xff));
  AppendTag(&series_, 2, kVarint);
  AppendVarint(&series_, static_cast<uint64_t>(t_ms));
  // WriteRequest { repeated TimeSeries timeseries = 1; }
  AppendBytesField(&request_, 1, series_);
  if (++samples_ >= max_samples_) Flush(out);
}

void RemoteWriteEncoder::Flush(std::vector<RemoteWriteRequest>* out) {
  if (samples_ == 0) return;
  RemoteWriteRequest& r = out->emplace_back();
  snappy::Compress(request_.data(), request_.size(), &r.body);
  r.samples = samples_;
  request_.clear();
  samples_ = 0;
}

template <typename AddSample>
void RemoteWriteEncoder::ForEachSample(const RemoteWriteBatch& batch, AddSample add_sample) {
  LabelPairs labels;
  std::string count_name;  // a histogram's series names, made once per family
  std::string sum_name;
  std::string bucket_name;
  std::vector<std::string> le;
  std::vector<std::string_view> values;
  for (const FamilySnapshot& f : batch.families.families()) {
    const MetricDef& def = *f.def;
    if (def.type == MetricType::kHistogram) {
      count_name = absl::StrCat(std::string(def.name), "_count");
      sum_name = absl::StrCat(std::string(def.name), "_sum");
      bucket_name = absl::StrCat(std::string(def.name), "_bucket");
      le.clear();
      for (size_t b = 0; b <= def.buckets.size(); ++b) {
        text::AppendCanonicalLe(&le.emplace_back(), b < def.buckets.size()
                                                        ? def.buckets[b]
                                                        : std::numeric_limits<double>::infinity());
      }
    }
    for (size_t s = 0; s < f.size(); ++s) {
      values = SplitKey(f.keys[s]);
      labels.clear();
      for (size_t l = 0; l < def.labels.size() && l < values.size(); ++l) {
        labels.emplace_back(def.labels[l], values[l]);
      }
      const size_t base = labels.size();
      // `le` empty: no le label.
      auto add = [&](std::string_view name, double value, std::string_view le_value = {}) {
        labels.resize(base);
        labels.emplace_back("__name__", name);
        if (!le_value.empty()) labels.emplace_back("le", le_value);
        // The name, the joined label values and le name the sample.
        add_sample(labels, value, absl::HashOf(name, f.keys[s], le_value));
      };
      switch (def.type) {
        case MetricType::kCounter:
          add(def.name, static_cast<double>(f.Word(s, 0)));
          break;
        case MetricType::kGauge:
        case MetricType::kComputed:
        case MetricType::kComputedCounter:
          add(def.name, f.Gauge(s));
          break;
        case MetricType::kHistogram: {
          add(count_name, static_cast<double>(f.HistogramCount(s)));
          add(sum_name, f.HistogramSum(s));
          uint64_t cumulative = 0;
          for (size_t b = 0; b < le.size(); ++b) {
            cumulative += f.Word(s, b);
            add(bucket_name, static_cast<double>(cumulative), le[b]);
          }
          break;
        }
      }
    }
  }
  for (const auto& [series_labels, value] : batch.rule_series) {
    labels.clear();
    uint64_t identity = 0;
    for (const promql::Label& l : series_labels) {
      labels.emplace_back(l.name, l.value);
      identity = absl::HashOf(identity, l.name, l.value);
    }
    add_sample(labels, value, identity);
  }
}

void RemoteWriteEncoder::Encode(const RemoteWriteBatch& batch, int64_t t_ms,
                                std::vector<RemoteWriteRequest>* out) {
  written_.clear();
  ForEachSample(batch, [&](const LabelPairs& labels, double value, uint64_t identity) {
    Sort(labels);
    if (!Valid()) {
      ++skipped_;
      return;
    }
    written_.push_back(identity);
    Write(value, t_ms, out);
  });
  // Sorted once, searched by EncodeStale: cheaper than a hash set's
  // scattered inserts.
  std::sort(written_.begin(), written_.end());
  Flush(out);
}

void RemoteWriteEncoder::EncodeStale(const RemoteWriteBatch& previous, int64_t t_ms,
                                     std::vector<RemoteWriteRequest>* out) {
  ForEachSample(previous, [&](const LabelPairs& labels, double /*value*/, uint64_t identity) {
    if (std::binary_search(written_.begin(), written_.end(), identity)) return;
    // A series left out then (and counted) is left out again, uncounted.
    Sort(labels);
    if (Valid()) Write(promql::StaleNaN(), t_ms, out);
  });
  Flush(out);
}

RemoteWriter::RemoteWriter(RemoteWriteOptions options, HttpEndpoint endpoint, Collect collect)
    : options_(std::move(options)), endpoint_(std::move(endpoint)), collect_(std::move(collect)) {}

absl::StatusOr<std::unique_ptr<RemoteWriter>> RemoteWriter::Start(RemoteWriteOptions options,
                                                                  Collect collect) {
  absl::StatusOr<HttpEndpoint> endpoint = ParseHttpUrl(options.url);
  if (!endpoint.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("remote_write: bad url \"", options.url, "\": ", endpoint.status().message()));
  }
  if (options.max_samples_per_send == 0 || options.queue_samples < options.max_samples_per_send) {
    return absl::InvalidArgumentError(
        "remote_write: max_samples_per_send must be at least 1 and at most queue_samples");
  }
  if (options.interval <= absl::ZeroDuration() || options.timeout <= absl::ZeroDuration() ||
      options.backoff_min <= absl::ZeroDuration() || options.backoff_min > options.backoff_max) {
    return absl::InvalidArgumentError(
        "remote_write: interval, timeout and backoff must be positive, backoff min <= max");
  }
  if (!collect) return absl::InvalidArgumentError("remote_write: no collect function");
  std::unique_ptr<RemoteWriter> writer(
      new RemoteWriter(std::move(options), *std::move(endpoint), std::move(collect)));
  writer->collector_ = std::thread([w = writer.get()] { w->CollectLoop(); });
  writer->sender_ = std::thread([w = writer.get()] { w->SendLoop(); });
  return writer;
}

RemoteWriter::~RemoteWriter() { Shutdown(options_.shutdown_flush); }

void RemoteWriter::Shutdown(absl::Duration flush, bool end_series) {
  if (joined_) return;
  // The collector ends first (queuing the end markers), so that the sender
  // sees them before it decides the queue is empty.
  {
    absl::MutexLock lock(&mu_);
    collector_stop_ = true;
    end_series_ = end_series && flush > absl::ZeroDuration();
    wake_.SignalAll();
  }
  collector_.join();
  {
    absl::MutexLock lock(&mu_);
    stop_.Begin(flush);
    wake_.SignalAll();
  }
  sender_.join();
  joined_ = true;
}

void RemoteWriter::TrimLocked() {
  while (queued_samples_ > options_.queue_samples && !queue_.empty()) {
    queued_samples_ -= queue_.front().samples;
    stats_.samples_dropped += queue_.front().samples;
    queue_.pop_front();
  }
}

void RemoteWriter::CollectLoop() {
  RemoteWriteEncoder encoder(options_.max_samples_per_send, options_.external_labels);
  std::vector<RemoteWriteRequest> requests;
  std::optional<RemoteWriteBatch> previous;
  absl::Time next = absl::Now() + options_.interval;
  while (true) {
    {
      absl::MutexLock lock(&mu_);
      while (!collector_stop_ && absl::Now() < next) wake_.WaitWithDeadline(&mu_, next);
      if (collector_stop_) {
        if (!end_series_ || !previous) return;
        requests.clear();
        encoder.EncodeAllStale(*previous, WallMillis(), &requests);
        for (RemoteWriteRequest& r : requests) {
          queued_samples_ += r.samples;
          queue_.push_back(std::move(r));
        }
        TrimLocked();
        wake_.SignalAll();
        return;
      }
    }
    // Ticks keep their phase; after a stall the missed ones are skipped.
    const absl::Time now = absl::Now();
    while (next <= now) next += options_.interval;
    RemoteWriteBatch batch = collect_();
    requests.clear();
    const size_t skipped_before = encoder.skipped();
    const int64_t t_ms = WallMillis();
    encoder.Encode(batch, t_ms, &requests);
    if (previous) encoder.EncodeStale(*previous, t_ms, &requests);
    // Kept for the next collection's stale markers (the keys of its
    // families stay valid: each snapshot owns the arena they point into).
    previous = std::move(batch);
    absl::MutexLock lock(&mu_);
    stats_.samples_invalid += encoder.skipped() - skipped_before;
    for (RemoteWriteRequest& r : requests) {
      queued_samples_ += r.samples;
      queue_.push_back(std::move(r));
    }
    TrimLocked();
    wake_.SignalAll();
  }
}

void RemoteWriter::SendLoop() {
  std::vector<std::pair<std::string, std::string>> headers = {
      {"Content-Encoding", "snappy"},
      {"X-Prometheus-Remote-Write-Version", "0.1.0"},
  };
  headers.insert(headers.end(), options_.headers.begin(), options_.headers.end());
  Backoff backoff(options_.backoff_min, options_.backoff_max);
  while (true) {
    RemoteWriteRequest request;
    absl::Time deadline;
    {
      absl::MutexLock lock(&mu_);
      while (true) {
        const absl::Time now = absl::Now();
        if (stop_.Finished(queue_.empty(), now)) {
          stats_.samples_dropped += queued_samples_;
          queued_samples_ = 0;
          queue_.clear();
          return;
        }
        if (!queue_.empty() && backoff.Due(now)) break;
        wake_.WaitWithDeadline(&mu_,
                               stop_.Until(queue_.empty() ? absl::InfiniteFuture() : backoff.at()));
      }
      request = std::move(queue_.front());
      queue_.pop_front();
      queued_samples_ -= request.samples;
      inflight_samples_ = request.samples;
      deadline = absl::Now() + options_.timeout;
    }
    std::string message =
        PostHead(endpoint_, "application/x-protobuf", request.body.size(), headers);
    message.append(request.body);
    const PostResult result = HttpPost(endpoint_, message, deadline, stop_.cut());

    absl::MutexLock lock(&mu_);
    inflight_samples_ = 0;
    const bool ok = result.status >= 200 && result.status < 300;
    if (ok) {
      stats_.samples_sent += request.samples;
      stats_.requests_sent += 1;
      stats_.bytes_sent += request.body.size();
      stats_.last_send_unix_s = static_cast<double>(WallMillis()) / 1000;
      backoff.Succeeded();
      continue;
    }
    stats_.last_error =
        result.status != 0 ? absl::StrCat("HTTP status ", result.status) : result.error;
    stats_.samples_failed += request.samples;
    stats_.requests_failed += 1;
    if (Retryable(result)) {
      queued_samples_ += request.samples;
      queue_.push_front(std::move(request));
      TrimLocked();
      backoff.Failed(absl::Now());
    } else {
      stats_.samples_dropped += request.samples;
      Log(LogLevel::kWarn, "remote_write: the receiver refused a request; it is dropped",
          {{"url", endpoint_.Redacted()}, {"error", stats_.last_error}});
    }
  }
}

RemoteWriteStats RemoteWriter::stats() const {
  absl::MutexLock lock(&mu_);
  RemoteWriteStats s = stats_;
  s.queued_samples = queued_samples_ + inflight_samples_;
  return s;
}

namespace {

#define NOVAPULSE_REMOTE_WRITE_METRICS(M)                                                         \
  M(kSamples, "novapulse_remote_write_samples_total",                                             \
    "Samples pushed with remote write, by result: sent (accepted), failed (at each failed "       \
    "attempt), dropped (queue full, refused by the receiver, or left at shutdown), invalid "      \
    "(left out: no __name__, or a label name twice).",                                            \
    MetricType::kComputedCounter, {"result"}, {})                                                 \
  M(kRequests, "novapulse_remote_write_requests_total",                                           \
    "Remote write requests, by result: sent (2xx) or failed (each failed attempt).",              \
    MetricType::kComputedCounter, {"result"}, {})                                                 \
  M(kBytes, "novapulse_remote_write_bytes_total",                                                 \
    "Compressed bytes of the remote write requests the receiver accepted.",                       \
    MetricType::kComputedCounter, {}, {})                                                         \
  M(kQueued, "novapulse_remote_write_queue_samples",                                              \
    "Samples waiting to be pushed, a request in flight included.", MetricType::kComputed, {}, {}) \
  M(kLastSend, "novapulse_remote_write_last_send_timestamp_seconds",                              \
    "Wall time of the last request the receiver accepted; 0 before the first.",                   \
    MetricType::kComputed, {}, {})

enum RemoteWriteMetric : size_t { NOVAPULSE_REMOTE_WRITE_METRICS(NOVAPULSE_METRIC_ID) };

const std::vector<MetricDef>& RemoteWriteMetricDefs() {
  static const std::vector<MetricDef> kDefs = {
      NOVAPULSE_REMOTE_WRITE_METRICS(NOVAPULSE_METRIC_DEF)};
  return kDefs;
}

}  // namespace

void RemoteWriter::CollectMetrics(MetricFamilies* out) {
  const RemoteWriteStats s = stats();
  const std::vector<MetricDef>& defs = RemoteWriteMetricDefs();
  FamilySnapshot& samples = out->Start(defs[kSamples]);
  out->Add(samples, {"dropped"}, static_cast<double>(s.samples_dropped));
  out->Add(samples, {"failed"}, static_cast<double>(s.samples_failed));
  out->Add(samples, {"invalid"}, static_cast<double>(s.samples_invalid));
  out->Add(samples, {"sent"}, static_cast<double>(s.samples_sent));
  FamilySnapshot& requests = out->Start(defs[kRequests]);
  out->Add(requests, {"failed"}, static_cast<double>(s.requests_failed));
  out->Add(requests, {"sent"}, static_cast<double>(s.requests_sent));
  out->AddSingle(defs[kBytes], static_cast<double>(s.bytes_sent));
  out->AddSingle(defs[kQueued], static_cast<double>(s.queued_samples));
  out->AddSingle(defs[kLastSend], s.last_send_unix_s);
}

}  // namespace novapulse
