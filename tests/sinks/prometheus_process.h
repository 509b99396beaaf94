// Test helper for a real Prometheus (Debian's prometheus package): one
// server on a port the kernel picks, over a scratch TSDB and a config file,
// killed and reaped at the end, and a few queries of its HTTP API.
//
// Test-only, header-only; from one test thread.
//   PrometheusProcess prometheus(dir.Path("tsdb"), config, dir.Path("prometheus.log"));
//   ASSERT_TRUE(prometheus.WaitReady(std::chrono::seconds(60)));
//   std::optional<double> up = prometheus.Query("up{job=\"novapulse\"}");
#ifndef NOVAPULSE_TESTS_SINKS_PROMETHEUS_PROCESS_H_
#define NOVAPULSE_TESTS_SINKS_PROMETHEUS_PROCESS_H_

#include <fcntl.h>
#include <signal.h>
#include <simdjson.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
#include "tests/pipeline/run_service.h"
#include "tests/pipeline/test_process.h"
#include "tests/sinks/prometheus_text.h"

namespace novapulse::testing {

inline constexpr char kPrometheus[] = "/usr/bin/prometheus";

inline std::string UrlEncode(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) != 0 || c == '_' || c == '.' || c == '-' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      absl::StrAppend(&out, "%", absl::Hex(c, absl::kZeroPad2));
    }
  }
  return out;
}

