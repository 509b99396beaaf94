#include "sinks/remote_write.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <snappy.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <bit>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "aggregators/metric_source.h"
#include "aggregators/metric_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "simdjson.h"
#include "sinks/exposition.h"
#include "tests/pipeline/test_process.h"
#include "tests/sinks/prometheus_process.h"
#include "tests/sinks/prometheus_text.h"

namespace novapulse {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;

// --- A reader of the protobuf the encoder writes, independent of it --------

struct DecodedSeries {
  std::map<std::string, std::string> labels;
  double value = 0;
  int64_t t_ms = 0;
};

class Reader {
 public:
  explicit Reader(std::string_view bytes) : s_(bytes) {}
  bool done() const { return s_.empty(); }
  bool ok() const { return ok_; }
  uint64_t Varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (s_.empty()) break;
      const auto b = static_cast<uint8_t>(s_.front());
      s_.remove_prefix(1);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return v;
    }
    ok_ = false;
    return 0;
  }
  std::string_view Bytes() {
    const uint64_t n = Varint();
    if (n > s_.size()) {
      ok_ = false;
      return {};
    }
    std::string_view out = s_.substr(0, n);
    s_.remove_prefix(n);
    return out;
  }
  uint64_t Fixed64() {
    uint64_t v = 0;
    if (s_.size() < 8) {
      ok_ = false;
      return 0;
    }
    for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(s_[i])) << (8 * i);
    s_.remove_prefix(8);
    return v;
  }

 private:
  std::string_view s_;
  bool ok_ = true;
};

// The series of one snappy-compressed WriteRequest, labels in the order
// written (checked sorted by the caller).
std::vector<std::pair<std::vector<std::string>, DecodedSeries>> Decode(const std::string& body) {
  std::string raw;
  EXPECT_TRUE(snappy::Uncompress(body.data(), body.size(), &raw));
  std::vector<std::pair<std::vector<std::string>, DecodedSeries>> out;
  Reader request(raw);
  while (!request.done() && request.ok()) {
    EXPECT_EQ(request.Varint(), (1u << 3) | 2) << "WriteRequest.timeseries";
    Reader ts(request.Bytes());
    auto& [order, series] = out.emplace_back();
    while (!ts.done() && ts.ok()) {
      const uint64_t tag = ts.Varint();
      Reader inner(ts.Bytes());
      if (tag == ((1u << 3) | 2)) {  // Label
        EXPECT_EQ(inner.Varint(), (1u << 3) | 2);
        const std::string name(inner.Bytes());
        EXPECT_EQ(inner.Varint(), (2u << 3) | 2);
        series.labels[name] = std::string(inner.Bytes());
        order.push_back(name);
      } else {  // Sample
        EXPECT_EQ(tag, (2u << 3) | 2);
        EXPECT_EQ(inner.Varint(), (1u << 3) | 1);
        series.value = std::bit_cast<double>(inner.Fixed64());
        EXPECT_EQ(inner.Varint(), (2u << 3) | 0);
        series.t_ms = static_cast<int64_t>(inner.Varint());
      }
      EXPECT_TRUE(inner.ok() && inner.done());
    }
    EXPECT_TRUE(ts.ok());
  }
  EXPECT_TRUE(request.ok());
  return out;
}

// A store with a counter, a gauge and a histogram, some series of each.
class Families {
 public:
  Families()
      : store_(
            {
                MetricDef{.name = "rw_requests_total",
                          .help = "Requests.",
                          .type = MetricType::kCounter,
                          .labels = {"route", "status"}},
                MetricDef{.name = "rw_queued", .help = "Queued.", .type = MetricType::kGauge},
                MetricDef{.name = "rw_latency_seconds",
                          .help = "Latency.",
                          .type = MetricType::kHistogram,
                          .labels = {"route"},
                          .buckets = {0.1, 1}},
                MetricDef{.name = "rw_overflow_total", .labels = {"metric"}},
            },
            /*num_shards=*/1, /*series_limit=*/1000) {
    ShardWriter w(&store_, 0, /*overflow_metric=*/3);
    std::string key;
    for (int i = 0; i < series_per_route_; ++i) {
      BuildKey(&key, {absl::StrCat("/r", i), i % 2 == 0 ? "200" : "500"});
      w.Inc(0, w.Resolve(0, key), static_cast<uint64_t>(10 + i));
      BuildKey(&key, {absl::StrCat("/r", i)});
      const uint32_t h = w.Resolve(2, key);
      w.Observe(2, h, 0.05);
      w.Observe(2, h, 0.5 * i);
    }
    // A label value left empty: absent, as Prometheus stores a scrape.
    BuildKey(&key, {"", "204"});
    w.Inc(0, w.Resolve(0, key), 3);
    w.GaugeAdd(1, w.Resolve(1, ""), 7);
  }

