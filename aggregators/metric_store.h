// MetricStore holds every metric family of a pipeline: one SeriesIndex per
// family (shared) and one CellArray per family per shard (single writer).
// ShardWriter is a worker's handle on its shard; Merge() is the read side.
//
// Threads: shard i is written only by the worker that owns ShardWriter i.
// Merge() may run on any thread at any time and never blocks writers.
//   MetricStore store(defs, /*num_shards=*/2, kDefaultSeriesLimit);
//   ShardWriter w(&store, 0);  w.Inc(m, w.Resolve(m, key));
//   FamilySnapshot f = store.Merge(m);
#ifndef NOVAPULSE_AGGREGATORS_METRIC_STORE_H_
#define NOVAPULSE_AGGREGATORS_METRIC_STORE_H_

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/attributes.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "aggregators/cell_array.h"
#include "aggregators/metric_def.h"
#include "aggregators/series_index.h"
#include "base/state_codec.h"

namespace novapulse {

// Merged values of one family. `words` holds `width` words per series:
// counter: the count; gauge and computed families: the value as double bits; histogram: per-bucket
// counts (not cumulative, +Inf last) then the sum in MetricDef::sum_units.
struct FamilySnapshot {
  const MetricDef* def = nullptr;
  size_t width = 1;
  std::vector<std::string_view> keys;  // '\xff'-joined label values per series
  std::vector<uint64_t> words;
  // Keeps the bytes of `keys` alive (SeriesIndex::KeyOwner).
  std::shared_ptr<const void> key_owner;

  size_t size() const { return keys.size(); }
  uint64_t Word(size_t series, size_t word) const { return words[series * width + word]; }
  double Gauge(size_t series) const { return std::bit_cast<double>(Word(series, 0)); }
  double HistogramSum(size_t series) const {
    return static_cast<double>(Word(series, width - 1)) * def->sum_unit;
  }
  uint64_t HistogramCount(size_t series) const {
    uint64_t n = 0;
    for (size_t b = 0; b + 1 < width; ++b) n += Word(series, b);
    return n;
  }
};

// Splits a series key into its label values.
std::vector<std::string_view> SplitKey(std::string_view key);
// Appends label values joined by kLabelSeparator to `key` (cleared first).
void BuildKey(std::string* key, std::initializer_list<std::string_view> values);

// Per-slot history of some families (the ones rules read), in event time.
// Writers add each update of such a family to the slot of its event time as
// well, in a ring of `ring_slots` slots per shard; the read side
// (WindowHistory) folds closed slots into cumulative samples. A slot closes
// when the watermark passes its end; an event whose slot has closed is late.
//
// The ring is kept per window row, not per series: the read side gives a
// series a row of its own when it first closes a slot the series has
// updates in, or sends it to row 0, the family's __overflow__ series in the
// windows, once `memory_bytes` is spoken for. Until then the writers spill
// the series' updates (see SpillBuffer), so the choice does not depend on
// which worker met the series first.
struct WindowSpec {
  int64_t slot_ms = 15'000;
  size_t ring_slots = 256;
  std::vector<size_t> families;  // metric indexes; computed families are not windowed
  // Window memory budget (WindowHistory::reserved_bytes()); 0: none. Also
  // caps the rows each family's ring is sized for.
  size_t memory_bytes = 0;
};

// The row value of a series the read side has not placed yet.
inline constexpr uint32_t kNoWindowRow = UINT32_MAX;

// Updates of events too far ahead of the oldest open slot for the ring: kept
// aside until their slot closes. Off the common path (a sparse source read
// ahead in large chunks, a jump in event time), so a mutex the reader takes
// once per slot.
struct SpilledUpdate {
  uint32_t metric;
  uint32_t series;
  uint32_t word;
  uint64_t delta;
};
struct SpillBuffer {
  std::mutex mu;
  std::map<int64_t, std::vector<SpilledUpdate>> by_slot;  // guarded by mu
};

class MetricStore {
 public:
  MetricStore(std::vector<MetricDef> defs, int num_shards, size_t series_limit);
  MetricStore(const MetricStore&) = delete;
  MetricStore& operator=(const MetricStore&) = delete;

