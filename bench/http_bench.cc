// http_bench: latency of /healthz and /metrics from novapulse's HttpServer
// while many clients hold connections open without finishing a request.
//
// Starts HttpServer in-process on 127.0.0.1 with a metrics handler that
// returns a fixed exposition text of --series lines (about 100 bytes each,
// the shape of http_requests_total), opens --idle connections that never
// send a byte and --trickle connections that send a request header one byte
// at a time (each gets a byte every --trickle-ms) and never finish it. A
// keeper thread holds them open: one the server closes is opened again at
// once, as a client that means it would (connecting without waiting, so a
// full listen queue does not hold it up). Then, one request at a time:
//   healthz  keep-alive       --healthz GETs over one kept-alive connection
//   metrics  keep-alive       --metrics GETs (Prometheus text) likewise
//   metrics  gzip keep-alive  --metrics GETs with Accept-Encoding: gzip
//   healthz  new connection   --fresh GETs, each on a connection of its own
//   metrics  new connection   --fresh / 4 GETs likewise
// and prints p50, p99 and max in ms, and how many requests failed (no
// response within --timeout s, which includes being refused). A phase stops
// early after --phase-limit s. Only the options every HttpServer version
// has are set, so the same file measures the server as it was before.
//
//   build/http_bench                      # 10 000 series, 1 000 idle, 50 trickling
//   build/http_bench --idle 0 --trickle 0 # the same without them
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/cli.h"
#include "bench/exposition_text.h"
#include "pipeline/http_server.h"

namespace {

constexpr std::string_view kUsage =
    R"(Usage: http_bench [OPTIONS]

Latency of /healthz and /metrics of an in-process HttpServer while idle and
trickling connections are held open.

  --series N       lines of exposition text /metrics returns (default 10000)
  --idle N         connections that never send a byte (default 1000)
  --trickle N      connections trickling a header a byte at a time (default 50)
  --trickle-ms MS  time between two bytes of one trickling connection (default 100)
  --healthz N      kept-alive /healthz requests (default 2000)
  --metrics N      kept-alive /metrics requests, plain and gzip each (default 500)
  --fresh N        /healthz requests on new connections (default 500; /metrics: N/4)
  --threads N      HttpOptions::num_threads (default 4)
  --timeout S      a request without a response after S seconds fails (default 10)
  --phase-limit S  a phase stops after S seconds (default 120)
)";

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

using novapulse::bench::ExpositionText;

// A blocking connection to 127.0.0.1:port; receives give up after `timeout`.
int Connect(int port, std::chrono::seconds timeout) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const timeval tv = {.tv_sec = static_cast<time_t>(timeout.count()), .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Sends `request` and reads one response (Content-Length framed); false on
// anything but a whole 200.
bool Exchange(int fd, const std::string& request) {
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    return false;
  }
  std::string raw;
  char buf[65536];
  size_t end;
  while ((end = raw.find("\r\n\r\n")) == std::string::npos) {
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return false;
    raw.append(buf, static_cast<size_t>(n));
  }
  if (!raw.starts_with("HTTP/1.1 200 ")) return false;
  size_t at = raw.find("\r\nContent-Length: ");
  if (at == std::string::npos) at = raw.find("\r\ncontent-length: ");
  size_t length = 0;
  if (at == std::string::npos || at > end) return false;
  const size_t from = at + 18;
  if (!absl::SimpleAtoi(raw.substr(from, raw.find("\r\n", from) - from), &length)) return false;
  while (raw.size() < end + 4 + length) {
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return false;
    raw.append(buf, static_cast<size_t>(n));
  }
  return true;
}

// Holds `idle` silent and `trickle` trickling connections open until stopped,
// opening again any the server closes.
class Keeper {
 public:
  Keeper(int port, int idle, int trickle, std::chrono::milliseconds interval)
      : port_(port), interval_(interval) {
    for (int i = 0; i < idle + trickle; ++i) {
      conns_.push_back({.fd = Open(), .trickle = i >= idle, .sent = 0});
    }
    thread_ = std::thread([this] { Run(); });
  }
  ~Keeper() {
    stop_ = true;
    thread_.join();
    for (const Conn& c : conns_) close(c.fd);
  }
  Keeper(const Keeper&) = delete;
  Keeper& operator=(const Keeper&) = delete;

