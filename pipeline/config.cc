#include "pipeline/config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "aggregators/novagift_metrics.h"
#include "aggregators/spec_metrics.h"
#include "aggregators/window.h"
#include "base/cli.h"
#include "base/file.h"
#include "base/prom_names.h"
#include "base/yaml_reader.h"
#include "pipeline/preflight.h"
#include "sinks/http_post.h"
#include "sinks/remote_write.h"

namespace novapulse {
namespace {

static_assert(RulesConfig().window_memory_bytes == static_cast<int64_t>(kDefaultWindowMemoryBytes));

bool IsSecretKey(std::string_view key) {
  const std::string lower = absl::AsciiStrToLower(std::string(key));
  for (const char* word : {"password", "secret", "token", "key"}) {
    if (absl::StrContains(lower, word)) return true;
  }
  return false;
}

// Walks the YAML tree, filling a Config and collecting every error.
class Parser : public YamlReader {
 public:
  using YamlReader::YamlReader;

  void Root(const YAML::Node& root, Config* c) {
    Fields(
        root, "",
        {{"kafka", true,
          [&](const YAML::Node& n, const std::string& p) { Kafka(n, p, &c->kafka); }},
         {"http", false, [&](const YAML::Node& n, const std::string& p) { Http(n, p, &c->http); }},
         {"pipeline", false,
          [&](const YAML::Node& n, const std::string& p) { Pipeline(n, p, &c->pipeline); }},
         {"metrics", false,
          [&](const YAML::Node& n, const std::string& p) { Metrics(n, p, &c->metrics); }},
         {"rules", false,
          [&](const YAML::Node& n, const std::string& p) { Rules(n, p, &c->rules); }},
         {"alertmanager", false,
          [&](const YAML::Node& n, const std::string& p) { Alertmanager(n, p, &c->alertmanager); }},
         {"remote_write", false,
          [&](const YAML::Node& n, const std::string& p) { RemoteWrite(n, p, &c->remote_write); }},
         {"dead_letter", false,
          [&](const YAML::Node& n, const std::string& p) { DeadLetter(n, p, &c->dead_letter); }},
         {"checkpoint", false,
          [&](const YAML::Node& n, const std::string& p) { Checkpoint(n, p, &c->checkpoint); }},
         {"log", false, [&](const YAML::Node& n, const std::string& p) { Log(n, p, &c->log); }}});
  }

  void Metrics(const YAML::Node& node, const std::string& path, MetricsConfig* c) {
    constexpr absl::Duration kMaxExpiry = absl::Hours(24 * 366);
    Fields(
        node, path,
        {{"spec", false,
          [&](const YAML::Node& n, const std::string& p) {
            String(n, p, &c->spec);
            spec_mark_ = n.Mark();
            spec_given_ = true;
          }},
         {"expire_after", false,
          [&](const YAML::Node& n, const std::string& p) {
            Duration(n, p, absl::ZeroDuration(), kMaxExpiry, &c->expire_after);
          }},
         {"families", false, [&](const YAML::Node& n, const std::string& p) {
            Entries(
                n, p,
                [&](const std::string& name, const YAML::Node& key_node, const YAML::Node& value) {
                  absl::Duration after = absl::ZeroDuration();
                  Fields(value, Join(p, name),
                         {{"expire_after", true, [&](const YAML::Node& v, const std::string& r) {
                             Duration(v, r, absl::ZeroDuration(), kMaxExpiry, &after);
                           }}});
                  c->families.emplace_back(name, after);
                  family_marks_.push_back(key_node.Mark());
                });
          }}});
  }

