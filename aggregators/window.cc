#include "aggregators/window.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <functional>

#include "absl/strings/str_cat.h"

namespace novapulse {
namespace {

// Slots between SeriesStore::Trim() calls.
constexpr size_t kTrimEvery = 16;

std::string FormatLe(double bound) {
  char buf[32];
  const auto end = std::to_chars(buf, buf + sizeof(buf), bound).ptr;
  return std::string(buf, end);
}

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() > suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

std::vector<WindowHistory::Wanted> WindowHistory::Resolve(const std::vector<MetricDef>& defs,
                                                          const std::vector<promql::Reach>& reach,
                                                          std::vector<std::string>* unknown) {
  std::vector<Wanted> wanted;
  auto entry = [&](size_t m) -> Wanted& {
    for (Wanted& w : wanted) {
      if (w.metric == m) return w;
    }
    wanted.push_back({});
    wanted.back().metric = m;
    return wanted.back();
  };
  for (const promql::Reach& r : reach) {
    bool found = false;
    for (size_t m = 0; m < defs.size() && !found; ++m) {
      const MetricDef& def = defs[m];
      if (IsComputed(def.type)) continue;
      const std::string_view name = r.metric;
      if (def.type != MetricType::kHistogram) {
        if (name != def.name) continue;
        Wanted& w = entry(m);
        w.value = true;
        w.reach_ms = std::max(w.reach_ms, r.ms);
        found = true;
        continue;
      }
      for (std::string_view suffix : {"_bucket", "_sum", "_count"}) {
        if (!EndsWith(name, suffix) || name.substr(0, name.size() - suffix.size()) != def.name) {
          continue;
        }
        Wanted& w = entry(m);
        (suffix == "_bucket" ? w.buckets : suffix == "_sum" ? w.sum : w.count) = true;
        w.reach_ms = std::max(w.reach_ms, r.ms);
        found = true;
      }
    }
    if (!found && unknown != nullptr) unknown->push_back(r.metric);
  }
  return wanted;
}

std::vector<size_t> WindowHistory::Families(const std::vector<Wanted>& wanted) {
  std::vector<size_t> families;
  families.reserve(wanted.size());
  for (const Wanted& w : wanted) families.push_back(w.metric);
  return families;
}

WindowHistory::WindowHistory(MetricStore* store, const std::vector<Wanted>& wanted,
                             promql::SeriesStore* out)
    : store_(store),
      out_(out),
      slot_ms_(store->window_spec()->slot_ms),
      ring_slots_(store->window_spec()->ring_slots),
      limit_(store->window_spec()->memory_bytes) {
  for (const Wanted& w : wanted) {
    Family f;
    f.wanted = w;
    f.def = &store->def(w.metric);
    f.width = f.def->Width();
    if (f.def->type == MetricType::kHistogram) {
      f.parts = (w.buckets ? f.def->buckets.size() + 1 : 0) + (w.sum ? 1 : 0) + (w.count ? 1 : 0);
    } else {
      f.parts = 1;
    }
    // A sample older than the reach is never read again; one slot more for
    // the sample just before the range.
    const int64_t keep = w.reach_ms + slot_ms_;
    f.keep_ms = keep;
    const std::string name(f.def->name);
    if (f.def->type == MetricType::kHistogram) {
      if (w.buckets) out_->SetRetention(name + "_bucket", keep);
      if (w.sum) out_->SetRetention(name + "_sum", keep);
      if (w.count) out_->SetRetention(name + "_count", keep);
    } else {
      out_->SetRetention(name, keep);
    }
    // Live samples span the retention; Trim() leaves at most as many dead
    // ones before it compacts, and runs every kTrimEvery slots.
    const size_t live = static_cast<size_t>(keep / slot_ms_) + 1;
    f.max_samples = 2 * live + kTrimEvery;
    // Only a gauge's samples go down (counters and histograms are cumulative).
    f.max_decreases = f.def->type == MetricType::kGauge ? live + kTrimEvery : 0;
    families_.push_back(std::move(f));
  }
  Prepare();
}

void WindowHistory::Prepare() {
  base_fixed_ = promql::SeriesStore::EmptyBytes();
  base_per_shard_ = 0;
  for (Family& f : families_) {
    Grow(f, std::max<size_t>(1, f.started.size()));
    const size_t m = f.wanted.metric;
    const size_t names =
        f.def->type != MetricType::kHistogram
            ? 1
            : (f.wanted.buckets ? 1 : 0) + (f.wanted.sum ? 1 : 0) + (f.wanted.count ? 1 : 0);
    // The cheapest row: every label value empty.
    const std::string empty(f.def->labels.empty() ? 0 : f.def->labels.size() - 1, kLabelSeparator);
    f.min_row_bytes = RowBytes(f, Parts(f, empty));
    base_fixed_ += names * promql::SeriesStore::MetricBytes() +
                   RowBytes(f, Parts(f, store_->index(m).overflow_key()));
    // The ring's chunk pointers and the chunk of row 0.
    const CellArray& cells = *store_->slot_cells(0, m);
    const size_t chunks =
        (store_->window_row_capacity(m) + cells.chunk_series() - 1) / cells.chunk_series();
    base_per_shard_ += chunks * sizeof(void*) + cells.chunk_bytes();
  }
  reserved_fixed_ = base_fixed_;
  reserved_per_shard_ = base_per_shard_;
}

void WindowHistory::Start(int64_t first_slot) {
  open_slot_ = first_slot;
  // The series known before any event (label sets resolved up front, which
  // /metrics shows at 0 from the start) hold 0 from the first slot's start,
  // as a scrape then would have seen them: their first increments count in
  // rate() and increase() like any later ones.
  const int64_t t_ms = first_slot * slot_ms_;
  const bool to_sink = ToSink(t_ms);
  std::vector<uint32_t> ids;
  for (Family& f : families_) {
    const size_t m = f.wanted.metric;
    store_->index(m).SortedIds(&ids);
    for (const uint32_t id : ids) {
      if (store_->window_row(m, id) != kNoWindowRow) continue;
      if (const std::optional<uint32_t> row = Place(f, id)) Emit(f, *row, t_ms, to_sink);
    }
  }
  store_->open_slot().store(first_slot, std::memory_order_release);
}

WindowHistory::PartLabels WindowHistory::Parts(const Family& f, std::string_view key) const {
  const std::vector<std::string_view> values = SplitKey(key);
  promql::Labels base;
  for (size_t i = 0; i < f.def->labels.size() && i < values.size(); ++i) {
    base.push_back({std::string(f.def->labels[i]), std::string(values[i])});
  }
  PartLabels parts;
  parts.reserve(f.parts);
  if (f.def->type != MetricType::kHistogram) {
    parts.emplace_back("", std::move(base));
    return parts;
  }
  if (f.wanted.buckets) {
    for (size_t b = 0; b <= f.def->buckets.size(); ++b) {
      promql::Labels labels = base;
      labels.push_back({"le", b < f.def->buckets.size() ? FormatLe(f.def->buckets[b]) : "+Inf"});
      parts.emplace_back("_bucket", std::move(labels));
    }
  }
  if (f.wanted.sum) parts.emplace_back("_sum", base);
  if (f.wanted.count) parts.emplace_back("_count", std::move(base));
  return parts;
}

size_t WindowHistory::RowBytes(const Family& f, const PartLabels& parts) const {
  // The per-row vectors grow by doubling.
  const size_t handles = sink_ != nullptr ? 2 : 1;
  size_t bytes = 2 * (f.width * sizeof(uint64_t) + 1 + f.parts * handles * sizeof(uint32_t));
  for (const auto& [suffix, labels] : parts) {
    promql::Labels named = labels;
    named.push_back({"__name__", absl::StrCat(std::string(f.def->name), std::string(suffix))});
    bytes += promql::SeriesStore::SeriesBytes(named, f.max_samples, f.max_decreases);
  }
  return bytes;
}

void WindowHistory::Grow(Family& f, size_t rows) {
  if (f.started.size() < rows) {
    f.cumulative.resize(rows * f.width, 0);
    f.started.resize(rows, 0);
    f.refs.resize(rows * f.parts, 0);
    f.row_bytes.resize(rows, 0);
  }
  if (sink_ != nullptr && f.sink_refs.size() < rows * f.parts)
    f.sink_refs.resize(rows * f.parts, 0);
}

void WindowHistory::StartRow(Family& f, uint32_t row, const PartLabels& parts) {
  const std::string name(f.def->name);
  size_t part = row * f.parts;
  for (const auto& [suffix, plain] : parts) {
    if (sink_ != nullptr) {
      std::vector<std::pair<std::string, std::string>> pairs;
      for (const promql::Label& l : plain) pairs.emplace_back(l.name, l.value);
      f.sink_refs[part] = sink_->AddSeries(*f.def, suffix, std::move(pairs));
    }
    promql::Labels labels = plain;
    labels.push_back({"__name__", name + std::string(suffix)});
    std::sort(labels.begin(), labels.end());
    f.refs[part++] = out_->Ref(labels);
  }
  f.started[row] = 1;
  series_ += f.parts;
}

uint32_t WindowHistory::Admit(Family& f, std::string_view key) {
  const size_t m = f.wanted.metric;
  const CellArray& cells = *store_->slot_cells(0, m);
  const size_t rows = store_->window_rows(m);
  // A retired row is taken first: its ring is there already.
  const bool reuse = !f.free_rows.empty();
  if (!reuse && rows >= store_->window_row_capacity(m)) return kNoWindowRow;
  PartLabels parts = Parts(f, key);
  size_t bytes = 0;
  if (limit_ > 0) {
    // A new chunk of ring is taken whole, in every shard.
    const size_t chunk = !reuse && rows % cells.chunk_series() == 0 ? cells.chunk_bytes() : 0;
    const size_t ring = chunk * store_->num_shards();
    if (reserved_bytes() + ring + f.min_row_bytes > limit_) return kNoWindowRow;
    bytes = RowBytes(f, parts);
    if (reserved_bytes() + ring + bytes > limit_) return kNoWindowRow;
    reserved_fixed_ += bytes;
    reserved_per_shard_ += chunk;
  }
  uint32_t row;
  if (reuse) {
    row = f.free_rows.back();
    f.free_rows.pop_back();
  } else {
    row = store_->AddWindowRow(m);
  }
  Grow(f, row + 1);
  f.row_bytes[row] = bytes;
  StartRow(f, row, parts);
  return row;
}

size_t WindowHistory::Retire(const std::vector<MetricStore::Removed>& removed) {
  const int64_t t_ms = open_slot_ * slot_ms_ + 1;
  size_t ended = 0;
  for (const MetricStore::Removed& r : removed) {
    auto it = std::find_if(families_.begin(), families_.end(),
                           [&r](const Family& f) { return f.wanted.metric == r.metric; });
    if (it == families_.end()) continue;
    Family& f = *it;
    const uint32_t row = store_->window_row(r.metric, r.id);
    if (row == kNoWindowRow) continue;
    store_->set_window_row(r.metric, r.id, kNoWindowRow);
    if (row == 0 || !f.started[row]) continue;
    for (size_t part = 0; part < f.parts; ++part) {
      out_->Append(f.refs[row * f.parts + part], t_ms, promql::StaleNaN());
    }
    std::fill_n(f.cumulative.begin() + static_cast<ptrdiff_t>(row * f.width), f.width, 0);
    f.started[row] = 0;
    series_ -= f.parts;
    ended += f.parts;
    // Its ended streams stay in the series store for the reach: the
    // budget gets the row's share back when they go.
    if (f.row_bytes[row] > 0) f.releasing.emplace_back(t_ms, f.row_bytes[row]);
    f.row_bytes[row] = 0;
    f.free_rows.insert(
        std::lower_bound(f.free_rows.begin(), f.free_rows.end(), row, std::greater<>()), row);
  }
  return ended;
}

size_t WindowHistory::free_rows() const {
  size_t n = 0;
  for (const Family& f : families_) n += f.free_rows.size();
  return n;
}

std::optional<uint32_t> WindowHistory::Place(Family& f, uint32_t id) {
  const size_t m = f.wanted.metric;
  const SeriesIndex& index = store_->index(m);
  const std::string_view key = index.Key(id);
  uint32_t row = 0;
  std::optional<uint32_t> started;
  // The series limit's overflow series (and a label set that reads the
  // same) is row 0 already.
  if (key != index.overflow_key()) {
    row = Admit(f, key);
    if (row == kNoWindowRow) {
      row = 0;
      ++f.folded;
    } else {
      started = row;
    }
  }
  if (row == 0 && !f.started[0]) {
    StartRow(f, 0, Parts(f, index.overflow_key()));
    started = 0;
  }
  store_->set_window_row(m, id, row);
  return started;
}

void WindowHistory::CloseSlot() {
  const int64_t slot = open_slot_;
  const size_t pos = static_cast<size_t>(slot % static_cast<int64_t>(ring_slots_));
  // The slot's spilled updates, by family, in shard order.
  spilled_.resize(store_->num_metrics());
  size_t taken = 0;
  for (int s = 0; s < store_->num_shards(); ++s) {
    SpillBuffer& buffer = store_->spill(s);
    std::lock_guard<std::mutex> lock(buffer.mu);
    auto due = buffer.by_slot.find(slot);
    if (due == buffer.by_slot.end()) continue;
    for (const SpilledUpdate& u : due->second) spilled_[u.metric].push_back(u);
    taken += due->second.size();
    buffer.by_slot.erase(due);
  }
  store_->spilled_updates().fetch_sub(taken, std::memory_order_relaxed);
  for (Family& f : families_) {
    std::vector<SpilledUpdate>& spilled = spilled_[f.wanted.metric];
    Fold(f, pos, slot, spilled);
    spilled.clear();
  }
  ++open_slot_;
  store_->open_slot().store(open_slot_, std::memory_order_release);
  if (++closes_ % kTrimEvery == 0) {
    const int64_t now_ms = open_slot_ * slot_ms_;
    out_->Trim(now_ms);
    // Trim() dropped the streams that ended before now - keep.
    for (Family& f : families_) {
      while (!f.releasing.empty() && f.releasing.front().first < now_ms - f.keep_ms) {
        reserved_fixed_ -= f.releasing.front().second;
        f.releasing.pop_front();
      }
    }
  }
}

void WindowHistory::Fold(Family& f, size_t pos, int64_t slot,
                         const std::vector<SpilledUpdate>& spilled) {
  const size_t m = f.wanted.metric;
  const size_t width = f.width;
  // Spilled updates of series in no row yet are the series' first: they
  // get a row below, in label order, not id order: ids follow which worker
  // met a series first, and the order decides which series the budget
  // admits, the order of the sample streams (so of sums) and of the
  // backfill file.
  for (size_t i = 0; i < spilled.size(); ++i) {
    const SpilledUpdate& u = spilled[i];
    const uint32_t row = store_->window_row(m, u.series);
    if (row == kNoWindowRow) {
      fresh_.push_back(u.series);
      pending_.push_back(i);
      continue;
    }
    f.cumulative[row * width + u.word] += u.delta;
  }
  if (!fresh_.empty()) {
    const SeriesIndex& index = store_->index(m);
    std::sort(fresh_.begin(), fresh_.end(),
              [&index](uint32_t a, uint32_t b) { return index.Key(a) < index.Key(b); });
    fresh_.erase(std::unique(fresh_.begin(), fresh_.end()), fresh_.end());
    const int64_t start_ms = slot * slot_ms_;
    const bool start_to_sink = ToSink(start_ms);
    for (const uint32_t id : fresh_) {
      const std::optional<uint32_t> row = Place(f, id);
      // Not for a label set back right after it expired: its stream (and
      // the sink's) has a sample at the slot's start already.
      if (row && zero_new_series_ && out_->LastSampleMs(f.refs[*row * f.parts]) < start_ms) {
        Emit(f, *row, start_ms, start_to_sink);
      }
    }
    for (size_t i : pending_) {
      const SpilledUpdate& u = spilled[i];
      f.cumulative[store_->window_row(m, u.series) * width + u.word] += u.delta;
    }
    fresh_.clear();
    pending_.clear();
  }
  const size_t base = pos * width;
  const int64_t t_ms = (slot + 1) * slot_ms_;
  const bool to_sink = ToSink(t_ms);
  const size_t rows = store_->window_rows(m);
  for (uint32_t row = 0; row < rows; ++row) {
    uint64_t* cum = &f.cumulative[row * width];
    for (int s = 0; s < store_->num_shards(); ++s) {
      CellArray* cells = store_->slot_cells(s, m);
      for (size_t w = 0; w < width; ++w) {
        const uint64_t v = cells->Load(row, base + w);
        if (v == 0) continue;
        cum[w] += v;
        cells->ResetIfAllocated(row, base + w);
      }
    }
    if (f.started[row]) Emit(f, row, t_ms, to_sink);
  }
}

void WindowHistory::Emit(Family& f, uint32_t row, int64_t t_ms, bool to_sink) {
  const size_t width = f.width;
  const uint64_t* cum = &f.cumulative[row * width];
  const uint32_t* refs = &f.refs[row * f.parts];
  const uint32_t* sink_refs = to_sink ? &f.sink_refs[row * f.parts] : nullptr;
  auto emit = [&](size_t part, double v) {
    out_->Append(refs[part], t_ms, v);
    if (sink_refs != nullptr) sink_->Append(sink_refs[part], t_ms, v);
  };
  switch (f.def->type) {
    case MetricType::kCounter:
      emit(0, static_cast<double>(cum[0]));
      break;
    case MetricType::kGauge:
      emit(0, static_cast<double>(std::max<int64_t>(0, static_cast<int64_t>(cum[0]))));
      break;
    case MetricType::kHistogram: {
      size_t part = 0;
      uint64_t running = 0;
      for (size_t b = 0; b + 1 < width; ++b) running += cum[b];
      if (f.wanted.buckets) {
        uint64_t le = 0;
        for (size_t b = 0; b + 1 < width; ++b) {
          le += cum[b];
          emit(part++, static_cast<double>(le));
        }
      }
      if (f.wanted.sum) {
        emit(part++, static_cast<double>(cum[width - 1]) * f.def->sum_unit);
      }
      if (f.wanted.count) emit(part++, static_cast<double>(running));
      break;
    }
    default:
      break;
  }
}

std::vector<WindowHistory::Folded> WindowHistory::folded() const {
  std::vector<Folded> out;
  for (const Family& f : families_) {
    if (f.folded > 0) out.push_back({f.def->name, f.folded});
  }
  return out;
}

void WindowHistory::SaveBudget(StateWriter* w) const {
  w->U64(reserved_fixed_);
  w->U64(reserved_per_shard_);
}

absl::Status WindowHistory::LoadBudget(StateReader* r) {
  uint64_t fixed = 0;
  uint64_t per_shard = 0;
  if (!r->U64(&fixed) || !r->U64(&per_shard) || fixed < base_fixed_ ||
      per_shard < base_per_shard_ || fixed > (uint64_t{1} << 50) ||
      per_shard > (uint64_t{1} << 50)) {
    return r->Error("window budget");
  }
  const uint64_t need = fixed + per_shard * static_cast<uint64_t>(store_->num_shards());
  const uint64_t base = base_fixed_ + base_per_shard_ * store_->num_shards();
  if (limit_ > 0 && need > limit_ && need > base) {
    return absl::FailedPreconditionError(
        absl::StrCat("the saved windows take ", need, " bytes with ", store_->num_shards(),
                     " threads, over the window memory budget of ", limit_, " bytes"));
  }
  reserved_fixed_ = static_cast<size_t>(fixed);
  reserved_per_shard_ = static_cast<size_t>(per_shard);
  return absl::OkStatus();
}

void WindowHistory::SaveState(StateWriter* w) const {
  w->I64(open_slot_);
  w->U64(series_);
  w->U64(closes_);
  for (const Family& f : families_) {
    const size_t m = f.wanted.metric;
    const size_t rows = store_->window_rows(m);
    w->U64(rows);
    for (size_t i = 0; i < rows * f.width; ++i) w->U64(f.cumulative[i]);
    for (size_t i = 0; i < rows; ++i) w->Bool(f.started[i] != 0);
    for (size_t i = 0; i < rows * f.parts; ++i) w->U64(f.refs[i]);
    w->U64(f.folded);
    const size_t n = store_->index(m).size();
    std::vector<std::pair<uint32_t, uint32_t>> placed;
    for (uint32_t id = 0; id < n; ++id) {
      const uint32_t row = store_->window_row(m, id);
      if (row != kNoWindowRow) placed.emplace_back(id, row);
    }
    w->U64(placed.size());
    for (const auto& [id, row] : placed) {
      w->U64(id);
      w->U64(row);
    }
  }
}

absl::Status WindowHistory::LoadState(StateReader* r) {
  uint64_t series = 0;
  uint64_t closes = 0;
  if (!r->I64(&open_slot_) || !r->U64(&series) || !r->U64(&closes) ||
      open_slot_ < -kMaxStateTimeMs / slot_ms_ || open_slot_ > kMaxStateTimeMs / slot_ms_) {
    return r->Error("window history");
  }
  series_ = static_cast<size_t>(series);
  closes_ = static_cast<size_t>(closes);
  for (Family& f : families_) {
    const size_t m = f.wanted.metric;
    size_t rows = 0;
    if (!r->Count(&rows, f.width + 1 + f.parts) || rows == 0 ||
        rows > store_->window_row_capacity(m)) {
      return r->Error("window history");
    }
    store_->set_window_rows(m, rows);
    f.cumulative.assign(rows * f.width, 0);
    f.started.assign(rows, 0);
    f.refs.assign(rows * f.parts, 0);
    for (uint64_t& v : f.cumulative) {
      if (!r->U64(&v)) return r->Error("window history");
    }
    for (uint8_t& started : f.started) {
      bool b = false;
      if (!r->Bool(&b)) return r->Error("window history");
      started = b ? 1 : 0;
    }
    for (size_t i = 0; i < f.refs.size(); ++i) {
      // Refs are made when a row starts; the others stay 0.
      if (!r->U32(&f.refs[i]) || (f.started[i / f.parts] && !out_->IsLive(f.refs[i]))) {
        return r->Error("window history");
      }
    }
    size_t placed = 0;
    if (!r->U64(&f.folded) || !r->Count(&placed, 2)) return r->Error("window history");
    const SeriesIndex& index = store_->index(m);
    const size_t n = index.size();
    f.row_bytes.assign(rows, 0);
    for (size_t i = 0; i < placed; ++i) {
      uint32_t id = 0;
      uint32_t row = 0;
      if (!r->U32(&id) || !r->U32(&row) || id >= n || row >= rows || index.IsFree(id) ||
          !f.started[row]) {
        return r->Error("window history");
      }
      store_->set_window_row(m, id, row);
      if (row != 0 && limit_ > 0) f.row_bytes[row] = RowBytes(f, Parts(f, index.Key(id)));
    }
    // A row past row 0 without sample streams was retired.
    f.free_rows.clear();
    f.releasing.clear();
    for (size_t row = rows; row-- > 1;) {
      if (!f.started[row]) f.free_rows.push_back(static_cast<uint32_t>(row));
    }
  }
  // The reservation is what the rows placed now take (the shares of rows
  // retired and not yet released are not saved: the series store drops
  // their streams within the reach).
  if (limit_ > 0) {
    reserved_fixed_ = base_fixed_;
    for (const Family& f : families_) {
      for (const size_t bytes : f.row_bytes) reserved_fixed_ += bytes;
    }
  }
  store_->open_slot().store(open_slot_, std::memory_order_release);
  return absl::OkStatus();
}

size_t WindowHistory::MemoryBytes() const {
  size_t bytes = store_->SlotMemoryBytes() + out_->MemoryBytes();
  for (const Family& f : families_) {
    bytes += f.cumulative.capacity() * sizeof(uint64_t) + f.started.capacity() +
             (f.refs.capacity() + f.sink_refs.capacity()) * sizeof(uint32_t);
  }
  return bytes;
}

}  // namespace novapulse