  RemoteWriteBatch Batch() const {
    RemoteWriteBatch batch;
    batch.families.Append(store_.Snapshot([](size_t, MetricStore::AddSeries) {}));
    batch.rule_series = {{{{"__name__", "rw:requests:rate5m"}, {"route", "/r1"}}, 0.25}};
    return batch;
  }

 private:
  static constexpr int series_per_route_ = 5;
  MetricStore store_;
};

// Every sample of the batch as /metrics shows it, keyed by SeriesKey with
// empty labels left out (as Prometheus stores a scrape), rule outputs
// included.
std::map<std::string, double> ExpositionSeries(const RemoteWriteBatch& batch) {
  const testing::PromText text =
      testing::ParsePromText(RenderPrometheusText(batch.families.families()));
  std::map<std::string, double> series;
  for (const testing::PromFamily& f : text.families) {
    for (const testing::PromSample& s : f.samples) {
      testing::Labels labels;
      for (auto l : s.labels) {
        if (l.second.empty()) continue;
        // Prometheus stores le as its OpenMetrics scrape spells it: "1.0".
        if (l.first == "le" && l.second.find_first_of(".eInf") == std::string::npos) {
          l.second += ".0";
        }
        labels.push_back(l);
      }
      series[testing::SeriesKey(s.name, labels)] = s.value;
    }
  }
  for (const auto& [labels, value] : batch.rule_series) {
    testing::Labels rest;
    std::string name;
    for (const promql::Label& l : labels) {
      if (l.name == "__name__") {
        name = l.value;
      } else {
        rest.emplace_back(l.name, l.value);
      }
    }
    series[testing::SeriesKey(name, rest)] = value;
  }
  return series;
}

TEST(RemoteWriteEncoder, WritesEverySeriesOfTheTextWithSortedLabels) {
  const Families families;
  const RemoteWriteBatch batch = families.Batch();
  std::vector<RemoteWriteRequest> requests;
  RemoteWriteEncoder(/*max_samples_per_send=*/1000).Encode(batch, 1795651200123, &requests);
  ASSERT_EQ(requests.size(), 1u);

  // What /metrics says, as series keys, against what was encoded.
  const std::map<std::string, double> want = ExpositionSeries(batch);

  std::map<std::string, double> got;
  for (const auto& [order, series] : Decode(requests[0].body)) {
    EXPECT_TRUE(std::is_sorted(order.begin(), order.end())) << ::testing::PrintToString(order);
    EXPECT_EQ(series.t_ms, 1795651200123);
    testing::Labels labels;
    std::string name;
    for (const auto& [k, v] : series.labels) {
      EXPECT_FALSE(v.empty()) << k;
      if (k == "__name__") {
        name = v;
      } else {
        labels.emplace_back(k, v);
      }
    }
    got[testing::SeriesKey(name, labels)] = series.value;
  }
  EXPECT_EQ(got, want);
  EXPECT_EQ(requests[0].samples, want.size());
  EXPECT_EQ(got.at(testing::SeriesKey("rw_requests_total", {{"status", "204"}})), 3);
  EXPECT_EQ(
      got.at(testing::SeriesKey("rw_latency_seconds_bucket", {{"le", "+Inf"}, {"route", "/r3"}})),
      2);
}

