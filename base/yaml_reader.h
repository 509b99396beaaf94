// Walking a YAML file into plain structs while collecting every error as
// FILE:LINE:COL: path: reason, so one run of a loader lists all of a file's
// mistakes: unknown keys (naming the allowed ones), missing required keys,
// duplicate keys, and scalars of the wrong type or out of range. Scalars may
// use ${NAME} and ${NAME:-default} from the environment; a value that came
// from there is never echoed in an error, since it may be a secret.
//
// A loader derives from or holds one YamlReader per file and describes each
// mapping as a list of Fields; the reader knows nothing of what the fields
// mean. Not thread-safe (it accumulates errors); readers of different files
// are independent.
//   YamlReader reader("novapulse.yaml");
//   LoadYamlDocument(text, &reader, [&](const YAML::Node& root) {
//     reader.Fields(root, "", {{"port", true, [&](const YAML::Node& n, const std::string& p) {
//                                 reader.Int(n, p, 1, 65535, &port);
//                               }}});
//   });
//   if (absl::Status s = reader.status(); !s.ok()) return s;
#ifndef NOVAPULSE_BASE_YAML_READER_H_
#define NOVAPULSE_BASE_YAML_READER_H_

#include <yaml-cpp/yaml.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"

namespace novapulse {

class YamlReader {
 public:
  // Errors beyond this many are counted, not listed: one typo should not bury
  // the others, and a wrong file should not print a thousand lines.
  static constexpr size_t kMaxErrors = 20;

  // `file` names the file in every error.
  explicit YamlReader(std::string_view file) : file_(file) {}

  // Records "FILE:LINE:COL: path: reason" ("FILE:LINE:COL: reason" when
  // `path` is empty). A mark without a position (an empty document's) points
  // at 1:1.
  void Error(const YAML::Mark& mark, std::string_view path, std::string_view reason);

  // OK, or InvalidArgument with every error on its own line, then
  // "(N more errors)" when more than kMaxErrors were recorded.
  [[nodiscard]] absl::Status status() const;
  // No error so far.
  [[nodiscard]] bool ok() const { return errors_.empty(); }

  // Parses the value of one key; the string is the key's dotted path.
  using Handler = std::function<void(const YAML::Node&, const std::string&)>;
  struct Field {
    std::string_view name;
    bool required;
    Handler parse;
  };

  // "path.key", or "key" at the top level.
  static std::string Join(const std::string& path, std::string_view key);

  // Calls `fn(key, key_node, value)` for each entry of a mapping, rejecting
  // non-string and duplicate keys. No value (`section:`) is an empty mapping.
  // False when `node` is not a mapping (an error is recorded).
  bool Entries(
      const YAML::Node& node, const std::string& path,
      const std::function<void(const std::string&, const YAML::Node&, const YAML::Node&)>& fn);

  // A mapping of known keys: calls each present field's parse, rejects
  // unknown keys (naming the allowed ones) and reports missing required ones.
  // At the top level (empty `path`) keys are called sections.
  void Fields(const YAML::Node& node, const std::string& path, std::initializer_list<Field> fields);

  // A scalar value after ${VAR} expansion; `want` names the expected type.
  // Sets *shown to how the value may be echoed in an error: a value that came
  // from the environment may be a secret, so only its reference is shown.
  std::optional<std::string> Scalar(const YAML::Node& node, const std::string& path,
                                    std::string_view want, std::string* shown = nullptr);

  // The typed values below leave *out alone on an error.

  // A non-empty string.
  void String(const YAML::Node& node, const std::string& path, std::string* out);
  // An integer in [min, max].
  void Int(const YAML::Node& node, const std::string& path, int64_t min, int64_t max, int64_t* out);
  // A finite number in [min, max].
  void Double(const YAML::Node& node, const std::string& path, double min, double max, double* out);
  // true or false.
  void Bool(const YAML::Node& node, const std::string& path, bool* out);
  // A duration (base/duration.h: "1h30m", "100ms") in [min, max].
  void Duration(const YAML::Node& node, const std::string& path, absl::Duration min,
                absl::Duration max, absl::Duration* out);

  // One of the names in `values`.
  template <typename E>
  void Enum(const YAML::Node& node, const std::string& path,
            std::span<const std::pair<std::string_view, E>> values, E* out) {
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
  template <typename E>
  void Enum(const YAML::Node& node, const std::string& path,
            std::initializer_list<std::pair<std::string_view, E>> values, E* out) {
    Enum(node, path, std::span<const std::pair<std::string_view, E>>(values.begin(), values.size()),
         out);
  }

  // A list of strings, each passing `valid` (else the error `want` is
  // reported at the item, as PATH[I]). No value keeps *out; a list replaces
  // it with its valid items.
  void StringList(const YAML::Node& node, const std::string& path,
                  const std::function<bool(const std::string&)>& valid, std::string_view want,
                  std::vector<std::string>* out);

 private:
  std::string file_;
  std::vector<std::string> errors_;
  size_t dropped_ = 0;
};

// Parses `text` as exactly one YAML document and calls `walk` with its root
// (a null node when the text holds no document). Several documents, or a
// syntax error, are recorded on `reader` at their FILE:LINE:COL instead, and
// `walk` is not called; a yaml-cpp exception thrown by `walk` is recorded the
// same way.
void LoadYamlDocument(std::string_view text, YamlReader* reader,
                      const std::function<void(const YAML::Node&)>& walk);

// 'text', as values are shown in errors.
std::string Quoted(std::string_view s);

// What a node is, for "expected X, got Y": "a scalar", "a list", "no value"...
std::string Describe(const YAML::Node& node);

}  // namespace novapulse

#endif  // NOVAPULSE_BASE_YAML_READER_H_
