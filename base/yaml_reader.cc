#include "base/yaml_reader.h"

#include <yaml-cpp/eventhandler.h>

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <set>
#include <sstream>

#include "absl/status/statusor.h"
#include "absl/strings/numbers.h"
#include "base/duration.h"

namespace novapulse {
namespace {

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

}  // namespace

void YamlReader::Error(const YAML::Mark& mark, std::string_view path, std::string_view reason) {
  if (errors_.size() >= kMaxErrors) {
    ++dropped_;
    return;
  }
  // An empty document has no position: point at its start.
  const int line = mark.line < 0 ? 0 : mark.line;
  const int column = mark.column < 0 ? 0 : mark.column;
  const std::string where = absl::StrCat(file_, ":", line + 1, ":", column + 1);
  if (path.empty()) {
    errors_.push_back(absl::StrCat(where, ": ", std::string(reason)));
  } else {
    errors_.push_back(absl::StrCat(where, ": ", std::string(path), ": ", std::string(reason)));
  }
}

absl::Status YamlReader::status() const {
  if (errors_.empty()) return absl::OkStatus();
  std::string message = absl::StrJoin(errors_, "\n");
  if (dropped_ > 0) absl::StrAppend(&message, "\n(", dropped_, " more errors)");
  return absl::InvalidArgumentError(message);
}

std::string YamlReader::Join(const std::string& path, std::string_view key) {
  return path.empty() ? std::string(key) : absl::StrCat(path, ".", std::string(key));
}

bool YamlReader::Entries(
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

void YamlReader::Fields(const YAML::Node& node, const std::string& path,
                        std::initializer_list<Field> fields) {
  std::set<std::string_view> present;
  const bool is_map = Entries(
      node, path, [&](const std::string& key, const YAML::Node& key_node, const YAML::Node& value) {
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

std::optional<std::string> YamlReader::Scalar(const YAML::Node& node, const std::string& path,
                                              std::string_view want, std::string* shown) {
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

void YamlReader::String(const YAML::Node& node, const std::string& path, std::string* out) {
  std::optional<std::string> v = Scalar(node, path, "a string");
  if (!v.has_value()) return;
  if (v->empty()) {
    Error(node.Mark(), path, "must not be empty");
    return;
  }
  *out = std::move(*v);
}

void YamlReader::Int(const YAML::Node& node, const std::string& path, int64_t min, int64_t max,
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

void YamlReader::Double(const YAML::Node& node, const std::string& path, double min, double max,
                        double* out) {
  std::string shown;
  const std::optional<std::string> v = Scalar(node, path, "a number", &shown);
  if (!v.has_value()) return;
  double d = 0;
  // SimpleAtod reads "inf" and "nan", and overflows to infinity.
  if (!absl::SimpleAtod(*v, &d) || !std::isfinite(d)) {
    Error(node.Mark(), path, absl::StrCat("expected a finite number, got ", shown));
  } else if (d < min || d > max) {
    Error(node.Mark(), path,
          absl::StrCat("value out of range: ", shown, " is not in [", min, ", ", max, "]"));
  } else {
    *out = d;
  }
}

void YamlReader::Bool(const YAML::Node& node, const std::string& path, bool* out) {
  std::string shown;
  const std::optional<std::string> v = Scalar(node, path, "true or false", &shown);
  if (!v.has_value()) return;
  if (*v == "true") {
    *out = true;
  } else if (*v == "false") {
    *out = false;
  } else {
    Error(node.Mark(), path, absl::StrCat("expected true or false, got ", shown));
  }
}

void YamlReader::Duration(const YAML::Node& node, const std::string& path, absl::Duration min,
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

void YamlReader::StringList(const YAML::Node& node, const std::string& path,
                            const std::function<bool(const std::string&)>& valid,
                            std::string_view want, std::vector<std::string>* out) {
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

void LoadYamlDocument(std::string_view text, YamlReader* reader,
                      const std::function<void(const YAML::Node&)>& walk) {
  try {
    const std::string copy(text);
    // Not YAML::LoadAll: on a ',' where a document starts ("," or "{a: 1},")
    // yaml-cpp 0.7 yields empty documents forever without consuming it.
    const std::optional<YAML::Mark> second = SecondDocument(copy);
    if (second.has_value()) {
      reader->Error(*second, "", "expected one YAML document, found several");
    } else {
      walk(YAML::Load(copy));
    }
  } catch (const YAML::Exception& e) {
    reader->Error(e.mark, "", absl::StrCat("YAML syntax error: ", e.msg));
  }
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

}  // namespace novapulse