  size_t num_metrics() const { return defs_.size(); }
  int num_shards() const { return num_shards_; }
  const MetricDef& def(size_t m) const { return defs_[m]; }
  SeriesIndex& index(size_t m) { return *indexes_[m]; }
  const SeriesIndex& index(size_t m) const { return *indexes_[m]; }
  CellArray& cells(int shard, size_t m) { return *cells_[shard * defs_.size() + m]; }
  const CellArray& cells(int shard, size_t m) const { return *cells_[shard * defs_.size() + m]; }

  // Turns on window history; only before the first ShardWriter is made.
  void EnableWindows(const WindowSpec& spec);
  const WindowSpec* window_spec() const { return window_spec_.get(); }
  // Slot cells of family m in `shard` (width = ring_slots * Width()), or
  // null when m is not windowed.
  CellArray* slot_cells(int shard, size_t m) const {
    return slot_cells_.empty() ? nullptr : slot_cells_[shard * defs_.size() + m].get();
  }
  SpillBuffer& spill(int shard) { return *spills_[shard]; }
  // Updates held in the spill buffers; the read side subtracts what it takes.
  std::atomic<size_t>& spilled_updates() { return spilled_updates_; }
  // Window rows of windowed family m (see WindowSpec). Any thread reads;
  // only the read side writes, before it publishes the next open slot.
  uint32_t window_row(size_t m, uint32_t series) const {
    return WindowRow(window_rows_[m].row_plus_one.get(), series);
  }
  void set_window_row(size_t m, uint32_t series, uint32_t row) {
    std::atomic_ref<uint32_t>(window_rows_[m].row_plus_one[series])
        .store(row + 1, std::memory_order_relaxed);
  }
  // The map window_row() reads, for writers to keep at hand (null when m is
  // not windowed).
  uint32_t* window_row_map(size_t m) const {
    return window_rows_.empty() ? nullptr : window_rows_[m].row_plus_one.get();
  }
  static uint32_t WindowRow(uint32_t* map, uint32_t series) {
    // Row + 1 is stored, so that the zeroed map reads kNoWindowRow.
    return std::atomic_ref<uint32_t>(map[series]).load(std::memory_order_relaxed) - 1;
  }
  // Rows in use (row 0 included), and the most the ring has room for.
  size_t window_rows(size_t m) const { return window_rows_[m].used; }
  size_t window_row_capacity(size_t m) const { return window_rows_[m].capacity; }
  // The read side's next row, or kNoWindowRow when the ring is full.
  uint32_t AddWindowRow(size_t m);
  // The oldest slot not yet closed (slot = event ms / slot_ms). Written by
  // the read side after it folds a slot (release); writers read it.
  std::atomic<int64_t>& open_slot() { return open_slot_; }

  // Sums family `m` over all shards. Not for computed families.
  FamilySnapshot Merge(size_t m) const;
  // Adds one series of a computed family; `key` must outlive the snapshot.
  using AddSeries = absl::FunctionRef<void(std::string_view key, double value)>;
  // Every family: Merge for the stored ones, `computed(m, add)` for the
  // series of each computed one.
  std::vector<FamilySnapshot> Snapshot(
      absl::FunctionRef<void(size_t m, AddSeries add)> computed) const;
  // novapulse_series: each stored family's name and number of series.
  void AddSeriesCounts(AddSeries add) const;

  // Whether some family expires (MetricDef::expire_after_ms).
  bool expires() const {
    for (const auto& last : last_ms_) {
      if (last != nullptr) return true;
    }
    return false;
  }
  // Stale-series expiry. Removes every series of the families with
  // MetricDef::expire_after_ms whose newest event time (over the shards) is
  // at or before `now_ms - expire_after_ms`: from the index, so its id is
  // free for a new series, and from the cells, which are zeroed. A series
  // no event has stamped yet (created by a rejection, restored without
  // times), and the __overflow__ series, stay. Appends the (family, id) of
  // each series it removed to `removed`. Only while no writer runs (the
  // pipeline is drained); readers may. Returns the series removed.
  struct Removed {
    size_t metric;
    uint32_t id;
  };
  size_t ExpireIdle(int64_t now_ms, std::vector<Removed>* removed = nullptr);
  // Newest event time of series `id` of family m over the shards (0 when
  // none, or when m does not expire).
  int64_t LastEventMs(size_t m, uint32_t id) const;
  // The map of newest event times a shard's writer keeps for family m (null
  // when m does not expire).
  int64_t* last_event_map(int shard, size_t m) const {
    return last_ms_[shard * defs_.size() + m].get();
  }
  // Heap bytes of indexes, cells and the series' event times.
  size_t MemoryBytes() const;

