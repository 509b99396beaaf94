#include "sinks/alertmanager_client.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <simdjson.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace novapulse {
namespace {

using std::chrono::milliseconds;

constexpr int64_t kT0 = 1795651200LL * 1000;  // 2026-11-26T00:00:00Z, ms

Alert Firing(const std::string& name, int64_t fired_ms = kT0) {
  Alert a;
  a.labels = {{"alertname", name}, {"severity", "page"}};
  a.annotations = {{"summary", "x is high"}};
  a.state = AlertState::kFiring;
  a.value = 7;
  a.active_at_ms = fired_ms - 30'000;
  a.fired_at_ms = fired_ms;
  a.last_sent_ms = fired_ms;
  a.valid_until_ms = fired_ms + 240'000;
  return a;
}

struct Request {
  std::string request_line;
  std::string headers;  // as received
  std::string body;
};

// A one-connection-at-a-time HTTP server on 127.0.0.1 that records each
// request and answers with the next status of a script (then `fallback`),
// optionally holding its answers until Release().
class FakeAlertmanager {
 public:
  FakeAlertmanager() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd_, 16) != 0) {
      ADD_FAILURE() << "cannot listen on 127.0.0.1";
    }
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakeAlertmanager() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
      held_ = false;
    }
    cv_.notify_all();
    thread_.join();
    close(fd_);
  }

  std::string url() const { return absl::StrCat("http://127.0.0.1:", port_); }
  void Script(std::deque<int> statuses, int fallback = 200) {
    std::lock_guard<std::mutex> lock(mu_);
    script_ = std::move(statuses);
    fallback_ = fallback;
  }
  void Hold() {
    std::lock_guard<std::mutex> lock(mu_);
    held_ = true;
  }
  void Release() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      held_ = false;
    }
    cv_.notify_all();
  }
  // The requests received so far, once there are at least n (or after 10 s).
  std::vector<Request> WaitFor(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(10), [&] { return requests_.size() >= n; });
    return requests_;
  }

 private:
  void Serve() {
    while (true) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        if (stop_) return;
      }
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      const int conn = accept(fd_, nullptr, nullptr);
      if (conn < 0) continue;
      Handle(conn);
      close(conn);
    }
  }
  void Handle(int conn) {
    std::string raw;
    char buf[8192];
    size_t header_end = std::string::npos;
    size_t length = 0;
    while (true) {
      if (header_end == std::string::npos) {
        header_end = raw.find("\r\n\r\n");
        if (header_end != std::string::npos) {
          const size_t at = raw.find("Content-Length: ");
          if (at != std::string::npos && at < header_end) {
            const size_t eol = raw.find("\r\n", at);
            if (!absl::SimpleAtoi(raw.substr(at + 16, eol - at - 16), &length)) length = 0;
          }
        }
      }
      if (header_end != std::string::npos && raw.size() >= header_end + 4 + length) break;
      const ssize_t n = recv(conn, buf, sizeof(buf), 0);
      if (n <= 0) return;
      raw.append(buf, static_cast<size_t>(n));
    }
    Request r;
    const size_t first_eol = raw.find("\r\n");
    r.request_line = raw.substr(0, first_eol);
    r.headers = raw.substr(first_eol + 2, header_end + 2 - first_eol - 2);  // lines end in CRLF
    r.body = raw.substr(header_end + 4, length);
    int status = 0;
    {
      std::unique_lock<std::mutex> lock(mu_);
      requests_.push_back(std::move(r));
      cv_.notify_all();
      cv_.wait(lock, [&] { return !held_; });
      status = fallback_;
      if (!script_.empty()) {
        status = script_.front();
        script_.pop_front();
      }
    }
    const std::string reply =
        absl::StrCat("HTTP/1.1 ", status, " X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    send(conn, reply.data(), reply.size(), MSG_NOSIGNAL);
  }

  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Request> requests_;
  std::deque<int> script_;
  int fallback_ = 200;
  bool held_ = false;
  bool stop_ = false;
};

