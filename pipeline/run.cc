#include "pipeline/run.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "aggregators/metric_source.h"
#include "base/cli.h"
#include "base/log.h"
#include "base/time_math.h"
#include "pipeline/config.h"
#include "pipeline/preflight.h"
#include "pipeline/service.h"

namespace novapulse {
namespace {

constexpr std::string_view kRunUsage = R"(Usage: novapulse run --config FILE

Consumes the metric set's topics (NovaGift's access-log and outbox, or the
inputs of metrics.spec) in the configured consumer group and
serves the metrics on /metrics (Prometheus text, or OpenMetrics when asked),
/healthz and /readyz. SIGTERM or SIGINT stops it cleanly: batches in flight
are finished and their offsets committed. SIGHUP reloads the config file: it
is checked as check-config does while the service goes on; if it passes, the
service stops (the last checkpoint and commit, as on SIGTERM) and starts again
with it in this process, its metric families kept where their definition did
not change; if not, the error is logged and the running config stays. Logs go
to stderr.

Options:
  --config FILE   the service configuration (YAML; see configs/novapulse.yaml)
  --web.config.file FILE
                  TLS, client certificates, basic auth and headers of the
                  HTTP endpoint, in the web config format of Prometheus's
                  exporters (in place of http.web_config_file). It and the
                  certificate files it names are read again when they change.
  -h, --help      this help
)";

// Set by the stop signals: the process ends after the service stops.
std::atomic<bool> g_stop{false};
// Set by the stop signals and by an accepted reload: Service::Run (the
// Kafka input) returns.
std::atomic<bool> g_leave{false};
static_assert(std::atomic<bool>::is_always_lock_free);

void OnStopSignal(int /*signo*/) {
  g_stop.store(true);
  g_leave.store(true);
}

void InstallStopHandlers() {
  struct sigaction action = {};
  action.sa_handler = OnStopSignal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
}

sigset_t ReloadSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGHUP);
  return set;
}

#define NOVAPULSE_RELOAD_METRICS(M)                                                         \
  M(kReloadsTotal, "novapulse_config_reloads_total",                                        \
    "Config reloads (SIGHUP), by result: failure when the file did not pass the checks or " \
    "the service did not start with it.",                                                   \
    MetricType::kComputedCounter, {"result"}, {})                                           \
  M(kLastReloadSuccessful, "novapulse_config_last_reload_successful",                       \
    "1 when the last reload succeeded (or none was asked for), 0 when it failed.",          \
    MetricType::kComputed, {}, {})                                                          \
  M(kLastReloadSuccessTime, "novapulse_config_last_reload_success_timestamp_seconds",       \
    "Wall time of the last successful reload, or of the start.", MetricType::kComputed, {}, {})

enum ReloadMetric : size_t { NOVAPULSE_RELOAD_METRICS(NOVAPULSE_METRIC_ID) };

const std::vector<MetricDef>& ReloadMetricDefs() {
  static const std::vector<MetricDef> kDefs = {NOVAPULSE_RELOAD_METRICS(NOVAPULSE_METRIC_DEF)};
  return kDefs;
}

// Waits for SIGHUP on a thread of its own (sigwait: the signal is blocked in
// every thread, so no handler runs) and checks the config file then, while
// the service goes on. A config that passes is kept for the main thread,
// which is told to restart with it (g_leave).
class Reloader : public MetricSource {
 public:
  Reloader(std::string path, std::string web_config_file, Config running)
      : path_(std::move(path)),
        web_config_file_(std::move(web_config_file)),
        running_(std::move(running)) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~Reloader() override {
    quit_.store(true, std::memory_order_relaxed);
    pthread_kill(thread_.native_handle(), SIGHUP);
    thread_.join();
  }
  Reloader(const Reloader&) = delete;
  Reloader& operator=(const Reloader&) = delete;

