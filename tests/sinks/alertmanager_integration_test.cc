// AlertmanagerClient against a real Alertmanager (Debian's
// prometheus-alertmanager), started for each test on a free local port with
// clustering off. Find these with `ctest -L sinks -R AlertmanagerIntegration`.
// Alertmanager judges endsAt against its own clock, so these alerts carry
// wall-clock times (novapulse's engine sends event times).
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <simdjson.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "sinks/alertmanager_client.h"
#include "tests/pipeline/test_process.h"

namespace novapulse {
namespace {

constexpr char kAlertmanager[] = "/usr/bin/prometheus-alertmanager";

int FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) ADD_FAILURE() << "bind";
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// GET http://127.0.0.1:port/path: status and body; status 0 on failure.
std::pair<int, std::string> Get(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return {0, ""};
  }
  const std::string request =
      absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string raw;
  char buf[16384];
  for (ssize_t n; (n = recv(fd, buf, sizeof(buf), 0)) > 0;) raw.append(buf, static_cast<size_t>(n));
  close(fd);
  int status = 0;
  const size_t end = raw.find("\r\n\r\n");
  if (raw.size() < 12 || end == std::string::npos || !absl::SimpleAtoi(raw.substr(9, 3), &status)) {
    return {0, ""};
  }
  std::string body = raw.substr(end + 4);
  if (raw.substr(0, end).find("Transfer-Encoding: chunked") != std::string::npos) {
    std::string unchunked;
    for (size_t at = 0; at < body.size();) {
      const size_t eol = body.find("\r\n", at);
      size_t size = 0;
      if (eol == std::string::npos || !absl::SimpleHexAtoi(body.substr(at, eol - at), &size) ||
          size == 0) {
        break;
      }
      unchunked.append(body, eol + 2, size);
      at = eol + 2 + size + 2;
    }
    body = std::move(unchunked);
  }
  return {status, std::move(body)};
}

// One Alertmanager process; stopped by the destructor.
class Alertmanager {
 public:
  explicit Alertmanager(const testing::ScratchDir& dir) : dir_(dir), port_(FreePort()) {
    testing::WriteWholeFile(dir_.Path("alertmanager.yml"),
                            "route:\n  receiver: blackhole\n"
                            "receivers:\n  - name: blackhole\n");
  }
  ~Alertmanager() { Stop(); }
  Alertmanager(const Alertmanager&) = delete;
  Alertmanager& operator=(const Alertmanager&) = delete;

  int port() const { return port_; }
  std::string url() const { return absl::StrCat("http://127.0.0.1:", port_); }

  // Empty when it serves /-/ready within 30 s; otherwise its log.
  std::string Start() {
    const std::vector<std::string> args = {
        kAlertmanager,
        "--config.file=" + dir_.Path("alertmanager.yml"),
        "--storage.path=" + dir_.Path("data"),
        absl::StrCat("--web.listen-address=127.0.0.1:", port_),
        "--cluster.listen-address=",
        "--log.level=warn",
    };
    const std::string log = dir_.Path("alertmanager.log");
    pid_ = fork();
    if (pid_ == 0) {
      const int out = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      dup2(out, STDOUT_FILENO);
      dup2(out, STDERR_FILENO);
      std::vector<char*> argv;
      argv.reserve(args.size() + 1);
      for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      if (Get(port_, "/-/ready").first == 200) return "";
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return "alertmanager did not become ready:\n" + testing::ReadWholeFile(log);
  }

  void Stop() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  // Alerts Alertmanager lists now (GET /api/v2/alerts: it leaves out those
  // whose endsAt has passed): alertname -> status.state.
  std::map<std::string, std::string> Alerts() const {
    std::map<std::string, std::string> out;
    const auto [status, body] = Get(port_, "/api/v2/alerts");
    if (status != 200) return out;
    simdjson::dom::parser parser;
    simdjson::dom::array alerts;
    if (parser.parse(simdjson::padded_string(body)).get(alerts) != simdjson::SUCCESS) return out;
    for (simdjson::dom::element a : alerts) {
      std::string_view name;
      std::string_view state;
      if (a["labels"]["alertname"].get(name) == simdjson::SUCCESS &&
          a["status"]["state"].get(state) == simdjson::SUCCESS) {
        out[std::string(name)] = std::string(state);
      }
    }
    return out;
  }

 private:
  const testing::ScratchDir& dir_;
  int port_;
  pid_t pid_ = -1;
};

// Polls `done` every 100 ms for up to 30 s.
template <typename F>
bool Eventually(F done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return true;
}

int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }

Alert FiringNow(const std::string& name) {
  const int64_t now = NowMs();
  Alert a;
  a.labels = {{"alertname", name}, {"severity", "page"}};
  a.annotations = {{"summary", "claims fail on /api/gifts/:id/claim"}};
  a.state = AlertState::kFiring;
  a.value = 0.12;
  a.active_at_ms = now - 120'000;
  a.fired_at_ms = now - 60'000;
  a.last_sent_ms = now;
  a.valid_until_ms = now + 300'000;
  return a;
}