// alertname of each alert in each request body, in order.
std::vector<std::string> AlertNames(const std::vector<Request>& requests) {
  std::vector<std::string> names;
  simdjson::dom::parser parser;
  for (const Request& r : requests) {
    simdjson::dom::array alerts;
    if (parser.parse(simdjson::padded_string(r.body)).get(alerts) != simdjson::SUCCESS) {
      names.push_back("<not a JSON array: " + r.body + ">");
      continue;
    }
    for (simdjson::dom::element a : alerts) {
      std::string_view name;
      names.emplace_back(a["labels"]["alertname"].get(name) == simdjson::SUCCESS ? name : "?");
    }
  }
  return names;
}

// A port nothing listens on (bound, then closed).
int ClosedPort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) ADD_FAILURE() << "bind";
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

std::unique_ptr<AlertmanagerClient> StartClient(AlertmanagerClientOptions options) {
  absl::StatusOr<std::unique_ptr<AlertmanagerClient>> client =
      AlertmanagerClient::Start(std::move(options));
  EXPECT_TRUE(client.ok()) << client.status();
  return client.ok() ? std::move(*client) : nullptr;
}

// Polls `done` for up to 10 s.
template <typename F>
bool Eventually(F done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(milliseconds(5));
  }
  return true;
}

TEST(AlertmanagerAlertJson, FiringAlertInV2Form) {
  EXPECT_EQ(AlertmanagerAlertJson(Firing("XHigh"), {{"cluster", "eu"}, {"severity", "ignored"}},
                                  "http://novapulse:9464/graph"),
            R"({"labels":{"alertname":"XHigh","cluster":"eu","severity":"page"},)"
            R"("annotations":{"summary":"x is high"},"startsAt":"2026-11-26T00:00:00Z",)"
            R"("endsAt":"2026-11-26T00:04:00Z","generatorURL":"http://novapulse:9464/graph"})");
}

TEST(AlertmanagerAlertJson, ResolvedAlertEndsAtItsResolveTime) {
  Alert a = Firing("XHigh");
  a.state = AlertState::kInactive;
  a.resolved_at_ms = kT0 + 90'500;
  a.labels.push_back({"quote", "a\"b\n"});
  EXPECT_EQ(AlertmanagerAlertJson(a, {}, ""),
            R"({"labels":{"alertname":"XHigh","quote":"a\"b\n","severity":"page"},)"
            R"("annotations":{"summary":"x is high"},"startsAt":"2026-11-26T00:00:00Z",)"
            R"("endsAt":"2026-11-26T00:01:30.5Z"})");
}

TEST(AlertmanagerAlertJson, StartsAtActiveTimeWhenNeverFired) {
  Alert a = Firing("XHigh");
  a.fired_at_ms = 0;
  a.valid_until_ms = 0;
  EXPECT_EQ(AlertmanagerAlertJson(a, {}, ""),
            R"({"labels":{"alertname":"XHigh","severity":"page"},)"
            R"("annotations":{"summary":"x is high"},"startsAt":"2026-11-25T23:59:30Z"})");
}

TEST(AlertmanagerClient, RejectsBadOptions) {
  for (const std::string& url : {"https://am:9093", "am:9093", "http://:9093", "http://am:x",
                                 "http://am:70000", "http://am:9093/p?q=1", "http://am:"}) {
    AlertmanagerClientOptions options;
    options.urls = {url};
    absl::StatusOr<std::unique_ptr<AlertmanagerClient>> client = AlertmanagerClient::Start(options);
    EXPECT_FALSE(client.ok()) << url;
    if (!client.ok()) EXPECT_NE(client.status().message().find(url), std::string::npos);
  }
  AlertmanagerClientOptions options;
  options.urls = {"http://am:9093"};
  options.queue_capacity = 0;
  EXPECT_FALSE(AlertmanagerClient::Start(options).ok());
  options.queue_capacity = 1;
  options.backoff_min = absl::Seconds(2);
  options.backoff_max = absl::Seconds(1);
  EXPECT_FALSE(AlertmanagerClient::Start(options).ok());
}

