// Test helpers for `novapulse run` as a child process: a free local port, a
// port held by a listening socket, a plain HTTP GET, the Service process
// (stderr to a log file, SIGTERM with a deadline or SIGKILL, killed at the
// end) and scraping until a condition holds.
//
// Test-only, header-only; from one test thread.
//   Service service(config_path, dir.Path("run.log"));
//   PromText text = WaitForScrape(port, [](const PromText& t) { return t.Has("x"); });
#ifndef NOVAPULSE_TESTS_PIPELINE_RUN_SERVICE_H_
#define NOVAPULSE_TESTS_PIPELINE_RUN_SERVICE_H_

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "tests/pipeline/test_process.h"
#include "tests/sinks/prometheus_text.h"

namespace novapulse::testing {

using Clock = std::chrono::steady_clock;

// A port free on 127.0.0.1 right now (bound, then released), chosen below
// the kernel's ephemeral range (net.ipv4.ip_local_port_range). The kernel
// gives ports of that range to outgoing connections, a Kafka client's or a
// scrape's, so a port from it can be taken as a connection's local port
// while a test holds it for a service it restarts; then every restart fails
// to bind. Random, so concurrent tests rarely try the same one; the kernel's
// pick only when no port below the range binds. The probe socket is
// close-on-exec: a child forked meanwhile (a producer started by another
// thread) would otherwise keep the port bound for its whole life.
inline int FreePort() {
  auto bind_loopback = [](int port) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    socklen_t len = sizeof(addr);
    int bound = 0;
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      bound = ntohs(addr.sin_port);
    }
    close(fd);
    return bound;
  };
  constexpr int kLowest = 10000;  // above the well-known services' ports
  int ephemeral_low = 32768;
  if (FILE* f = std::fopen("/proc/sys/net/ipv4/ip_local_port_range", "r")) {
    if (std::fscanf(f, "%d", &ephemeral_low) != 1) ephemeral_low = 32768;
    std::fclose(f);
  }
  if (ephemeral_low > kLowest + 1000) {
    std::mt19937 rng(std::random_device{}());
    std::uniform_int_distribution<int> pick(kLowest, ephemeral_low - 1);
    for (int attempt = 0; attempt < 100; ++attempt) {
      if (const int port = bind_loopback(pick(rng))) return port;
    }
  }
  return bind_loopback(0);
}

// A listening socket on 127.0.0.1 at a port the kernel picks, held for the
// object's life.
class HeldPort {
 public:
  HeldPort() : fd_(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        listen(fd_, 1) != 0 || getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ADD_FAILURE() << "cannot listen on 127.0.0.1";
      return;
    }
    port_ = ntohs(addr.sin_port);
  }
  ~HeldPort() {
    if (fd_ >= 0) close(fd_);
  }
  HeldPort(const HeldPort&) = delete;
  HeldPort& operator=(const HeldPort&) = delete;

  int port() const { return port_; }

 private:
  int fd_;
  int port_ = 0;
};

struct HttpReply {
  int status = 0;  // 0 when there was no answer
  std::string body;
};

// GET `path` from 127.0.0.1:port, whatever the status; a chunked body is
// put back together.
inline HttpReply HttpGetReply(int port, const std::string& path) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return {};
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return {};
  }
  const std::string request =
      absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    close(fd);
    return {};
  }
  std::string raw;
  char buf[16384];
  for (ssize_t n; (n = recv(fd, buf, sizeof(buf), 0)) > 0;) raw.append(buf, static_cast<size_t>(n));
  close(fd);
  HttpReply reply;
  const size_t end = raw.find("\r\n\r\n");
  if (!raw.starts_with("HTTP/1.1 ") || end == std::string::npos) return reply;
  reply.status = std::atoi(raw.c_str() + 9);
  reply.body = raw.substr(end + 4);
  if (raw.substr(0, end).find("Transfer-Encoding: chunked") != std::string::npos) {
    std::string unchunked;
    for (size_t at = 0; at < reply.body.size();) {
      const size_t eol = reply.body.find("\r\n", at);
      size_t size = 0;
      if (eol == std::string::npos ||
          !absl::SimpleHexAtoi(reply.body.substr(at, eol - at), &size) || size == 0) {
        break;
      }
      unchunked.append(reply.body, eol + 2, size);
      at = eol + 2 + size + 2;
    }
    reply.body = std::move(unchunked);
  }
  return reply;
}

