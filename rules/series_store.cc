// SeriesStore (promql.h): per series, one vector of samples whose live part
// starts at `start`; Trim() advances `start` and compacts the vector when
// more than half of it is dead, so appends stay amortised O(1) and every
// series' live samples stay contiguous for Select(). A series that ended
// (its last sample a staleness marker) and has no samples left is removed
// by Trim(): its slot is cleared and its ref goes on a free list for Ref().
#include <algorithm>
#include <bit>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <queue>
#include <string>
#include <string_view>
#include <vector>

#include "base/string_map.h"
#include "rules/promql.h"

namespace novapulse::promql {

struct SeriesStore::Impl {
  struct Series {
    Labels labels;
    std::vector<Sample> samples;
    size_t start = 0;  // first live sample
    // Times of the samples whose value is below the previous non-stale value
    // (counter resets), ascending; a span is monotonic when none falls after
    // its first sample.
    std::vector<int64_t> decreases;
    int64_t last_stale_ms = std::numeric_limits<int64_t>::min();  // last staleness marker
    double last_value = 0;                                        // last non-stale value
    bool has_value = false;
    int64_t last_t_ms = std::numeric_limits<int64_t>::min();  // of the last sample appended
    bool ended = false;  // the last sample appended is a staleness marker
    bool removed = false;
  };
  std::vector<Series> series;
  // Refs of removed series; Ref() reuses the lowest, so refs after a
  // checkpoint restore are those of the run that wrote it.
  std::priority_queue<uint32_t, std::vector<uint32_t>, std::greater<>> free;
  StringMap<uint32_t> by_key;  // serialised labels -> ref
  StringMap<std::vector<uint32_t>> by_metric;
  StringMap<int64_t> retention;
};

namespace {

std::string Key(const Labels& labels) {
  std::string key;
  for (const Label& l : labels) {
    key.append(l.name);
    key.push_back('\0');
    key.append(l.value);
    key.push_back('\0');
  }
  return key;
}

std::string_view Get(const Labels& labels, std::string_view name) {
  for (const Label& l : labels) {
    if (l.name == name) return l.value;
  }
  return {};
}

}  // namespace

uint32_t SeriesStore::Ref(const Labels& labels) {
  if (impl_ == nullptr) impl_ = std::make_shared<Impl>();
  std::string key = Key(labels);
  auto it = impl_->by_key.find(key);
  if (it != impl_->by_key.end()) return it->second;
  uint32_t ref;
  if (!impl_->free.empty()) {
    ref = impl_->free.top();
    impl_->free.pop();
    impl_->series[ref] = Impl::Series();
  } else {
    ref = static_cast<uint32_t>(impl_->series.size());
    impl_->series.emplace_back();
  }
  impl_->series[ref].labels = labels;
  impl_->by_key.emplace(std::move(key), ref);
  // In ref order, which a restore gives back: Select() lists them so.
  std::vector<uint32_t>& refs = impl_->by_metric[std::string(Get(labels, "__name__"))];
  refs.insert(std::upper_bound(refs.begin(), refs.end(), ref), ref);
  return ref;
}

void SeriesStore::Append(uint32_t ref, int64_t t_ms, double v) {
  Impl::Series& s = impl_->series[ref];
  if (s.samples.size() > s.start && s.samples.back().t_ms >= t_ms) return;
  if (!IsStaleNaN(v)) {
    if (s.has_value && v < s.last_value) s.decreases.push_back(t_ms);
    s.last_value = v;
    s.has_value = true;
    s.ended = false;
  } else {
    s.last_stale_ms = t_ms;
    s.ended = true;
  }
  s.last_t_ms = t_ms;
  s.samples.push_back(Sample{t_ms, v});
}

void SeriesStore::SetRetention(std::string_view metric, int64_t ms) {
  if (impl_ == nullptr) impl_ = std::make_shared<Impl>();
  impl_->retention[std::string(metric)] = ms;
}

void SeriesStore::Trim(int64_t now_ms) {
  if (impl_ == nullptr) return;
  for (auto& [metric, refs] : impl_->by_metric) {
    auto r = impl_->retention.find(metric);
    int64_t keep = r == impl_->retention.end() ? kLookbackDeltaMs : r->second;
    int64_t min_t = now_ms - keep;
    size_t kept = 0;
    for (uint32_t ref : refs) {
      Impl::Series& s = impl_->series[ref];
      auto first =
          std::lower_bound(s.samples.begin() + static_cast<ptrdiff_t>(s.start), s.samples.end(),
                           min_t, [](const Sample& a, int64_t t) { return a.t_ms < t; });
      s.start = static_cast<size_t>(first - s.samples.begin());
      auto d = std::lower_bound(s.decreases.begin(), s.decreases.end(), min_t);
      s.decreases.erase(s.decreases.begin(), d);
      if (s.start == s.samples.size()) {
        s.samples.clear();
        s.start = 0;
        if (s.ended) {
          Remove(ref);
          continue;
        }
      } else if (s.start > s.samples.size() / 2) {
        s.samples.erase(s.samples.begin(), s.samples.begin() + static_cast<ptrdiff_t>(s.start));
        s.start = 0;
      }
      refs[kept++] = ref;
    }
    refs.resize(kept);
  }
}

void SeriesStore::Remove(uint32_t ref) {
  Impl::Series& s = impl_->series[ref];
  impl_->by_key.erase(Key(s.labels));
  s = Impl::Series();
  s.removed = true;
  impl_->free.push(ref);
}

size_t SeriesStore::size() const { return impl_ == nullptr ? 0 : impl_->series.size(); }

size_t SeriesStore::live() const { return impl_ == nullptr ? 0 : size() - impl_->free.size(); }

bool SeriesStore::IsLive(uint32_t ref) const {
  return impl_ != nullptr && ref < impl_->series.size() && !impl_->series[ref].removed;
}

int64_t SeriesStore::LastSampleMs(uint32_t ref) const { return impl_->series[ref].last_t_ms; }

void SeriesStore::SaveState(StateWriter* w) const {
  w->U64(size());
  if (impl_ == nullptr) return;
  for (const Impl::Series& s : impl_->series) {
    // A removed series is a hole: no labels (a live one has __name__).
    if (s.removed) {
      w->U64(0);
      continue;
    }
    w->U64(s.labels.size());
    for (const Label& l : s.labels) {
      w->Str(l.name);
      w->Str(l.value);
    }
    w->U64(s.samples.size() - s.start);
    int64_t prev = 0;
    for (size_t i = s.start; i < s.samples.size(); ++i) {
      w->I64(s.samples[i].t_ms - prev);  // slot ends: small deltas
      prev = s.samples[i].t_ms;
      w->F64(s.samples[i].v);
    }
    w->U64(s.decreases.size());
    for (int64_t t : s.decreases) w->I64(t);
    w->I64(s.last_stale_ms);
    w->F64(s.last_value);
    w->Bool(s.has_value);
  }
}

absl::Status SeriesStore::LoadState(StateReader* r) {
  size_t n = 0;
  if (!r->Count(&n, 1) || size() != 0) return r->Error("series");
  std::vector<uint32_t> holes;
  for (size_t i = 0; i < n; ++i) {
    size_t num_labels = 0;
    if (!r->Count(&num_labels, 2)) return r->Error("series");
    if (num_labels == 0) {
      if (impl_ == nullptr) impl_ = std::make_shared<Impl>();
      impl_->series.emplace_back();
      impl_->series.back().removed = true;
      holes.push_back(static_cast<uint32_t>(i));
      continue;
    }
    Labels labels(num_labels);
    for (Label& l : labels) {
      if (!r->Str(&l.name) || !r->Str(&l.value)) return r->Error("series");
    }
    if (!std::is_sorted(labels.begin(), labels.end()) || Ref(labels) != i) {
      return r->Error("series");
    }
    Impl::Series& s = impl_->series[i];
    size_t samples = 0;
    if (!r->Count(&samples, 9)) return r->Error("series");
    s.samples.resize(samples);
    int64_t prev = 0;
    for (size_t j = 0; j < s.samples.size(); ++j) {
      Sample& sample = s.samples[j];
      int64_t delta = 0;
      // Ascending, within kMaxStateTimeMs: checked before adding.
      if (!r->I64(&delta) || !r->F64(&sample.v) || (j > 0 && delta <= 0) ||
          delta > 2 * kMaxStateTimeMs || delta < -kMaxStateTimeMs ||
          prev + delta > kMaxStateTimeMs || prev + delta < -kMaxStateTimeMs) {
        return r->Error("series");
      }
      sample.t_ms = prev + delta;
      prev = sample.t_ms;
    }
    size_t decreases = 0;
    if (!r->Count(&decreases, 1)) return r->Error("series");
    s.decreases.resize(decreases);
    for (int64_t& t : s.decreases) {
      if (!r->TimeMs(&t)) return r->Error("series");
    }
    if (!r->TimeMs(&s.last_stale_ms, /*unset_ok=*/true) || !r->F64(&s.last_value) ||
        !r->Bool(&s.has_value)) {
      return r->Error("series");
    }
    // Not saved: a series ended when its last sample is a marker (Trim()
    // removes one that ended as soon as it has no samples left, so a saved
    // series without samples has not ended). The last sample's time is
    // that of the last one kept.
    s.ended = !s.samples.empty() && IsStaleNaN(s.samples.back().v);
    if (!s.samples.empty()) s.last_t_ms = s.samples.back().t_ms;
  }
  // Free only now: Ref() above must hand out the saved refs in order.
  for (uint32_t hole : holes) impl_->free.push(hole);
  return absl::OkStatus();
}

size_t SeriesStore::MemoryBytes() const {
  if (impl_ == nullptr) return sizeof(*this);
  size_t n = sizeof(*this) + sizeof(Impl) + impl_->series.capacity() * sizeof(Impl::Series);
  for (const Impl::Series& s : impl_->series) {
    n += s.samples.capacity() * sizeof(Sample) + s.labels.capacity() * sizeof(Label) +
         s.decreases.capacity() * sizeof(int64_t);
    for (const Label& l : s.labels) {
      // Strings longer than the small-string buffer live on the heap.
      if (l.name.capacity() > 15) n += l.name.capacity() + 1;
      if (l.value.capacity() > 15) n += l.value.capacity() + 1;
    }
  }
  n += impl_->free.size() * sizeof(uint32_t);
  n += impl_->by_key.capacity() * (sizeof(std::string) + sizeof(uint32_t) + 1);
  for (const auto& [key, ref] : impl_->by_key) n += key.capacity() + 1;
  n += impl_->by_metric.capacity() * (sizeof(std::string) + sizeof(std::vector<uint32_t>) + 1);
  for (const auto& [metric, refs] : impl_->by_metric) n += refs.capacity() * sizeof(uint32_t);
  return n;
}

namespace {

// MemoryBytes() counts a hash table's capacity; after growing it holds over
// 7/16 of it, so three slots per entry cover it.
constexpr size_t kSlotsPerEntry = 3;

size_t HeapBytes(const std::string& s) { return s.size() > 15 ? s.size() + 1 : 0; }

}  // namespace

size_t SeriesStore::EmptyBytes() { return sizeof(SeriesStore) + sizeof(Impl); }

size_t SeriesStore::MetricBytes() {
  return kSlotsPerEntry * (sizeof(std::string) + sizeof(std::vector<uint32_t>) + 1);
}

size_t SeriesStore::SeriesBytes(const Labels& labels, size_t samples, size_t decreases) {
  // The series vector, samples and decreases grow by doubling; the labels
  // are copied, which allocates them exactly.
  size_t n = 2 * sizeof(Impl::Series) + std::bit_ceil(samples) * sizeof(Sample) +
             (decreases > 0 ? std::bit_ceil(decreases) * sizeof(int64_t) : 0) +
             labels.size() * sizeof(Label);
  size_t key = 0;
  for (const Label& l : labels) {
    n += HeapBytes(l.name) + HeapBytes(l.value);
    key += l.name.size() + l.value.size() + 2;
  }
  // by_key: its slots and the key, built by appending (capacity at most
  // twice the size, or the small-string buffer); by_metric: the ref.
  n += kSlotsPerEntry * (sizeof(std::string) + sizeof(uint32_t) + 1) +
       std::max<size_t>(15, 2 * key) + 1 + 2 * sizeof(uint32_t);
  return n;
}

void SeriesStore::Select(std::string_view metric, std::span<const Matcher> matchers,
                         int64_t mint_ms, int64_t maxt_ms, std::vector<SeriesRef>* out) const {
  if (impl_ == nullptr) return;
  auto it = impl_->by_metric.find(metric);
  if (it == impl_->by_metric.end()) return;
  for (uint32_t ref : it->second) {
    const Impl::Series& s = impl_->series[ref];
    bool match = true;
    for (const Matcher& m : matchers) {
      if (!m.Matches(Get(s.labels, m.name))) {
        match = false;
        break;
      }
    }
    if (!match) continue;
    auto begin = s.samples.begin() + static_cast<ptrdiff_t>(s.start);
    auto lo = std::lower_bound(begin, s.samples.end(), mint_ms,
                               [](const Sample& a, int64_t t) { return a.t_ms < t; });
    auto hi = std::upper_bound(lo, s.samples.end(), maxt_ms,
                               [](int64_t t, const Sample& a) { return t < a.t_ms; });
    if (lo == hi) continue;
    SeriesRef r;
    r.labels = &s.labels;
    r.samples = std::span<const Sample>(&*lo, static_cast<size_t>(hi - lo));
    auto d = std::upper_bound(s.decreases.begin(), s.decreases.end(), lo->t_ms);
    r.monotonic = d == s.decreases.end() || *d > (hi - 1)->t_ms;
    r.stale_free = s.last_stale_ms < lo->t_ms;
    out->push_back(r);
  }
}

}  // namespace novapulse::promql
