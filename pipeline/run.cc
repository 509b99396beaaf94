#include "pipeline/run.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

#include "base/cli.h"
#include "base/log.h"
#include "pipeline/config.h"
#include "pipeline/preflight.h"
#include "pipeline/service.h"

namespace novapulse {
namespace {

constexpr std::string_view kRunUsage = R"(Usage: novapulse run --config FILE

Consumes the access-log and outbox topics in the configured consumer group and
serves the metrics on /metrics (Prometheus text, or OpenMetrics when asked),
/healthz and /readyz. SIGTERM or SIGINT stops it cleanly: batches in flight
are finished and their offsets committed. Logs go to stderr.

Options:
  --config FILE   the service configuration (YAML; see configs/novapulse.yaml)
  -h, --help      this help
)";

// Set by the signal handler, read by the Kafka input.
std::atomic<bool> g_stop{false};
static_assert(std::atomic<bool>::is_always_lock_free);

void OnStopSignal(int /*signo*/) { g_stop.store(true, std::memory_order_relaxed); }

void InstallStopHandlers() {
  struct sigaction action = {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
}

}  // namespace

int RunServiceCommand(int argc, char** argv) {
  ArgParser args(argc, argv, kRunUsage);
  std::string config_path;
  while (args.Next()) {
    if (args.Is("--config")) {
      config_path = args.Value();
    } else {
      return args.UnknownFlag();
    }
    if (args.failed()) return args.exit_code();
  }
  if (args.help()) return 0;
  if (config_path.empty()) return args.Fail("--config FILE is required");

  absl::StatusOr<Config> config = LoadConfig(config_path);
  if (!config.ok()) {
    Log(LogLevel::kError, "invalid config", {{"error", std::string(config.status().message())}});
    return 1;
  }
  SetLogConfig(config->log);
  // What check-config checks: every problem at once, before anything starts.
  if (absl::Status usable = CheckStartupResources(*config); !usable.ok()) {
    Log(LogLevel::kError, "not started", {{"error", std::string(usable.message())}});
    return 1;
  }
  InstallStopHandlers();
  absl::StatusOr<std::unique_ptr<Service>> service = Service::Build(*config);
  if (!service.ok()) return 1;  // logged
  (*service)->Run(g_stop);
  const int status = (*service)->Shutdown();
  if ((*service)->abandoned()) {
    // The consumer failed or would not close: the process leaves without it.
    std::fflush(nullptr);
    _exit(status);
  }
  return status;
}

}  // namespace novapulse