  int64_t reopened() const { return reopened_.load(); }
  int64_t open_failures() const { return open_failures_.load(); }

 private:
  struct Conn {
    int fd;
    bool trickle;
    size_t sent;
  };

  // Connects without waiting: a server whose listen queue is full leaves
  // the connection pending (the kernel retries the SYN), still held.
  int Open() {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 ||
                    errno == EINPROGRESS)) {
      return fd;
    }
    if (fd >= 0) close(fd);
    ++open_failures_;
    return -1;
  }

  void Run() {
    static constexpr std::string_view kHead =
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    std::vector<pollfd> fds(conns_.size());
    Clock::time_point next_byte = Clock::now() + interval_;
    while (!stop_) {
      for (size_t i = 0; i < conns_.size(); ++i) {
        fds[i] = {.fd = conns_[i].fd, .events = POLLIN | POLLRDHUP, .revents = 0};
      }
      poll(fds.data(), fds.size(), 10);
      for (size_t i = 0; i < conns_.size(); ++i) {
        if (conns_[i].fd >= 0 && fds[i].revents == 0) continue;
        if (conns_[i].fd >= 0) close(conns_[i].fd);  // closed by the server
        conns_[i].fd = Open();
        conns_[i].sent = 0;
        ++reopened_;
      }
      if (Clock::now() < next_byte) continue;
      next_byte += interval_;
      for (Conn& c : conns_) {
        if (!c.trickle || c.fd < 0) continue;
        const char byte = c.sent < kHead.size() ? kHead[c.sent] : 'a';
        if (send(c.fd, &byte, 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1) ++c.sent;
      }
    }
  }

  const int port_;
  const std::chrono::milliseconds interval_;
  std::vector<Conn> conns_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> reopened_{0};
  std::atomic<int64_t> open_failures_{0};
  std::thread thread_;
};

struct Options {
  int port;
  std::chrono::seconds timeout;
  std::chrono::seconds phase_limit;
};

void Report(const char* what, std::vector<double> ms, int64_t asked, int64_t failed) {
  std::sort(ms.begin(), ms.end());
  auto at = [&ms](double p) {
    if (ms.empty()) return 0.0;
    const size_t rank = static_cast<size_t>(p / 100 * static_cast<double>(ms.size()) + 0.999999);
    return ms[std::clamp<size_t>(rank, 1, ms.size()) - 1];
  };
  std::printf("%-26s %5zu of %5lld ok  p50 %8.2f  p99 %8.2f  max %8.2f ms  failed %lld\n", what,
              ms.size(), static_cast<long long>(asked), at(50), at(99),
              ms.empty() ? 0.0 : ms.back(), static_cast<long long>(failed));
  std::fflush(stdout);
}

// `n` requests one after another; over one kept-alive connection, or a new
// connection each when `fresh`.
void Phase(const Options& o, const char* what, const std::string& path,
           const std::string& extra_headers, int64_t n, bool fresh) {
  const std::string request =
      absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: 127.0.0.1\r\n", extra_headers,
                   fresh ? "Connection: close\r\n" : "", "\r\n");
  std::vector<double> ms;
  ms.reserve(static_cast<size_t>(n));
  int64_t failed = 0;
  int64_t asked = 0;
  int fd = -1;
  const Clock::time_point stop = Clock::now() + o.phase_limit;
  for (; asked < n && Clock::now() < stop; ++asked) {
    const Clock::time_point start = Clock::now();
    if (fd < 0) fd = Connect(o.port, o.timeout);
    const bool ok = fd >= 0 && Exchange(fd, request);
    if (ok) {
      ms.push_back(Ms(Clock::now() - start));
    } else {
      ++failed;
    }
    if (!ok || fresh) {
      if (fd >= 0) close(fd);
      fd = -1;
    }
  }
  if (fd >= 0) close(fd);
  Report(what, std::move(ms), asked, failed);
}

}  // namespace