TEST(RemoteWriteEncoder, LeavesOutAndCountsSeriesNoReceiverTakes) {
  RemoteWriteBatch batch;
  batch.rule_series = {
      {{{"route", "/a"}}, 1},                                      // no __name__
      {{{"__name__", "x"}, {"route", "/a"}, {"route", "/b"}}, 2},  // route twice
      {{{"__name__", "ok"}, {"route", "/a"}}, 3},
  };
  RemoteWriteEncoder encoder(1000);
  std::vector<RemoteWriteRequest> requests;
  encoder.Encode(batch, 1, &requests);
  ASSERT_EQ(requests.size(), 1u);
  const auto decoded = Decode(requests[0].body);
  ASSERT_EQ(decoded.size(), 1u);
  EXPECT_EQ(decoded[0].second.labels.at("__name__"), "ok");
  EXPECT_EQ(decoded[0].second.value, 3);
  EXPECT_EQ(encoder.skipped(), 2u);
}

// External labels go on every series that has no label of the name; a
// series' own label keeps its value.
TEST(RemoteWriteEncoder, AddsExternalLabelsASeriesDoesNotHave) {
  RemoteWriteBatch batch;
  batch.rule_series = {
      {{{"__name__", "a"}, {"route", "/a"}}, 1},
      {{{"__name__", "b"}, {"cluster", "own"}}, 2},
  };
  RemoteWriteEncoder encoder(1000, {{"cluster", "eu1"}, {"zone", "z"}});
  std::vector<RemoteWriteRequest> requests;
  encoder.Encode(batch, 1, &requests);
  ASSERT_EQ(requests.size(), 1u);
  const auto decoded = Decode(requests[0].body);
  ASSERT_EQ(decoded.size(), 2u);
  EXPECT_EQ(decoded[0].second.labels,
            (std::map<std::string, std::string>{
                {"__name__", "a"}, {"cluster", "eu1"}, {"route", "/a"}, {"zone", "z"}}));
  EXPECT_EQ(decoded[1].second.labels, (std::map<std::string, std::string>{
                                          {"__name__", "b"}, {"cluster", "own"}, {"zone", "z"}}));
}

// A series of the previous collection that this one lacks gets one stale
// marker (StaleNaN) at this collection's time; one still there, or one a
// receiver would not take, gets none.
TEST(RemoteWriteEncoder, MarksSeriesThatLeftTheCollectionStale) {
  const Families families;
  RemoteWriteBatch before = families.Batch();
  before.rule_series.push_back({{{"__name__", "rw:gone"}, {"route", "/g"}}, 5});
  before.rule_series.push_back({{{"route", "/nameless"}}, 6});  // never taken
  RemoteWriteBatch after;
  after.rule_series = {{{{"__name__", "rw:requests:rate5m"}, {"route", "/r1"}}, 0.5}};

  RemoteWriteEncoder encoder(1000);
  std::vector<RemoteWriteRequest> first;
  encoder.Encode(before, 1000, &first);
  ASSERT_EQ(first.size(), 1u);
  const size_t samples_before = first[0].samples;
  EXPECT_EQ(encoder.skipped(), 1u);

  std::vector<RemoteWriteRequest> requests;
  encoder.Encode(after, 2000, &requests);
  encoder.EncodeStale(before, 2000, &requests);
  EXPECT_EQ(encoder.skipped(), 1u) << "the nameless series is not counted again";
  std::map<std::string, DecodedSeries> by_series;
  size_t samples = 0;
  for (const RemoteWriteRequest& r : requests) {
    for (const auto& [order, series] : Decode(r.body)) {
      std::string key;
      for (const auto& [name, value] : series.labels) absl::StrAppend(&key, name, "=", value, ",");
      EXPECT_TRUE(by_series.emplace(key, series).second) << "twice: " << key;
      ++samples;
    }
  }
  // Every sample of `before` but the one still there is marked stale once.
  EXPECT_EQ(samples, samples_before);
  size_t stale = 0;
  for (const auto& [key, series] : by_series) {
    EXPECT_EQ(series.t_ms, 2000) << key;
    if (promql::IsStaleNaN(series.value)) ++stale;
  }
  EXPECT_EQ(stale, samples_before - 1);
  const DecodedSeries& kept = by_series.at("__name__=rw:requests:rate5m,route=/r1,");
  EXPECT_EQ(kept.value, 0.5);
  EXPECT_TRUE(promql::IsStaleNaN(by_series.at("__name__=rw:gone,route=/g,").value));
  EXPECT_TRUE(
      promql::IsStaleNaN(by_series.at("__name__=rw_requests_total,route=/r0,status=200,").value));

  // The next collection: nothing left to mark.
  std::vector<RemoteWriteRequest> again;
  encoder.Encode(after, 3000, &again);
  encoder.EncodeStale(after, 3000, &again);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].samples, 1u);
}

