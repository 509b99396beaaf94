// SpecMetrics: the families a metric spec declares (spec/metric_spec.h),
// then novapulse's own, in one MetricStore; and its Writers, which turn a
// decoded record's field values (spec::SpecDecoder) into cell updates.
//
// Threads: Writer i belongs to worker i alone (single writer). Snapshot()
// may be called from any thread at any time; it never blocks a writer.
//   SpecMetrics metrics(plan, /*num_shards=*/2);
//   if (!decoder.Decode(input, line, len, cap)) metrics.writer(0).Record(input, decoder.values());
//   std::vector<FamilySnapshot> families = metrics.Snapshot();
#ifndef NOVAPULSE_AGGREGATORS_SPEC_METRICS_H_
#define NOVAPULSE_AGGREGATORS_SPEC_METRICS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "aggregators/busy_ring.h"
#include "aggregators/metric_source.h"
#include "aggregators/metric_store.h"
#include "aggregators/self_metrics.h"
#include "base/state_part.h"
#include "parsers/event.h"
#include "spec/plan.h"

namespace novapulse {

class SpecMetrics : public MetricSource, public StatePart {
  // The conditions of an input's families (`when`, and each gauge op's),
  // by slot. A flat condition (value-code and presence tests joined by
  // `and`, spec/condition.h) depends only on those fields' codes and
  // presence, so its answers are looked up in a table made at start, one
  // row per combination; the others are evaluated when asked.
  struct Conditions {
    std::vector<const spec::Condition*> slots;
    std::vector<uint8_t> tree;              // per slot: evaluated when asked
    std::vector<int> when;                  // by family: its `when` slot
    std::vector<std::vector<int>> op_when;  // by family: each op's slot
    size_t words = 0;                       // 64-bit words of slots
    // The table's fields, each a digit of the row: a coded field's number
    // of codes (0 for one only tested for presence) and its radix.
    std::vector<int> fields;
    std::vector<uint32_t> coded, radix;
    std::vector<uint64_t> table;  // [row * words + word]

    static Conditions Build(const spec::MetricSpecSet& spec, size_t input,
                            const std::vector<size_t>& families);
    // A field's digit: 0 when absent; for a coded field 1 + its code, or
    // coded + 1 when the code is outside the list; 1 when present.
    static uint32_t Digit(uint32_t coded, const spec::FieldValue& v) {
      if (!v.present) return 0;
      if (coded == 0) return 1;
      return v.code >= 0 && static_cast<uint32_t>(v.code) < coded
                 ? static_cast<uint32_t>(v.code) + 1
                 : coded + 1;
    }
  };

 public:
  class Writer {
   public:
    Writer(SpecMetrics* owner, int shard);
    // An accepted record of `input`, its fields as the decoder left them.
    void Record(size_t input, const std::vector<spec::FieldValue>& values);
    // A rejected record; `input` -1 when the input could not be told.
    void Reject(int input, RejectReason reason);
    void SetWatermark(int64_t watermark_ms) { w_.SetWatermark(watermark_ms); }
    // Forgets the memoised series ids of open label sets (after expiry,
    // which frees ids for new label sets).
    void ForgetSeriesIds();
    // Ends a batch (see NovaGiftMetrics::Writer::EndBatch): the newest event
    // time recorded since the last call, INT64_MIN if none.
    int64_t EndBatch();
    // The newest event time recorded since the last call of this or
    // EndBatch (INT64_MIN if none), without ending the batch.
    int64_t TakeNewest() { return std::exchange(batch_newest_us_, INT64_MIN); }

   private:
    // A family whose every label comes from a closed list (see
    // ResolveClosedLabelSets): its series ids by the labels' value codes,
    // mixed-radix with the last label fastest (a constant has one code).
    struct ClosedIds {
      std::vector<int> fields;      // per label: the field, -1 for a constant
      std::vector<uint32_t> radix;  // per label: its number of values
      std::vector<uint32_t> ids;    // kNoId where the set overflowed
    };
    // The label sets this worker resolved, per input: records repeat a few
    // hundred, so a record's series in every family of its input come from
    // one memo probe keyed by the values of all their labels (the union of
    // the fields the families label with), not from the shared index.
    struct LabelMemo {
      std::vector<int> fields;    // the union, in order of first use
      std::vector<uint8_t> text;  // per field: a string (else a number or bool)
      std::vector<int> column;    // by family: its column in `ids`, -1 if none
      size_t columns = 0;
      struct Entry {
        uint64_t hash = 0;
        std::string key;  // the union's values, encoded (see MemoEntryOf)
        bool used = false;
      };
      std::vector<Entry> entries;  // kMemoSize
      std::vector<uint32_t> ids;   // [entry * columns + column]; kUnresolved
    };
    // Sets holds_ for a record of an input with conditions `c`.
    void Decide(const Conditions& c, const std::vector<spec::FieldValue>& values);
    // Whether condition `slot` of `c` holds for the record Decide was given.
    bool Holds(const Conditions& c, int slot, const spec::InputSpec& in,
               const std::vector<spec::FieldValue>& values) const {
      if (c.tree[slot]) return spec::Holds(*c.slots[slot], values, in);
      return (holds_[slot / 64] >> (slot % 64)) & 1;
    }
    static constexpr size_t kMemoSize = 1024;
    static constexpr size_t kNumberBytes = 24;
    static constexpr uint32_t kUnresolved = UINT32_MAX - 1;
    static constexpr uint32_t kNoId = UINT32_MAX;

