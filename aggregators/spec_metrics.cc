#include "aggregators/spec_metrics.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>

#include "aggregators/metric_set_state.h"
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

constexpr uint64_t Mix(uint64_t h, uint64_t a, uint64_t b) {
  h = (h ^ a) * 0x9e3779b97f4a7c15ULL;
  return (h ^ (h >> 29) ^ b) * 0xbf58476d1ce4e5b9ULL;
}

// A label value as a LabelMemo keys it: absent, a text, or a number's bits
// (formatting waits until a series is resolved).
enum class Piece : char { kAbsent, kText, kNumber };

}  // namespace

std::vector<MetricDef> SpecMetrics::Defs(const spec::MetricSpecSet& spec,
                                         const MetricExpiry& expiry) {
  std::vector<MetricDef> defs;
  for (size_t f = 0; f < spec.metrics.size(); ++f) {
    const spec::MetricSpec& m = spec.metrics[f];
    MetricDef def;
    def.name = m.name;
    def.help = m.help;
    def.type = TypeOf(m.kind);
    for (const spec::LabelSpec& l : m.labels) def.labels.push_back(l.name);
    def.buckets = m.buckets;
    def.fixed_series_limit = m.series_limit;
    def.sum_unit = m.sum_unit;
    if (CanExpire(spec, f)) def.expire_after_ms = expiry.For(m.name);
    defs.push_back(std::move(def));
  }
  defs.insert(defs.end(), SelfMetricDefs().begin(), SelfMetricDefs().end());
  return defs;
}

bool SpecMetrics::HasClosedLabelSets(const spec::MetricSpecSet& spec, size_t family) {
  const spec::MetricSpec& m = spec.metrics[family];
  if (m.kind == spec::MetricKind::kConcurrency || m.labels.empty()) return false;
  size_t sets = 1;
  for (const spec::LabelSpec& l : m.labels) {
    if (l.field < 0) continue;
    const spec::FieldSpec& f = spec.inputs[m.input].fields[l.field];
    if (f.values.empty()) return false;
    sets *= f.values.size();
    if (sets > kMaxClosedLabelSets) return false;
  }
  return true;
}

bool SpecMetrics::CanExpire(const spec::MetricSpecSet& spec, size_t family) {
  return family < spec.metrics.size() &&
         spec.metrics[family].kind != spec::MetricKind::kConcurrency &&
         !HasClosedLabelSets(spec, family);
}

size_t SpecMetrics::ExpireIdle(int64_t now_ms, std::vector<MetricStore::Removed>* removed) {
  const size_t n = store_.ExpireIdle(now_ms, removed);
  if (n > 0) {
    for (const auto& w : writers_) w->ForgetSeriesIds();
  }
  return n;
}

void SpecMetrics::Writer::ForgetSeriesIds() {
  for (LabelMemo& memo : memo_) {
    for (LabelMemo::Entry& e : memo.entries) e.used = false;
  }
}

size_t SpecMetrics::self(SelfMetric id) const {
  return plan_->spec().metrics.size() + static_cast<size_t>(id);
}

