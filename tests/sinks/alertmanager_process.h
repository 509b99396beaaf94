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
  HttpReply reply = HttpGetReply(port, path);
  return {reply.status, std::move(reply.body)};
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
