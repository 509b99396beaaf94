#include "spec/metric_spec.h"

#include <re2/re2.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <set>
#include <utility>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/file.h"
#include "base/prom_names.h"
#include "base/str_cat.h"
#include "base/yaml_reader.h"

namespace novapulse::spec {
namespace {

// More would not be a spec someone reads; a bigger set is likely a mistake.
constexpr size_t kMaxFields = 256;
constexpr size_t kMaxMetrics = 2048;
constexpr size_t kMaxBuckets = 128;
constexpr size_t kMaxPathDepth = 16;
// The concurrency ring holds the last 128 seconds (aggregators/busy_ring.h).
constexpr absl::Duration kMaxConcurrencyWindow = absl::Minutes(2);

using Node = YAML::Node;
using Path = std::string;

// "a string field", "an int field": for errors.
std::string TypedField(FieldType t) {
  return Cat(t == FieldType::kInt ? "an " : "a ", FieldTypeName(t), " field");
}

bool IsNumeric(FieldType t) {
  return t == FieldType::kNumber || t == FieldType::kInt || t == FieldType::kBool;
}

std::string Names(const std::vector<std::string>& names) { return absl::StrJoin(names, ", "); }

constexpr std::pair<std::string_view, FieldType> kFieldTypes[] = {{"string", FieldType::kString},
                                                                  {"number", FieldType::kNumber},
                                                                  {"int", FieldType::kInt},
                                                                  {"bool", FieldType::kBool},
                                                                  {"time", FieldType::kTime}};
constexpr std::pair<std::string_view, TimeFormat> kTimeFormats[] = {
    {"auto", TimeFormat::kAuto},          {"rfc3339", TimeFormat::kRfc3339},
    {"unix_s", TimeFormat::kUnixSeconds}, {"unix_ms", TimeFormat::kUnixMillis},
    {"unix_us", TimeFormat::kUnixMicros}, {"unix_ns", TimeFormat::kUnixNanos}};
constexpr std::pair<std::string_view, MetricKind> kMetricKinds[] = {
    {"counter", MetricKind::kCounter},
    {"gauge", MetricKind::kGauge},
    {"histogram", MetricKind::kHistogram},
    {"concurrency", MetricKind::kConcurrency}};

class SpecParser : public YamlReader {
 public:
  SpecParser(std::string_view text, std::string_view file) : YamlReader(file), text_(text) {}

  void Root(const Node& root, MetricSpecSet* out) {
    Fields(root, "",
           {{"inputs", true, [&](const Node& n, const Path& p) { Inputs(n, p, out); }},
            {"metrics", true, [&](const Node& n, const Path& p) { Metrics(n, p, out); }}});
    CheckNames(*out);
  }

 private:
  // Calls fn(item, item_path) for each item of a list.
  template <typename Fn>
  void Items(const Node& node, const Path& path, size_t max, Fn fn) {
    if (!node.IsSequence()) {
      Error(node.Mark(), path, Cat("expected a list, got ", Describe(node)));
      return;
    }
    if (node.size() > max) {
      Error(node.Mark(), path, Cat("more than ", max, " entries"));
      return;
    }
    for (size_t i = 0; i < node.size(); ++i) fn(node[i], Cat(path, "[", i, "]"));
  }

  static Position Pos(const Node& node) {
    const YAML::Mark m = node.Mark();
    return {std::max(0, m.line) + 1, std::max(0, m.column) + 1};
  }

  // A condition written in a scalar: its errors point into the text.
  Condition Cond(const Node& node, const Path& path, const InputSpec& input) {
    std::optional<std::string> text = Scalar(node, path, "a condition");
    if (!text.has_value()) return {};
    absl::StatusOr<Condition> c =
        ParseCondition(*text, [&](std::string_view name) { return input.FieldIndex(name); });
    if (!c.ok()) {
      // "COL: message": move the mark to that column of the scalar (one
      // further when the scalar is quoted), when it sits on one line.
      const std::string message(c.status().message());
      const size_t colon = message.find(": ");
      int col = 1;
      std::string_view reason = message;
      if (colon != std::string::npos) {
        col = std::atoi(message.substr(0, colon).c_str());
        reason = std::string_view(message).substr(colon + 2);
      }
      YAML::Mark mark = node.Mark();
      const size_t at = mark.pos < 0 ? std::string_view::npos : static_cast<size_t>(mark.pos);
      if (at < text_.size() && text_.find('\n', at) >= at + static_cast<size_t>(col)) {
        const bool quoted = text_[at] == '"' || text_[at] == '\'';
        mark.column += col - 1 + (quoted ? 1 : 0);
      }
      Error(mark, path, Cat("bad condition: ", reason));
      return {};
    }
    CheckTypes(*c, node, path, input);
    return *std::move(c);
  }