// GET `path` from 127.0.0.1:port; the body when the status is 200, else "".
inline std::string HttpGet(int port, const std::string& path) {
  HttpReply reply = HttpGetReply(port, path);
  return reply.status == 200 ? std::move(reply.body) : "";
}

// `novapulse run --config FILE` as a child process, stderr to a file; killed
// at the end if still running.
class Service {
 public:
  Service(const std::string& config, std::string log) : log_(std::move(log)) {
    pid_ = fork();
    if (pid_ == 0) {
      const int err = open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      const int in = open("/dev/null", O_RDONLY);
      if (err < 0 || in < 0) _exit(127);
      dup2(in, STDIN_FILENO);
      dup2(err, STDOUT_FILENO);
      dup2(err, STDERR_FILENO);
      execl(NOVAPULSE_BINARY, NOVAPULSE_BINARY, "run", "--config", config.c_str(), nullptr);
      _exit(127);
    }
  }
  ~Service() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  bool running() const { return pid_ > 0 && waitpid(pid_, nullptr, WNOHANG) == 0; }
  std::string log() const { return ReadWholeFile(log_); }

  // The HTTP port the process bound, from its "novapulse running" log line:
  // configs give `http.listen: 127.0.0.1:0` and the kernel picks the port
  // as the server binds it, so no other process can take it in between.
  // Waits for the line up to `timeout`; 0 if it did not come (the process
  // ended, or is still starting).
  int port(std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
    const Clock::time_point deadline = Clock::now() + timeout;
    while (port_ == 0) {
      const std::string text = log();
      const size_t line = text.find("msg=\"novapulse running\"");
      if (line != std::string::npos) {
        const size_t at = text.find(" port=", line);
        const size_t end = text.find('\n', line);
        if (at != std::string::npos && at < end) port_ = std::atoi(text.c_str() + at + 6);
        break;
      }
      if (Clock::now() >= deadline || pid_ <= 0 || waitpid(pid_, nullptr, WNOHANG) != 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return port_;
  }

  void Signal(int signo) {
    if (pid_ > 0) kill(pid_, signo);
  }

  // Waits up to `timeout` until the log holds `text` at least `times` times;
  // false when it did not (or the process ended first).
  bool WaitForLog(std::string_view text, int times = 1,
                  std::chrono::milliseconds timeout = std::chrono::seconds(60)) const {
    const Clock::time_point deadline = Clock::now() + timeout;
    for (;;) {
      const std::string now = log();
      int seen = 0;
      for (size_t at = now.find(text); at != std::string::npos; at = now.find(text, at + 1)) {
        ++seen;
      }
      if (seen >= times) return true;
      if (Clock::now() >= deadline || !running()) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  // The port of the last "novapulse running" line: after a reload
  // (SIGHUP) the service binds again, a new port when the config says 0.
  int LastPort() const {
    const std::string text = log();
    const size_t line = text.rfind("msg=\"novapulse running\"");
    if (line == std::string::npos) return 0;
    const size_t at = text.find(" port=", line);
    return at == std::string::npos ? 0 : std::atoi(text.c_str() + at + 6);
  }

  // SIGKILL, as a crash would: nothing is committed or logged on the way out.
  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  // The exit code once the process has exited by itself (-1 when a signal
  // ended it); -2 while it runs.
  int Wait() {
    if (pid_ <= 0) return -1;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) != pid_) return -2;
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  // Sends SIGTERM; the exit code, or -1 when it did not exit normally within
  // `timeout` (it is then killed).
  int Terminate(std::chrono::seconds timeout) {
    kill(pid_, SIGTERM);
    const Clock::time_point deadline = Clock::now() + timeout;
    int status = 0;
    while (waitpid(pid_, &status, WNOHANG) == 0) {
      if (Clock::now() > deadline) return -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  std::string log_;
  pid_t pid_ = -1;
  int port_ = 0;
};

// Scrapes until `done` holds for the scrape (or `timeout` passes); returns
// the last.
template <typename Done>
PromText WaitForScrape(int port, Done done,
                       std::chrono::seconds timeout = std::chrono::seconds(10)) {
  PromText text;
  const Clock::time_point deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    text = ParsePromText(HttpGet(port, "/metrics"));
    if (done(text)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  return text;
}

}  // namespace novapulse::testing

#endif  // NOVAPULSE_TESTS_PIPELINE_RUN_SERVICE_H_