TEST(RemoteWriteEncoder, SplitsRequestsAtMaxSamplesPerSend) {
  const Families families;
  std::vector<RemoteWriteRequest> requests;
  RemoteWriteEncoder(/*max_samples_per_send=*/7).Encode(families.Batch(), 1, &requests);
  size_t total = 0;
  for (size_t i = 0; i < requests.size(); ++i) {
    EXPECT_EQ(Decode(requests[i].body).size(), requests[i].samples);
    if (i + 1 < requests.size()) EXPECT_EQ(requests[i].samples, 7u);
    EXPECT_LE(requests[i].samples, 7u);
    total += requests[i].samples;
  }
  std::vector<RemoteWriteRequest> one;
  RemoteWriteEncoder(1000).Encode(families.Batch(), 1, &one);
  EXPECT_EQ(total, one[0].samples);
  EXPECT_EQ(requests.size(), (total + 6) / 7);
  EXPECT_GE(requests.size(), 4u);
}

// --- A receiver that answers as told, for the failures Prometheus cannot
// be made to give on cue ----------------------------------------------------

class ScriptedReceiver {
 public:
  // `answer(n)` is the status of the n-th request (from 0).
  explicit ScriptedReceiver(std::function<int(int)> answer) : answer_(std::move(answer)) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(listen(fd_, 64), 0);
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Loop(); });
  }
  ~ScriptedReceiver() {
    stop_ = true;
    shutdown(fd_, SHUT_RDWR);
    thread_.join();
    close(fd_);
  }
  int port() const { return port_; }
  int requests() const { return requests_.load(); }
  // Samples in the requests answered 2xx, decoded.
  size_t accepted_samples() const { return accepted_.load(); }
  // The request line and headers of the last request.
  std::string last_head() const {
    std::lock_guard<std::mutex> lock(mu_);
    return last_head_;
  }

 private:
  void Loop() {
    while (!stop_) {
      const int c = accept(fd_, nullptr, nullptr);
      if (c < 0) continue;
      std::string in;
      char buf[65536];
      size_t need = std::string::npos;
      while (need == std::string::npos || in.size() < need) {
        const ssize_t n = recv(c, buf, sizeof(buf), 0);
        if (n <= 0) break;
        in.append(buf, static_cast<size_t>(n));
        const size_t end = in.find("\r\n\r\n");
        if (need == std::string::npos && end != std::string::npos) {
          const size_t cl = in.find("Content-Length: ");
          need = end + 4 + std::stoul(in.substr(cl + 16));
        }
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        last_head_ = in.substr(0, in.find("\r\n\r\n") + 2);
      }
      const int status = answer_(requests_.fetch_add(1));
      if (status / 100 == 2 && need != std::string::npos) {
        accepted_ += Decode(in.substr(in.find("\r\n\r\n") + 4)).size();
      }
      const std::string reply =
          absl::StrCat("HTTP/1.1 ", status, " X\r\nContent-Length: 0\r\n\r\n");
      send(c, reply.data(), reply.size(), MSG_NOSIGNAL);
      close(c);
    }
  }

  std::function<int(int)> answer_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::atomic<size_t> accepted_{0};
  mutable std::mutex mu_;
  std::string last_head_;  // guarded by mu_
  std::thread thread_;
};

bool Eventually(const std::function<bool()>& condition, std::chrono::seconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return condition();
}

