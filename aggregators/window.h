// WindowHistory: the read side of the window slots (see WindowSpec in
// metric_store.h). It closes slots in event-time order, folds each closed
// slot's per-shard deltas into cumulative values, and appends one sample per
// series at the slot's end to a promql::SeriesStore, as if Prometheus had
// scraped novapulse at that instant with exactly the events stamped before it.
//
// Memory: the store's WindowSpec::memory_bytes is a budget. A series gets
// a window row of its own (a ring of slots in every shard, its cumulative
// values and its sample streams) at Start if the store knows it already,
// else when the slot it first has updates in closes, if the row's share of
// the budget fits: an upper bound of what
// MemoryBytes() counts for it once its streams are as long as the rules'
// reach makes them. Otherwise it folds into row 0, the family's
// __overflow__ series, as the series limit folds (sums over the family stay
// right). Series first seen in one slot are placed in label order, so the
// same input places the same series whatever the number of workers.
//
// Threads: one reader thread calls everything here. Writers never wait: a
// slot is closed only once no writer may still write it (the pipeline
// guarantees that through the watermark it hands each batch), and a ring
// position is zeroed before the slot it will hold next is published open.
//   WindowHistory history(&store, WindowHistory::Resolve(store.defs, reach), &series);
//   history.Start(first_slot);  ...  while (history.open_slot_end_ms() <= watermark)
//   history.CloseSlot();
#ifndef NOVAPULSE_AGGREGATORS_WINDOW_H_
#define NOVAPULSE_AGGREGATORS_WINDOW_H_

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "aggregators/metric_store.h"
#include "rules/promql.h"

namespace novapulse {

// The window memory budget when none is configured: a small container's worth.
inline constexpr size_t kDefaultWindowMemoryBytes = size_t{128} << 20;
// The least a configuration may ask for.
inline constexpr size_t kMinWindowMemoryBytes = size_t{1} << 20;

// Where WindowHistory also sends the samples of every series at each step
// (the OpenMetrics backfill). An interface only so that aggregators/ does not
// depend on sinks/, where the writer lives.
class WindowSampleSink {
 public:
  virtual ~WindowSampleSink() = default;
  // A handle for the series `family` + `suffix` ("", "_bucket", "_sum",
  // "_count") with these labels (le included for buckets).
  virtual uint32_t AddSeries(const MetricDef& family, std::string_view suffix,
                             std::vector<std::pair<std::string, std::string>> labels) = 0;
  virtual void Append(uint32_t series, int64_t t_ms, double value) noexcept = 0;
};

class WindowHistory {
 public:
  // A family the rules read, and which of its series they read.
  struct Wanted {
    size_t metric = 0;
    bool value = false;    // counters and gauges: NAME
    bool buckets = false;  // histograms: NAME_bucket
    bool sum = false;      // NAME_sum
    bool count = false;    // NAME_count
    int64_t reach_ms = 0;  // how far back the rules read it
  };

  // Maps the metric names the rules read to families of `defs`. Names that
  // no (windowable) family exports are appended to `unknown`.
  static std::vector<Wanted> Resolve(const std::vector<MetricDef>& defs,
                                     const std::vector<promql::Reach>& reach,
                                     std::vector<std::string>* unknown);
  // The families of `wanted`, for WindowSpec::families.
  static std::vector<size_t> Families(const std::vector<Wanted>& wanted);

  // `store` has windows enabled for Families(wanted); samples go to `out`,
  // whose retention for each name is set here.
  WindowHistory(MetricStore* store, const std::vector<Wanted>& wanted, promql::SeriesStore* out);

  // Also sends every sample at slot ends that are multiples of `step_ms` to
  // `sink` (which must outlive the history). Before Start().
  void set_sink(WindowSampleSink* sink, int64_t step_ms) {
    sink_ = sink;
    sink_step_ms_ = step_ms;
    Prepare();
  }

  // A label set first met in the stream starts with a 0 sample at the
  // start of the slot of its first update (the slot end before it), so
  // that rate() and increase() count its first increments too: the event
  // time equivalent of Prometheus's created-timestamp zero ingestion.
  // Before Start().
  void set_zero_new_series(bool on) { zero_new_series_ = on; }

  // Sets the first open slot; before any writer runs. Events of earlier
  // slots are late. The series the store knows already get rows (as far as
  // the budget admits) and a 0 sample at the slot's start.
  void Start(int64_t first_slot);
  int64_t slot_ms() const { return slot_ms_; }
  int64_t open_slot() const { return open_slot_; }
  int64_t open_slot_end_ms() const { return (open_slot_ + 1) * slot_ms_; }
  // Closes the open slot: folds it, appends its samples at its end, and
  // publishes the next slot open.
  void CloseSlot();

  // Stale-series expiry: the series `removed` (MetricStore::ExpireIdle)
  // leave their rows. A row of its own ends its sample streams with a
  // staleness marker 1 ms after the last closed slot's end, so the rules'
  // next evaluation no longer sees the series, as Prometheus's next scrape
  // would not; the row is then free for a new label set, and its share of
  // the budget with it. (The sink's streams just end: OpenMetrics text has
  // no staleness marker.) A series folded into row 0 leaves the row as it
  // is. Only between CloseSlot() calls, with no writer running, and when
  // every update of the removed series is in a closed slot. Returns the
  // sample streams ended.
  size_t Retire(const std::vector<MetricStore::Removed>& removed);