  // The config a reload accepted since the last call, if any.
  std::optional<Config> TakeAccepted() {
    std::lock_guard<std::mutex> lock(mu_);
    return std::exchange(accepted_, std::nullopt);
  }
  // The service runs with `config` now; `ok` false when it went back to the
  // previous one because the accepted one did not start.
  void Restarted(const Config& config, bool ok) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      running_ = config;
    }
    Record(ok);
  }

  void CollectMetrics(MetricFamilies* out) override {
    const std::vector<MetricDef>& defs = ReloadMetricDefs();
    FamilySnapshot& total = out->Start(defs[kReloadsTotal]);
    out->Add(total, {"failure"}, static_cast<double>(failed_.load(std::memory_order_relaxed)));
    out->Add(total, {"success"}, static_cast<double>(ok_.load(std::memory_order_relaxed)));
    out->AddSingle(defs[kLastReloadSuccessful], last_ok_.load(std::memory_order_relaxed) ? 1 : 0);
    out->AddSingle(defs[kLastReloadSuccessTime], last_success_.load(std::memory_order_relaxed));
  }

 private:
  void Record(bool ok) {
    (ok ? ok_ : failed_).fetch_add(1, std::memory_order_relaxed);
    last_ok_.store(ok, std::memory_order_relaxed);
    if (ok)
      last_success_.store(static_cast<double>(WallMillis()) / 1000, std::memory_order_relaxed);
  }

  void Loop() {
    const sigset_t signals = ReloadSignals();
    for (;;) {
      int signo = 0;
      if (sigwait(&signals, &signo) != 0) continue;
      if (quit_.load(std::memory_order_relaxed)) return;
      Log(LogLevel::kInfo, "reloading the config", {{"path", path_}});
      absl::StatusOr<Config> config = LoadConfig(path_, web_config_file_);
      absl::Status usable = config.status();
      if (usable.ok()) {
        std::lock_guard<std::mutex> lock(mu_);
        usable = CheckStartupResources(*config, &running_);
      }
      if (!usable.ok()) {
        Record(false);
        Log(LogLevel::kError, "reload failed: the running config stays",
            {{"path", path_}, {"error", std::string(usable.message())}});
        continue;
      }
      {
        std::lock_guard<std::mutex> lock(mu_);
        accepted_ = *std::move(config);
      }
      Log(LogLevel::kInfo, "config checked: the service restarts with it", {{"path", path_}});
      g_leave.store(true);
    }
  }

  const std::string path_;
  const std::string web_config_file_;  // --web.config.file
  std::mutex mu_;
  Config running_;                  // guarded by mu_
  std::optional<Config> accepted_;  // guarded by mu_
  std::atomic<bool> quit_{false};
  std::atomic<uint64_t> ok_{0};
  std::atomic<uint64_t> failed_{0};
  std::atomic<bool> last_ok_{true};
  std::atomic<double> last_success_{static_cast<double>(WallMillis()) / 1000};
  std::thread thread_;
};

}  // namespace

int RunServiceCommand(int argc, char** argv) {
  // First, before any thread starts, so that every thread inherits the mask
  // and SIGHUP reaches only the reloader's sigwait (not its default
  // action, which ends the process).
  const sigset_t reload_signals = ReloadSignals();
  pthread_sigmask(SIG_BLOCK, &reload_signals, nullptr);
  ArgParser args(argc, argv, kRunUsage);
  std::string config_path;
  std::string web_config_file;
  while (args.Next()) {
    if (args.Is("--config")) {
      config_path = args.Value();
    } else if (args.Is("--web.config.file")) {
      web_config_file = args.Value();
    } else {
      return args.UnknownFlag();
    }
    if (args.failed()) return args.exit_code();
  }
  if (args.help()) return 0;
  if (config_path.empty()) return args.Fail("--config FILE is required");

  absl::StatusOr<Config> config = LoadConfig(config_path, web_config_file);
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
  Reloader reloader(config_path, web_config_file, *config);
  Config current = *std::move(config);
  std::optional<Config> previous;  // while starting with a reloaded config
  std::string carried;             // the state handed on by a reload (Service::CarriedState)
  for (;;) {
    absl::StatusOr<std::unique_ptr<Service>> service = Service::Build(current, &reloader, carried);
    if (!service.ok()) {
      // Logged. A reloaded config that passed the checks can still fail
      // here (a librdkafka property, say): back to the one that ran.
      if (!previous) return 1;
      Log(LogLevel::kError,
          "reload failed: the service did not start with the new config; "
          "starting again with the previous one");
      current = *std::exchange(previous, std::nullopt);
      SetLogConfig(current.log);
      reloader.Restarted(current, /*ok=*/false);
      continue;
    }
    carried.clear();
    if (previous) {
      previous.reset();
      reloader.Restarted(current, /*ok=*/true);
      Log(LogLevel::kInfo, "config reloaded", {{"path", config_path}});
    }
    (*service)->Run(g_leave);
    const int status = (*service)->Shutdown(/*leaving=*/g_stop.load());
    if ((*service)->abandoned()) {
      // The consumer failed or would not close: the process leaves without
      // it. Stopped for a reload, it was not asked to end: non-zero, so that
      // a supervisor starts it again.
      std::fflush(nullptr);
      _exit(g_stop.load() || status != 0 ? status : 1);
    }
    // Cleared before the accepted config is taken: a reload accepted from
    // here on sets it again and is taken after the next Run, and a stop
    // signal sets g_stop first.
    g_leave.store(false);
    std::optional<Config> next = reloader.TakeAccepted();
    if (g_stop.load()) {
      g_leave.store(true);
      return status;
    }
    if (!next) return status;
    // What the next service starts from without checkpoint.dir.
    carried = (*service)->CarriedState();
    // The old service lets go of its port and group membership first.
    service->reset();
    previous = std::exchange(current, *std::move(next));
    SetLogConfig(current.log);
  }
}

}  // namespace novapulse