  // What the metric set decides, once the whole file is read: the spec
  // loads and compiles, kafka.topics names its inputs (or the NovaGift
  // topics without one) and metrics.families its families that can expire.
  void MetricSet(Config* c) {
    // A metrics.spec that is not a string was reported: what names its
    // inputs and families cannot be checked.
    if (spec_given_ && c->metrics.spec.empty()) return;
    const spec::MetricSpecSet* spec = nullptr;
    if (!c->metrics.spec.empty()) {
      absl::StatusOr<spec::MetricSpecSet> loaded = spec::LoadMetricSpec(c->metrics.spec);
      absl::StatusOr<std::shared_ptr<const spec::SpecPlan>> plan =
          loaded.ok() ? spec::SpecPlan::Compile(*std::move(loaded))
                      : absl::StatusOr<std::shared_ptr<const spec::SpecPlan>>(loaded.status());
      if (!plan.ok()) {
        Error(spec_mark_, "metrics.spec", std::string(plan.status().message()));
        return;
      }
      c->metrics.plan = *std::move(plan);
      spec = &c->metrics.plan->spec();
    }
    // The key that set each input's topic, if one did.
    std::vector<const TopicKey*> set_by(spec != nullptr ? spec->inputs.size() : 2, nullptr);
    for (const TopicKey& k : topic_keys_) {
      int input = -1;
      if (spec == nullptr) {
        input = k.name == "access_log" ? 0 : k.name == "outbox" ? 1 : -1;
        if (input < 0) {
          Error(k.mark, "kafka.topics",
                absl::StrCat("unknown key \"", k.name, "\" (allowed: access_log, outbox)"));
          continue;
        }
        (input == 0 ? c->kafka.topics.access_log : c->kafka.topics.outbox) = k.topic;
      } else {
        input = SpecInputOfKey(*spec, k.name);
        if (input < 0) {
          std::vector<std::string> names;
          for (const spec::InputSpec& in : spec->inputs) names.push_back(in.name);
          Error(k.mark, "kafka.topics",
                absl::StrCat("\"", k.name, "\" is not an input of the metric spec ",
                             c->metrics.spec, " (its inputs: ", absl::StrJoin(names, ", "), ")"));
          continue;
        }
        c->kafka.topics.inputs.emplace_back(spec->inputs[static_cast<size_t>(input)].name, k.topic);
      }
      const TopicKey*& before = set_by[static_cast<size_t>(input)];
      if (before != nullptr) {
        Error(k.mark, "kafka.topics",
              absl::StrCat("\"", k.name, "\" names the same input as \"", before->name, "\""));
      }
      before = &k;
    }
    // Each topic is read as one input, by its name: librdkafka would take a
    // name starting with '^' for a pattern of many.
    const std::vector<std::string> topics = InputTopics(*c);
    auto mark_of = [&](size_t input) {
      return set_by[input] != nullptr ? set_by[input]->mark : spec_mark_;
    };
    for (size_t i = 0; i < topics.size(); ++i) {
      if (topics[i].starts_with("^")) {
        Error(mark_of(i), "kafka.topics",
              absl::StrCat("topic ", topics[i],
                           ": a topic pattern (^...) is not supported; name "
                           "each topic"));
      }
      for (size_t j = 0; j < i; ++j) {
        if (topics[i] != topics[j]) continue;
        auto name = [&](size_t n) {
          return spec != nullptr ? spec->inputs[n].name
                                 : std::string(n == 0 ? "access_log" : "outbox");
        };
        Error(set_by[i] != nullptr ? mark_of(i) : mark_of(j), "kafka.topics",
              absl::StrCat("inputs ", name(j), " and ", name(i), " would both read topic ",
                           topics[i]));
      }
    }
    for (size_t i = 0; i < c->metrics.families.size(); ++i) {
      const std::string& name = c->metrics.families[i].first;
      std::vector<std::string> can;
      bool ok = false;
      if (spec == nullptr) {
        ok = NovaGiftMetrics::CanExpire(name);
        if (!ok) can = NovaGiftMetrics::ExpiringFamilies();
      } else {
        for (size_t f = 0; f < spec->metrics.size(); ++f) {
          if (!SpecMetrics::CanExpire(*spec, f)) continue;
          ok = ok || spec->metrics[f].name == name;
          can.push_back(spec->metrics[f].name);
        }
      }
      if (!ok) {
        Error(family_marks_[i], Join("metrics.families", name),
              absl::StrCat("not a family whose series can expire; those are: ",
                           absl::StrJoin(can, ", ")));
      }
    }
  }

