// Test helpers for the Kafka integration tests: shell commands and a real
// broker started with scripts/kafka-broker for the test's life, which a test
// may stop and start again on the same port and data (fault tests).
#ifndef NOVAPULSE_TESTS_PIPELINE_KAFKA_BROKER_H_
#define NOVAPULSE_TESTS_PIPELINE_KAFKA_BROKER_H_

#include <sys/wait.h>

#include <cstdio>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace novapulse::testing {

struct ShellResult {
  int status = -1;  // the command's exit status; -1 when it did not exit normally
  std::string output;
};

// Runs `command` under /bin/sh; stderr is merged into the captured stdout
// unless `merge_stderr` is false (then it goes to the test's stderr).
inline ShellResult Shell(const std::string& command, bool merge_stderr = true) {
  ShellResult result;
  FILE* pipe = popen((merge_stderr ? command + " 2>&1" : command).c_str(), "r");
  if (pipe == nullptr) return result;
  char buf[65536];
  for (size_t n; (n = fread(buf, 1, sizeof(buf), pipe)) > 0;) result.output.append(buf, n);
  const int status = pclose(pipe);
  if (status != -1 && WIFEXITED(status)) result.status = WEXITSTATUS(status);
  return result;
}

inline std::string Script(const std::string& name) {
  return absl::StrCat(NOVAPULSE_SOURCE_DIR, "/scripts/", name);
}

// A broker for the test's life; stopped (and its folder removed) at the end
// whatever the test's outcome.
class Broker {
 public:
  explicit Broker(std::string dir) : dir_(std::move(dir)) {}
  ~Broker() {
    if (started_) Shell(absl::StrCat(Script("kafka-broker"), " stop --dir ", dir_));
  }
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  // The broker's output when it did not start; empty when it did. `env`:
  // VAR=VALUE words put before the command (e.g. NOVAPULSE_KAFKA_PORTS).
  std::string Start(const std::string& env = "") {
    started_ = true;  // a half-started broker must be stopped too
    const ShellResult r = Shell(
        absl::StrCat(env, env.empty() ? "" : " ", Script("kafka-broker"), " start --dir ", dir_));
    output_ = r.output;
    std::vector<std::string> lines =
        absl::StrSplit(absl::StripTrailingAsciiWhitespace(r.output), '\n');
    if (r.status != 0 || lines.empty() || !lines.back().starts_with("127.0.0.1:")) {
      return absl::StrCat("exit ", r.status, "\n", r.output);
    }
    address_ = lines.back();
    return "";
  }
  const std::string& address() const { return address_; }
  // Creates the topics with this many partitions each; the failing
  // creation's output, or "".
  std::string CreateTopics(std::initializer_list<const char*> topics, int partitions) const {
    for (const char* topic : topics) {
      const ShellResult r = Shell(absl::StrCat(Script("kafka-topic"), " --bootstrap ", address_,
                                               " create ", topic, " --partitions ", partitions));
      if (r.status != 0) return absl::StrCat("creating ", topic, ": ", r.output);
    }
    return "";
  }
  // What the last Start() printed.
  const std::string& output() const { return output_; }

  // Stops the broker but keeps its data and ports, so Start() brings the same
  // broker back on the same address. The script's output when it failed.
  std::string StopKeepingData() {
    const ShellResult r = Shell(absl::StrCat(Script("kafka-broker"), " stop --keep --dir ", dir_));
    return r.status == 0 ? "" : absl::StrCat("exit ", r.status, "\n", r.output);
  }

 private:
  std::string dir_;
  std::string address_;
  std::string output_;
  bool started_ = false;
};

}  // namespace novapulse::testing

#endif  // NOVAPULSE_TESTS_PIPELINE_KAFKA_BROKER_H_
