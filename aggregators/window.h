// WindowHistory: the read side of the window slots (see WindowSpec in
// metric_store.h). It closes slots in event-time order, folds each closed
// slot's per-shard deltas into cumulative values, and appends one sample per
// series at the slot's end to a promql::SeriesStore, as if Prometheus had
// scraped novapulse at that instant with exactly the events stamped before it.
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
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "aggregators/metric_store.h"
#include "aggregators/promql.h"

namespace novapulse {

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
  }

  // Sets the first open slot; before any writer runs. Events of earlier
  // slots are late.
  void Start(int64_t first_slot);
  int64_t slot_ms() const { return slot_ms_; }
  int64_t open_slot() const { return open_slot_; }
  int64_t open_slot_end_ms() const { return (open_slot_ + 1) * slot_ms_; }
  // Closes the open slot: folds it, appends its samples at its end, and
  // publishes the next slot open.
  void CloseSlot();

  // Checkpoints: the open slot and, per family, the folded cumulative values
  // and the sample streams' refs in the SeriesStore (saved alongside). The
  // store's window cells are saved by MetricStore::SaveWindows. Only between
  // CloseSlot() calls, and not with a sink. LoadState replaces Start().
  void SaveState(StateWriter* w) const;
  [[nodiscard]] absl::Status LoadState(StateReader* r);

  // Heap bytes of the slot cells, cumulative values and samples held.
  size_t MemoryBytes() const;
  // Series (sample streams) kept.
  size_t series() const { return series_; }

 private:
  struct Family {
    Wanted wanted;
    const MetricDef* def = nullptr;
    size_t width = 1;
    std::vector<uint64_t> cumulative;    // width words per series
    std::vector<uint8_t> started;        // per series: has had an update
    std::vector<uint8_t> spill_touched;  // per series: spilled updates this slot
    std::vector<uint32_t> refs;          // parts() refs per series into out_
    std::vector<uint32_t> sink_refs;     // parts() handles per series in sink_
    size_t parts = 0;                    // samples per series per slot
    size_t known = 0;                    // series with refs made
  };
  void AddSeries(Family& f, uint32_t id);
  // Appends series `id`'s samples at `t_ms` (and to the sink when `to_sink`).
  void Emit(Family& f, uint32_t id, int64_t t_ms, bool to_sink);
  // `spilled`: the slot's spilled updates (any family).
  void Fold(Family& f, size_t m, size_t pos, int64_t slot,
            const std::vector<SpilledUpdate>& spilled);

  MetricStore* store_;
  promql::SeriesStore* out_;
  std::vector<Family> families_;
  int64_t slot_ms_;
  size_t ring_slots_;
  int64_t open_slot_ = 0;
  size_t series_ = 0;
  size_t closes_ = 0;
  std::vector<uint64_t> delta_;  // scratch
  std::vector<uint32_t> fresh_;  // scratch: series started in the slot being folded
  WindowSampleSink* sink_ = nullptr;
  int64_t sink_step_ms_ = 0;
};

}  // namespace novapulse

#endif  // NOVAPULSE_AGGREGATORS_WINDOW_H_