  // Checkpoints: the open slot and, per family, each row's cumulative
  // values and sample streams' refs in the SeriesStore (saved alongside), and
  // which row each placed series has. The store's window cells are saved by
  // MetricStore::SaveWindows. Only between CloseSlot() calls, and not with a
  // sink. LoadState replaces Start().
  void SaveState(StateWriter* w) const;
  [[nodiscard]] absl::Status LoadState(StateReader* r);
  // The reservation, saved ahead of everything else: with more shards than
  // when it was saved (rings cost more), the saved rows may no longer fit
  // the budget. LoadBudget then returns FailedPrecondition, having read
  // only this; otherwise call LoadState next.
  void SaveBudget(StateWriter* w) const;
  [[nodiscard]] absl::Status LoadBudget(StateReader* r);

  // Heap bytes of the slot cells, cumulative values and samples held.
  size_t MemoryBytes() const;
  // Series (sample streams) kept.
  size_t series() const { return series_; }
  // Rows freed by Retire() and not yet taken again, over the families.
  size_t free_rows() const;
  // The budget (0: none), and the bytes the placed rows and every family's
  // __overflow__ row are allowed to grow to (0 without a budget). More than
  // the budget only when the overflow rows alone are.
  size_t memory_limit() const { return limit_; }
  size_t reserved_bytes() const {
    return limit_ == 0 ? 0 : reserved_fixed_ + reserved_per_shard_ * store_->num_shards();
  }
  // Label sets each family has folded into its __overflow__ row because the
  // budget was spoken for (not those the series limit folded), in family order.
  struct Folded {
    std::string_view metric;
    uint64_t series = 0;
  };
  std::vector<Folded> folded() const;

 private:
  struct Family {
    Wanted wanted;
    const MetricDef* def = nullptr;
    size_t width = 1;
    size_t parts = 0;  // samples per row per slot
    // Per row; row 0 is the family's __overflow__ series.
    std::vector<uint64_t> cumulative;  // width words per row
    std::vector<uint8_t> started;      // per row: has sample streams
    std::vector<uint32_t> refs;        // parts refs per row into out_
    std::vector<uint32_t> sink_refs;   // parts handles per row in sink_
    std::vector<size_t> row_bytes;     // per row: its share of the budget
    // Rows Retire() freed, highest first: the lowest is taken first, which
    // a restore (rebuilding the list) gives back.
    std::vector<uint32_t> free_rows;
    // The budget shares of retired rows, held until the Trim() that drops
    // their ended streams: (time of the staleness marker, bytes), in order.
    std::deque<std::pair<int64_t, size_t>> releasing;
    int64_t keep_ms = 0;  // the streams' retention in the series store
    uint64_t folded = 0;
    // Budget (see Prepare): the most samples and decrease times a stream
    // holds at once, and what a row costs at least.
    size_t max_samples = 0;
    size_t max_decreases = 0;
    size_t min_row_bytes = 0;
  };
  // The labels of each sample stream of the row for series key `key`, in
  // part order: (suffix, labels without __name__).
  using PartLabels = std::vector<std::pair<std::string_view, promql::Labels>>;
  PartLabels Parts(const Family& f, std::string_view key) const;
  // An upper bound of what MemoryBytes() counts for a row with these
  // streams, its ring aside.
  size_t RowBytes(const Family& f, const PartLabels& parts) const;
  // Per-family budget figures and what the rows 0 take; the constructor
  // and set_sink.
  void Prepare();
  // Gives series `id` (in no row yet) a row, or row 0. Returns the row if
  // its sample streams started here.
  std::optional<uint32_t> Place(Family& f, uint32_t id);
  // A row of its own for series key `key` if the budget has room, else
  // kNoWindowRow.
  uint32_t Admit(Family& f, std::string_view key);
  void Grow(Family& f, size_t rows);
  // Makes the sample streams of `row`.
  void StartRow(Family& f, uint32_t row, const PartLabels& parts);
  // Whether the samples at `t_ms` also go to the sink (one is set and t_ms
  // is on its step).
  bool ToSink(int64_t t_ms) const { return sink_ != nullptr && t_ms % sink_step_ms_ == 0; }
  // Appends row `row`'s samples at `t_ms` (and to the sink when `to_sink`).
  void Emit(Family& f, uint32_t row, int64_t t_ms, bool to_sink);
  // `spilled`: the slot's spilled updates of f.
  void Fold(Family& f, size_t pos, int64_t slot, const std::vector<SpilledUpdate>& spilled);

  MetricStore* store_;
  promql::SeriesStore* out_;
  std::vector<Family> families_;
  int64_t slot_ms_;
  size_t ring_slots_;
  int64_t open_slot_ = 0;
  size_t series_ = 0;
  size_t closes_ = 0;
  size_t limit_ = 0;
  // The reservation: bytes regardless of shards, and per shard (rings).
  size_t base_fixed_ = 0;
  size_t base_per_shard_ = 0;
  size_t reserved_fixed_ = 0;
  size_t reserved_per_shard_ = 0;
  std::vector<std::vector<SpilledUpdate>> spilled_;  // scratch: by metric
  std::vector<uint32_t> fresh_;  // scratch: series placed in the slot being folded
  std::vector<size_t> pending_;  // scratch: their spilled updates
  WindowSampleSink* sink_ = nullptr;
  int64_t sink_step_ms_ = 0;
  bool zero_new_series_ = false;
};

}  // namespace novapulse

#endif  // NOVAPULSE_AGGREGATORS_WINDOW_H_