// Starts a writer of `families` with `options`, waits until a request is
// accepted, and stops it (flushing for up to 5 s).
std::unique_ptr<RemoteWriter> PushUntilSent(const RemoteWriteOptions& options,
                                            const Families& families) {
  absl::StatusOr<std::unique_ptr<RemoteWriter>> writer =
      RemoteWriter::Start(options, [&families] { return families.Batch(); });
  EXPECT_TRUE(writer.ok()) << writer.status();
  if (!writer.ok()) return nullptr;
  EXPECT_TRUE(
      Eventually([&] { return (*writer)->stats().samples_sent > 0; }, std::chrono::seconds(30)));
  (*writer)->Shutdown(absl::Seconds(5));
  return *std::move(writer);
}

TEST(RemoteWriter, RetriesFailedRequestsWithBackoffAndDeliversThemInOrder) {
  const Families families;
  // 503, 503, 429, then 204 for good.
  ScriptedReceiver receiver([](int n) { return n < 3 ? (n == 2 ? 429 : 503) : 204; });
  RemoteWriteOptions options;
  options.url = absl::StrCat("http://127.0.0.1:", receiver.port(), "/api/v1/write");
  options.interval = absl::Milliseconds(100);
  options.backoff_min = absl::Milliseconds(10);
  options.backoff_max = absl::Milliseconds(50);
  std::atomic<int> collections{0};
  absl::StatusOr<std::unique_ptr<RemoteWriter>> writer = RemoteWriter::Start(options, [&] {
    ++collections;
    return families.Batch();
  });
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE(
      Eventually([&] { return (*writer)->stats().samples_sent > 0; }, std::chrono::seconds(30)));
  (*writer)->Shutdown(absl::Seconds(5));
  const RemoteWriteStats s = (*writer)->stats();
  EXPECT_EQ(s.requests_failed, 3u);
  EXPECT_EQ(s.samples_failed, 3 * s.samples_sent / s.requests_sent);
  EXPECT_EQ(s.samples_dropped, 0u);
  EXPECT_EQ(s.queued_samples, 0u);
  EXPECT_EQ(receiver.accepted_samples(), s.samples_sent);
  EXPECT_EQ(s.last_error, "HTTP status 429");
  EXPECT_GT(s.last_send_unix_s, 0);
}

TEST(RemoteWriter, DropsARequestTheReceiverRefusesAndCountsIt) {
  const Families families;
  ScriptedReceiver receiver([](int n) { return n == 0 ? 400 : 200; });
  RemoteWriteOptions options;
  options.url = absl::StrCat("http://127.0.0.1:", receiver.port(), "/api/v1/write");
  options.interval = absl::Milliseconds(100);
  const std::unique_ptr<RemoteWriter> writer = PushUntilSent(options, families);
  ASSERT_NE(writer, nullptr);
  const RemoteWriteStats s = writer->stats();
  EXPECT_EQ(s.requests_failed, 1u);
  EXPECT_EQ(s.samples_dropped, s.samples_failed);  // the refused one, never retried
  EXPECT_GT(s.samples_dropped, 0u);
}

TEST(RemoteWriter, ABoundedQueueDropsTheOldestWhileTheReceiverIsDown) {
  const Families families;
  std::vector<RemoteWriteRequest> one;
  RemoteWriteEncoder(1000).Encode(families.Batch(), 1, &one);
  const size_t per_collection = one[0].samples;

  std::atomic<bool> up{false};
  ScriptedReceiver receiver([&](int) { return up.load() ? 204 : 503; });
  RemoteWriteOptions options;
  options.url = absl::StrCat("http://127.0.0.1:", receiver.port(), "/api/v1/write");
  options.interval = absl::Milliseconds(20);
  options.max_samples_per_send = per_collection;
  options.queue_samples = 3 * per_collection;
  options.backoff_min = absl::Milliseconds(5);
  options.backoff_max = absl::Milliseconds(20);
  absl::StatusOr<std::unique_ptr<RemoteWriter>> writer =
      RemoteWriter::Start(options, [&] { return families.Batch(); });
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE(Eventually([&] { return (*writer)->stats().samples_dropped >= 5 * per_collection; },
                         std::chrono::seconds(30)));
  EXPECT_LE((*writer)->stats().queued_samples, 3 * per_collection + per_collection);
  up = true;
  ASSERT_TRUE(Eventually([&] { return (*writer)->stats().samples_sent >= 3 * per_collection; },
                         std::chrono::seconds(30)));
  (*writer)->Shutdown(absl::Seconds(5));
  const RemoteWriteStats s = (*writer)->stats();
  EXPECT_EQ(receiver.accepted_samples(), s.samples_sent);
  EXPECT_EQ(s.queued_samples, 0u);
}