class PrometheusProcess {
 public:
  // `extra_args`: more flags, e.g. --web.enable-remote-write-receiver.
  PrometheusProcess(const std::string& tsdb, const std::string& config, const std::string& log,
                    const std::vector<std::string>& extra_args = {}) {
    std::vector<std::string> args = {
        kPrometheus,
        "--config.file=" + config,
        "--storage.tsdb.path=" + tsdb,
        "--storage.tsdb.retention.time=10y",
        "--web.listen-address=127.0.0.1:0",
    };
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    pid_ = fork();
    if (pid_ == 0) {
      std::vector<char*> argv;
      argv.reserve(args.size() + 1);
      for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      const int out = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      const int in = open("/dev/null", O_RDONLY);
      if (out < 0 || in < 0) _exit(127);
      dup2(in, STDIN_FILENO);
      dup2(out, STDOUT_FILENO);
      dup2(out, STDERR_FILENO);
      execv(argv[0], argv.data());
      _exit(127);
    }
  }
  ~PrometheusProcess() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline) {
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
  PrometheusProcess(const PrometheusProcess&) = delete;
  PrometheusProcess& operator=(const PrometheusProcess&) = delete;

  // Until the child has exec'd it still holds the test's own sockets (a
  // server under test among them), so its port is read only once it runs
  // Prometheus.
  bool WaitReady(std::chrono::seconds timeout) {
    const std::string exe = absl::StrCat("/proc/", pid_, "/exe");
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      std::error_code ec;
      if (port_ == 0 && std::filesystem::read_symlink(exe, ec) == kPrometheus) {
        port_ = ListeningPort(pid_);
      }
      if (port_ != 0 && !HttpGet(port_, "/-/ready").empty()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }

  int port() const { return port_; }

  // Every series an instant query at the current time returns, as
  // SeriesKey(name, labels) -> value (tests/sinks/prometheus_text.h).
  std::map<std::string, double> Series(std::string_view query) const {
    const std::string body = HttpGet(port_, absl::StrCat("/api/v1/query?query=", UrlEncode(query)));
    std::map<std::string, double> out;
    simdjson::dom::parser parser;
    simdjson::dom::array result;
    if (parser.parse(body).at_pointer("/data/result").get(result) != simdjson::SUCCESS) {
      ADD_FAILURE() << query << ": " << body;
      return out;
    }
    for (simdjson::dom::element r : result) {
      simdjson::dom::object metric;
      std::string_view value;
      if (r["metric"].get(metric) != simdjson::SUCCESS ||
          r.at_pointer("/value/1").get(value) != simdjson::SUCCESS) {
        ADD_FAILURE() << "bad result in " << body;
        continue;
      }
      std::string name;
      Labels labels;
      for (auto [k, v] : metric) {
        std::string_view text;
        if (v.get(text) != simdjson::SUCCESS) continue;
        if (k == "__name__") {
          name = std::string(text);
        } else {
          labels.emplace_back(std::string(k), std::string(text));
        }
      }
      double v = 0;
      if (!absl::SimpleAtod(absl::string_view(value.data(), value.size()), &v)) {
        v = std::string_view(value) == "+Inf"   ? std::numeric_limits<double>::infinity()
            : std::string_view(value) == "-Inf" ? -std::numeric_limits<double>::infinity()
                                                : std::nan("");
      }
      out[SeriesKey(name, labels)] = v;
    }
    return out;
  }

  // Series(query) once it equals `want` (asked every 200 ms), or as it is
  // when `timeout` has passed.
  std::map<std::string, double> SeriesOnceEqual(std::string_view query,
                                                const std::map<std::string, double>& want,
                                                std::chrono::seconds timeout) const {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::map<std::string, double> got = Series(query);
    while (got != want && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      got = Series(query);
    }
    return got;
  }

  // The single value of an instant query at `t_ms`; NaN (and a test
  // failure) unless the result is exactly one sample.
  double Instant(std::string_view query, int64_t t_ms) const {
    const std::string body = HttpGet(
        port_, absl::StrCat("/api/v1/query?query=", UrlEncode(query),
                            "&time=", absl::StrFormat("%.3f", static_cast<double>(t_ms) / 1000)));
    simdjson::dom::parser parser;
    simdjson::dom::array result;
    std::string_view value;
    if (parser.parse(body).at_pointer("/data/result").get(result) != simdjson::SUCCESS ||
        result.size() != 1 || result.at(0).at_pointer("/value/1").get(value) != simdjson::SUCCESS) {
      ADD_FAILURE() << query << " at " << t_ms << ": " << body;
      return std::nan("");
    }
    double v = 0;
    EXPECT_TRUE(absl::SimpleAtod(absl::string_view(value.data(), value.size()), &v)) << value;
    return v;
  }

  // (t_ms, value) pairs of a range query with a single series.
  std::vector<std::pair<int64_t, double>> Range(std::string_view query, int64_t start_ms,
                                                int64_t end_ms, int64_t step_ms) const {
    const std::string body =
        HttpGet(port_, absl::StrCat("/api/v1/query_range?query=", UrlEncode(query),
                                    "&start=", start_ms / 1000, "&end=", end_ms / 1000,
                                    "&step=", step_ms / 1000));
    std::vector<std::pair<int64_t, double>> points;
    simdjson::dom::parser parser;
    simdjson::dom::array result;
    simdjson::dom::array values;
    if (parser.parse(body).at_pointer("/data/result").get(result) != simdjson::SUCCESS ||
        result.size() != 1 || result.at(0)["values"].get(values) != simdjson::SUCCESS) {
      ADD_FAILURE() << query << ": " << body;
      return points;
    }
    for (simdjson::dom::element p : values) {
      double t = 0;
      std::string_view v;
      double value = 0;
      if (p.at(0).get(t) != simdjson::SUCCESS || p.at(1).get(v) != simdjson::SUCCESS ||
          !absl::SimpleAtod(absl::string_view(v.data(), v.size()), &value)) {
        ADD_FAILURE() << "bad point in " << body;
        break;
      }
      points.emplace_back(std::llround(t * 1000), value);
    }
    return points;
  }

  // The value of an instant query with one sample; nullopt otherwise.
  std::optional<double> Query(std::string_view query) const {
    const std::string body = HttpGet(port_, absl::StrCat("/api/v1/query?query=", UrlEncode(query)));
    simdjson::dom::parser parser;
    simdjson::dom::array result;
    std::string_view value;
    if (parser.parse(body).at_pointer("/data/result").get(result) != simdjson::SUCCESS ||
        result.size() != 1 || result.at(0).at_pointer("/value/1").get(value) != simdjson::SUCCESS) {
      return std::nullopt;
    }
    double v = 0;
    if (!absl::SimpleAtod(absl::string_view(value.data(), value.size()), &v)) return std::nullopt;
    return v;
  }

  // lastError of the active target of `job`; nullopt when there is none.
  std::optional<std::string> LastError(std::string_view job) const {
    const std::string body = HttpGet(port_, "/api/v1/targets?state=active");
    simdjson::dom::parser parser;
    simdjson::dom::array targets;
    if (parser.parse(body).at_pointer("/data/activeTargets").get(targets) != simdjson::SUCCESS) {
      return std::nullopt;
    }
    for (simdjson::dom::element t : targets) {
      std::string_view pool;
      std::string_view error;
      if (t["scrapePool"].get(pool) == simdjson::SUCCESS && pool == job &&
          t["lastError"].get(error) == simdjson::SUCCESS) {
        return std::string(error);
      }
    }
    return std::nullopt;
  }

 private:
  int port_ = 0;  // known once it listens
  pid_t pid_ = -1;
};

// A Prometheus that scrapes nothing and takes remote writes, its config,
// TSDB and log in `dir`; call WaitReady before using it.
inline std::unique_ptr<PrometheusProcess> RemoteWriteReceiver(const ScratchDir& dir) {
  WriteWholeFile(dir.Path("prometheus.yml"), "global:\n  scrape_interval: 1h\n");
  return std::make_unique<PrometheusProcess>(
      dir.Path("tsdb"), dir.Path("prometheus.yml"), dir.Path("prometheus.log"),
      std::vector<std::string>{"--web.enable-remote-write-receiver"});
}

}  // namespace novapulse::testing

#endif  // NOVAPULSE_TESTS_SINKS_PROMETHEUS_PROCESS_H_