  // Checkpoints (pipeline/checkpoint.h). The Save calls run while no writer
  // does; the Load calls fill a fresh store before any writer runs.
  // Fingerprint() names the families, their types, labels and buckets: state
  // saved under one fingerprint loads only under the same.
  std::string Fingerprint() const;
  // Every series of every stored family: its key and its words summed over
  // the shards.
  void SaveCumulative(StateWriter* w) const;
  // Adds the saved words to shard 0, series found by key; *same_ids is set
  // false when a series got an id other than its saved one (the window
  // state, kept by id, then cannot be restored).
  [[nodiscard]] absl::Status LoadCumulative(StateReader* r, bool* same_ids);
  // A checkpoint saved under another fingerprint (the metric spec changed):
  // each saved family matched to the family of this store with the same
  // fingerprint line (name, type, labels, buckets), or to none.
  struct SavedFamilies {
    std::vector<int> to;             // per saved family: this store's, -1 if none
    std::vector<size_t> width;       // per saved family: words per series
    std::vector<uint8_t> computed;   // per saved family: nothing saved for it
    std::vector<std::string> fresh;  // this store's families that start empty
  };
  // InvalidArgument when `fingerprint` is not one Fingerprint() writes.
  absl::StatusOr<SavedFamilies> MatchSavedFamilies(std::string_view fingerprint) const;
  // LoadCumulative's state, saved under `saved`'s fingerprint: the families
  // it matched are loaded (their ids may move: the windows cannot be
  // restored), the others read past.
  [[nodiscard]] absl::Status LoadCumulative(StateReader* r, const SavedFamilies& saved);
  // Each series' newest event time (families that expire), by series id,
  // after the cumulative state. Loading sets shard 0's, unless !apply (the
  // ids moved: LoadCumulative's same_ids) or the family does not expire
  // here; the times are read either way.
  void SaveEventTimes(StateWriter* w) const;
  [[nodiscard]] absl::Status LoadEventTimes(StateReader* r, bool apply);
  // Gives every live series of a family that expires and has no event time
  // this one (restored from a checkpoint that had none: the series then
  // expires unless updated within expire_after of it). No-op for ms <= 0.
  void StampUntimed(int64_t ms);
  // The window slot cells by row (summed over shards, non-zero words only)
  // and the spilled updates. The open slot and the rows are WindowHistory's
  // to save, and to load first.
  void SaveWindows(StateWriter* w) const;
  [[nodiscard]] absl::Status LoadWindows(StateReader* r);
  // Heap bytes of the window slot cells.
  size_t SlotMemoryBytes() const;
  // The read side restoring a checkpoint: rows in use.
  void set_window_rows(size_t m, size_t rows) { window_rows_[m].used = rows; }

 private:
  // One family's series of a LoadCumulative.
  [[nodiscard]] absl::Status LoadFamily(StateReader* r, size_t m, bool* same_ids);
  std::vector<MetricDef> defs_;
  int num_shards_;
  std::vector<std::unique_ptr<SeriesIndex>> indexes_;  // null for computed families
  std::vector<std::unique_ptr<CellArray>> cells_;      // [shard][metric]
  std::unique_ptr<WindowSpec> window_spec_;
  // Per windowed family: row + 1 of each series id, 0 while it has none.
  // calloc'ed, so pages no series has reached are never touched; accessed
  // through atomic_ref.
  struct WindowRows {
    struct Free {
      void operator()(uint32_t* p) const { std::free(p); }
    };
    std::unique_ptr<uint32_t[], Free> row_plus_one;
    size_t series_capacity = 0;
    size_t capacity = 0;
    size_t used = 0;  // the read side's
  };