 private:
  // A key of kafka.topics, checked once the metric set is known.
  struct TopicKey {
    std::string name;
    std::string topic;
    YAML::Mark mark;
  };
  // The spec input a kafka.topics key names: an input's name, or failing
  // that the one input whose name it is with "_" for "-" (access_log for
  // access-log); -1 if none, or if that is more than one.
  static int SpecInputOfKey(const spec::MetricSpecSet& spec, const std::string& key) {
    if (const int exact = spec.InputIndex(key); exact >= 0 && spec.inputs[exact].name == key) {
      return exact;
    }
    auto folded = [](std::string s) {
      std::replace(s.begin(), s.end(), '-', '_');
      return s;
    };
    int found = -1;
    for (size_t i = 0; i < spec.inputs.size(); ++i) {
      if (folded(spec.inputs[i].name) != folded(key)) continue;
      if (found >= 0) return -1;
      found = static_cast<int>(i);
    }
    return found;
  }

  std::vector<TopicKey> topic_keys_;
  YAML::Mark spec_mark_;
  bool spec_given_ = false;
  std::vector<YAML::Mark> family_marks_;

  void Kafka(const YAML::Node& node, const std::string& path, KafkaConfig* c) {
    Fields(node, path,
           {{"brokers", true,
             [&](const YAML::Node& n, const std::string& p) { String(n, p, &c->brokers); }},
            {"group_id", false,
             [&](const YAML::Node& n, const std::string& p) { String(n, p, &c->group_id); }},
            {"topics", false,
             [&](const YAML::Node& n, const std::string& p) {
               Entries(n, p,
                       [&](const std::string& name, const YAML::Node& key_node,
                           const YAML::Node& value) {
                         std::string topic;
                         String(value, Join(p, name), &topic);
                         if (!topic.empty()) topic_keys_.push_back({name, topic, key_node.Mark()});
                       });
             }},
            {"properties", false,
             [&](const YAML::Node& n, const std::string& p) { Properties(n, p, &c->properties); }},
            {"max_message_bytes", false,
             [&](const YAML::Node& n, const std::string& p) {
               Int(n, p, 1000, 1000000000, &c->max_message_bytes);
             }},
            {"batch_size", false,
             [&](const YAML::Node& n, const std::string& p) {
               Int(n, p, 1, 1000000, &c->batch_size);
             }},
            {"batch_timeout", false,
             [&](const YAML::Node& n, const std::string& p) {
               Duration(n, p, absl::Milliseconds(1), absl::Minutes(1), &c->batch_timeout);
             }},
            {"commit_interval", false, [&](const YAML::Node& n, const std::string& p) {
               Duration(n, p, absl::Milliseconds(100), absl::Hours(1), &c->commit_interval);
             }}});
  }

  // librdkafka properties, verbatim. Values are never echoed: many are secrets.
  void Properties(const YAML::Node& node, const std::string& path,
                  std::map<std::string, std::string>* out) {
    Entries(node, path,
            [&](const std::string& key, const YAML::Node& key_node, const YAML::Node& value) {
              const std::string p = Join(path, key);
              if (key == "bootstrap.servers" || key == "group.id") {
                Error(key_node.Mark(), p,
                      absl::StrCat("set with kafka.", key == "group.id" ? "group_id" : "brokers",
                                   ", not as a property"));
                return;
              }
              std::optional<std::string> v = Scalar(value, p, "a string");
              if (v.has_value()) (*out)[key] = std::move(*v);
            });
  }