  // Literals must suit the field they are compared with.
  void CheckTypes(const Condition& c, const Node& node, const Path& path, const InputSpec& input) {
    for (const Condition& child : c.children) CheckTypes(child, node, path, input);
    if (c.field < 0 || c.op == Condition::Op::kExists) return;
    const FieldSpec& f = input.fields[c.field];
    const bool ordering = c.op == Condition::Op::kLt || c.op == Condition::Op::kLe ||
                          c.op == Condition::Op::kGt || c.op == Condition::Op::kGe;
    if ((c.op == Condition::Op::kMatch || c.op == Condition::Op::kNotMatch) &&
        f.type != FieldType::kString) {
      Error(node.Mark(), path,
            Cat("bad condition: '", f.name, "' is ", TypedField(f.type),
                "; =~ and !~ match strings"));
      return;
    }
    if (ordering && !IsNumeric(f.type)) {
      Error(node.Mark(), path,
            Cat("bad condition: '", f.name, "' is ", TypedField(f.type),
                "; <, <=, > and >= compare numbers"));
      return;
    }
    if (c.op == Condition::Op::kMatch || c.op == Condition::Op::kNotMatch) return;
    for (const Literal& l : c.literals) {
      const bool fits = f.type == FieldType::kString ? l.kind == Literal::Kind::kString
                        : f.type == FieldType::kBool ? l.kind == Literal::Kind::kBool
                        : f.type == FieldType::kTime ? false
                                                     : l.kind == Literal::Kind::kNumber;
      if (!fits) {
        Error(node.Mark(), path,
              Cat("bad condition: '", f.name, "' is ", TypedField(f.type), ", compared with ",
                  l.kind == Literal::Kind::kString ? "the string " : "", l.text));
        return;
      }
    }
  }

  void Inputs(const Node& node, const Path& path, MetricSpecSet* out) {
    Items(node, path, 64, [&](const Node& item, const Path& p) {
      InputSpec input;
      input.pos = Pos(item);
      Input(item, p, &input);
      out->inputs.push_back(std::move(input));
    });
    if (node.IsSequence() && node.size() == 0) Error(node.Mark(), path, "no inputs");
    std::set<std::string> names, topics;
    for (size_t i = 0; i < out->inputs.size(); ++i) {
      const InputSpec& in = out->inputs[i];
      if (!names.insert(in.name).second || !topics.insert(in.topic).second) {
        Error(node[i].Mark(), Cat(path, "[", i, "]"),
              Cat("another input has the name '", in.name, "' or the topic '", in.topic, "'"));
      }
    }
  }

  void Input(const Node& node, const Path& path, InputSpec* in) {
    // Fields first: the other keys name them.
    if (node.IsMap() && node["fields"]) InputFields(node["fields"], Join(path, "fields"), in);
    Fields(node, path,
           {{"name", true,
             [&](const Node& n, const Path& p) {
               String(n, p, &in->name);
               if (!in->name.empty() && !IsInputName(in->name)) {
                 Error(n.Mark(), p,
                       "input names are letters, digits, '-', '_' and '.', starting with a "
                       "letter");
               }
             }},
            {"topic", false, [&](const Node& n, const Path& p) { String(n, p, &in->topic); }},
            {"format", false,
             [&](const Node& n, const Path& p) {
               std::string shown;
               std::optional<std::string> v = Scalar(n, p, "a format", &shown);
               if (!v.has_value()) return;
               if (*v == "logfmt" || *v == "regex") {
                 Error(n.Mark(), p, Cat("format ", shown, " is not supported yet (json is)"));
               } else if (*v != "json") {
                 Error(n.Mark(), p, Cat("expected json, got ", shown));
               }
             }},
            {"time", true,
             [&](const Node& n, const Path& p) {
               std::string name;
               String(n, p, &name);
               if (name.empty()) return;
               in->time_field = in->FieldIndex(name);
               if (in->time_field < 0) {
                 Error(n.Mark(), p, Cat("unknown field '", name, "'"));
               } else if (in->fields[in->time_field].type != FieldType::kTime) {
                 Error(n.Mark(), p, Cat("'", name, "' is not a time field (type: time)"));
                 in->time_field = -1;
               } else {
                 in->fields[in->time_field].required = true;  // an event needs its time
               }
             }},
            {"detect", false, [&](const Node& n, const Path& p) { Detect(n, p, &in->detect); }},
            {"lateness", false,
             [&](const Node& n, const Path& p) {
               absl::Duration d;
               Duration(n, p, absl::ZeroDuration(), absl::Hours(24), &d);
               in->lateness = d;
             }},
            {"fields", true, [](const Node&, const Path&) {}}});
    if (in->topic.empty()) in->topic = in->name;
  }

