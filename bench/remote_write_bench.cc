// remote_write_bench: what pushing 100 000 series with Prometheus remote
// write costs novapulse, per collection (the writer's thread; the default
// interval is 15 s).
//
//   BM_Encode       one collection into snappy-compressed WriteRequests of
//                   max_samples_per_send (10 000) samples: samples/s, and
//                   compressed bytes per sample
//   BM_EncodeAndPost  the same, then every request POSTed over loopback to a
//                   receiver in this process that reads it and answers 204
//                   (the client's side of the exchange; a real receiver's
//                   ingestion is its own cost)
// The series are a counter family shaped like http_requests_total (method,
// route, status) plus a 10-bucket histogram on a tenth of them, so a
// collection is 100 000 counter + 10 000 x 13 histogram samples.
//
//   build/remote_write_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "aggregators/metric_store.h"
#include "benchmark/benchmark.h"
#include "sinks/http_post.h"
#include "sinks/remote_write.h"

namespace {

using novapulse::MetricDef;
using novapulse::MetricStore;
using novapulse::MetricType;
using novapulse::RemoteWriteBatch;
using novapulse::RemoteWriteEncoder;
using novapulse::RemoteWriteRequest;

constexpr int kSeries = 100000;

MetricStore& Store() {
  static MetricStore* store = [] {
    auto* s = new MetricStore(
        {
            MetricDef{.name = "http_requests_total",
                      .help = "Requests.",
                      .labels = {"method", "route", "status"}},
            MetricDef{.name = "http_request_duration_seconds",
                      .help = "Latency.",
                      .type = MetricType::kHistogram,
                      .labels = {"method", "route"},
                      .buckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10}},
            MetricDef{.name = "overflow_total", .labels = {"metric"}},
        },
        1, 1'000'000);
    novapulse::ShardWriter w(s, 0, 2);
    std::string key;
    static constexpr const char* kStatus[] = {"200", "201", "404", "500"};
    static constexpr const char* kMethod[] = {"GET", "POST", "PUT", "DELETE", "PATCH"};
    for (int i = 0; i < kSeries; ++i) {
      const std::string route = absl::StrCat("/api/gifts/route", i / 20, "/:id");
      novapulse::BuildKey(&key, {kMethod[i % 5], route, kStatus[(i / 5) % 4]});
      w.Inc(0, w.Resolve(0, key), 1000 + static_cast<uint64_t>(i) * 7);
      if (i % 10 == 0) {
        novapulse::BuildKey(&key, {kMethod[i % 5], absl::StrCat(route, "/", i)});
        w.Observe(1, w.Resolve(1, key), 0.001 * (i % 3000));
      }
    }
    return s;
  }();
  return *store;
}

RemoteWriteBatch Batch() {
  RemoteWriteBatch batch;
  batch.families.Append(Store().Snapshot([](size_t, MetricStore::AddSeries) {}));
  return batch;
}

void BM_Encode(benchmark::State& state) {
  const RemoteWriteBatch batch = Batch();
  RemoteWriteEncoder encoder(10000);
  std::vector<RemoteWriteRequest> requests;
  size_t samples = 0;
  size_t bytes = 0;
  for (auto _ : state) {
    requests.clear();
    encoder.Encode(batch, 1795651200000, &requests);
    for (const RemoteWriteRequest& r : requests) {
      samples += r.samples;
      bytes += r.body.size();
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(samples));
  state.counters["samples_per_collection"] =
      static_cast<double>(samples) / static_cast<double>(state.iterations());
  state.counters["bytes_per_sample"] = static_cast<double>(bytes) / static_cast<double>(samples);
}
BENCHMARK(BM_Encode)->Unit(benchmark::kMillisecond);

// What RemoteWriter adds per collection for the stale markers: the previous
// collection walked again and checked against what Encode wrote (here the
// same series, so no marker is written: the usual case).
void BM_EncodeStale(benchmark::State& state) {
  const RemoteWriteBatch batch = Batch();
  RemoteWriteEncoder encoder(10000);
  std::vector<RemoteWriteRequest> requests;
  encoder.Encode(batch, 1795651200000, &requests);
  size_t markers = 0;
  for (auto _ : state) {
    requests.clear();
    encoder.EncodeStale(batch, 1795651200000, &requests);
    for (const RemoteWriteRequest& r : requests) markers += r.samples;
  }
  if (markers != 0) state.SkipWithError("stale markers for series still there");
}
BENCHMARK(BM_EncodeStale)->Unit(benchmark::kMillisecond);

// Reads each request whole and answers 204, one connection at a time.
class Sink {
 public:
  Sink() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd_, 64) != 0) {
      std::perror("remote_write_bench: receiver");
      std::exit(1);
    }
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] {
      std::string in;
      char buf[1 << 16];
      while (!stop_) {
        const int c = accept(fd_, nullptr, nullptr);
        if (c < 0) continue;
        in.clear();
        size_t need = std::string::npos;
        while (need == std::string::npos || in.size() < need) {
          const ssize_t n = recv(c, buf, sizeof(buf), 0);
          if (n <= 0) break;
          in.append(buf, static_cast<size_t>(n));
          const size_t end = in.find("\r\n\r\n");
          if (need == std::string::npos && end != std::string::npos) {
            need = end + 4 + std::stoul(in.substr(in.find("Content-Length: ") + 16));
          }
        }
        static constexpr char kReply[] = "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n";
        send(c, kReply, sizeof(kReply) - 1, MSG_NOSIGNAL);
        close(c);
      }
    });
  }
  ~Sink() {
    stop_ = true;
    shutdown(fd_, SHUT_RDWR);
    thread_.join();
    close(fd_);
  }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

void BM_EncodeAndPost(benchmark::State& state) {
  const RemoteWriteBatch batch = Batch();
  Sink sink;
  const absl::StatusOr<novapulse::HttpEndpoint> endpoint =
      novapulse::ParseHttpUrl(absl::StrCat("http://127.0.0.1:", sink.port(), "/api/v1/write"));
  const std::atomic<int64_t> never{INT64_MAX};
  RemoteWriteEncoder encoder(10000);
  std::vector<RemoteWriteRequest> requests;
  size_t samples = 0;
  for (auto _ : state) {
    requests.clear();
    encoder.Encode(batch, 1795651200000, &requests);
    for (const RemoteWriteRequest& r : requests) {
      std::string message = novapulse::PostHead(*endpoint, "application/x-protobuf", r.body.size(),
                                                {{"Content-Encoding", "snappy"}});
      message.append(r.body);
      const novapulse::PostResult result =
          novapulse::HttpPost(*endpoint, message, absl::Now() + absl::Seconds(10), &never);
      if (result.status != 204) state.SkipWithError("post failed");
      samples += r.samples;
    }
  }
  state.SetItemsProcessed(static_cast<int64_t>(samples));
}
BENCHMARK(BM_EncodeAndPost)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
