// Test helpers for running the novapulse binary and for scratch files:
// RunProcess (fork/exec with stdin from a file, stdout and stderr captured,
// killed after a timeout so a hang fails instead of blocking the suite) and
// ScratchDir (a fresh directory under the test temp dir, removed at the end)
// and StdinFrom (points fd 0 elsewhere for a scope).
//
// Test-only, header-only. RunProcess may be called from any one thread.
//   ScratchDir dir;
//   ProcessResult r = RunProcess({NOVAPULSE_BINARY, "replay", dir.Path("a.ndjson")});
//   EXPECT_EQ(r.exit_code, 0) << r.err;
#ifndef NOVAPULSE_TESTS_PIPELINE_TEST_PROCESS_H_
#define NOVAPULSE_TESTS_PIPELINE_TEST_PROCESS_H_

#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace novapulse::testing {

// Whether `path` is on tmpfs (where FileSource never maps files).
inline bool OnTmpfs(const std::string& path) {
  struct statfs fs;
  return statfs(path.c_str(), &fs) == 0 && fs.f_type == TMPFS_MAGIC;
}

inline std::string ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

inline void WriteWholeFile(const std::string& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << "cannot write " << path;
}

// The TCP port process `pid` listens on over IPv4 (the first, if several),
// or 0 while it listens on none. For services started on port 0: the kernel
// picks a free port as the service binds it, and this reads it back from
// /proc (the service's sockets among the listening ones of its network
// namespace), so no port is probed first and bound later.
inline int ListeningPort(pid_t pid) {
  const std::string proc = "/proc/" + std::to_string(pid);
  std::vector<std::string> inodes;
  std::error_code ec;
  for (const auto& fd : std::filesystem::directory_iterator(proc + "/fd", ec)) {
    std::error_code link_ec;
    const std::string target = std::filesystem::read_symlink(fd.path(), link_ec).string();
    if (!link_ec && target.starts_with("socket:[") && target.ends_with("]")) {
      inodes.push_back(target.substr(8, target.size() - 9));
    }
  }
  std::ifstream tcp(proc + "/net/tcp");
  std::string line;
  std::getline(tcp, line);  // the header
  while (std::getline(tcp, line)) {
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
    std::istringstream fields(line);
    std::string sl, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
    if (!(fields >> sl >> local >> remote >> state >> queues >> timer >> retransmits >> uid >>
          timeout >> inode)) {
      continue;
    }
    if (state != "0A") continue;  // TCP_LISTEN
    for (const std::string& mine : inodes) {
      if (mine == inode)
        return static_cast<int>(std::stoul(local.substr(local.find(':') + 1), nullptr, 16));
    }
  }
  return 0;
}

class ScratchDir {
 public:
  ScratchDir() {
    std::string pattern = ::testing::TempDir() + "novapulse_test_XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp failed for " << pattern;
    }
    path_ = pattern;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;

  const std::string& path() const { return path_; }
  std::string Path(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  std::string path_;
};

struct ProcessResult {
  int exit_code = -1;  // -1 when killed by a signal or by the timeout
  bool timed_out = false;
  std::string out;
  std::string err;
};

// Runs argv[0] with `argv`, stdin from `stdin_path`. Never throws.
inline ProcessResult RunProcess(const std::vector<std::string>& argv,
                                const std::string& stdin_path = "/dev/null",
                                std::chrono::seconds timeout = std::chrono::seconds(60)) {
  ProcessResult result;
  ScratchDir capture;
  const std::string out_path = capture.Path("stdout");
  const std::string err_path = capture.Path("stderr");
  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) {
    ADD_FAILURE() << "fork failed";
    return result;
  }
  if (pid == 0) {
    const int in = open(stdin_path.c_str(), O_RDONLY);
    const int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (in < 0 || out < 0 || err < 0) _exit(127);
    dup2(in, STDIN_FILENO);
    dup2(out, STDOUT_FILENO);
    dup2(err, STDERR_FILENO);
    execv(args[0], args.data());
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (true) {
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) break;
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      result.timed_out = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (!result.timed_out && WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  result.out = ReadWholeFile(out_path);
  result.err = ReadWholeFile(err_path);
  return result;
}

// Makes fd 0 read from `fd` (taking ownership) for the object's life, for
// code under test that reads stdin ("-").
class StdinFrom {
 public:
  explicit StdinFrom(int fd) : saved_(dup(STDIN_FILENO)) {
    dup2(fd, STDIN_FILENO);
    close(fd);
  }
  ~StdinFrom() {
    dup2(saved_, STDIN_FILENO);
    close(saved_);
  }
  StdinFrom(const StdinFrom&) = delete;
  StdinFrom& operator=(const StdinFrom&) = delete;

 private:
  int saved_;
};

// `novapulse ARGS...`
inline ProcessResult RunNovapulse(std::vector<std::string> args,
                                  const std::string& stdin_path = "/dev/null") {
  args.insert(args.begin(), NOVAPULSE_BINARY);
  return RunProcess(args, stdin_path);
}

// A rule file that counts the http_requests_total series every 15 s into
// routes:http_requests:count (tests of series expiry in the windows).
inline constexpr char kRouteCountRules[] = R"(groups:
  - name: routes
    interval: 15s
    rules:
      - record: routes:http_requests:count
        expr: count(http_requests_total)
)";

}  // namespace novapulse::testing

#endif  // NOVAPULSE_TESTS_PIPELINE_TEST_PROCESS_H_