int main(int argc, char** argv) {
  novapulse::ArgParser args(argc, argv, kUsage);
  int64_t series = 10000, idle = 1000, trickle = 50, trickle_ms = 100, healthz = 2000,
          metrics = 500, fresh = 500, threads = 4, timeout = 10, phase_limit = 120;
  while (args.Next()) {
    if (args.Is("--series")) {
      series = args.Int(0, 10'000'000);
    } else if (args.Is("--idle")) {
      idle = args.Int(0, 100'000);
    } else if (args.Is("--trickle")) {
      trickle = args.Int(0, 100'000);
    } else if (args.Is("--trickle-ms")) {
      trickle_ms = args.Int(1, 60'000);
    } else if (args.Is("--healthz")) {
      healthz = args.Int(0, 10'000'000);
    } else if (args.Is("--metrics")) {
      metrics = args.Int(0, 10'000'000);
    } else if (args.Is("--fresh")) {
      fresh = args.Int(0, 10'000'000);
    } else if (args.Is("--threads")) {
      threads = args.Int(1, 64);
    } else if (args.Is("--timeout")) {
      timeout = args.Int(1, 3600);
    } else if (args.Is("--phase-limit")) {
      phase_limit = args.Int(1, 86400);
    } else {
      return args.UnknownFlag();
    }
    if (args.failed()) return args.exit_code();
  }
  if (args.help()) return 0;

  // Both ends of every connection are in this process.
  rlimit files{};
  getrlimit(RLIMIT_NOFILE, &files);
  files.rlim_cur = files.rlim_max;
  setrlimit(RLIMIT_NOFILE, &files);
  if (files.rlim_cur < static_cast<rlim_t>(2 * (idle + trickle) + 100)) {
    std::fprintf(stderr,
                 "http_bench: open file limit %llu is too low for %" PRId64 " connections\n",
                 static_cast<unsigned long long>(files.rlim_cur), idle + trickle);
    return 1;
  }

  const std::string text = ExpositionText(series);
  novapulse::HttpServer::Handlers handlers;
  handlers.metrics = [&text](bool) { return std::string(text); };  // a copy, as a render makes
  handlers.ready = [](std::string*) { return true; };
  novapulse::HttpOptions options;
  options.listen = "127.0.0.1:0";
  options.num_threads = static_cast<int>(threads);
  absl::StatusOr<std::unique_ptr<novapulse::HttpServer>> server =
      novapulse::HttpServer::Start(options, std::move(handlers));
  if (!server.ok()) {
    std::fprintf(stderr, "http_bench: %s\n", std::string(server.status().message()).c_str());
    return 1;
  }
  const Options o = {.port = (*server)->port(),
                     .timeout = std::chrono::seconds(timeout),
                     .phase_limit = std::chrono::seconds(phase_limit)};
  std::printf(
      "http_bench: %lld series (%.1f MB of text), %lld idle + %lld trickling connections (a byte "
      "every %lld ms), %lld workers\n",
      static_cast<long long>(series), static_cast<double>(text.size()) / 1e6,
      static_cast<long long>(idle), static_cast<long long>(trickle),
      static_cast<long long>(trickle_ms), static_cast<long long>(threads));
  std::fflush(stdout);

  const Clock::time_point start = Clock::now();
  {
    Keeper keeper(o.port, static_cast<int>(idle), static_cast<int>(trickle),
                  std::chrono::milliseconds(trickle_ms));
    Phase(o, "healthz  keep-alive", "/healthz", "", healthz, false);
    Phase(o, "metrics  keep-alive", "/metrics", "", metrics, false);
    Phase(o, "metrics  gzip keep-alive", "/metrics", "Accept-Encoding: gzip\r\n", metrics, false);
    Phase(o, "healthz  new connection", "/healthz", "", fresh, true);
    Phase(o, "metrics  new connection", "/metrics", "", fresh / 4, true);
    std::printf(
        "held connections: %lld opened again after the server closed them, %lld opens "
        "failed; %.1f s in all\n",
        static_cast<long long>(keeper.reopened()), static_cast<long long>(keeper.open_failures()),
        Ms(Clock::now() - start) / 1000);
  }
  const Clock::time_point stopping = Clock::now();
  server->reset();
  std::printf("server stopped in %.1f ms\n", Ms(Clock::now() - stopping));
  return 0;
}
