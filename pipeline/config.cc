#include "pipeline/config.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <array>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <initializer_list>
#include <optional>
#include <set>
#include <sstream>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "aggregators/window.h"
#include "base/cli.h"
#include "base/duration.h"
#include "base/file.h"
#include "pipeline/preflight.h"

namespace novapulse {
namespace {

// Errors beyond this many are counted, not listed: one typo should not bury
// the others, and a wrong file should not print a thousand lines.
constexpr size_t kMaxErrors = 20;

static_assert(RulesConfig().window_memory_bytes == static_cast<int64_t>(kDefaultWindowMemoryBytes));

bool IsSecretKey(std::string_view key) {
  const std::string lower = absl::AsciiStrToLower(std::string(key));
  for (const char* word : {"password", "secret", "token", "key"}) {
    if (absl::StrContains(lower, word)) return true;
  }
  return false;
}

std::string Quoted(std::string_view s) { return absl::StrCat("'", std::string(s), "'"); }

std::string Describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "no value";
    case YAML::NodeType::Scalar:
      return "a scalar";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

bool IsEnvName(std::string_view name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
  for (const char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

// Expands ${NAME} and ${NAME:-default} (the default also applies when NAME is
// set but empty, as in the shell). Errors name the variable, never a value.
absl::StatusOr<std::string> ExpandEnv(std::string_view text) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    const std::string_view rest = text.substr(i);
    if (rest.starts_with("$${")) {
      out += "${";
      i += 3;
      continue;
    }
    if (!rest.starts_with("${")) {
      out += text[i++];
      continue;
    }
    const size_t close = rest.find('}');
    if (close == std::string_view::npos) {
      return absl::InvalidArgumentError("unterminated '${' (want ${NAME} or ${NAME:-default})");
    }
    std::string_view name = rest.substr(2, close - 2);
    std::optional<std::string_view> fallback;
    if (const size_t sep = name.find(":-"); sep != std::string_view::npos) {
      fallback = name.substr(sep + 2);
      name = name.substr(0, sep);
    }
    if (!IsEnvName(name)) {
      return absl::InvalidArgumentError(
          "bad environment variable reference (want ${NAME} or ${NAME:-default}, NAME of "
          "letters, digits and '_')");
    }
    const char* value = std::getenv(std::string(name).c_str());
    if (value != nullptr && *value != '\0') {
      out += value;
    } else if (fallback.has_value()) {
      out += *fallback;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("environment variable ", std::string(name), " is not set"));
    }
    i += close + 1;
  }
  return out;
}

// Walks the YAML tree, filling a Config and collecting every error.
class Parser {
 public:
  explicit Parser(std::string_view file) : file_(file) {}

  void Error(const YAML::Mark& mark, std::string_view path, std::string_view reason) {
    if (errors_.size() >= kMaxErrors) {
      ++dropped_;
      return;
    }
    // An empty document has no position: point at its start.
    const int line = mark.line < 0 ? 0 : mark.line;
    const int column = mark.column < 0 ? 0 : mark.column;
    const std::string where = absl::StrCat(std::string(file_), ":", line + 1, ":", column + 1);
    if (path.empty()) {
      errors_.push_back(absl::StrCat(where, ": ", std::string(reason)));
    } else {
      errors_.push_back(absl::StrCat(where, ": ", std::string(path), ": ", std::string(reason)));
    }
  }

  absl::Status status() const {
    if (errors_.empty()) return absl::OkStatus();
    std::string message = absl::StrJoin(errors_, "\n");
    if (dropped_ > 0) absl::StrAppend(&message, "\n(", dropped_, " more errors)");
    return absl::InvalidArgumentError(message);
  }