class AlertmanagerIntegration : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access(kAlertmanager, X_OK) != 0) {
      GTEST_SKIP() << kAlertmanager << " is not installed (Debian package prometheus-alertmanager)";
    }
  }
  AlertmanagerClientOptions Options(const Alertmanager& am) {
    AlertmanagerClientOptions options;
    options.urls = {am.url()};
    options.backoff_min = absl::Milliseconds(50);
    options.backoff_max = absl::Milliseconds(400);
    options.external_labels = {{"cluster", "test"}};
    options.generator_url = "http://novapulse.test:9464/graph";
    return options;
  }
  testing::ScratchDir dir_;
};

TEST_F(AlertmanagerIntegration, FiringAlertBecomesActiveAndResolvedAlertLeaves) {
  Alertmanager am(dir_);
  ASSERT_EQ(am.Start(), "");
  absl::StatusOr<std::unique_ptr<AlertmanagerClient>> client =
      AlertmanagerClient::Start(Options(am));
  ASSERT_TRUE(client.ok()) << client.status();

  Alert alert = FiringNow("ClaimErrorsHigh");
  (*client)->Enqueue({alert, FiringNow("OutboxBacklog")});
  ASSERT_TRUE(Eventually([&] {
    const auto alerts = am.Alerts();
    return alerts.size() == 2 && alerts.at("ClaimErrorsHigh") == "active";
  })) << "alerts seen: "
      << am.Alerts().size();
  EXPECT_TRUE(Eventually([&] { return (*client)->stats().urls[0].sent == 2; }));

  // Labels and annotations arrive as sent, external labels added.
  const auto [status, body] =
      Get(am.port(), "/api/v2/alerts?filter=alertname%3D%22ClaimErrorsHigh%22");
  ASSERT_EQ(status, 200);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(simdjson::padded_string(body)).get(doc), simdjson::SUCCESS) << body;
  std::string_view value;
  ASSERT_EQ(doc.at_pointer("/0/labels/cluster").get(value), simdjson::SUCCESS) << body;
  EXPECT_EQ(value, "test");
  ASSERT_EQ(doc.at_pointer("/0/annotations/summary").get(value), simdjson::SUCCESS);
  EXPECT_EQ(value, "claims fail on /api/gifts/:id/claim");
  ASSERT_EQ(doc.at_pointer("/0/generatorURL").get(value), simdjson::SUCCESS);
  EXPECT_EQ(value, "http://novapulse.test:9464/graph");

  alert.state = AlertState::kInactive;
  alert.resolved_at_ms = NowMs();
  (*client)->Enqueue({alert});
  ASSERT_TRUE(Eventually([&] {
    const auto alerts = am.Alerts();
    return alerts.size() == 1 && alerts.contains("OutboxBacklog");
  }));
  EXPECT_EQ((*client)->stats().urls[0].errors, 0u);
}

TEST_F(AlertmanagerIntegration, AlertsQueuedWhileDownAreDeliveredAfterRestart) {
  Alertmanager am(dir_);
  ASSERT_EQ(am.Start(), "");
  absl::StatusOr<std::unique_ptr<AlertmanagerClient>> client =
      AlertmanagerClient::Start(Options(am));
  ASSERT_TRUE(client.ok()) << client.status();
  (*client)->Enqueue({FiringNow("BeforeOutage")});
  ASSERT_TRUE(Eventually([&] { return am.Alerts().contains("BeforeOutage"); }));

  am.Stop();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 50; ++i) (*client)->Enqueue({FiringNow(absl::StrCat("DuringOutage", i))});
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(200));
  ASSERT_TRUE(Eventually([&] { return (*client)->stats().urls[0].errors >= 50 * 2; }))
      << "errors: " << (*client)->stats().urls[0].errors;
  const AlertmanagerUrlStats down = (*client)->stats().urls[0];
  EXPECT_EQ(down.sent, 1u);
  EXPECT_EQ(down.queued, 50u);
  EXPECT_EQ(down.dropped, 0u);
  EXPECT_NE(down.last_error, "");

  ASSERT_EQ(am.Start(), "");  // same port; its alerts were in memory only
  ASSERT_TRUE(Eventually([&] { return am.Alerts().size() == 50; }))
      << "alerts seen: " << am.Alerts().size();
  EXPECT_TRUE(am.Alerts().contains("DuringOutage49"));
  ASSERT_TRUE(Eventually([&] { return (*client)->stats().urls[0].sent == 51; }));
  const AlertmanagerUrlStats up = (*client)->stats().urls[0];
  EXPECT_EQ(up.sent, 51u);
  EXPECT_EQ(up.queued, 0u);
  EXPECT_EQ(up.dropped, 0u);
}

}  // namespace
}  // namespace novapulse