  static bool IsInputName(std::string_view s) {
    if (s.empty() || !std::isalpha(static_cast<unsigned char>(s[0]))) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
    });
  }

  void Detect(const Node& node, const Path& path, DetectSpec* out) {
    auto keys = [&](const Node& n, const Path& p, std::vector<std::string>* v) {
      StringList(
          n, p, [](const std::string& s) { return !s.empty(); }, "expected a key name", v);
    };
    Fields(node, path,
           {{"all", false, [&](const Node& n, const Path& p) { keys(n, p, &out->all); }},
            {"any", false, [&](const Node& n, const Path& p) { keys(n, p, &out->any); }},
            {"text", false, [&](const Node& n, const Path& p) { keys(n, p, &out->text); }}});
    if (out->text.empty()) out->text = out->all;
  }

  void InputFields(const Node& node, const Path& path, InputSpec* in) {
    if (!node.IsMap()) {
      Error(node.Mark(), path, Cat("expected a mapping of field names, got ", Describe(node)));
      return;
    }
    if (node.size() > kMaxFields) {
      Error(node.Mark(), path, Cat("more than ", kMaxFields, " fields"));
      return;
    }
    // Names first, so a field may name another declared after it.
    std::vector<Node> values;
    Entries(node, path, [&](const std::string& key, const Node& key_node, const Node& value) {
      if (!IsLabelName(key)) {
        Error(key_node.Mark(), Join(path, key),
              "field names are letters, digits and '_', not starting with a digit");
      }
      FieldSpec f;
      f.name = key;
      f.pos = Pos(key_node);
      in->fields.push_back(std::move(f));
      values.push_back(value);
    });
    fallback_marks_.clear();
    for (size_t i = 0; i < in->fields.size(); ++i) {
      Field(values[i], Join(path, in->fields[i].name), *in, &in->fields[i]);
    }
    for (const auto& [f, mark] : fallback_marks_) {
      const FieldSpec& to = in->fields[f->fallback];
      if (to.type != f->type) {
        Error(mark, Join(Join(path, f->name), "fallback"),
              Cat("'", to.name, "' is ", TypedField(to.type), ", '", f->name, "' ",
                  TypedField(f->type)));
      }
    }
  }