  void Root(const YAML::Node& root, Config* c) {
    Fields(
        root, "",
        {{"kafka", true,
          [&](const YAML::Node& n, const std::string& p) { Kafka(n, p, &c->kafka); }},
         {"http", false, [&](const YAML::Node& n, const std::string& p) { Http(n, p, &c->http); }},
         {"pipeline", false,
          [&](const YAML::Node& n, const std::string& p) { Pipeline(n, p, &c->pipeline); }},
         {"rules", false,
          [&](const YAML::Node& n, const std::string& p) { Rules(n, p, &c->rules); }},
         {"alertmanager", false,
          [&](const YAML::Node& n, const std::string& p) { Alertmanager(n, p, &c->alertmanager); }},
         {"dead_letter", false,
          [&](const YAML::Node& n, const std::string& p) { DeadLetter(n, p, &c->dead_letter); }},
         {"checkpoint", false,
          [&](const YAML::Node& n, const std::string& p) { Checkpoint(n, p, &c->checkpoint); }},
         {"log", false, [&](const YAML::Node& n, const std::string& p) { Log(n, p, &c->log); }}});
  }

 private:
  using Handler = std::function<void(const YAML::Node&, const std::string&)>;
  struct Field {
    std::string_view name;
    bool required;
    Handler parse;
  };

  static std::string Join(const std::string& path, std::string_view key) {
    return path.empty() ? std::string(key) : absl::StrCat(path, ".", std::string(key));
  }

  // Calls `fn(key, key_node, value)` for each entry of a mapping, rejecting
  // non-string and duplicate keys. No value (`section:`) is an empty mapping.
  bool Entries(
      const YAML::Node& node, const std::string& path,
      const std::function<void(const std::string&, const YAML::Node&, const YAML::Node&)>& fn) {
    if (node.IsNull()) return true;
    if (!node.IsMap()) {
      Error(node.Mark(), path, absl::StrCat("expected a mapping, got ", Describe(node)));
      return false;
    }
    std::set<std::string> seen;
    for (YAML::const_iterator it = node.begin(); it != node.end(); ++it) {
      // Copies, not references: `it->` returns a temporary proxy, so a
      // reference to its `first` dangles once the statement ends.
      const YAML::Node key = it->first;
      const YAML::Node value = it->second;
      if (!key.IsScalar()) {
        Error(key.Mark(), path, "keys must be strings");
        continue;
      }
      if (!seen.insert(key.Scalar()).second) {
        Error(key.Mark(), Join(path, key.Scalar()), "duplicate key");
        continue;
      }
      fn(key.Scalar(), key, value);
    }
    return true;
  }

  void Fields(const YAML::Node& node, const std::string& path,
              std::initializer_list<Field> fields) {
    std::set<std::string_view> present;
    const bool is_map = Entries(
        node, path,
        [&](const std::string& key, const YAML::Node& key_node, const YAML::Node& value) {
          for (const Field& f : fields) {
            if (f.name == key) {
              present.insert(f.name);
              f.parse(value, Join(path, key));
              return;
            }
          }
          std::vector<std::string> allowed;
          allowed.reserve(fields.size());
          for (const Field& f : fields) allowed.emplace_back(f.name);
          Error(key_node.Mark(), path.empty() ? Quoted(key) : path,
                absl::StrCat(path.empty() ? "unknown section" : "unknown key " + Quoted(key),
                             " (allowed: ", absl::StrJoin(allowed, ", "), ")"));
        });
    if (!is_map) return;
    for (const Field& f : fields) {
      if (f.required && !present.contains(f.name)) {
        Error(node.Mark(), path,
              absl::StrCat(path.empty() ? "missing required section " : "missing required key ",
                           Quoted(f.name)));
      }
    }
  }

  // A scalar value after ${VAR} expansion; `want` names the expected type.
  // Sets *shown to how the value may be echoed in an error: a value that came
  // from the environment may be a secret, so only its reference is shown.
  std::optional<std::string> Scalar(const YAML::Node& node, const std::string& path,
                                    std::string_view want, std::string* shown = nullptr) {
    if (!node.IsScalar()) {
      Error(node.Mark(), path,
            absl::StrCat("expected ", std::string(want), ", got ", Describe(node)));
      return std::nullopt;
    }
    absl::StatusOr<std::string> value = ExpandEnv(node.Scalar());
    if (!value.ok()) {
      Error(node.Mark(), path, std::string(value.status().message()));
      return std::nullopt;
    }
    if (shown != nullptr) {
      *shown = *value == node.Scalar()
                   ? Quoted(*value)
                   : absl::StrCat(Quoted(node.Scalar()), " (value from the environment not shown)");
    }
    return std::move(*value);
  }

