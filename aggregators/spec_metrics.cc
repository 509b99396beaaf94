#include "aggregators/spec_metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <span>

#include "parsers/timestamp.h"

namespace novapulse {
namespace {

MetricType TypeOf(spec::MetricKind kind) {
  switch (kind) {
    case spec::MetricKind::kCounter:
      return MetricType::kCounter;
    case spec::MetricKind::kGauge:
      return MetricType::kGauge;
    case spec::MetricKind::kHistogram:
      return MetricType::kHistogram;
    case spec::MetricKind::kConcurrency:
      break;
  }
  return MetricType::kComputed;
}

// 11.6 days: a longer busy time is cut (only the last minutes count anyway).
constexpr double kMaxBusyUs = 1e12;
// More label sets than this are not resolved up front (see
// ResolveClosedLabelSets): they would crowd the family's series limit.
constexpr size_t kMaxClosedLabelSets = 1000;

// Cheap mix of a series key's label values, for the memo's slot: each
// value's size and up to 16 of its bytes (first and last eight). A
// collision only costs a lookup.
size_t Slot(std::span<const std::string_view> pieces) {
  uint64_t h = pieces.size();
  for (const std::string_view p : pieces) {
    uint64_t first = 0, last = 0;
    if (p.size() >= 8) {  // fixed-size loads, which compile to one move each
      std::memcpy(&first, p.data(), 8);
      std::memcpy(&last, p.data() + p.size() - 8, 8);
    } else {
      for (const char c : p) first = first << 8 | static_cast<uint8_t>(c);
    }
    h = (h ^ p.size() ^ first) * 0x9e3779b97f4a7c15ULL;
    h = (h ^ (h >> 29) ^ last) * 0xbf58476d1ce4e5b9ULL;
  }
  h ^= h >> 31;
  h *= 0x94d049bb133111ebULL;
  return static_cast<size_t>(h >> 56);
}

// Whether `key` is the values joined by kLabelSeparator.
bool KeyIs(std::string_view key, std::span<const std::string_view> pieces) {
  size_t at = 0;
  for (size_t i = 0; i < pieces.size(); ++i) {
    if (i > 0) {
      if (at >= key.size() || key[at] != kLabelSeparator) return false;
      ++at;
    }
    const std::string_view p = pieces[i];
    if (key.size() - at < p.size() || key.compare(at, p.size(), p) != 0) return false;
    at += p.size();
  }
  return at == key.size();
}

}  // namespace

std::vector<MetricDef> SpecMetrics::Defs(const spec::MetricSpecSet& spec) {
  std::vector<MetricDef> defs;
  for (const spec::MetricSpec& m : spec.metrics) {
    MetricDef def;
    def.name = m.name;
    def.help = m.help;
    def.type = TypeOf(m.kind);
    for (const spec::LabelSpec& l : m.labels) def.labels.push_back(l.name);
    def.buckets = m.buckets;
    def.fixed_series_limit = m.series_limit;
    def.sum_unit = m.sum_unit;
    defs.push_back(std::move(def));
  }
  defs.insert(defs.end(), SelfMetricDefs().begin(), SelfMetricDefs().end());
  return defs;
}

size_t SpecMetrics::self(SelfMetric id) const {
  return plan_->spec().metrics.size() + static_cast<size_t>(id);
}

SpecMetrics::SpecMetrics(std::shared_ptr<const spec::SpecPlan> plan, int num_shards,
                         size_t series_limit, const WindowSpec* windows)
    : plan_(std::move(plan)), store_(Defs(plan_->spec()), num_shards, series_limit) {
  if (windows != nullptr) store_.EnableWindows(*windows);
  const spec::MetricSpecSet& spec = plan_->spec();
  by_input_.resize(spec.inputs.size());
  busy_.resize(spec.metrics.size());
  for (size_t m = 0; m < spec.metrics.size(); ++m) {
    by_input_[spec.metrics[m].input].push_back(m);
    if (spec.metrics[m].kind != spec::MetricKind::kConcurrency) continue;
    for (int s = 0; s < num_shards; ++s) busy_[m].push_back(std::make_unique<BusyRing>());
  }
  for (int s = 0; s < num_shards; ++s) newest_.push_back(std::make_unique<ShardTime>());
  for (int s = 0; s < num_shards; ++s) writers_.push_back(std::make_unique<Writer>(this, s));
}

SpecMetrics::Writer::Writer(SpecMetrics* owner, int shard)
    : owner_(owner), w_(&owner->store_, shard, owner->self(SelfMetric::kSeriesOverflowTotal)) {
  const spec::MetricSpecSet& spec = owner->plan_->spec();
  // Known label sets of the self metrics are resolved up front (in the same
  // order on every shard, so ids agree) and exported as zeros until they move.
  const size_t inputs = spec.inputs.size();
  rejected_reasons_.resize(inputs + 1);
  for (size_t i = 0; i <= inputs; ++i) {
    const std::string_view topic = i < inputs ? std::string_view(spec.inputs[i].topic) : "unknown";
    if (i < inputs) {
      BuildKey(&key_, {topic, "accepted"});
      accepted_.push_back(w_.Resolve(owner->self(SelfMetric::kEventsTotal), key_));
      late_.push_back(w_.Resolve(owner->self(SelfMetric::kLateEventsTotal), topic));
    }
    BuildKey(&key_, {topic, "rejected"});
    rejected_events_.push_back(w_.Resolve(owner->self(SelfMetric::kEventsTotal), key_));
    for (int r = 0; r < kRejectReasonCount; ++r) {
      BuildKey(&key_, {topic, RejectReasonName(static_cast<RejectReason>(r))});
      rejected_reasons_[i].push_back(w_.Resolve(owner->self(SelfMetric::kParseErrorsTotal), key_));
    }
  }
  closed_.resize(spec.metrics.size());
  size_t most_labels = 0;
  for (const spec::MetricSpec& m : spec.metrics)
    most_labels = std::max(most_labels, m.labels.size());
  numbers_.resize(most_labels);
  pieces_.reserve(most_labels);
  for (size_t f = 0; f < spec.metrics.size(); ++f) {
    memo_.push_back(std::unique_ptr<MemoEntry[]>(new MemoEntry[kMemoSize]));
    ResolveClosedLabelSets(f);
  }
}

void SpecMetrics::Writer::ResolveClosedLabelSets(size_t family) {
  const spec::MetricSpec& m = owner_->plan_->spec().metrics[family];
  if (m.kind == spec::MetricKind::kConcurrency) return;
  const spec::InputSpec& in = owner_->plan_->spec().inputs[m.input];
  // A family whose every label takes its value from a closed list (a
  // constant, or a string field with `values`) is exported with each label
  // set from the start, as zeros, so rates over it never miss a series.
  std::vector<std::vector<std::string_view>> choices;
  ClosedIds closed;
  size_t sets = 1;
  for (const spec::LabelSpec& l : m.labels) {
    closed.fields.push_back(l.field);
    if (l.field < 0) {
      choices.push_back({l.value});
      closed.radix.push_back(1);
      continue;
    }
    const spec::FieldSpec& f = in.fields[l.field];
    if (f.values.empty()) return;
    choices.emplace_back(f.values.begin(), f.values.end());
    closed.radix.push_back(static_cast<uint32_t>(f.values.size()));
    sets *= f.values.size();
    if (sets > kMaxClosedLabelSets) return;
  }
  if (m.labels.empty()) return;
  std::vector<size_t> at(choices.size(), 0);
  for (size_t n = 0; n < sets; ++n) {
    key_.clear();
    for (size_t i = 0; i < choices.size(); ++i) {
      if (i > 0) key_ += kLabelSeparator;
      key_ += choices[i][at[i]];
    }
    // Past the family's series limit nothing is resolved up front: no
    // record has been folded into __overflow__ yet.
    const SeriesIndex& index = owner_->store_.index(family);
    uint32_t id = kNoId;
    if (!index.Find(key_, &id) && index.size() < index.limit()) id = w_.Resolve(family, key_);
    closed.ids.push_back(id < index.limit() ? id : kNoId);
    // The next label set: the last label's values vary fastest.
    for (size_t i = choices.size(); i-- > 0;) {
      if (++at[i] < choices[i].size()) break;
      at[i] = 0;
    }
  }
  closed_[family] = std::move(closed);
}

double SpecMetrics::Writer::Value(const spec::InputSpec& in, const spec::ValueSpec& v,
                                  const std::vector<spec::FieldValue>& values) {
  double x = values[v.field].number;
  if (v.minus >= 0) {
    // Time fields: the difference in seconds, exact in microseconds first.
    x = in.fields[v.field].type == spec::FieldType::kTime
            ? static_cast<double>(values[v.field].time_us - values[v.minus].time_us) /
                  kMicrosPerSecond
            : x - values[v.minus].number;
  }
  if (v.floor) x = std::max(x, *v.floor);
  return x;
}

uint32_t SpecMetrics::Writer::Series(size_t family, const spec::MetricSpec& m,
                                     const std::vector<spec::FieldValue>& values) {
  const ClosedIds& closed = closed_[family];
  if (!closed.ids.empty()) {
    // Straight from the value codes; a value outside the list (`other` not
    // among `values`, an absent field) takes the general way below.
    size_t index = 0;
    bool coded = true;
    for (size_t i = 0; i < closed.fields.size() && coded; ++i) {
      int32_t code = 0;
      if (closed.fields[i] >= 0) {
        const spec::FieldValue& v = values[closed.fields[i]];
        code = v.present ? v.code : -1;
      }
      coded = code >= 0 && static_cast<uint32_t>(code) < closed.radix[i];
      index = index * closed.radix[i] + static_cast<size_t>(code);
    }
    if (coded && closed.ids[index] != kNoId) return closed.ids[index];
  }
  // The label values as views (numbers formatted into numbers_), looked
  // up in the memo as they are; the key is built only when it misses.
  const spec::InputSpec& in = owner_->plan_->spec().inputs[m.input];
  pieces_.clear();
  for (size_t i = 0; i < m.labels.size(); ++i) {
    const spec::LabelSpec& l = m.labels[i];
    if (l.field < 0) {
      pieces_.push_back(l.value);
      continue;
    }
    const spec::FieldValue& v = values[l.field];
    if (!v.present) {  // an absent field labels ""
      pieces_.emplace_back();
      continue;
    }
    switch (in.fields[l.field].type) {
      case spec::FieldType::kString:
        pieces_.push_back(v.text);
        break;
      case spec::FieldType::kBool:
        pieces_.push_back(v.number != 0 ? "true" : "false");
        break;
      default: {
        char* const buf = numbers_[i].data();
        const auto end = std::to_chars(buf, buf + kNumberBytes, std::llround(v.number)).ptr;
        pieces_.emplace_back(buf, static_cast<size_t>(end - buf));
        break;
      }
    }
  }
  MemoEntry& memo = memo_[family][Slot(pieces_)];
  if (memo.used && KeyIs(memo.key, pieces_)) return memo.id;
  key_.clear();
  for (size_t i = 0; i < pieces_.size(); ++i) {
    if (i > 0) key_ += kLabelSeparator;
    key_ += pieces_[i];
  }
  const uint32_t id = w_.Resolve(family, key_);
  // Only real series: an overflowed lookup counts in
  // novapulse_series_overflow_total each time.
  if (id < owner_->store_.index(family).limit()) {
    memo.key = key_;
    memo.id = id;
    memo.used = true;
  }
  return id;
}

void SpecMetrics::Writer::Record(size_t input, const std::vector<spec::FieldValue>& values) {
  const spec::MetricSpecSet& spec = owner_->plan_->spec();
  const spec::InputSpec& in = spec.inputs[input];
  const int64_t ts_us = values[in.time_field].time_us;
  // Microseconds to milliseconds, floored (event times are after 1970).
  if (!w_.SetEventTime(ts_us / 1000))
    w_.Inc(owner_->self(SelfMetric::kLateEventsTotal), late_[input]);
  for (const size_t f : owner_->by_input_[input]) {
    const spec::MetricSpec& m = spec.metrics[f];
    if (!spec::Holds(m.when, values, in)) continue;
    switch (m.kind) {
      case spec::MetricKind::kCounter: {
        uint64_t n = 1;
        if (m.value.field >= 0) {
          // Adding 0 still makes the series, as a client library's Add(0)
          // does; an absent or negative value adds nothing.
          if (!values[m.value.field].present) continue;
          const double x = Value(in, m.value, values);
          if (!(x >= 0)) continue;
          n = static_cast<uint64_t>(std::llround(std::min(x, 1e18)));
        }
        w_.Inc(f, Series(f, m, values), n);
        break;
      }
      case spec::MetricKind::kHistogram: {
        if (!values[m.value.field].present ||
            (m.value.minus >= 0 && !values[m.value.minus].present)) {
          continue;
        }
        w_.Observe(f, Series(f, m, values), Value(in, m.value, values));
        break;
      }
      case spec::MetricKind::kGauge: {
        int64_t delta = 0;
        for (const spec::GaugeOp& op : m.ops) {
          if (spec::Holds(op.when, values, in)) delta += static_cast<int64_t>(op.amount);
        }
        if (delta != 0) w_.GaugeAdd(f, Series(f, m, values), delta);
        break;
      }
      case spec::MetricKind::kConcurrency: {
        const spec::FieldValue& d = values[m.duration_field];
        if (!d.present) continue;
        // From the value as read, times (scale * 1e6): the same product the
        // record's own unit gives (ms * 1000.0), not a rounding of seconds.
        // Capped before the conversion; the ring only looks at the last two
        // minutes.
        const double scale = in.fields[m.duration_field].scale * 1e6;
        const int64_t busy_us = static_cast<int64_t>(std::clamp(d.raw * scale, 0.0, kMaxBusyUs));
        owner_->busy_[f][w_.shard()]->Add(ts_us - busy_us, ts_us);
        break;
      }
    }
  }
  std::atomic<int64_t>& newest = owner_->newest_[w_.shard()]->newest_us;
  if (ts_us > newest.load(std::memory_order_relaxed)) {
    newest.store(ts_us, std::memory_order_relaxed);
  }
  batch_newest_us_ = std::max(batch_newest_us_, ts_us);
  w_.Inc(owner_->self(SelfMetric::kEventsTotal), accepted_[input]);
}

void SpecMetrics::Writer::Reject(int input, RejectReason reason) {
  w_.ClearEventTime();
  const size_t i = input < 0 ? accepted_.size() : static_cast<size_t>(input);
  w_.Inc(owner_->self(SelfMetric::kParseErrorsTotal),
         rejected_reasons_[i][static_cast<int>(reason)]);
  w_.Inc(owner_->self(SelfMetric::kEventsTotal), rejected_events_[i]);
}

int64_t SpecMetrics::Writer::EndBatch() {
  w_.FlushSpill();
  const int64_t newest = batch_newest_us_;
  batch_newest_us_ = INT64_MIN;
  return newest;
}

int64_t SpecMetrics::NewestEventTime() const {
  int64_t newest = 0;
  for (const auto& s : newest_) {
    newest = std::max(newest, s->newest_us.load(std::memory_order_relaxed));
  }
  return newest;
}

std::vector<FamilySnapshot> SpecMetrics::Snapshot() const {
  const int64_t newest = NewestEventTime();
  const size_t spec_families = plan_->spec().metrics.size();
  return store_.Snapshot([&](size_t m, MetricStore::AddSeries add) {
    if (m < spec_families) {
      const int64_t window_s = absl::ToInt64Seconds(plan_->spec().metrics[m].window);
      add("", newest > 0 ? AverageBusy(busy_[m], newest, window_s) : 0.0);
    } else if (m == self(SelfMetric::kSeries)) {
      store_.AddSeriesCounts(add);
    } else if (m == self(SelfMetric::kNewestEventTime)) {
      add("", static_cast<double>(newest) / kMicrosPerSecond);
    }
  });
}

}  // namespace novapulse