  void Field(const Node& node, const Path& path, const InputSpec& in, FieldSpec* f) {
    std::string json_path = f->name;
    if (node.IsScalar()) {  // `name: TYPE`
      Enum<FieldType>(node, path, kFieldTypes, &f->type);
      f->path = {json_path};
      return;
    }
    const Node type_node = node.IsMap() ? node["type"] : Node();
    if (type_node) {
      Enum<FieldType>(type_node, Join(path, "type"), kFieldTypes, &f->type);
    }
    const bool is_string = f->type == FieldType::kString;
    const bool is_number = f->type == FieldType::kNumber || f->type == FieldType::kInt;
    auto only = [&](bool allowed, const Node& n, const Path& p, std::string_view what) {
      if (!allowed) {
        Error(n.Mark(), p,
              Cat("only ", what, " fields take this key ('", f->name, "' is ", TypedField(f->type),
                  ")"));
      }
      return allowed;
    };
    Fields(node, path,
           {{"type", true, [](const Node&, const Path&) {}},
            {"path", false, [&](const Node& n, const Path& p) { String(n, p, &json_path); }},
            {"required", false,
             [&](const Node& n, const Path& p) {
               if (n.IsScalar() && (n.Scalar() == "true" || n.Scalar() == "false")) {
                 f->required = n.Scalar() == "true";
               } else {
                 f->required_when = Cond(n, p, in);
               }
             }},
            {"default", false, [&](const Node& n, const Path& p) { Default(n, p, f); }},
            {"fallback", false,
             [&](const Node& n, const Path& p) {
               std::string name;
               String(n, p, &name);
               if (name.empty()) return;
               f->fallback = in.FieldIndex(name);
               if (f->fallback < 0) {
                 Error(n.Mark(), p, Cat("unknown field '", name, "'"));
               } else if (&in.fields[f->fallback] == f) {
                 Error(n.Mark(), p, "a field cannot fall back to itself");
               } else {
                 fallback_marks_.emplace_back(f, n.Mark());  // types checked once all are read
               }
             }},
            {"scale", false,
             [&](const Node& n, const Path& p) {
               if (only(is_number, n, p, "number and int")) Double(n, p, -1e18, 1e18, &f->scale);
               if (f->scale == 0) Error(n.Mark(), p, "a scale of 0 loses the value");
             }},
            {"min", false,
             [&](const Node& n, const Path& p) {
               double v = 0;
               if (only(is_number, n, p, "number and int")) Double(n, p, -1e300, 1e300, &v);
               f->min = v;
             }},
            {"max", false,
             [&](const Node& n, const Path& p) {
               double v = 0;
               if (only(is_number, n, p, "number and int")) Double(n, p, -1e300, 1e300, &v);
               f->max = v;
             }},
            {"format", false,
             [&](const Node& n, const Path& p) {
               if (only(f->type == FieldType::kTime, n, p, "time")) {
                 Enum<TimeFormat>(n, p, kTimeFormats, &f->time_format);
               }
             }},
            {"lowercase", false,
             [&](const Node& n, const Path& p) {
               bool on = false;
               if (only(is_string, n, p, "string")) Bool(n, p, &on);
               if (on) f->transforms.push_back({Transform::Kind::kLowercase, {}, {}, {}, {}});
             }},
            {"normalize", false,
             [&](const Node& n, const Path& p) {
               std::string shown;
               std::optional<std::string> v = only(is_string, n, p, "string")
                                                  ? Scalar(n, p, "a normaliser", &shown)
                                                  : std::nullopt;
               if (!v.has_value()) return;
               if (*v != "path") {
                 Error(n.Mark(), p, Cat("expected path (the only normaliser), got ", shown));
                 return;
               }
               f->transforms.push_back({Transform::Kind::kNormalizePath, {}, {}, {}, {}});
             }},
            {"map", false,
             [&](const Node& n, const Path& p) {
               if (!only(is_string, n, p, "string")) return;
               Transform t{Transform::Kind::kMap, {}, {}, {}, {}};
               Entries(n, p, [&](const std::string& key, const Node&, const Node& value) {
                 std::optional<std::string> v = Scalar(value, Join(p, key), "a string");
                 if (v.has_value()) t.map.emplace_back(key, *std::move(v));
               });
               f->transforms.push_back(std::move(t));
             }},
            {"replace", false,
             [&](const Node& n, const Path& p) {
               if (!only(is_string, n, p, "string")) return;
               Transform t{Transform::Kind::kReplace, {}, {}, {}, {}};
               Node pattern_node;
               Fields(n, p,
                      {{"regex", true,
                        [&](const Node& m, const Path& q) {
                          String(m, q, &t.pattern);
                          pattern_node.reset(m);
                        }},
                       {"with", true, [&](const Node& m, const Path& q) {
                          std::optional<std::string> v = Scalar(m, q, "a string");
                          if (v.has_value()) t.replacement = *std::move(v);
                        }}});
               if (t.pattern.empty()) return;
               t.regex = Regex(pattern_node, Join(p, "regex"), t.pattern, /*anchored=*/false);
               std::string why;
               if (t.regex != nullptr && !t.regex->CheckRewriteString(t.replacement, &why)) {
                 Error(n.Mark(), Join(p, "with"), Cat("bad replacement: ", why));
               }
               f->transforms.push_back(std::move(t));
             }},
            {"extract", false,
             [&](const Node& n, const Path& p) {
               if (!only(is_string, n, p, "string")) return;
               Transform t{Transform::Kind::kExtract, {}, {}, {}, {}};
               String(n, p, &t.pattern);
               if (t.pattern.empty()) return;
               t.regex = Regex(n, p, t.pattern, /*anchored=*/false);
               if (t.regex != nullptr && t.regex->NumberOfCapturingGroups() < 1) {
                 Error(n.Mark(), p, "extract needs a capturing group: the value is its first");
               }
               f->transforms.push_back(std::move(t));
             }},
            {"values", false,
             [&](const Node& n, const Path& p) {
               if (!only(is_string, n, p, "string")) return;
               StringList(
                   n, p, [](const std::string&) { return true; }, "expected a string", &f->values);
               if (f->values.empty()) Error(n.Mark(), p, "an empty list allows no value");
             }},
            {"other", false,
             [&](const Node& n, const Path& p) {
               std::optional<std::string> v =
                   only(is_string, n, p, "string") ? Scalar(n, p, "a string") : std::nullopt;
               if (v.has_value()) f->other_value = *std::move(v);
             }},
            {"reject_reason", false,
             [&](const Node& n, const Path& p) {
               std::vector<std::pair<std::string_view, RejectReason>> reasons;
               for (RejectReason r : {RejectReason::kOutOfRange, RejectReason::kUnknownType,
                                      RejectReason::kUnknownStatus}) {
                 reasons.emplace_back(RejectReasonName(r), r);
               }
               std::string shown;
               std::optional<std::string> v = Scalar(n, p, "a reason", &shown);
               if (!v.has_value()) return;
               for (const auto& [name, reason] : reasons) {
                 if (name == *v) {
                   f->reject_reason = reason;
                   return;
                 }
               }
               Error(n.Mark(), p,
                     Cat("expected out_of_range, unknown_type or unknown_status, got ", shown));
             }},
            {"nullable", false, [&](const Node& n, const Path& p) { Bool(n, p, &f->nullable); }},
            {"max_bytes", false, [&](const Node& n, const Path& p) {
               int64_t v = 0;
               if (!only(is_string, n, p, "string")) return;
               Int(n, p, 1, 65536, &v);
               if (v > 0) f->max_bytes = static_cast<size_t>(v);
             }}});
    if (f->min && f->max && *f->min > *f->max) {
      Error(node.Mark(), path, "min is above max");
    }
    if (!f->values.empty() && f->other_value &&
        std::find(f->values.begin(), f->values.end(), *f->other_value) == f->values.end()) {
      f->values.push_back(*f->other_value);
    }
    if (f->other_value && f->values.empty()) {
      Error(node.Mark(), path,
            "'other' names the value for values outside 'values', which is missing");
    }
    if (!f->required_when.always() && f->required) f->required_when = {};
    SplitPath(node, path, json_path, f);
  }