SpecMetrics::SpecMetrics(std::shared_ptr<const spec::SpecPlan> plan, int num_shards,
                         size_t series_limit, const WindowSpec* windows, const MetricExpiry& expiry)
    : plan_(std::move(plan)), store_(Defs(plan_->spec(), expiry), num_shards, series_limit) {
  if (windows != nullptr) store_.EnableWindows(*windows);
  const spec::MetricSpecSet& spec = plan_->spec();
  by_input_.resize(spec.inputs.size());
  busy_.resize(spec.metrics.size());
  for (size_t m = 0; m < spec.metrics.size(); ++m) {
    by_input_[spec.metrics[m].input].push_back(m);
    if (spec.metrics[m].kind != spec::MetricKind::kConcurrency) continue;
    for (int s = 0; s < num_shards; ++s) busy_[m].push_back(std::make_unique<BusyRing>());
  }
  for (size_t i = 0; i < spec.inputs.size(); ++i) {
    conditions_.push_back(Conditions::Build(spec, i, by_input_[i]));
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
  for (size_t f = 0; f < spec.metrics.size(); ++f) ResolveClosedLabelSets(f);
  memo_.resize(inputs);
  for (size_t i = 0; i < inputs; ++i) BuildLabelMemo(i);
}

void SpecMetrics::Writer::BuildLabelMemo(size_t input) {
  const spec::MetricSpecSet& spec = owner_->plan_->spec();
  LabelMemo& memo = memo_[input];
  memo.column.assign(spec.metrics.size(), -1);
  for (const size_t f : owner_->by_input_[input]) {
    const spec::MetricSpec& m = spec.metrics[f];
    if (m.kind == spec::MetricKind::kConcurrency) continue;
    for (const spec::LabelSpec& l : m.labels) {
      if (l.field >= 0 &&
          std::find(memo.fields.begin(), memo.fields.end(), l.field) == memo.fields.end()) {
        memo.fields.push_back(l.field);
      }
    }
    memo.column[f] = static_cast<int>(memo.columns++);
  }
  const spec::InputSpec& in = spec.inputs[input];
  for (const int f : memo.fields)
    memo.text.push_back(in.fields[f].type == spec::FieldType::kString);
  memo.entries.resize(kMemoSize);
  memo.ids.assign(kMemoSize * memo.columns, kUnresolved);
}

SpecMetrics::Conditions SpecMetrics::Conditions::Build(const spec::MetricSpecSet& spec,
                                                       size_t input,
                                                       const std::vector<size_t>& families) {
  const spec::InputSpec& in = spec.inputs[input];
  Conditions c;
  c.when.assign(spec.metrics.size(), -1);
  c.op_when.resize(spec.metrics.size());
  for (const size_t f : families) {
    c.when[f] = static_cast<int>(c.slots.size());
    c.slots.push_back(&spec.metrics[f].when);
    for (const spec::GaugeOp& op : spec.metrics[f].ops) {
      c.op_when[f].push_back(static_cast<int>(c.slots.size()));
      c.slots.push_back(&op.when);
    }
  }
  c.words = (c.slots.size() + 63) / 64;
  c.tree.assign(c.slots.size(), 0);
  // The fields the flat conditions read, and the table's rows: past
  // kMaxTableWords (checked before each product, so it cannot wrap) there
  // is no table and every condition is evaluated when asked.
  constexpr size_t kMaxTableWords = 1 << 14;
  const size_t max_rows = c.words > 0 ? kMaxTableWords / c.words : 0;
  size_t rows = 1;
  bool table = true;
  auto grow = [&](size_t from, size_t to) {
    rows /= from;
    if (rows > max_rows / to) table = false;
    rows *= to;
  };
  auto read = [&](int field, uint32_t codes) {
    const auto it = std::find(c.fields.begin(), c.fields.end(), field);
    if (it == c.fields.end()) {
      c.fields.push_back(field);
      c.coded.push_back(codes);
      c.radix.push_back(codes > 0 ? codes + 2 : 2);
      grow(1, c.radix.back());
    } else if (const auto at = static_cast<size_t>(it - c.fields.begin());
               codes > 0 && c.coded[at] == 0) {
      // Read both ways: the codes tell presence too.
      grow(c.radix[at], codes + 2);
      c.coded[at] = codes;
      c.radix[at] = codes + 2;
    }
  };
  std::vector<uint64_t> always(c.words, 0);
  std::vector<size_t> flat;
  for (size_t s = 0; s < c.slots.size() && table; ++s) {
    const spec::Condition& when = *c.slots[s];
    if (when.always()) {
      always[s / 64] |= uint64_t{1} << (s % 64);
    } else if (!when.flat) {
      c.tree[s] = 1;
    } else {
      flat.push_back(s);
      for (const int f : when.flat_present) read(f, 0);
      for (const spec::Condition::CodeTest& t : when.flat_codes) {
        read(t.field, static_cast<uint32_t>(in.fields[t.field].values.size()));
      }
    }
  }
  if (!table) {
    for (size_t s = 0; s < c.slots.size(); ++s) c.tree[s] = c.slots[s]->always() ? 0 : 1;
    flat.clear();
    c.fields.clear();
    c.coded.clear();
    c.radix.clear();
    rows = 1;
    for (size_t s = 0; s < c.slots.size(); ++s) {
      if (c.slots[s]->always()) always[s / 64] |= uint64_t{1} << (s % 64);
    }
  }
  // Each row's answers, from the flat tests over values that give its
  // digits (the inverse of Digit).
  std::vector<spec::FieldValue> values(in.fields.size());
  c.table.assign(rows * c.words, 0);
  for (size_t row = 0; row < rows; ++row) {
    for (size_t i = c.fields.size(), rest = row; i-- > 0; rest /= c.radix[i]) {
      const auto digit = static_cast<uint32_t>(rest % c.radix[i]);
      spec::FieldValue& v = values[c.fields[i]];
      v.present = digit > 0;
      v.code = digit > 0 && digit <= c.coded[i] ? static_cast<int32_t>(digit) - 1 : -1;
    }
    uint64_t* const answers = &c.table[row * c.words];
    std::copy(always.begin(), always.end(), answers);
    for (const size_t s : flat) {
      if (spec::Holds(*c.slots[s], values, in)) answers[s / 64] |= uint64_t{1} << (s % 64);
    }
  }
  return c;
}

void SpecMetrics::Writer::Decide(const Conditions& c, const std::vector<spec::FieldValue>& values) {
  size_t row = 0;
  for (size_t i = 0; i < c.fields.size(); ++i) {
    row = row * c.radix[i] + Conditions::Digit(c.coded[i], values[c.fields[i]]);
  }
  const auto answers = c.table.begin() + static_cast<ptrdiff_t>(row * c.words);
  holds_.assign(answers, answers + static_cast<ptrdiff_t>(c.words));
}

void SpecMetrics::Writer::ResolveClosedLabelSets(size_t family) {
  const spec::MetricSpecSet& spec = owner_->plan_->spec();
  if (!HasClosedLabelSets(spec, family)) return;
  const spec::MetricSpec& m = spec.metrics[family];
  const spec::InputSpec& in = spec.inputs[m.input];
  // Such a family is exported with each label set from the start, as
  // zeros, so rates over it never miss a series.
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
    choices.emplace_back(f.values.begin(), f.values.end());
    closed.radix.push_back(static_cast<uint32_t>(f.values.size()));
    sets *= f.values.size();
  }
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

std::string_view SpecMetrics::Writer::LabelText(const spec::InputSpec& in, int f,
                                                const std::vector<spec::FieldValue>& values,
                                                std::array<char, kNumberBytes>* number) {
  const spec::FieldValue& v = values[f];
  if (!v.present) return {};  // an absent field labels ""
  switch (in.fields[f].type) {
    case spec::FieldType::kString:
      return v.text;
    case spec::FieldType::kBool:
      return v.number != 0 ? "true" : "false";
    default: {
      char* const buf = number->data();
      const auto end = std::to_chars(buf, buf + kNumberBytes, std::llround(v.number)).ptr;
      return {buf, static_cast<size_t>(end - buf)};
    }
  }
}

size_t SpecMetrics::Writer::MemoEntryOf(LabelMemo& memo,
                                        const std::vector<spec::FieldValue>& values) {
  // The hash mixes each text's size and up to 16 of its bytes (first and
  // last eight); the entry's key, compared in full, confirms it.
  uint64_t h = memo.fields.size();
  for (size_t i = 0; i < memo.fields.size(); ++i) {
    const spec::FieldValue& v = values[memo.fields[i]];
    if (!v.present) {
      h = Mix(h, 1, 0);
    } else if (memo.text[i]) {
      const std::string_view t = v.text;
      uint64_t first = 0, last = 0;
      if (t.size() >= 8) {  // fixed-size loads, which compile to one move each
        std::memcpy(&first, t.data(), 8);
        std::memcpy(&last, t.data() + t.size() - 8, 8);
      } else {
        for (const char c : t) first = first << 8 | static_cast<uint8_t>(c);
      }
      h = Mix(h, t.size() ^ first, last);
    } else {
      h = Mix(h, 2, std::bit_cast<uint64_t>(v.number));
    }
  }
  h ^= h >> 31;
  h *= 0x94d049bb133111ebULL;
  static_assert(kMemoSize == 1024, "the slot is the hash's top 10 bits");
  const auto entry = static_cast<size_t>(h >> 54);
  LabelMemo::Entry& e = memo.entries[entry];
  if (e.used && e.hash == h && KeyIs(memo, e.key, values)) return entry;
  // Another label set takes the entry: its ids are resolved as families ask.
  e.key.clear();
  for (size_t i = 0; i < memo.fields.size(); ++i) {
    const spec::FieldValue& v = values[memo.fields[i]];
    if (!v.present) {
      e.key += static_cast<char>(Piece::kAbsent);
    } else if (memo.text[i]) {
      const auto size = static_cast<uint32_t>(v.text.size());
      e.key += static_cast<char>(Piece::kText);
      e.key.append(reinterpret_cast<const char*>(&size), sizeof(size));
      e.key += v.text;
    } else {
      const auto bits = std::bit_cast<uint64_t>(v.number);
      e.key += static_cast<char>(Piece::kNumber);
      e.key.append(reinterpret_cast<const char*>(&bits), sizeof(bits));
    }
  }
  e.hash = h;
  e.used = true;
  std::fill_n(memo.ids.begin() + static_cast<ptrdiff_t>(entry * memo.columns), memo.columns,
              kUnresolved);
  return entry;
}

bool SpecMetrics::Writer::KeyIs(const LabelMemo& memo, std::string_view key,
                                const std::vector<spec::FieldValue>& values) {
  const char* p = key.data();
  const char* const end = p + key.size();
  for (size_t i = 0; i < memo.fields.size(); ++i) {
    const spec::FieldValue& v = values[memo.fields[i]];
    if (p == end) return false;
    const auto piece = static_cast<Piece>(*p++);
    if (!v.present) {
      if (piece != Piece::kAbsent) return false;
    } else if (memo.text[i]) {
      uint32_t size;
      if (piece != Piece::kText || end - p < static_cast<ptrdiff_t>(sizeof(size))) return false;
      std::memcpy(&size, p, sizeof(size));
      p += sizeof(size);
      if (size != v.text.size() || static_cast<size_t>(end - p) < size ||
          std::memcmp(p, v.text.data(), size) != 0) {
        return false;
      }
      p += size;
    } else {
      // The number's bits, as MemoEntryOf wrote them.
      uint64_t bits;
      if (piece != Piece::kNumber || end - p < static_cast<ptrdiff_t>(sizeof(bits))) return false;
      std::memcpy(&bits, p, sizeof(bits));
      if (bits != std::bit_cast<uint64_t>(v.number)) return false;
      p += sizeof(bits);
    }
  }
  return p == end;
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
  // The record's label sets, from the input's memo; the family's key is
  // built (from the pieces the memo probe left) only when its id is not
  // there yet.
  const spec::InputSpec& in = owner_->plan_->spec().inputs[m.input];
  LabelMemo& memo = memo_[m.input];
  if (entry_ == SIZE_MAX) entry_ = MemoEntryOf(memo, values);
  uint32_t& known = memo.ids[entry_ * memo.columns + static_cast<size_t>(memo.column[family])];
  if (known != kUnresolved) return known;
  key_.clear();
  for (size_t i = 0; i < m.labels.size(); ++i) {
    if (i > 0) key_ += kLabelSeparator;
    const int f = m.labels[i].field;
    key_ += f < 0 ? std::string_view(m.labels[i].value) : LabelText(in, f, values, &number_);
  }
  const uint32_t id = w_.Resolve(family, key_);
  // Only real series: an overflowed lookup counts in
  // novapulse_series_overflow_total each time.
  if (id < owner_->store_.index(family).limit()) known = id;
  return id;
}

void SpecMetrics::Writer::Record(size_t input, const std::vector<spec::FieldValue>& values) {
  const spec::MetricSpecSet& spec = owner_->plan_->spec();
  const spec::InputSpec& in = spec.inputs[input];
  const int64_t ts_us = values[in.time_field].time_us;
  // Microseconds to milliseconds, floored (event times are after 1970).
  if (!w_.SetEventTime(ts_us / 1000))
    w_.Inc(owner_->self(SelfMetric::kLateEventsTotal), late_[input]);
  entry_ = SIZE_MAX;
  const Conditions& conditions = owner_->conditions_[input];
  Decide(conditions, values);
  for (const size_t f : owner_->by_input_[input]) {
    const spec::MetricSpec& m = spec.metrics[f];
    if (!Holds(conditions, conditions.when[f], in, values)) continue;
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
        for (size_t o = 0; o < m.ops.size(); ++o) {
          if (Holds(conditions, conditions.op_when[f][o], in, values)) {
            delta += static_cast<int64_t>(m.ops[o].amount);
          }
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

BusyRingSets SpecMetrics::ConcurrencyRings() {
  BusyRingSets rings;
  for (auto& set : busy_) {
    if (!set.empty()) rings.push_back(&set);
  }
  return rings;
}

void SpecMetrics::SaveState(StateWriter* w) {
  SaveMetricSetState(store_, NewestEventTime(), ConcurrencyRings(), w);
}

absl::Status SpecMetrics::LoadState(StateReader* r, StateLoad* load) {
  int64_t newest = 0;
  absl::Status loaded = LoadMetricSetState(store_, ConcurrencyRings(), r, load, &newest);
  newest_[0]->newest_us.store(newest, std::memory_order_relaxed);
  return loaded;
}

absl::Status SpecMetrics::LoadChangedState(StateReader* r, std::string_view saved, StateLoad* load,
                                           std::string* note) {
  int64_t newest = 0;
  absl::Status loaded = LoadChangedMetricSetState(store_, saved, r, load, &newest, note);
  newest_[0]->newest_us.store(newest, std::memory_order_relaxed);
  return loaded;
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