  void String(const YAML::Node& node, const std::string& path, std::string* out) {
    std::optional<std::string> v = Scalar(node, path, "a string");
    if (!v.has_value()) return;
    if (v->empty()) {
      Error(node.Mark(), path, "must not be empty");
      return;
    }
    *out = std::move(*v);
  }

  void Int(const YAML::Node& node, const std::string& path, int64_t min, int64_t max,
           int64_t* out) {
    std::string shown;
    const std::optional<std::string> v = Scalar(node, path, "an integer", &shown);
    if (!v.has_value()) return;
    int64_t n = 0;
    if (!absl::SimpleAtoi(*v, &n)) {
      Error(node.Mark(), path, absl::StrCat("expected an integer, got ", shown));
    } else if (n < min || n > max) {
      Error(node.Mark(), path,
            absl::StrCat("value out of range: ", shown, " is not in [", min, ", ", max, "]"));
    } else {
      *out = n;
    }
  }

  void Duration(const YAML::Node& node, const std::string& path, absl::Duration min,
                absl::Duration max, absl::Duration* out) {
    std::string shown;
    const std::optional<std::string> v = Scalar(node, path, "a duration", &shown);
    if (!v.has_value()) return;
    const absl::StatusOr<absl::Duration> d = ParseDuration(*v);
    if (!d.ok()) {
      Error(node.Mark(), path,
            absl::StrCat("bad duration ", shown, ": ", std::string(d.status().message())));
    } else if (*d < min || *d > max) {
      Error(node.Mark(), path,
            absl::StrCat("value out of range: ", shown, " is not in [", absl::FormatDuration(min),
                         ", ", absl::FormatDuration(max), "]"));
    } else {
      *out = *d;
    }
  }

  template <typename E>
  void Enum(const YAML::Node& node, const std::string& path,
            std::initializer_list<std::pair<std::string_view, E>> values, E* out) {
    std::string shown;
    const std::optional<std::string> v = Scalar(node, path, "a string", &shown);
    if (!v.has_value()) return;
    std::vector<std::string> names;
    for (const auto& [name, value] : values) {
      if (name == *v) {
        *out = value;
        return;
      }
      names.emplace_back(name);
    }
    Error(node.Mark(), path,
          absl::StrCat("expected one of ", absl::StrJoin(names, ", "), ", got ", shown));
  }

  void StringList(const YAML::Node& node, const std::string& path,
                  const std::function<bool(const std::string&)>& valid, std::string_view want,
                  std::vector<std::string>* out) {
    if (node.IsNull()) return;
    if (!node.IsSequence()) {
      Error(node.Mark(), path, absl::StrCat("expected a list, got ", Describe(node)));
      return;
    }
    out->clear();
    for (size_t i = 0; i < node.size(); ++i) {
      const YAML::Node item = node[i];
      const std::string item_path = absl::StrCat(path, "[", i, "]");
      std::optional<std::string> v = Scalar(item, item_path, "a string");
      if (!v.has_value()) continue;
      if (!valid(*v)) {
        Error(item.Mark(), item_path, want);
        continue;
      }
      out->push_back(std::move(*v));
    }
  }

