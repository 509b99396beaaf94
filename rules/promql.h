// promql: the PromQL subset novapulse evaluates (DESIGN.md "Time, windows and
// rules"), with Prometheus 2.42's semantics, promtool being the oracle.
//
// Parse() turns expression text into an immutable Expr; anything outside the
// subset is an error naming the construct and its line:column. Evaluator reads
// samples through the Storage interface (the window history in the service,
// SeriesStore in tests and for recording-rule outputs) and evaluates one
// instant at a time.
//
// Threads: an Expr is immutable and may be shared. An Evaluator and the
// Storage it reads are used by one thread at a time.
//   auto expr = promql::Parse("sum by (route) (rate(http_requests_total[5m]))");
//   promql::Evaluator eval(&storage);
//   absl::StatusOr<promql::Vector> v = eval.Eval(**expr, t_ms);
#ifndef NOVAPULSE_RULES_PROMQL_H_
#define NOVAPULSE_RULES_PROMQL_H_

#include <bit>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "base/state_codec.h"

namespace re2 {
class RE2;
}

namespace novapulse::promql {

struct Label {
  std::string name;
  std::string value;
  friend bool operator==(const Label&, const Label&) = default;
  // clang-tidy 14 flags the literal 0 of the synthesised comparison.
  friend auto operator<=>(const Label&, const Label&) = default;  // NOLINT(modernize-use-nullptr)
};
// Sorted by name, names unique; a selected series carries "__name__".
using Labels = std::vector<Label>;

struct Sample {
  int64_t t_ms;
  double v;
};

// Prometheus's staleness marker: a series ends here. Instant selectors and
// range functions skip it, as Prometheus does.
inline constexpr uint64_t kStaleNaNBits = 0x7ff0000000000002ULL;
inline double StaleNaN() { return std::bit_cast<double>(kStaleNaNBits); }
inline bool IsStaleNaN(double v) { return std::bit_cast<uint64_t>(v) == kStaleNaNBits; }

// How far back an instant selector looks for a sample (Prometheus's default
// --query.lookback-delta).
inline constexpr int64_t kLookbackDeltaMs = 5 * 60 * 1000;

struct Matcher {
  enum class Op { kEq, kNeq, kRe, kNre };
  std::string name;
  Op op = Op::kEq;
  std::string value;
  // Compiled, fully anchored as Prometheus anchors it; set for kRe and kNre.
  std::shared_ptr<const re2::RE2> re;
  bool Matches(std::string_view v) const;
};

// What the evaluator reads samples from.
class Storage {
 public:
  struct SeriesRef {
    const Labels* labels;             // includes __name__
    std::span<const Sample> samples;  // ascending time, within the asked range
    // True when the storage knows the values never decrease over the whole
    // span (no counter reset): rate() may then skip its reset scan.
    bool monotonic = false;
    // True when the storage knows the span holds no staleness marker, so
    // range functions need not look for one.
    bool stale_free = false;
  };
  virtual ~Storage() = default;
  // Appends to `out` every series named `metric` that matches every matcher
  // in `matchers` (which never holds one on __name__), with its samples in
  // [mint_ms, maxt_ms]. Series with no sample in the range may be left out.
  // The references stay valid until the storage is next modified.
  virtual void Select(std::string_view metric, std::span<const Matcher> matchers, int64_t mint_ms,
                      int64_t maxt_ms, std::vector<SeriesRef>* out) const = 0;
};

enum class ValueType { kScalar, kVector, kMatrix, kString };

// A parsed expression. Opaque; see Parse().
class Expr;
using ExprPtr = std::shared_ptr<const Expr>;

// Parses `text`. Errors read "LINE:COL: MESSAGE", 1-based within `text`; a
// construct outside the subset reads e.g. "1:1: unsupported: function topk".
absl::StatusOr<ExprPtr> Parse(std::string_view text);
ValueType TypeOf(const Expr& e);

// How far before an evaluation time the expression reads samples of `metric`:
// the largest range + offset of its range selectors, or lookback delta +
// offset of its instant selectors.
struct Reach {
  std::string metric;
  int64_t ms = 0;
};
std::vector<Reach> MetricReach(const Expr& e);

struct Element {
  Labels labels;  // without __name__ unless the expression keeps it
  double v = 0;
};
using Vector = std::vector<Element>;

class Evaluator {
 public:
  explicit Evaluator(const Storage* storage) : storage_(storage) {}
  // Evaluates an instant query at `t_ms`. A scalar result is one element with
  // no labels. Errors are Prometheus's runtime errors (e.g. "many-to-many
  // matching not allowed", "vector cannot contain metrics with the same
  // labelset").
  absl::StatusOr<Vector> Eval(const Expr& e, int64_t t_ms);

 private:
  const Storage* storage_;
};

// In-memory series of samples: the output of recording rules, and test data.
// Samples are appended in time order per series; Trim() drops those older
// than each metric's retention, keeping every series' samples contiguous.
// A series whose last sample is a staleness marker has ended: once Trim()
// has dropped all its samples it is removed, and its ref may be handed to
// a new label set. Whoever appends to a series must therefore stop using
// its ref once it has appended the marker (Ref() with the same labels gives
// the series, or its successor, again).
class SeriesStore : public Storage {
 public:
  // Handle of the series with these labels (sorted, with __name__), created
  // if new.
  uint32_t Ref(const Labels& labels);
  // Appends a sample; a time not after the series' last sample is ignored.
  void Append(uint32_t ref, int64_t t_ms, double v);
  // Samples of `metric` older than now - ms are dropped by Trim(); metrics
  // without a retention keep kLookbackDeltaMs.
  void SetRetention(std::string_view metric, int64_t ms);
  void Trim(int64_t now_ms);
  size_t MemoryBytes() const;
  // Upper bounds of what MemoryBytes() counts, for a budget planned ahead:
  // the store with nothing in it; one more metric name; one series with
  // `labels` (__name__ included) that never holds more than `samples`
  // samples and `decreases` times of a decrease at once. They allow for
  // the room growth leaves: vectors and strings at most double, and the
  // hash tables are over 7/16 full after they grow.
  static size_t EmptyBytes();
  static size_t MetricBytes();
  static size_t SeriesBytes(const Labels& labels, size_t samples, size_t decreases);
  // Refs handed out so far, removed ones included (refs are [0, size())).
  size_t size() const;
  // Series held: size() less those removed.
  size_t live() const;
  // Whether `ref` (< size()) names a series, not a removed one's hole.
  bool IsLive(uint32_t ref) const;
  // Time of the last sample appended to `ref` (INT64_MIN if none).
  int64_t LastSampleMs(uint32_t ref) const;

  // Checkpoints: every series in ref order with its live samples. LoadState
  // into an empty store (retentions are set by its users, not saved); refs
  // come back the same.
  void SaveState(StateWriter* w) const;
  [[nodiscard]] absl::Status LoadState(StateReader* r);

  void Select(std::string_view metric, std::span<const Matcher> matchers, int64_t mint_ms,
              int64_t maxt_ms, std::vector<SeriesRef>* out) const override;

 private:
  struct Impl;
  void Remove(uint32_t ref);
  std::shared_ptr<Impl> impl_;
};

}  // namespace novapulse::promql

#endif  // NOVAPULSE_RULES_PROMQL_H_