  void Http(const YAML::Node& node, const std::string& path, HttpConfig* c) {
    Fields(
        node, path,
        {{"listen", false,
          [&](const YAML::Node& n, const std::string& p) {
            std::string shown;
            const std::optional<std::string> v = Scalar(n, p, "a string", &shown);
            if (!v.has_value()) return;
            const size_t colon = v->rfind(':');
            int64_t port = 0;
            if (colon == std::string::npos || !absl::SimpleAtoi(v->substr(colon + 1), &port) ||
                port < 0 || port > 65535) {
              // Port 0: the kernel picks one; `run` logs it (port=).
              Error(n.Mark(), p, absl::StrCat("expected HOST:PORT (port 0-65535), got ", shown));
              return;
            }
            c->listen = *v;
          }},
         {"web_config_file", false,
          [&](const YAML::Node& n, const std::string& p) { String(n, p, &c->web_config_file); }},
         {"tls", false,
          [&](const YAML::Node& n, const std::string& p) {
            ReadTlsServerConfig(this, n, p, &c->web.tls);
          }},
         {"headers", false,
          [&](const YAML::Node& n, const std::string& p) {
            ReadHttpHeaders(this, n, p, &c->web.headers);
          }},
         {"basic_auth_users", false,
          [&](const YAML::Node& n, const std::string& p) {
            ReadBasicAuthUsers(this, n, p, &c->web.basic_auth_users);
          }},
         {"rate_limit", false,
          [&](const YAML::Node& n, const std::string& p) { ReadRateLimit(this, n, p, &c->web); }},
         {"max_lag_ready", false, [&](const YAML::Node& n, const std::string& p) {
            Int(n, p, 1, 1000000000000, &c->max_lag_ready);
          }}});
    if (!node.IsMap() || !ok()) return;
    const bool inline_web = c->web.tls.enabled() || !c->web.headers.empty() ||
                            !c->web.basic_auth_users.empty() ||
                            c->web.rate_limit_interval > absl::ZeroDuration();
    if (!c->web_config_file.empty() && inline_web) {
      Error(node.Mark(), path,
            "set web_config_file or tls/headers/basic_auth_users/rate_limit here, not both");
      return;
    }
    CheckWebConfig(this, node.Mark(), path, c->web);
  }

  void Pipeline(const YAML::Node& node, const std::string& path, PipelineConfig* c) {
    Fields(node, path,
           {{"threads", false,
             [&](const YAML::Node& n, const std::string& p) { Int(n, p, 0, 1024, &c->threads); }},
            {"series_limit", false,
             [&](const YAML::Node& n, const std::string& p) {
               Int(n, p, 1, 10000000, &c->series_limit);
             }},
            {"allowed_lateness", false,
             [&](const YAML::Node& n, const std::string& p) {
               Duration(n, p, absl::ZeroDuration(), absl::Hours(24), &c->allowed_lateness);
             }},
            {"max_future", false, [&](const YAML::Node& n, const std::string& p) {
               Duration(n, p, absl::ZeroDuration(), absl::Hours(24), &c->max_future);
             }}});
  }

  void Rules(const YAML::Node& node, const std::string& path, RulesConfig* c) {
    Fields(node, path,
           {{"files", false,
             [&](const YAML::Node& n, const std::string& p) {
               StringList(
                   n, p, [](const std::string& s) { return !s.empty(); }, "must not be empty",
                   &c->files);
             }},
            {"evaluation_interval", false,
             [&](const YAML::Node& n, const std::string& p) {
               Duration(n, p, absl::Seconds(1), absl::Hours(1), &c->evaluation_interval);
             }},
            {"window_memory_bytes", false,
             [&](const YAML::Node& n, const std::string& p) {
               Int(n, p, static_cast<int64_t>(kMinWindowMemoryBytes), int64_t{1} << 40,
                   &c->window_memory_bytes);
             }},
            {"zero_new_series", false,
             [&](const YAML::Node& n, const std::string& p) { Bool(n, p, &c->zero_new_series); }}});
  }

  void Alertmanager(const YAML::Node& node, const std::string& path, AlertmanagerConfig* c) {
    auto is_url = [](const std::string& s) {
      for (const std::string_view scheme : {"http://", "https://"}) {
        if (s.starts_with(scheme) && s.size() > scheme.size()) return true;
      }
      return false;
    };
    Fields(node, path,
           {{"urls", false,
             [&](const YAML::Node& n, const std::string& p) {
               StringList(n, p, is_url, "expected an http:// or https:// URL", &c->urls);
             }},
            {"resend_delay", false, [&](const YAML::Node& n, const std::string& p) {
               Duration(n, p, absl::Seconds(1), absl::Hours(24), &c->resend_delay);
             }}});
  }