TEST(AlertmanagerClient, PostsBatchesToEveryUrl) {
  FakeAlertmanager am1;
  FakeAlertmanager am2;
  AlertmanagerClientOptions options;
  options.urls = {am1.url(), am2.url() + "/prefix/"};
  options.max_batch = 2;
  std::unique_ptr<AlertmanagerClient> client = StartClient(options);
  ASSERT_NE(client, nullptr);
  client->Enqueue({Firing("A"), Firing("B"), Firing("C")});
  const std::vector<Request> r1 = am1.WaitFor(2);
  const std::vector<Request> r2 = am2.WaitFor(2);
  EXPECT_EQ(AlertNames(r1), (std::vector<std::string>{"A", "B", "C"}));
  EXPECT_EQ(AlertNames(r2), (std::vector<std::string>{"A", "B", "C"}));
  ASSERT_EQ(r1.size(), 2u);  // batches of at most 2
  EXPECT_EQ(r1[0].request_line, "POST /api/v2/alerts HTTP/1.1");
  EXPECT_EQ(r2[0].request_line, "POST /prefix/api/v2/alerts HTTP/1.1");
  EXPECT_NE(r1[0].headers.find("Content-Type: application/json\r\n"), std::string::npos);
  EXPECT_NE(r1[0].headers.find(absl::StrCat("Host: 127.0.0.1:", am1.url().substr(17))),
            std::string::npos)
      << r1[0].headers;
  ASSERT_TRUE(Eventually([&] {
    const AlertmanagerStats s = client->stats();
    return s.urls[0].sent == 3 && s.urls[1].sent == 3;
  }));
  const AlertmanagerStats stats = client->stats();
  ASSERT_EQ(stats.urls.size(), 2u);
  EXPECT_EQ(stats.urls[0].url, am1.url());
  EXPECT_EQ(stats.urls[0].sent, 3u);
  EXPECT_EQ(stats.urls[0].errors, 0u);
  EXPECT_EQ(stats.urls[0].queued, 0u);
  EXPECT_EQ(stats.dropped, 0u);
}

TEST(AlertmanagerClient, SendsBasicAuthFromTheUrl) {
  FakeAlertmanager am;
  AlertmanagerClientOptions options;
  options.urls = {"http://user:secret@" + am.url().substr(7)};
  std::unique_ptr<AlertmanagerClient> client = StartClient(options);
  ASSERT_NE(client, nullptr);
  client->Enqueue({Firing("A")});
  const std::vector<Request> r = am.WaitFor(1);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_NE(r[0].headers.find("Authorization: Basic dXNlcjpzZWNyZXQ=\r\n"), std::string::npos);
}

TEST(AlertmanagerClient, RetriesServerErrorsWithBackoffInOrder) {
  FakeAlertmanager am;
  am.Script({503, 500});
  AlertmanagerClientOptions options;
  options.urls = {am.url()};
  options.backoff_min = absl::Milliseconds(20);
  std::unique_ptr<AlertmanagerClient> client = StartClient(options);
  ASSERT_NE(client, nullptr);
  const auto start = std::chrono::steady_clock::now();
  client->Enqueue({Firing("A"), Firing("B")});
  const std::vector<Request> r = am.WaitFor(3);
  // 20 ms, then 40 ms of backoff between the three attempts.
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(60));
  EXPECT_EQ(AlertNames(r), (std::vector<std::string>{"A", "B", "A", "B", "A", "B"}));
  ASSERT_TRUE(Eventually([&] { return client->stats().urls[0].sent == 2; }));
  const AlertmanagerUrlStats s = client->stats().urls[0];
  EXPECT_EQ(s.errors, 4u);
  EXPECT_EQ(s.dropped, 0u);
  EXPECT_EQ(s.last_error, "HTTP status 500");
}

TEST(AlertmanagerClient, RejectedBatchIsDroppedNotRetried) {
  FakeAlertmanager am;
  am.Script({400});
  AlertmanagerClientOptions options;
  options.urls = {am.url()};
  std::unique_ptr<AlertmanagerClient> client = StartClient(options);
  ASSERT_NE(client, nullptr);
  client->Enqueue({Firing("Bad")});
  ASSERT_TRUE(Eventually([&] { return client->stats().urls[0].dropped == 1; }));
  client->Enqueue({Firing("Good")});
  EXPECT_EQ(AlertNames(am.WaitFor(2)), (std::vector<std::string>{"Bad", "Good"}));
  ASSERT_TRUE(Eventually([&] { return client->stats().urls[0].sent == 1; }));
  EXPECT_EQ(client->stats().urls[0].errors, 1u);
}