TEST(RemoteWriter, SendsItsHeadersWithEveryRequest) {
  const Families families;
  ScriptedReceiver receiver([](int) { return 204; });
  RemoteWriteOptions options;
  options.url = absl::StrCat("http://127.0.0.1:", receiver.port(), "/api/v1/write");
  options.interval = absl::Milliseconds(50);
  options.headers = {{"X-Scope-OrgID", "tenant-1"}, {"Authorization", "Bearer tok"}};
  ASSERT_NE(PushUntilSent(options, families), nullptr);
  const std::string head = receiver.last_head();
  EXPECT_THAT(head, ::testing::HasSubstr("\r\nX-Scope-OrgID: tenant-1\r\n"));
  EXPECT_THAT(head, ::testing::HasSubstr("\r\nAuthorization: Bearer tok\r\n"));
  EXPECT_THAT(head, ::testing::HasSubstr("\r\nContent-Encoding: snappy\r\n"));
}

TEST(RemoteWriter, RefusesBadOptions) {
  auto start = [](RemoteWriteOptions o) {
    return RemoteWriter::Start(std::move(o), [] { return RemoteWriteBatch(); }).status();
  };
  EXPECT_THAT(std::string(start({.url = "https://x/api/v1/write"}).message()),
              ::testing::HasSubstr("https is not supported"));
  EXPECT_FALSE(start({.url = "http://x:1/w", .max_samples_per_send = 0}).ok());
  EXPECT_FALSE(start({.url = "http://x:1/w", .max_samples_per_send = 10, .queue_samples = 5}).ok());
  EXPECT_FALSE(start({.url = "http://x:1/w", .interval = absl::ZeroDuration()}).ok());
}

// --- Against a real Prometheus receiving remote writes ---------------------

class RemoteWriterPrometheus : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access(testing::kPrometheus, X_OK) != 0) GTEST_SKIP() << "prometheus not installed";
    prometheus_ = testing::RemoteWriteReceiver(dir_);
    ASSERT_TRUE(prometheus_->WaitReady(std::chrono::seconds(60)))
        << testing::ReadWholeFile(dir_.Path("prometheus.log"));
  }
  std::string WriteUrl() const {
    return absl::StrCat("http://127.0.0.1:", prometheus_->port(), "/api/v1/write");
  }

  testing::ScratchDir dir_;
  std::unique_ptr<testing::PrometheusProcess> prometheus_;
};

TEST_F(RemoteWriterPrometheus, WhatPrometheusStoresEqualsTheExposition) {
  const Families families;
  RemoteWriteOptions options;
  options.url = WriteUrl();
  options.interval = absl::Milliseconds(200);
  options.max_samples_per_send = 10;  // several requests per collection
  absl::StatusOr<std::unique_ptr<RemoteWriter>> writer =
      RemoteWriter::Start(options, [&] { return families.Batch(); });
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE(
      Eventually([&] { return (*writer)->stats().requests_sent >= 4; }, std::chrono::seconds(30)))
      << (*writer)->stats().last_error;
  (*writer)->Shutdown(absl::Seconds(5));
  EXPECT_EQ((*writer)->stats().samples_dropped, 0u) << (*writer)->stats().last_error;

  const RemoteWriteBatch batch = families.Batch();
  const std::map<std::string, double> want = ExpositionSeries(batch);

  const std::map<std::string, double> got = prometheus_->Series("{__name__=~\"rw.+\"}");
  EXPECT_EQ(got, want);
  EXPECT_GT(want.size(), 30u);
}