  void RemoteWrite(const YAML::Node& node, const std::string& path, RemoteWriteConfig* c) {
    Fields(node, path,
           {{"url", true,
             [&](const YAML::Node& n, const std::string& p) {
               std::string shown;
               const std::optional<std::string> v = Scalar(n, p, "a URL", &shown);
               if (!v.has_value()) return;
               if (absl::StatusOr<HttpEndpoint> e = ParseHttpUrl(*v); !e.ok()) {
                 // Not echoed: the URL may hold a password.
                 Error(n.Mark(), p, std::string(e.status().message()));
                 return;
               }
               c->url = *v;
             }},
            {"interval", false,
             [&](const YAML::Node& n, const std::string& p) {
               Duration(n, p, absl::Seconds(1), absl::Hours(1), &c->interval);
             }},
            {"timeout", false,
             [&](const YAML::Node& n, const std::string& p) {
               Duration(n, p, absl::Milliseconds(100), absl::Minutes(10), &c->timeout);
             }},
            {"max_samples_per_send", false,
             [&](const YAML::Node& n, const std::string& p) {
               Int(n, p, 1, 1000000, &c->max_samples_per_send);
             }},
            {"queue_samples", false,
             [&](const YAML::Node& n, const std::string& p) {
               Int(n, p, 1, 1000000000, &c->queue_samples);
             }},
            {"external_labels", false,
             [&](const YAML::Node& n, const std::string& p) {
               Entries(n, p,
                       [&](const std::string& name, const YAML::Node& key_node,
                           const YAML::Node& value) {
                         const std::string q = Join(p, name);
                         if (!IsLabelName(name) || name.starts_with("__")) {
                           Error(key_node.Mark(), q,
                                 "not a label name Prometheus takes ([a-zA-Z_][a-zA-Z0-9_]*, "
                                 "not starting with __)");
                           return;
                         }
                         std::string v;
                         String(value, q, &v);
                         if (!v.empty()) c->external_labels[name] = v;
                       });
             }},
            {"headers", false,
             [&](const YAML::Node& n, const std::string& p) {
               Entries(n, p,
                       [&](const std::string& name, const YAML::Node& key_node,
                           const YAML::Node& value) {
                         const std::string q = Join(p, name);
                         if (const std::string why = RemoteWriteHeaderRefused(name); !why.empty()) {
                           Error(key_node.Mark(), q, why);
                           return;
                         }
                         std::string v;
                         OneLine(value, q, &v);
                         if (!v.empty()) c->headers[name] = v;
                       });
             }},
            {"bearer_token", false,
             [&](const YAML::Node& n, const std::string& p) { OneLine(n, p, &c->bearer_token); }}});
    if (node.IsMap() && ok() && c->queue_samples < c->max_samples_per_send) {
      Error(node.Mark(), path, "queue_samples must be at least max_samples_per_send");
    }
    if (node.IsMap() && ok() && !c->bearer_token.empty() &&
        !ParseHttpUrl(c->url)->authorization.empty()) {
      Error(node.Mark(), path, "set a password in the url or bearer_token, not both");
    }
  }

  // A non-empty string that can go into an HTTP header: no line break.
  void OneLine(const YAML::Node& node, const std::string& path, std::string* out) {
    std::string v;
    String(node, path, &v);
    if (v.find_first_of("\r\n") != std::string::npos) {
      Error(node.Mark(), path, "a header value cannot hold a line break");
      return;
    }
    *out = std::move(v);
  }