  // [shard][metric]: per series id, the newest event time (ms) of its
  // updates in that shard; null for families that do not expire. calloc'ed;
  // accessed through atomic_ref.
  struct FreeTimes {
    void operator()(int64_t* p) const { std::free(p); }
  };
  std::vector<std::unique_ptr<int64_t[], FreeTimes>> last_ms_;

  std::vector<std::unique_ptr<CellArray>> slot_cells_;  // [shard][metric], null if not windowed
  std::vector<WindowRows> window_rows_;                 // [metric]
  std::vector<std::unique_ptr<SpillBuffer>> spills_;    // [shard]
  std::atomic<size_t> spilled_updates_{0};
  std::atomic<int64_t> open_slot_{0};
};

// A worker's handle on its shard: resolves series (lock-free once a series
// exists), counts overflows, and writes its shard's cells.
class ShardWriter {
 public:
  // The most one observation adds to a histogram's sum, in sum units.
  static constexpr double kMaxSumUnits = 1e18;

  // Overflows are counted in `overflow_metric`, a counter with one label
  // (the metric name).
  ShardWriter(MetricStore* store, int shard, size_t overflow_metric);

  uint32_t Resolve(size_t m, std::string_view key);

  // Slots ending at or before `watermark_ms` are closed to this writer: set
  // by the pipeline before each batch (replay: a value fixed per chunk, so
  // the outcome does not depend on timing).
  void SetWatermark(int64_t watermark_ms) { watermark_ms_ = watermark_ms; }
  // The updates that follow belong to event time `ts_ms`, until the next call
  // or ClearEventTime(). Returns false for a late event (its slot is closed):
  // its updates then reach only the cumulative cells (and leave the series'
  // newest event time as it was). Always true without windows.
  bool SetEventTime(int64_t ts_ms);
  // The updates that follow have no event time (rejections, self metrics).
  void ClearEventTime() {
    slot_mode_ = SlotMode::kNone;
    event_ms_ = INT64_MIN;
  }
  // Hands this writer's spilled updates to the store. Call at the end of
  // every batch, before the pipeline lets the batch's slots close.
  void FlushSpill();

  // An update with an event time (slot_mode_ not kNone) also goes to the
  // window slot of its family, if windowed, and, with expiry, to the
  // series' newest event time: one test on the path without either. Always
  // inlined: these are the update path, and a call costs as much as the rest.
  ABSL_ATTRIBUTE_ALWAYS_INLINE void Inc(size_t m, uint32_t series, uint64_t n = 1) {
    cells_[m]->Add(series, 0, n);
    if (slot_mode_ != SlotMode::kNone) {
      if (slot_cells_[m] != nullptr) AddSlot(m, series, 0, n);
      Touch(m, series);
    }
  }
  ABSL_ATTRIBUTE_ALWAYS_INLINE void GaugeAdd(size_t m, uint32_t series, int64_t delta) {
    cells_[m]->Add(series, 0, static_cast<uint64_t>(delta));
    if (slot_mode_ != SlotMode::kNone) {
      if (slot_cells_[m] != nullptr) AddSlot(m, series, 0, static_cast<uint64_t>(delta));
      Touch(m, series);
    }
  }
  ABSL_ATTRIBUTE_ALWAYS_INLINE void Observe(size_t m, uint32_t series, double value) {
    const std::vector<double>& bounds = store_->def(m).buckets;
    const size_t bucket = BucketOf(m, bounds, value);
    cells_[m]->Add(series, bucket, 1);
    // Observed values are never negative (parsers reject negative inputs);
    // absurdly large ones are capped so the conversion stays defined.
    const double units = std::min(value / store_->def(m).sum_unit, kMaxSumUnits);
    const uint64_t sum = RoundToUnits(units);
    cells_[m]->Add(series, bounds.size() + 1, sum);
    if (slot_mode_ != SlotMode::kNone) {
      if (slot_cells_[m] != nullptr) {
        AddSlot(m, series, bucket, 1);
        AddSlot(m, series, bounds.size() + 1, sum);
      }
      Touch(m, series);
    }
  }
  MetricStore& store() { return *store_; }
  int shard() const { return shard_; }

