// Test helpers for a real Alertmanager (Debian's prometheus-alertmanager):
// one process on a free local port with clustering off and a receiver that
// drops everything, and what its API lists. Get() is a plain HTTP GET that
// also undoes chunked encoding.
//
// Test-only, header-only; from one test thread.
//   Alertmanager am(dir);  ASSERT_EQ(am.Start(), "");
//   std::map<std::string, std::string> active = am.Alerts();  // alertname -> state
#ifndef NOVAPULSE_TESTS_SINKS_ALERTMANAGER_PROCESS_H_
#define NOVAPULSE_TESTS_SINKS_ALERTMANAGER_PROCESS_H_

#include <arpa/inet.h>
#include <fcntl.h>
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
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "tests/pipeline/run_service.h"
#include "tests/pipeline/test_process.h"

namespace novapulse::testing {

inline constexpr char kAlertmanager[] = "/usr/bin/prometheus-alertmanager";

// GET http://127.0.0.1:port/path: status and body; status 0 on failure.
inline std::pair<int, std::string> Get(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
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
  explicit Alertmanager(const ScratchDir& dir) : dir_(dir) {
    WriteWholeFile(dir_.Path("alertmanager.yml"),
                   "route:\n  receiver: blackhole\n"
                   "receivers:\n  - name: blackhole\n");
  }
  ~Alertmanager() { Stop(); }
  Alertmanager(const Alertmanager&) = delete;
  Alertmanager& operator=(const Alertmanager&) = delete;

  int port() const { return port_; }
  std::string url() const { return absl::StrCat("http://127.0.0.1:", port_); }

  // Empty when it serves /-/ready within 30 s; otherwise its log. The
  // first start listens on a port the kernel picks (port() then says which);
  // a restart on the same one.
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
      if (port_ == 0) port_ = ListeningPort(pid_);
      if (port_ != 0 && Get(port_, "/-/ready").first == 200) return "";
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return "alertmanager did not become ready:\n" + ReadWholeFile(log);
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
  const ScratchDir& dir_;
  int port_ = 0;  // 0 until the first start has bound one
  pid_t pid_ = -1;
};

}  // namespace novapulse::testing

#endif  // NOVAPULSE_TESTS_SINKS_ALERTMANAGER_PROCESS_H_