  void DeadLetter(const YAML::Node& node, const std::string& path, DeadLetterConfig* c) {
    Fields(node, path,
           {{"path", false,
             [&](const YAML::Node& n, const std::string& p) { String(n, p, &c->path); }},
            {"topic", false,
             [&](const YAML::Node& n, const std::string& p) { String(n, p, &c->topic); }},
            {"max_bytes", false,
             [&](const YAML::Node& n, const std::string& p) {
               Int(n, p, 4096, int64_t{1} << 40, &c->max_bytes);
             }},
            {"keep", false,
             [&](const YAML::Node& n, const std::string& p) { Int(n, p, 0, 1000, &c->keep); }}});
    if (node.IsMap() && c->path.empty() == c->topic.empty()) {
      Error(node.Mark(), path, "set exactly one of path (a file) and topic (a Kafka topic)");
    }
  }

  void Checkpoint(const YAML::Node& node, const std::string& path, CheckpointConfig* c) {
    Fields(node, path,
           {{"dir", true,
             [&](const YAML::Node& n, const std::string& p) {
               // Empty turns checkpoints off, so that a config can leave the
               // choice to the environment ("${NOVAPULSE_CHECKPOINT_DIR:-}").
               if (std::optional<std::string> dir = Scalar(n, p, "a directory")) c->dir = *dir;
             }},
            {"interval", false, [&](const YAML::Node& n, const std::string& p) {
               Duration(n, p, absl::Milliseconds(100), absl::Hours(1), &c->interval);
             }}});
  }

  void Log(const YAML::Node& node, const std::string& path, LogConfig* c) {
    Fields(node, path,
           {{"level", false,
             [&](const YAML::Node& n, const std::string& p) {
               Enum<LogLevel>(n, p,
                              {{"debug", LogLevel::kDebug},
                               {"info", LogLevel::kInfo},
                               {"warn", LogLevel::kWarn},
                               {"error", LogLevel::kError}},
                              &c->level);
             }},
            {"format", false, [&](const YAML::Node& n, const std::string& p) {
               Enum<LogFormat>(n, p, {{"logfmt", LogFormat::kLogfmt}, {"json", LogFormat::kJson}},
                               &c->format);
             }}});
  }
};

constexpr std::string_view kCheckConfigUsage = R"(Usage: novapulse check-config [OPTIONS] FILE

Parses and validates a novapulse service configuration (YAML), expanding
${VAR} and ${VAR:-default} from the environment. Then checks, without
starting anything or changing a file, what `novapulse run` would refuse at
start-up: the rule files load and build, the http listen address can be
bound now, the TLS files (or the web config file and the files it names)
load, the checkpoint
directory exists or can be created and is writable, the dead-letter file's
directory exists and is writable. Kafka and Alertmanager are not contacted.

Prints "FILE: ok" and a summary with secrets redacted, or every error as
FILE:LINE:COLUMN: reason (FILE: config.key: reason for the start-up checks).

Exit status: 0 valid, 1 invalid, unreadable or failing a start-up check,
2 usage error.

Options:
  --syntax-only   only parse and validate the file: no start-up checks (for
                  a config checked on another machine, or while the service
                  it replaces holds the listen port)
  --web.config.file FILE
                  a web config in the format of Prometheus's exporters (TLS,
                  client certificates, basic auth, headers), in place of
                  http.web_config_file; checked as run would load it
  -h, --help      this help
)";

}  // namespace

std::vector<std::string> InputTopics(const Config& config) {
  const KafkaTopicsConfig& topics = config.kafka.topics;
  if (config.metrics.plan == nullptr) return {topics.access_log, topics.outbox};
  std::vector<std::string> out;
  for (const spec::InputSpec& in : config.metrics.plan->spec().inputs) {
    out.push_back(in.topic);
    for (const auto& [name, topic] : topics.inputs) {
      if (name == in.name) out.back() = topic;
    }
  }
  return out;
}

absl::StatusOr<Config> ParseConfig(std::string_view yaml_text, std::string_view file_name) {
  Parser parser(file_name);
  Config config;
  LoadYamlDocument(yaml_text, &parser, [&](const YAML::Node& root) { parser.Root(root, &config); });
  parser.MetricSet(&config);
  if (absl::Status s = parser.status(); !s.ok()) return s;
  return config;
}