 private:
  // kNone: no event time, or a late event (cumulative cells only); kTimed:
  // an event time but no windows (expiry records it).
  enum class SlotMode : uint8_t { kNone, kRing, kSpill, kTimed };

  // The first bound >= value, as std::lower_bound finds it, but counted
  // without branches: a binary search over a dozen bounds mispredicts. Up to
  // kFixedBounds bounds are compared from a copy padded with +Inf (which no
  // observed value exceeds): a fixed count, which compiles to a few vector
  // compares instead of a loop.
  ABSL_ATTRIBUTE_ALWAYS_INLINE size_t BucketOf(size_t m, const std::vector<double>& bounds,
                                               double value) const {
    if (bounds.size() > kFixedBounds) return CountBelow(bounds, value);
    const std::array<double, kFixedBounds>& padded = padded_bounds_[m];
    size_t bucket = 0;
    for (size_t i = 0; i < kFixedBounds; ++i) bucket += padded[i] < value ? 1 : 0;
    return bucket;
  }
  static size_t CountBelow(const std::vector<double>& bounds, double value);
  // std::llround, done inline for the non-negative values histograms see
  // (llround is a libm call per observation). x - trunc(x) is exact, so
  // the result is the same.
  static uint64_t RoundToUnits(double x) {
    if (!(x >= 0)) return static_cast<uint64_t>(std::llround(x));
    const uint64_t whole = static_cast<uint64_t>(x);  // x <= kMaxSumUnits < 2^63
    return whole + (x - static_cast<double>(whole) >= 0.5 ? 1 : 0);
  }
  // A series without a window row yet spills until the read side gives it
  // one (see WindowSpec).
  void AddSlot(size_t m, uint32_t series, size_t word, uint64_t n) {
    const uint32_t row = MetricStore::WindowRow(window_rows_[m], series);
    if (slot_mode_ == SlotMode::kRing && row != kNoWindowRow) {
      slot_cells_[m]->Add(row, slot_pos_ * widths_[m] + word, n);
    } else {
      Spill(m, series, word, n);
    }
  }
  void Spill(size_t m, uint32_t series, size_t word, uint64_t n);
  // Stale-series expiry: the series' newest event time in this shard (out
  // of line: the windows' path pays one test when nothing expires).
  void Touch(size_t m, uint32_t series) {
    if (expiry_) [[unlikely]]
      TouchExpiring(m, series);
  }
  ABSL_ATTRIBUTE_NOINLINE void TouchExpiring(size_t m, uint32_t series);

  static constexpr size_t kFixedBounds = 16;

  MetricStore* store_;
  int shard_;
  size_t overflow_metric_;
  std::vector<CellArray*> cells_;
  // Each histogram's bounds padded with +Inf, when it has kFixedBounds or fewer.
  std::vector<std::array<double, kFixedBounds>> padded_bounds_;
  std::vector<uint32_t> overflow_series_;
  // Window state (unused without windows).
  std::vector<CellArray*> slot_cells_;  // null where not windowed
  std::vector<uint32_t*> window_rows_;  // MetricStore::window_row_map per metric
  std::vector<size_t> widths_;
  int64_t slot_ms_ = 0;
  int64_t ring_slots_ = 0;
  int64_t watermark_ms_ = INT64_MIN;
  SlotMode slot_mode_ = SlotMode::kNone;
  size_t slot_pos_ = 0;
  int64_t slot_ = 0;
  // Spilled updates of the current batch, by slot: no lock per update.
  std::vector<std::pair<int64_t, SpilledUpdate>> spilled_;
  // Expiry (after the members the update path reads).
  std::vector<int64_t*> last_ms_;  // MetricStore's, per metric (null: no expiry)
  int64_t event_ms_ = INT64_MIN;   // of the updates that follow (none: INT64_MIN)
  bool expiry_ = false;            // some family expires
};

}  // namespace novapulse

#endif  // NOVAPULSE_AGGREGATORS_METRIC_STORE_H_