  void Kafka(const YAML::Node& node, const std::string& path, KafkaConfig* c) {
    Fields(node, path,
           {{"brokers", true,
             [&](const YAML::Node& n, const std::string& p) { String(n, p, &c->brokers); }},
            {"group_id", false,
             [&](const YAML::Node& n, const std::string& p) { String(n, p, &c->group_id); }},
            {"topics", false,
             [&](const YAML::Node& n, const std::string& p) {
               Fields(n, p,
                      {{"access_log", false,
                        [&](const YAML::Node& m, const std::string& q) {
                          String(m, q, &c->topics.access_log);
                        }},
                       {"outbox", false, [&](const YAML::Node& m, const std::string& q) {
                          String(m, q, &c->topics.outbox);
                        }}});
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
    Fields(node, path,
           {{"listen", false,
             [&](const YAML::Node& n, const std::string& p) {
               std::string shown;
               const std::optional<std::string> v = Scalar(n, p, "a string", &shown);
               if (!v.has_value()) return;
               const size_t colon = v->rfind(':');
               int64_t port = 0;
               if (colon == std::string::npos || !absl::SimpleAtoi(v->substr(colon + 1), &port) ||
                   port < 1 || port > 65535) {
                 Error(n.Mark(), p, absl::StrCat("expected HOST:PORT (port 1-65535), got ", shown));
                 return;
               }
               c->listen = *v;
             }},
            {"tls", false,
             [&](const YAML::Node& n, const std::string& p) {
               Fields(n, p,
                      {{"cert_file", true,
                        [&](const YAML::Node& m, const std::string& q) {
                          String(m, q, &c->tls.cert_file);
                        }},
                       {"key_file", true, [&](const YAML::Node& m, const std::string& q) {
                          String(m, q, &c->tls.key_file);
                        }}});
             }},
            {"basic_auth_users", false,
             [&](const YAML::Node& n, const std::string& p) { Users(n, p, &c->basic_auth_users); }},
            {"max_lag_ready", false, [&](const YAML::Node& n, const std::string& p) {
               Int(n, p, 1, 1000000000000, &c->max_lag_ready);
             }}});
  }

  void Users(const YAML::Node& node, const std::string& path,
             std::map<std::string, std::string>* out) {
    Entries(node, path,
            [&](const std::string& user, const YAML::Node& key_node, const YAML::Node& value) {
              const std::string p = Join(path, user);
              if (user.empty() || absl::StrContains(user, ':')) {
                Error(key_node.Mark(), p, "a user name must be non-empty and have no ':'");
                return;
              }
              std::optional<std::string> hash = Scalar(value, p, "a bcrypt hash");
              if (!hash.has_value()) return;
              // $2a$/$2b$/$2y$, a two-digit cost, '$', 22 characters of salt and 31 of hash.
              const bool bcrypt = hash->size() == 60 &&
                                  (hash->starts_with("$2a$") || hash->starts_with("$2b$") ||
                                   hash->starts_with("$2y$")) &&
                                  std::isdigit(static_cast<unsigned char>((*hash)[4])) &&
                                  std::isdigit(static_cast<unsigned char>((*hash)[5])) &&
                                  (*hash)[6] == '$';
              if (!bcrypt) {
                Error(value.Mark(), p, "not a bcrypt hash (want $2b$COST$..., 60 characters)");
                return;
              }
              (*out)[user] = std::move(*hash);
            });
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
            {"window_memory_bytes", false, [&](const YAML::Node& n, const std::string& p) {
               Int(n, p, static_cast<int64_t>(kMinWindowMemoryBytes), int64_t{1} << 40,
                   &c->window_memory_bytes);
             }}});
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
    Fields(
        node, path,
        {{"dir", true, [&](const YAML::Node& n, const std::string& p) { String(n, p, &c->dir); }},
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

  std::string_view file_;
  std::vector<std::string> errors_;
  size_t dropped_ = 0;
};

// Reads document events only, to learn whether `text` holds a second
// document (and where it starts) without building any node. A document that
// starts where the previous one did, or at a ',', means the parser is stuck
// on a token it cannot place: a syntax error.
class DocumentCounter : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override { start = mark; }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {}
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {}
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {}
  void OnMapEnd() override {}

  YAML::Mark start = YAML::Mark::null_mark();
};

std::optional<YAML::Mark> SecondDocument(const std::string& text) {
  std::istringstream in(text);
  YAML::Parser events(in);
  DocumentCounter counter;
  if (!events.HandleNextDocument(counter)) return std::nullopt;
  const YAML::Mark first = counter.start;
  if (!events.HandleNextDocument(counter)) return std::nullopt;
  const std::string_view at =
      counter.start.pos >= 0 && static_cast<size_t>(counter.start.pos) < text.size()
          ? std::string_view(text).substr(static_cast<size_t>(counter.start.pos), 1)
          : std::string_view();
  if (counter.start.pos == first.pos || at == ",") {
    throw YAML::ParserException(counter.start, absl::StrCat("unexpected '", std::string(at), "'"));
  }
  return counter.start;
}

constexpr std::string_view kCheckConfigUsage = R"(Usage: novapulse check-config [OPTIONS] FILE

Parses and validates a novapulse service configuration (YAML), expanding
${VAR} and ${VAR:-default} from the environment. Then checks, without
starting anything or changing a file, what `novapulse run` would refuse at
start-up: the rule files load and build, the http listen address can be
bound now, the TLS certificate and key are readable files, the checkpoint
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
  -h, --help      this help
)";

}  // namespace

absl::StatusOr<Config> ParseConfig(std::string_view yaml_text, std::string_view file_name) {
  Parser parser(file_name);
  Config config;
  try {
    const std::string text(yaml_text);
    // Not YAML::LoadAll: on a ',' where a document starts ("," or "{a: 1},")
    // yaml-cpp 0.7 yields empty documents forever without consuming it.
    const std::optional<YAML::Mark> second = SecondDocument(text);
    if (second.has_value()) {
      parser.Error(*second, "", "expected one YAML document, found several");
    } else {
      parser.Root(YAML::Load(text), &config);
    }
  } catch (const YAML::Exception& e) {
    parser.Error(e.mark, "", absl::StrCat("YAML syntax error: ", e.msg));
  }
  if (absl::Status s = parser.status(); !s.ok()) return s;
  return config;
}

absl::StatusOr<Config> LoadConfig(const std::string& path) {
  absl::StatusOr<std::string> text = ReadRegularFile(path);
  if (!text.ok()) return text.status();
  return ParseConfig(*text, path);
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
  line("kafka.topics.access_log", c.kafka.topics.access_log);
  line("kafka.topics.outbox", c.kafka.topics.outbox);
  for (const auto& [key, value] : c.kafka.properties) {
    line("kafka.properties." + key, IsSecretKey(key) ? kRedacted : value);
  }
  line("kafka.max_message_bytes", absl::StrCat(c.kafka.max_message_bytes));
  line("kafka.batch_size", absl::StrCat(c.kafka.batch_size));
  line("kafka.batch_timeout", absl::FormatDuration(c.kafka.batch_timeout));
  line("kafka.commit_interval", absl::FormatDuration(c.kafka.commit_interval));
  line("http.listen", c.http.listen);
  line("http.tls", c.http.tls.cert_file.empty() ? "off"
                                                : absl::StrCat("cert_file=", c.http.tls.cert_file,
                                                               " key_file=", c.http.tls.key_file));
  for (const auto& [user, hash] : c.http.basic_auth_users) {
    line("http.basic_auth_users." + user, kRedacted);
  }
  line("http.max_lag_ready", absl::StrCat(c.http.max_lag_ready));
  line("pipeline.threads",
       c.pipeline.threads == 0 ? "0 (every CPU it may use)" : absl::StrCat(c.pipeline.threads));
  line("pipeline.series_limit", absl::StrCat(c.pipeline.series_limit));
  line("pipeline.allowed_lateness", absl::FormatDuration(c.pipeline.allowed_lateness));
  line("pipeline.max_future", absl::FormatDuration(c.pipeline.max_future));
  line("rules.files", list(c.rules.files));
  line("rules.evaluation_interval", absl::FormatDuration(c.rules.evaluation_interval));
  line("rules.window_memory_bytes", absl::StrCat(c.rules.window_memory_bytes));
  line("alertmanager.urls", list(c.alertmanager.urls));
  line("alertmanager.resend_delay", absl::FormatDuration(c.alertmanager.resend_delay));
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
  ArgParser args(argc, argv, kCheckConfigUsage);
  while (args.Next()) {
    if (args.IsSwitch("--syntax-only")) {
      syntax_only = true;
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
  const absl::StatusOr<Config> config = LoadConfig(files[0]);
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