absl::StatusOr<Config> LoadConfig(const std::string& path, const std::string& web_config_file) {
  absl::StatusOr<std::string> text = ReadRegularFile(path);
  if (!text.ok()) return text.status();
  absl::StatusOr<Config> config = ParseConfig(*text, path);
  if (!config.ok() || web_config_file.empty()) return config;
  const WebConfig& web = config->http.web;
  if (web.tls.enabled() || !web.headers.empty() || !web.basic_auth_users.empty() ||
      web.rate_limit_interval > absl::ZeroDuration()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path,
                     ": --web.config.file is given, and the http section sets tls, headers, "
                     "basic_auth_users or rate_limit too: keep one of them"));
  }
  config->http.web_config_file = web_config_file;
  return config;
}

std::string RedactedSummary(const Config& c) {
  constexpr std::string_view kRedacted = "<redacted>";
  std::string out;
  auto line = [&out](std::string_view key, std::string_view value) {
    absl::StrAppend(&out, std::string(key), ": ", std::string(value), "\n");
  };
  auto list = [](const std::vector<std::string>& v) {
    return v.empty() ? std::string("[]") : absl::StrCat("[", absl::StrJoin(v, ", "), "]");
  };
  constexpr std::array<std::string_view, 4> kLevels = {"debug", "info", "warn", "error"};
  line("kafka.brokers", c.kafka.brokers);
  line("kafka.group_id", c.kafka.group_id);
  if (c.metrics.plan == nullptr) {
    line("kafka.topics.access_log", c.kafka.topics.access_log);
    line("kafka.topics.outbox", c.kafka.topics.outbox);
  } else {
    const std::vector<std::string> topics = InputTopics(c);
    const std::vector<spec::InputSpec>& inputs = c.metrics.plan->spec().inputs;
    for (size_t i = 0; i < inputs.size(); ++i) line("kafka.topics." + inputs[i].name, topics[i]);
  }
  for (const auto& [key, value] : c.kafka.properties) {
    line("kafka.properties." + key, IsSecretKey(key) ? kRedacted : value);
  }
  line("kafka.max_message_bytes", absl::StrCat(c.kafka.max_message_bytes));
  line("kafka.batch_size", absl::StrCat(c.kafka.batch_size));
  line("kafka.batch_timeout", absl::FormatDuration(c.kafka.batch_timeout));
  line("kafka.commit_interval", absl::FormatDuration(c.kafka.commit_interval));
  line("http.listen", c.http.listen);
  if (!c.http.web_config_file.empty()) line("http.web_config_file", c.http.web_config_file);
  line("http.tls", DescribeTls(c.http.web.tls));
  for (const auto& [name, value] : c.http.web.headers) line("http.headers." + name, value);
  for (const auto& [user, hash] : c.http.web.basic_auth_users) {
    line("http.basic_auth_users." + user, kRedacted);
  }
  if (c.http.web.rate_limit_interval > absl::ZeroDuration()) {
    line("http.rate_limit",
         absl::StrCat("interval=", absl::FormatDuration(c.http.web.rate_limit_interval),
                      " burst=", c.http.web.rate_limit_burst));
  }
  line("http.max_lag_ready", absl::StrCat(c.http.max_lag_ready));
  line("pipeline.threads",
       c.pipeline.threads == 0 ? "0 (every CPU it may use)" : absl::StrCat(c.pipeline.threads));
  line("pipeline.series_limit", absl::StrCat(c.pipeline.series_limit));
  line("pipeline.allowed_lateness", absl::FormatDuration(c.pipeline.allowed_lateness));
  line("pipeline.max_future", absl::FormatDuration(c.pipeline.max_future));
  line("metrics.spec", c.metrics.spec.empty()
                           ? "(none: the compiled-in NovaGift set)"
                           : absl::StrCat(c.metrics.spec, " (",
                                          c.metrics.plan->spec().metrics.size(), " families)"));
  line("metrics.expire_after", c.metrics.expire_after > absl::ZeroDuration()
                                   ? absl::FormatDuration(c.metrics.expire_after)
                                   : "0 (never)");
  for (const auto& [name, after] : c.metrics.families) {
    line("metrics.families." + name + ".expire_after",
         after > absl::ZeroDuration() ? absl::FormatDuration(after) : "0 (never)");
  }
  line("rules.files", list(c.rules.files));
  line("rules.evaluation_interval", absl::FormatDuration(c.rules.evaluation_interval));
  line("rules.window_memory_bytes", absl::StrCat(c.rules.window_memory_bytes));
  line("rules.zero_new_series", c.rules.zero_new_series ? "true" : "false");
  line("alertmanager.urls", list(c.alertmanager.urls));
  line("alertmanager.resend_delay", absl::FormatDuration(c.alertmanager.resend_delay));
  if (!c.remote_write.url.empty()) {
    // The URL may carry a password (user:password@).
    const size_t at = c.remote_write.url.rfind('@');
    line("remote_write.url",
         at == std::string::npos
             ? c.remote_write.url
             : absl::StrCat("http://", std::string(kRedacted), c.remote_write.url.substr(at)));
    line("remote_write.interval", absl::FormatDuration(c.remote_write.interval));
    line("remote_write.timeout", absl::FormatDuration(c.remote_write.timeout));
    line("remote_write.max_samples_per_send", absl::StrCat(c.remote_write.max_samples_per_send));
    line("remote_write.queue_samples", absl::StrCat(c.remote_write.queue_samples));
    for (const auto& [name, value] : c.remote_write.external_labels) {
      line("remote_write.external_labels." + name, value);
    }
    // Header values and the token may be secrets: named, not shown.
    for (const auto& [name, value] : c.remote_write.headers) {
      line("remote_write.headers." + name, std::string(kRedacted));
    }
    if (!c.remote_write.bearer_token.empty()) {
      line("remote_write.bearer_token", std::string(kRedacted));
    }
  }
  line("dead_letter.path", c.dead_letter.path.empty() ? "(none)" : c.dead_letter.path);
  line("dead_letter.topic", c.dead_letter.topic.empty() ? "(none)" : c.dead_letter.topic);
  line("dead_letter.max_bytes", absl::StrCat(c.dead_letter.max_bytes));
  line("dead_letter.keep", absl::StrCat(c.dead_letter.keep));
  line("checkpoint.dir", c.checkpoint.dir.empty() ? "(none)" : c.checkpoint.dir);
  line("checkpoint.interval", absl::FormatDuration(c.checkpoint.interval));
  line("log.level", kLevels[static_cast<size_t>(c.log.level)]);
  line("log.format", c.log.format == LogFormat::kJson ? "json" : "logfmt");
  return out;
}