// Prometheus drops a series at once when the writer marks it stale: an
// instant query no longer returns it, where without the marker it would for
// the 5 minutes of lookback.
TEST_F(RemoteWriterPrometheus, ASeriesThatLeavesIsGoneFromPrometheusAtOnce) {
  std::atomic<bool> gone{false};
  RemoteWriteOptions options;
  options.url = WriteUrl();
  options.interval = absl::Milliseconds(200);
  absl::StatusOr<std::unique_ptr<RemoteWriter>> writer = RemoteWriter::Start(options, [&] {
    RemoteWriteBatch batch;
    batch.rule_series = {{{{"__name__", "rw_kept"}}, 1}};
    if (!gone.load()) batch.rule_series.push_back({{{"__name__", "rw_leaving"}}, 2});
    return batch;
  });
  ASSERT_TRUE(writer.ok()) << writer.status();
  const std::map<std::string, double> both = {{"rw_kept{}", 1}, {"rw_leaving{}", 2}};
  ASSERT_TRUE(Eventually([&] { return prometheus_->Series("{__name__=~\"rw.+\"}") == both; },
                         std::chrono::seconds(30)))
      << (*writer)->stats().last_error;
  gone.store(true);
  const std::map<std::string, double> kept = {{"rw_kept{}", 1}};
  EXPECT_TRUE(Eventually([&] { return prometheus_->Series("{__name__=~\"rw.+\"}") == kept; },
                         std::chrono::seconds(30)));
  (*writer)->Shutdown(absl::Seconds(5));
  EXPECT_EQ((*writer)->stats().samples_dropped, 0u) << (*writer)->stats().last_error;
}

// A writer that leaves for good (end_series) marks every series it pushed
// stale, as Prometheus does for a target that goes: they leave Prometheus's
// answers at once. One that stops for a restart leaves them in place.
TEST_F(RemoteWriterPrometheus, AWriterThatLeavesEndsItsSeries) {
  RemoteWriteOptions options;
  options.url = WriteUrl();
  options.interval = absl::Milliseconds(200);
  auto start = [&](const char* name) {
    return RemoteWriter::Start(options, [name] {
      RemoteWriteBatch batch;
      batch.rule_series = {{{{"__name__", name}}, 1}};
      return batch;
    });
  };
  absl::StatusOr<std::unique_ptr<RemoteWriter>> restarting = start("rw_restarting");
  absl::StatusOr<std::unique_ptr<RemoteWriter>> leaving = start("rw_leaving");
  ASSERT_TRUE(restarting.ok() && leaving.ok());
  const std::map<std::string, double> both = {{"rw_leaving{}", 1}, {"rw_restarting{}", 1}};
  ASSERT_TRUE(Eventually([&] { return prometheus_->Series("{__name__=~\"rw.+\"}") == both; },
                         std::chrono::seconds(30)))
      << (*leaving)->stats().last_error;
  (*restarting)->Shutdown(absl::Seconds(5));
  (*leaving)->Shutdown(absl::Seconds(5), /*end_series=*/true);
  EXPECT_EQ((*leaving)->stats().samples_dropped, 0u) << (*leaving)->stats().last_error;
  // Sent before Shutdown returned: Prometheus answers without it at once.
  const std::map<std::string, double> restarting_only = {{"rw_restarting{}", 1}};
  EXPECT_EQ(prometheus_->Series("{__name__=~\"rw.+\"}"), restarting_only);
}

TEST_F(RemoteWriterPrometheus, ExternalLabelsReachPrometheus) {
  RemoteWriteOptions options;
  options.url = WriteUrl();
  options.interval = absl::Milliseconds(200);
  options.external_labels = {{"cluster", "eu1"}};
  absl::StatusOr<std::unique_ptr<RemoteWriter>> writer = RemoteWriter::Start(options, [] {
    RemoteWriteBatch batch;
    batch.rule_series = {{{{"__name__", "rw_a"}}, 1},
                         {{{"__name__", "rw_b"}, {"cluster", "own"}}, 2}};
    return batch;
  });
  ASSERT_TRUE(writer.ok()) << writer.status();
  const std::map<std::string, double> want = {{"rw_a{cluster=\"eu1\"}", 1},
                                              {"rw_b{cluster=\"own\"}", 2}};
  EXPECT_TRUE(Eventually([&] { return prometheus_->Series("{__name__=~\"rw.+\"}") == want; },
                         std::chrono::seconds(30)))
      << (*writer)->stats().last_error;
  (*writer)->Shutdown(absl::Seconds(5));
}

}  // namespace
}  // namespace novapulse
