#include "pipeline/preflight.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "base/file.h"
#include "pipeline/check_metrics.h"
#include "pipeline/http_server.h"
#include "pipeline/metric_engine.h"
#include "pipeline/rule_files.h"
#include "pipeline/rule_runner.h"
#include "rules/rule_file.h"

namespace novapulse {
namespace {

// errno's text: call it straight after the call that failed.
std::string ErrnoText() { return std::strerror(errno); }

// The directory `path` would be created in ("." for a bare name).
std::string ParentOf(const std::string& path) {
  const std::string parent = std::filesystem::path(path).parent_path().string();
  return parent.empty() ? "." : parent;
}

// Why `path` cannot be read as a regular file, or "".
std::string UnreadableFile(const std::string& path) {
  const absl::StatusOr<std::string> text = ReadRegularFile(path);
  return text.ok() ? "" : std::string(text.status().message());
}

// Why `run` could not create `dir` with its parents and write in it, or "".
std::string UnusableCheckpointDir(const std::string& dir) {
  // The nearest part of the path that exists: `run` creates the rest.
  std::string existing = dir;
  struct stat st = {};
  while (::stat(existing.c_str(), &st) != 0) {
    const int error = errno;
    std::string parent = ParentOf(existing);
    // parent == existing: "/" or "." failed (a working directory removed).
    if ((error != ENOENT && error != ENOTDIR) || parent == existing) {
      return absl::StrCat(existing, ": ", std::strerror(error));
    }
    existing = std::move(parent);
  }
  const std::string what =
      existing == dir ? dir : absl::StrCat("cannot create ", dir, ": ", existing);
  if (!S_ISDIR(st.st_mode)) return absl::StrCat(what, " is not a directory");
  if (::access(existing.c_str(), W_OK | X_OK) != 0) {
    return absl::StrCat(what, " is not writable: ", ErrnoText());
  }
  return "";
}

// Why `run` could not append to the dead-letter file `path`, or "".
std::string UnwritableDeadLetterFile(const std::string& path) {
  struct stat st = {};
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return absl::StrCat(path, " is a directory");
    if (::access(path.c_str(), W_OK) != 0) {
      return absl::StrCat(path, " is not writable: ", ErrnoText());
    }
  } else if (errno != ENOENT) {
    return absl::StrCat(path, ": ", ErrnoText());
  }
  // Rotation renames files in the directory, so it must be writable too.
  const std::string dir = ParentOf(path);
  if (::stat(dir.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::StrCat(path, ": directory ", dir, " does not exist");
    return absl::StrCat(path, ": directory ", dir, ": ", ErrnoText());
  }
  if (!S_ISDIR(st.st_mode)) return absl::StrCat(path, ": ", dir, " is not a directory");
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    return absl::StrCat(path, ": directory ", dir, " is not writable: ", ErrnoText());
  }
  return "";
}

void CheckRules(const Config& config, std::vector<std::string>* errors) {
  if (config.rules.files.empty()) return;
  absl::StatusOr<RuleSet> rules = LoadRuleFiles(
      config.rules.files, absl::ToInt64Milliseconds(config.rules.evaluation_interval));
  if (!rules.ok()) {
    errors->push_back(absl::StrCat("rules.files: ", rules.status().message()));
    return;
  }
  // Under a metric spec every metric a rule reads must be one it defines
  // (as check-metrics --rules says).
  if (const spec::SpecPlan* plan = config.metrics.plan.get()) {
    const std::vector<std::string> unknown = RuleMetricsNotInSpec(*rules, plan->spec());
    for (const std::string& e : unknown) errors->push_back(absl::StrCat("rules.files: ", e));
    if (!unknown.empty()) return;
  }
  // As `run` builds them: this resolves what the rules read against the
  // metric set.
  RuleRunnerOptions options;
  options.lateness_ms = absl::ToInt64Milliseconds(config.pipeline.allowed_lateness);
  const absl::StatusOr<std::unique_ptr<RuleRunner>> runner =
      RuleRunner::Build(*std::move(rules), options, MetricDefsOf(config.metrics.plan.get(), {}));
  if (!runner.ok()) errors->push_back(absl::StrCat("rules.files: ", runner.status().message()));
}

// `held`: the listen address of the running service (a reload), or "".
void CheckHttp(const HttpConfig& http, const std::string& held, std::vector<std::string>* errors) {
  // The http server's messages start with "http: "; the key says more.
  auto add = [errors](const char* key, const absl::Status& status) {
    errors->push_back(absl::StrCat(key, ": ", absl::StripPrefix(status.message(), "http: ")));
  };
  if (const absl::Status listen = CheckListenAddress(http.listen, held); !listen.ok()) {
    add("http.listen", listen);
  }
  WebConfig web = http.web;
  const char* key = "http.tls";
  const bool web_file = !http.web_config_file.empty();
  if (web_file) {
    key = "http.web_config_file";
    absl::StatusOr<WebConfig> loaded = LoadWebConfigFile(http.web_config_file);
    if (!loaded.ok()) {
      errors->push_back(absl::StrCat(key, ": ", loaded.status().message()));
      return;
    }
    web = *std::move(loaded);
  }
  if (!web.tls.enabled()) return;
  const size_t before = errors->size();
  for (const auto& [field, file] :
       {std::pair{"cert_file", &web.tls.cert_file}, std::pair{"key_file", &web.tls.key_file},
        std::pair{"client_ca_file", &web.tls.client_ca_file}}) {
    if (file->empty()) {
      const bool missing = (field == std::string_view("cert_file") && web.tls.cert.empty()) ||
                           (field == std::string_view("key_file") && web.tls.key.empty());
      if (missing) {
        errors->push_back(absl::StrCat(key, web_file ? " " : ".", field,
                                       ": not set (tls needs both cert_file and key_file)"));
      }
      continue;
    }
    if (std::string reason = UnreadableFile(*file); !reason.empty()) {
      errors->push_back(absl::StrCat(key, web_file ? " " : ".", field, ": ", reason));
    }
  }
  if (errors->size() != before) return;
  if (const absl::Status usable = CheckTlsConfig(web.tls); !usable.ok()) add(key, usable);
}

}  // namespace

absl::Status CheckStartupResources(const Config& config, const Config* running) {
  std::vector<std::string> errors;
  CheckRules(config, &errors);
  CheckHttp(config.http, running != nullptr ? running->http.listen : "", &errors);
  if (!config.checkpoint.dir.empty()) {
    if (std::string reason = UnusableCheckpointDir(config.checkpoint.dir); !reason.empty()) {
      errors.push_back(absl::StrCat("checkpoint.dir: ", reason));
    }
  }
  if (!config.dead_letter.path.empty()) {
    if (std::string reason = UnwritableDeadLetterFile(config.dead_letter.path); !reason.empty()) {
      errors.push_back(absl::StrCat("dead_letter.path: ", reason));
    }
  }
  if (errors.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrJoin(errors, "\n"));
}

}  // namespace novapulse