  void SplitPath(const Node& node, const Path& path, const std::string& json_path, FieldSpec* f) {
    f->path = absl::StrSplit(json_path, '.');
    const bool bad =
        f->path.size() > kMaxPathDepth ||
        std::any_of(f->path.begin(), f->path.end(), [](const std::string& s) { return s.empty(); });
    if (bad) {
      const Node at = node.IsMap() && node["path"] ? node["path"] : node;
      Error(at.Mark(), Join(path, "path"),
            Cat("expected keys joined by '.', at most ", kMaxPathDepth, " deep, got '", json_path,
                "'"));
    }
  }

  void Default(const Node& n, const Path& p, FieldSpec* f) {
    std::string shown;
    std::optional<std::string> v = Scalar(n, p, "a value", &shown);
    if (!v.has_value()) return;
    f->has_default = true;
    switch (f->type) {
      case FieldType::kString:
        f->default_text = *v;
        return;
      case FieldType::kBool:
        if (*v != "true" && *v != "false")
          Error(n.Mark(), p, Cat("expected true or false, got ", shown));
        f->default_number = *v == "true" ? 1 : 0;
        return;
      case FieldType::kNumber:
      case FieldType::kInt:
        Double(n, p, -1e300, 1e300, &f->default_number);
        if (f->type == FieldType::kInt && f->default_number != std::floor(f->default_number)) {
          Error(n.Mark(), p, Cat("expected an integer, got ", shown));
        }
        return;
      case FieldType::kTime:
        Error(n.Mark(), p, "time fields take no default");
        return;
    }
  }

  std::shared_ptr<const re2::RE2> Regex(const Node& n, const Path& p, const std::string& pattern,
                                        bool anchored) {
    auto re = std::make_shared<re2::RE2>(anchored ? Cat("^(?:", pattern, ")$") : pattern,
                                         re2::RE2::Quiet);
    if (!re->ok()) {
      Error(n.Mark(), p, Cat("bad regular expression: ", re->error()));
      return nullptr;
    }
    return re;
  }

  void Metrics(const Node& node, const Path& path, MetricSpecSet* out) {
    Items(node, path, kMaxMetrics, [&](const Node& item, const Path& p) {
      MetricSpec m;
      m.pos = Pos(item);
      Metric(item, p, *out, &m);
      out->metrics.push_back(std::move(m));
    });
  }

  int FieldOf(const Node& n, const Path& p, const InputSpec* in, std::string_view want,
              bool numeric) {
    std::string name;
    String(n, p, &name);
    if (name.empty() || in == nullptr) return -1;
    const int i = in->FieldIndex(name);
    if (i < 0) {
      Error(n.Mark(), p, Cat("unknown field '", name, "' of input '", in->name, "'"));
    } else if (numeric && !IsNumeric(in->fields[i].type)) {
      Error(n.Mark(), p,
            Cat("'", name, "' is ", TypedField(in->fields[i].type), "; ", want, " needs a number"));
      return -1;
    }
    return i;
  }

