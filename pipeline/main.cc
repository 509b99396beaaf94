// novapulse: NovaGift access logs and outbox events to Prometheus metrics.
#include <cstdio>
#include <string_view>

#include "gen/gen_command.h"
#include "pipeline/check_metrics.h"
#include "pipeline/config.h"
#include "pipeline/replay.h"
#include "pipeline/rule_runner.h"
#include "pipeline/run.h"

namespace {

constexpr std::string_view kUsage = R"(Usage: novapulse COMMAND [OPTIONS]

Commands:
  run --config FILE    consume the Kafka topics and serve /metrics (the service)
  replay FILE...       replay NDJSON files offline and print the final metrics
  gen                  write generated NovaGift traffic (with incidents) as NDJSON
                       files or to Kafka
  check-config FILE    validate a service config (YAML) and print it, secrets redacted
  check-metrics FILE   validate a metric spec (YAML): inputs, fields, metrics, labels
  check-rules FILE...  validate Prometheus rule files against novapulse's PromQL subset
                       and report the window history they need
  help                 this help

Options:
  -h, --help           this help
  --version            print novapulse's version

Run 'novapulse COMMAND --help' for a command's options.
)";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fwrite(kUsage.data(), 1, kUsage.size(), stderr);
    return 2;
  }
  const std::string_view command = argv[1];
  if (command == "run") return novapulse::RunServiceCommand(argc - 1, argv + 1);
  if (command == "replay") return novapulse::RunReplayCommand(argc - 1, argv + 1);
  if (command == "gen") return novapulse::RunGenCommand(argc - 1, argv + 1);
  if (command == "check-config") return novapulse::RunCheckConfigCommand(argc - 1, argv + 1);
  if (command == "check-metrics") return novapulse::RunCheckMetricsCommand(argc - 1, argv + 1);
  if (command == "check-rules") return novapulse::RunCheckRulesCommand(argc - 1, argv + 1);
  if (command == "help" || command == "-h" || command == "--help") {
    std::fwrite(kUsage.data(), 1, kUsage.size(), stdout);
    return 0;
  }
  if (command == "version" || command == "--version") {
    std::puts("novapulse 0.1.0");
    return 0;
  }
  std::fprintf(stderr, "novapulse: unknown command '%.*s'\n\n%.*s",
               static_cast<int>(command.size()), command.data(), static_cast<int>(kUsage.size()),
               kUsage.data());
  return 2;
}