TEST(AlertmanagerClient, FullQueueDropsTheOldest) {
  FakeAlertmanager am;
  am.Hold();
  AlertmanagerClientOptions options;
  options.urls = {am.url()};
  options.queue_capacity = 3;
  options.max_batch = 1;
  std::unique_ptr<AlertmanagerClient> client = StartClient(options);
  ASSERT_NE(client, nullptr);
  client->Enqueue({Firing("A1")});
  ASSERT_EQ(am.WaitFor(1).size(), 1u);  // A1 in flight, held
  client->Enqueue({Firing("A2"), Firing("A3")});
  client->Enqueue({Firing("A4"), Firing("A5"), Firing("A6")});
  AlertmanagerUrlStats s = client->stats().urls[0];
  EXPECT_EQ(s.dropped, 2u);
  EXPECT_EQ(s.queued, 4u);  // three waiting, one in flight
  am.Release();
  EXPECT_EQ(AlertNames(am.WaitFor(4)), (std::vector<std::string>{"A1", "A4", "A5", "A6"}));
  ASSERT_TRUE(Eventually([&] { return client->stats().urls[0].sent == 4; }));
  EXPECT_EQ(client->stats().dropped, 2u);
}

TEST(AlertmanagerClient, EnqueueDoesNotBlockWhileAlertmanagerIsDown) {
  AlertmanagerClientOptions options;
  options.urls = {absl::StrCat("http://127.0.0.1:", ClosedPort())};
  options.queue_capacity = 100;
  options.backoff_min = absl::Milliseconds(10);
  options.backoff_max = absl::Milliseconds(50);
  std::unique_ptr<AlertmanagerClient> client = StartClient(options);
  ASSERT_NE(client, nullptr);
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 1000; ++i) client->Enqueue({Firing(absl::StrCat("A", i))});
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(500));
  ASSERT_TRUE(Eventually([&] { return client->stats().urls[0].errors >= 3; }));
  AlertmanagerUrlStats s = client->stats().urls[0];
  EXPECT_EQ(s.sent, 0u);
  // At most the queue and one batch taken out for sending are kept.
  EXPECT_GE(s.dropped, 1000u - options.queue_capacity - options.max_batch);
  EXPECT_NE(s.last_error.find("connect"), std::string::npos) << s.last_error;
  const auto stop = std::chrono::steady_clock::now();
  client->Shutdown(absl::Milliseconds(100));
  EXPECT_LT(std::chrono::steady_clock::now() - stop, milliseconds(1000));
  s = client->stats().urls[0];
  EXPECT_EQ(s.dropped, 1000u);  // all of them, in the end
  EXPECT_EQ(s.queued, 0u);
  client->Enqueue({Firing("Late")});
  EXPECT_EQ(client->stats().urls[0].dropped, 1001u);
}

TEST(AlertmanagerClient, ShutdownFlushesWhatIsQueued) {
  FakeAlertmanager am;
  AlertmanagerClientOptions options;
  options.urls = {am.url()};
  options.max_batch = 1;
  std::unique_ptr<AlertmanagerClient> client = StartClient(options);
  ASSERT_NE(client, nullptr);
  std::vector<Alert> alerts;
  alerts.reserve(20);
  for (int i = 0; i < 20; ++i) alerts.push_back(Firing(absl::StrCat("A", i)));
  client->Enqueue(alerts);
  client->Shutdown(absl::Seconds(10));
  EXPECT_EQ(client->stats().urls[0].sent, 20u);
  EXPECT_EQ(am.WaitFor(20).size(), 20u);
}

TEST(AlertmanagerClient, ShutdownCutsAPostInFlightAtTheDeadline) {
  FakeAlertmanager am;
  am.Hold();
  AlertmanagerClientOptions options;
  options.urls = {am.url()};
  options.timeout = absl::Seconds(30);
  std::unique_ptr<AlertmanagerClient> client = StartClient(options);
  ASSERT_NE(client, nullptr);
  client->Enqueue({Firing("A")});
  ASSERT_EQ(am.WaitFor(1).size(), 1u);
  const auto start = std::chrono::steady_clock::now();
  client->Shutdown(absl::Milliseconds(200));
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(2000));
  const AlertmanagerUrlStats s = client->stats().urls[0];
  EXPECT_EQ(s.sent, 0u);
  EXPECT_EQ(s.errors, 1u);
  EXPECT_EQ(s.dropped, 1u);
  am.Release();
}

}  // namespace
}  // namespace novapulse