    void ResolveClosedLabelSets(size_t family);
    void BuildLabelMemo(size_t input);
    uint32_t Series(size_t family, const spec::MetricSpec& m,
                    const std::vector<spec::FieldValue>& values);
    // The memo entry of the record at hand (see Series), found on first use.
    size_t MemoEntryOf(LabelMemo& memo, const std::vector<spec::FieldValue>& values);
    static bool KeyIs(const LabelMemo& memo, std::string_view key,
                      const std::vector<spec::FieldValue>& values);
    // Field `f`'s value as a label (numbers formatted into `number`).
    static std::string_view LabelText(const spec::InputSpec& in, int f,
                                      const std::vector<spec::FieldValue>& values,
                                      std::array<char, kNumberBytes>* number);
    static double Value(const spec::InputSpec& in, const spec::ValueSpec& v,
                        const std::vector<spec::FieldValue>& values);

    SpecMetrics* owner_;
    ShardWriter w_;
    std::string key_;
    std::array<char, kNumberBytes> number_;  // a label's number, formatted
    std::vector<uint32_t> accepted_;         // novapulse_events_total ids, per input
    std::vector<uint32_t> late_;
    std::vector<uint32_t> rejected_events_;                // per input, then "unknown"
    std::vector<std::vector<uint32_t>> rejected_reasons_;  // [input or unknown][reason]
    std::vector<LabelMemo> memo_;                          // per input
    std::vector<uint64_t> holds_;                          // the record's answers, by slot
    std::vector<ClosedIds> closed_;                        // per spec family; ids empty if open
    size_t entry_ = SIZE_MAX;  // the record's memo entry, SIZE_MAX before its first use
    int64_t batch_newest_us_ = INT64_MIN;
  };

  // `plan` must stay alive as long as the metrics (the families' names and
  // labels point into its spec).
  SpecMetrics(std::shared_ptr<const spec::SpecPlan> plan, int num_shards,
              size_t series_limit = kDefaultSeriesLimit, const WindowSpec* windows = nullptr,
              const MetricExpiry& expiry = {});
  SpecMetrics(const SpecMetrics&) = delete;
  SpecMetrics& operator=(const SpecMetrics&) = delete;

  int num_shards() const { return store_.num_shards(); }
  Writer& writer(int shard) { return *writers_[shard]; }
  MetricStore& store() { return store_; }
  const spec::SpecPlan& plan() const { return *plan_; }

  // The store's families for `spec`: the spec's, then the self metrics
  // (what RuleRunner::Build is given to read these metrics).
  static std::vector<MetricDef> Defs(const spec::MetricSpecSet& spec,
                                     const MetricExpiry& expiry = {});
  // Whether a family's label sets all come from closed lists (a constant,
  // or a string field with `values`), so each writer resolves them up front
  // and exports them from the start.
  static bool HasClosedLabelSets(const spec::MetricSpecSet& spec, size_t family);
  // Whether the series of spec family `family` can expire: not those of a
  // concurrency gauge or of closed label sets, which are a fixed set (nor
  // the self metrics).
  static bool CanExpire(const spec::MetricSpecSet& spec, size_t family);

  // Stale-series expiry at event time `now_ms` (MetricStore::ExpireIdle,
  // whose `removed` it appends to); every writer then forgets the series
  // ids it memoised. Call it while no writer runs.
  size_t ExpireIdle(int64_t now_ms, std::vector<MetricStore::Removed>* removed = nullptr);

  // Every family, merged over shards, computed gauges included.
  std::vector<FamilySnapshot> Snapshot() const;
  void CollectMetrics(MetricFamilies* out) override { out->Append(Snapshot()); }
  // Newest event time seen by any shard, microseconds; 0 before any event.
  int64_t NewestEventTime() const;

  // Checkpoints (section "metrics", fingerprint: the families, their types,
  // labels and buckets): every cumulative series, the newest event time,
  // the busy time behind each concurrency gauge and, with expiry on, each
  // series' newest event time. The layout is NovaGiftMetrics', so a
  // checkpoint of the compiled-in NovaGift set loads into the shipped spec.
  // SaveState while no writer runs; LoadState into fresh metrics before
  // any writer runs.
  std::string_view StateName() const override { return "metrics"; }
  std::string StateFingerprint() const override { return store_.Fingerprint(); }
  std::string_view StateChanged() const override {
    return "the checkpoint was written for another metric set (the spec's families changed)";
  }
  void SaveState(StateWriter* w) override;
  [[nodiscard]] absl::Status LoadState(StateReader* r, StateLoad* load) override;
  // A checkpoint of another spec: the families whose definition did not
  // change keep their values (LoadChangedMetricSetState).
  [[nodiscard]] absl::Status LoadChangedState(StateReader* r, std::string_view saved,
                                              StateLoad* load, std::string* note) override;

 private:
  struct alignas(64) ShardTime {
    std::atomic<int64_t> newest_us{0};
  };
  // The store index of a self family.
  size_t self(SelfMetric id) const;
  // The busy rings of each concurrency family, in family order.
  std::vector<std::vector<std::unique_ptr<BusyRing>>*> ConcurrencyRings();

  std::shared_ptr<const spec::SpecPlan> plan_;
  MetricStore store_;
  std::vector<std::unique_ptr<ShardTime>> newest_;
  // Concurrency families: a ring per shard each, by family.
  std::vector<std::vector<std::unique_ptr<BusyRing>>> busy_;
  std::vector<std::vector<size_t>> by_input_;  // spec families of each input, in order
  std::vector<Conditions> conditions_;         // per input
  std::vector<std::unique_ptr<Writer>> writers_;
};

}  // namespace novapulse

#endif  // NOVAPULSE_AGGREGATORS_SPEC_METRICS_H_