int RunCheckConfigCommand(int argc, char** argv) {
  std::vector<std::string> files;
  bool syntax_only = false;
  std::string web_config_file;
  ArgParser args(argc, argv, kCheckConfigUsage);
  while (args.Next()) {
    if (args.IsSwitch("--syntax-only")) {
      syntax_only = true;
    } else if (args.Is("--web.config.file")) {
      web_config_file = args.Value();
    } else if (args.IsPositional()) {
      files.emplace_back(args.Positional());
    } else {
      return args.UnknownFlag();
    }
    if (args.failed()) return args.exit_code();
  }
  if (args.failed()) return args.exit_code();
  if (args.help()) return 0;
  if (files.size() != 1) return args.Fail("want exactly one config FILE");
  const absl::StatusOr<Config> config = LoadConfig(files[0], web_config_file);
  if (!config.ok()) {
    std::fprintf(stderr, "%s\n", std::string(config.status().message()).c_str());
    return 1;
  }
  if (!syntax_only) {
    if (const absl::Status startup = CheckStartupResources(*config); !startup.ok()) {
      for (const absl::string_view line : absl::StrSplit(startup.message(), '\n')) {
        std::fprintf(stderr, "%s: %s\n", files[0].c_str(), std::string(line).c_str());
      }
      return 1;
    }
  }
  const std::string summary = RedactedSummary(*config);
  std::fprintf(stdout, "%s: ok\n%s", files[0].c_str(), summary.c_str());
  return 0;
}

}  // namespace novapulse