  void Value(const Node& n, const Path& p, const InputSpec* in, std::string_view want,
             ValueSpec* v) {
    if (n.IsScalar()) {
      v->field = FieldOf(n, p, in, want, /*numeric=*/true);
      return;
    }
    Fields(n, p,
           {{"difference", true,
             [&](const Node& d, const Path& q) {
               if (!d.IsSequence() || d.size() != 2) {
                 Error(d.Mark(), q, "expected [FIELD, FIELD]: the second is subtracted");
                 return;
               }
               v->field = FieldOf(d[0], Cat(q, "[0]"), in, want, false);
               v->minus = FieldOf(d[1], Cat(q, "[1]"), in, want, false);
               if (v->field >= 0 && v->minus >= 0 &&
                   in->fields[v->field].type != in->fields[v->minus].type) {
                 Error(d.Mark(), q, "the two fields are of different types");
               }
               if (v->field >= 0 && in->fields[v->field].type == FieldType::kString) {
                 Error(d.Mark(), q, "a difference needs number or time fields");
               }
             }},
            {"floor", false, [&](const Node& f, const Path& q) {
               double x = 0;
               Double(f, q, -1e300, 1e300, &x);
               v->floor = x;
             }}});
  }

  void Metric(const Node& node, const Path& path, const MetricSpecSet& set, MetricSpec* m) {
    // The input and type first: the other keys depend on them.
    const InputSpec* in = nullptr;
    if (node.IsMap()) {
      if (const Node n = node["input"]; n) {
        std::string name;
        String(n, Join(path, "input"), &name);
        m->input = name.empty() ? -1 : set.InputIndex(name);
        if (!name.empty() && m->input < 0) {
          std::vector<std::string> names;
          for (const InputSpec& i : set.inputs) names.push_back(i.name);
          Error(n.Mark(), Join(path, "input"),
                Cat("unknown input '", name, "' (inputs: ", Names(names), ")"));
        }
      } else if (set.inputs.size() == 1) {
        m->input = 0;
      } else if (!set.inputs.empty()) {
        Error(node.Mark(), path, "missing required key 'input' (the spec has several inputs)");
      }
      if (const Node n = node["type"]; n) {
        Enum<MetricKind>(n, Join(path, "type"), kMetricKinds, &m->kind);
      }
    }
    if (m->input >= 0) in = &set.inputs[m->input];
    const InputSpec empty;
    const InputSpec& input = in != nullptr ? *in : empty;
    auto only = [&](std::initializer_list<MetricKind> kinds, const Node& n, const Path& p) {
      if (std::find(kinds.begin(), kinds.end(), m->kind) != kinds.end()) return true;
      std::vector<std::string> names;
      for (MetricKind k : kinds) names.emplace_back(MetricKindName(k));
      Error(n.Mark(), p,
            Cat("a ", MetricKindName(m->kind), " takes no such key (it is for ",
                absl::StrJoin(names, " and "), ")"));
      return false;
    };
    bool has_value = false;
    Fields(
        node, path,
        {{"name", true,
          [&](const Node& n, const Path& p) {
            String(n, p, &m->name);
            if (!m->name.empty() && !IsMetricName(m->name)) {
              Error(n.Mark(), p,
                    Cat("'", m->name,
                        "' is not a valid metric name (letters, digits, '_' and ':', not "
                        "starting with a digit)"));
            } else if (m->name.starts_with("novapulse_")) {
              Error(n.Mark(), p, "names starting with novapulse_ are novapulse's own metrics");
            }
          }},
         {"input", false, [](const Node&, const Path&) {}},
         {"type", true, [](const Node&, const Path&) {}},
         {"help", false,
          [&](const Node& n, const Path& p) {
            std::optional<std::string> v = Scalar(n, p, "a string");
            if (v.has_value()) m->help = *std::move(v);
          }},
         {"labels", false, [&](const Node& n, const Path& p) { Labels(n, p, input, m); }},
         {"when", false, [&](const Node& n, const Path& p) { m->when = Cond(n, p, input); }},
         {"value", false,
          [&](const Node& n, const Path& p) {
            if (!only({MetricKind::kCounter, MetricKind::kHistogram, MetricKind::kGauge}, n, p)) {
              return;
            }
            has_value = true;
            Value(n, p, in, "a value", &m->value);
          }},
         {"buckets", false,
          [&](const Node& n, const Path& p) {
            if (only({MetricKind::kHistogram}, n, p)) Buckets(n, p, &m->buckets);
          }},
         {"sum_unit", false,
          [&](const Node& n, const Path& p) {
            if (only({MetricKind::kHistogram}, n, p)) Double(n, p, 1e-9, 1, &m->sum_unit);
          }},
         {"ops", false,
          [&](const Node& n, const Path& p) {
            if (only({MetricKind::kGauge}, n, p)) Ops(n, p, input, m);
          }},
         {"floor", false,
          [&](const Node& n, const Path& p) {
            double v = 0;
            if (only({MetricKind::kGauge}, n, p)) Double(n, p, -1e300, 1e300, &v);
            m->floor = v;
          }},
         {"duration", false,
          [&](const Node& n, const Path& p) {
            if (only({MetricKind::kConcurrency}, n, p)) {
              m->duration_field = FieldOf(n, p, in, "a duration", /*numeric=*/true);
            }
          }},
         {"window", false,
          [&](const Node& n, const Path& p) {
            if (only({MetricKind::kConcurrency}, n, p)) {
              Duration(n, p, absl::Seconds(1), kMaxConcurrencyWindow, &m->window);
              if (m->window % absl::Seconds(1) != absl::ZeroDuration()) {
                Error(n.Mark(), p, "the window is whole seconds");
              }
            }
          }},
         {"series_limit", false, [&](const Node& n, const Path& p) {
            int64_t v = 0;
            Int(n, p, 1, 10'000'000, &v);
            m->series_limit = static_cast<size_t>(v);
          }}});
    if (!node.IsMap()) return;
    switch (m->kind) {
      case MetricKind::kHistogram:
        if (!has_value) Error(node.Mark(), path, "missing required key 'value' (what to observe)");
        if (!node["buckets"]) Error(node.Mark(), path, "missing required key 'buckets'");
        break;
      case MetricKind::kGauge:
        if (has_value == static_cast<bool>(node["ops"])) {
          Error(node.Mark(), path,
                "a gauge takes either 'value' (set to a field) or 'ops' (add on conditions)");
        }
        if (has_value) m->ops.push_back({GaugeOp::Kind::kSet, 0, m->value, {}});
        break;
      case MetricKind::kConcurrency:
        if (!node["duration"]) {
          Error(node.Mark(), path,
                "missing required key 'duration' (how long each record was busy)");
        }
        if (!m->labels.empty()) Error(node.Mark(), path, "a concurrency gauge takes no labels");
        break;
      case MetricKind::kCounter:
        break;
    }
  }

