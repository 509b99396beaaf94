// MetricSpec: what novapulse reads and the metric families it makes of it,
// as plain, validated data loaded from YAML (configs/metrics/novagift.yaml is
// the shipped one; the README's "Defining metrics" has every key).
//
// A spec has inputs (a Kafka topic, or a stream of a replay: its record
// format, event-time field, how a record of a mixed stream is recognised,
// its fields by JSON path with their types and transforms) and metrics (a
// counter, gauge, histogram or concurrency gauge over one input's fields,
// with labels, a condition and a series limit). Loading checks everything a
// user can get wrong and names FILE:LINE:COL for each mistake; what runs
// the spec is compiled from it elsewhere and never re-reads the file.
// Immutable once loaded; safe to share between threads.
//
//   absl::StatusOr<MetricSpec> spec = LoadMetricSpec("configs/metrics/novagift.yaml");
//   if (!spec.ok()) return Die(spec.status());
#ifndef NOVAPULSE_SPEC_METRIC_SPEC_H_
#define NOVAPULSE_SPEC_METRIC_SPEC_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "parsers/event.h"
#include "spec/condition.h"

namespace re2 {
class RE2;
}  // namespace re2

namespace novapulse::spec {

// Where a key's value starts in the spec file, 1-based.
struct Position {
  int line = 0;
  int column = 0;
};

enum class RecordFormat : uint8_t { kJson };

enum class FieldType : uint8_t { kString, kNumber, kInt, kBool, kTime };
std::string_view FieldTypeName(FieldType type);

// Accepted forms of a time field. kAuto: RFC 3339 strings, and epoch numbers
// in seconds, or milliseconds from 1e11 up (what NovaGift sends).
enum class TimeFormat : uint8_t {
  kAuto,
  kRfc3339,
  kUnixSeconds,
  kUnixMillis,
  kUnixMicros,
  kUnixNanos,
};
std::string_view TimeFormatName(TimeFormat format);

// A string transform, applied in the order the field lists them.
struct Transform {
  enum class Kind : uint8_t {
    kLowercase,
    kNormalizePath,  // parsers/route.h: numeric, UUID, hex, opaque segments -> ":id"
    kMap,            // value -> value; values not listed pass unchanged
    kReplace,        // every match of `regex` -> `replacement` (\1 for groups)
    kExtract,        // the regex's first group; no match leaves the field absent
  };
  Kind kind = Kind::kLowercase;
  std::vector<std::pair<std::string, std::string>> map;  // kMap, in file order
  std::shared_ptr<const re2::RE2> regex;                 // kReplace, kExtract
  std::string pattern;                                   // as written
  std::string replacement;                               // kReplace
};

struct FieldSpec {
  std::string name;
  std::vector<std::string> path;  // JSON path from the record's root, one key per level
  FieldType type = FieldType::kString;
  Position pos;
  // Absent (missing, null, or for strings empty) and required: the record is
  // rejected as missing_field. `required_when`: only when that holds.
  bool required = false;
  Condition required_when;  // kTrue unless `required:` was a condition
  bool has_default = false;
  std::string default_text;   // strings
  double default_number = 0;  // numbers, ints, bools (0/1)
  int fallback = -1;          // another field of the input, used when this one is absent
  // Numbers and ints: read value * scale; outside [min, max] (checked before
  // scaling) the record is rejected as out_of_range.
  double scale = 1;
  std::optional<double> min;
  std::optional<double> max;
  TimeFormat time_format = TimeFormat::kAuto;  // kTime
  std::vector<Transform> transforms;           // kString
  // kString: the values allowed after the transforms. Another value becomes
  // `other_value` when one is set, else rejects the record with `reject_reason`.
  std::vector<std::string> values;
  std::optional<std::string> other_value;
  RejectReason reject_reason = RejectReason::kOutOfRange;
  // Longer string values are rejected as oversize (they would bloat every
  // series they label).
  size_t max_bytes = kMaxLabelValueBytes;
  // A JSON null is the field absent; with `nullable: false` it rejects the
  // record as wrong_type instead.
  bool nullable = true;
};

// Which records of a mixed stream are of an input: the first input (in spec
// order) whose record has every top-level key of `all`; failing that, the
// first with any key of `any`.
struct DetectSpec {
  std::vector<std::string> all;
  std::vector<std::string> any;
  // A record that is not readable JSON is of the first input one of whose
  // `text` keys (default: `all`) appears in it, quoted.
  std::vector<std::string> text;
};

struct InputSpec {
  std::string name;   // `--topic NAME`, `replay` stream names
  std::string topic;  // the Kafka topic; the `topic` label of the self metrics
  Position pos;
  RecordFormat format = RecordFormat::kJson;
  int time_field = -1;
  DetectSpec detect;
  std::optional<absl::Duration> lateness;  // unset: the pipeline's allowed_lateness
  std::vector<FieldSpec> fields;

  // Index of the field so named, -1 if none.
  int FieldIndex(std::string_view name) const;
};

enum class MetricKind : uint8_t {
  kCounter,
  kGauge,
  kHistogram,
  // Requests in progress, averaged over a window of event time: each record
  // is busy over [time - duration, time].
  kConcurrency,
};
std::string_view MetricKindName(MetricKind kind);

struct LabelSpec {
  std::string name;
  int field = -1;  // -1: the constant `value`
  std::string value;
};

// A number taken from a record: a field, or the difference of two time
// fields in seconds, then floored where declared.
struct ValueSpec {
  int field = -1;  // -1: none (a counter counts 1)
  int minus = -1;  // with `difference: [field, minus]`
  std::optional<double> floor;
};

// One step of a gauge: add `amount` (or the value of `value`) when `when`
// holds; or set the gauge to `value`.
struct GaugeOp {
  enum class Kind : uint8_t { kAdd, kSet };
  Kind kind = Kind::kAdd;
  double amount = 0;
  ValueSpec value;  // kSet; kAdd when an amount field is named
  Condition when;
};

struct MetricSpec {
  std::string name;
  std::string help;
  MetricKind kind = MetricKind::kCounter;
  int input = -1;
  Position pos;
  std::vector<LabelSpec> labels;
  Condition when;
  ValueSpec value;                           // histogram observation; counter increment (default 1)
  std::vector<double> buckets;               // histogram upper bounds, ascending, without +Inf
  double sum_unit = 1e-6;                    // histogram sums are kept as whole counts of this
  std::vector<GaugeOp> ops;                  // gauge
  std::optional<double> floor;               // gauge: never exported below this
  int duration_field = -1;                   // concurrency: seconds each record was busy
  absl::Duration window = absl::Minutes(1);  // concurrency
  size_t series_limit = 0;                   // 0: the pipeline's series_limit
};

struct MetricSpecSet {
  std::string file;
  std::vector<InputSpec> inputs;
  std::vector<MetricSpec> metrics;

  // Index of the input named `name` (or whose topic is `name`), -1 if none.
  int InputIndex(std::string_view name) const;
  // The family names the spec exports, histogram series names included
  // (name_bucket, name_sum, name_count), for checking the rules that read them.
  std::vector<std::string> ExportedNames() const;
};

// Parses a spec's YAML text; `file` names it in errors ("FILE:LINE:COL:
// path: reason", every error found, one per line).
absl::StatusOr<MetricSpecSet> ParseMetricSpec(std::string_view text, std::string_view file);
// Reads and parses the file at `path`.
absl::StatusOr<MetricSpecSet> LoadMetricSpec(const std::string& path);

}  // namespace novapulse::spec

#endif  // NOVAPULSE_SPEC_METRIC_SPEC_H_