  void Labels(const Node& node, const Path& path, const InputSpec& in, MetricSpec* m) {
    Items(node, path, 32, [&](const Node& item, const Path& p) {
      LabelSpec label;
      // Rebound with reset(): assigning a Node writes through to the document.
      Node name_node = item;   // where errors about the label's name point
      Node field_node = item;  // the field's name, unless the label is a constant
      bool from_field = true;
      if (item.IsScalar()) {
        label.name = item.Scalar();
      } else if (item.IsMap() && item.size() == 1) {
        const auto it = item.begin();
        name_node.reset(it->first);
        label.name = it->first.as<std::string>("");
        field_node.reset(it->second);
        if (field_node.IsMap()) {
          from_field = false;
          Fields(field_node, Join(p, label.name),
                 {{"value", true, [&](const Node& n, const Path& q) {
                     std::optional<std::string> v = Scalar(n, q, "a string");
                     if (v.has_value()) label.value = *std::move(v);
                   }}});
        }
      } else {
        Error(item.Mark(), p,
              "expected a field name, {LABEL: FIELD} or {LABEL: {value: CONSTANT}}");
        return;
      }
      if (!IsLabelName(label.name) || label.name.starts_with("__")) {
        Error(name_node.Mark(), p,
              Cat("'", label.name,
                  "' is not a valid label name (letters, digits and '_', not starting with a "
                  "digit or '__')"));
      } else if (label.name == "le" && m->kind == MetricKind::kHistogram) {
        Error(name_node.Mark(), p, "'le' is the label of a histogram's buckets");
      }
      for (const LabelSpec& other : m->labels) {
        if (other.name == label.name)
          Error(name_node.Mark(), p, Cat("duplicate label '", label.name, "'"));
      }
      if (from_field) {
        label.field = FieldOf(field_node, p, &in, "", false);
        if (label.field >= 0) {
          const FieldType t = in.fields[label.field].type;
          if (t == FieldType::kNumber || t == FieldType::kTime) {
            Error(field_node.Mark(), p,
                  Cat("'", in.fields[label.field].name, "' is ", TypedField(t),
                      ": labels take strings, ints and bools"));
          }
        }
      }
      m->labels.push_back(std::move(label));
    });
  }

  void Buckets(const Node& node, const Path& path, std::vector<double>* out) {
    Items(node, path, kMaxBuckets, [&](const Node& item, const Path& p) {
      double v = 0;
      Double(item, p, -1e300, 1e300, &v);
      if (!out->empty() && v <= out->back()) {
        Error(item.Mark(), p, "buckets must be strictly ascending");
      }
      out->push_back(v);
    });
    if (node.IsSequence() && node.size() == 0) Error(node.Mark(), path, "no buckets");
  }

  void Ops(const Node& node, const Path& path, const InputSpec& in, MetricSpec* m) {
    Items(node, path, 64, [&](const Node& item, const Path& p) {
      GaugeOp op;
      bool has_add = false;
      Fields(item, p,
             {{"add", false,
               [&](const Node& n, const Path& q) {
                 has_add = true;
                 if (n.IsScalar() && !n.Scalar().empty() &&
                     (std::isalpha(static_cast<unsigned char>(n.Scalar()[0])) ||
                      n.Scalar()[0] == '_')) {
                   op.value.field = FieldOf(n, q, &in, "add", /*numeric=*/true);
                 } else {
                   Double(n, q, -1e300, 1e300, &op.amount);
                 }
               }},
              {"set", false,
               [&](const Node& n, const Path& q) {
                 op.kind = GaugeOp::Kind::kSet;
                 Value(n, q, &in, "set", &op.value);
               }},
              {"when", false, [&](const Node& n, const Path& q) { op.when = Cond(n, q, in); }}});
      if (item.IsMap() && has_add == (op.kind == GaugeOp::Kind::kSet)) {
        Error(item.Mark(), p, "each op is either add: (a number or a field) or set: (a field)");
      }
      m->ops.push_back(std::move(op));
    });
    if (node.IsSequence() && node.size() == 0) Error(node.Mark(), path, "no ops");
  }

  // Names unique across the exported families, histogram series included.
  void CheckNames(const MetricSpecSet& set) {
    std::set<std::string> seen;
    for (const MetricSpec& m : set.metrics) {
      if (m.name.empty()) continue;
      std::vector<std::string> names = {m.name};
      if (m.kind == MetricKind::kHistogram) {
        for (const char* suffix : {"_bucket", "_sum", "_count"}) names.push_back(m.name + suffix);
      }
      for (const std::string& name : names) {
        if (!seen.insert(name).second) {
          YAML::Mark mark;
          mark.line = m.pos.line - 1;
          mark.column = m.pos.column - 1;
          Error(mark, "metrics", Cat("metric name '", name, "' is exported twice"));
        }
      }
    }
  }

  std::string_view text_;
  std::vector<std::pair<const FieldSpec*, YAML::Mark>> fallback_marks_;
};

}  // namespace

std::string_view FieldTypeName(FieldType type) {
  for (const auto& [name, value] : kFieldTypes) {
    if (value == type) return name;
  }
  return "?";
}

std::string_view TimeFormatName(TimeFormat format) {
  for (const auto& [name, value] : kTimeFormats) {
    if (value == format) return name;
  }
  return "?";
}

std::string_view MetricKindName(MetricKind kind) {
  for (const auto& [name, value] : kMetricKinds) {
    if (value == kind) return name;
  }
  return "?";
}

int InputSpec::FieldIndex(std::string_view name) const {
  for (size_t i = 0; i < fields.size(); ++i) {
    if (fields[i].name == name) return static_cast<int>(i);
  }
  return -1;
}

int MetricSpecSet::InputIndex(std::string_view name) const {
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].name == name) return static_cast<int>(i);
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].topic == name) return static_cast<int>(i);
  }
  return -1;
}

std::vector<std::string> MetricSpecSet::ExportedNames() const {
  std::vector<std::string> out;
  for (const MetricSpec& m : metrics) {
    out.push_back(m.name);
    if (m.kind == MetricKind::kHistogram) {
      for (const char* suffix : {"_bucket", "_sum", "_count"}) out.push_back(m.name + suffix);
    }
  }
  return out;
}

absl::StatusOr<MetricSpecSet> ParseMetricSpec(std::string_view text, std::string_view file) {
  SpecParser parser(text, file);
  MetricSpecSet set;
  set.file = std::string(file);
  LoadYamlDocument(text, &parser, [&](const YAML::Node& root) { parser.Root(root, &set); });
  if (absl::Status s = parser.status(); !s.ok()) return s;
  return set;
}

absl::StatusOr<MetricSpecSet> LoadMetricSpec(const std::string& path) {
  absl::StatusOr<std::string> text = ReadRegularFile(path);
  if (!text.ok()) return text.status();
  return ParseMetricSpec(*text, path);
}

}  // namespace novapulse::spec
