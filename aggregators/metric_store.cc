#include "aggregators/metric_store.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <limits>
#include <new>

#include "absl/strings/str_cat.h"
#include "base/time_math.h"

namespace novapulse {

std::vector<std::string_view> SplitKey(std::string_view key) {
  std::vector<std::string_view> values;
  size_t start = 0;
  while (true) {
    const size_t sep = key.find(kLabelSeparator, start);
    if (sep == std::string_view::npos) {
      values.push_back(key.substr(start));
      return values;
    }
    values.push_back(key.substr(start, sep - start));
    start = sep + 1;
  }
}

void BuildKey(std::string* key, std::initializer_list<std::string_view> values) {
  key->clear();
  bool first = true;
  for (std::string_view v : values) {
    if (!first) key->push_back(kLabelSeparator);
    key->append(v);
    first = false;
  }
}

MetricStore::MetricStore(std::vector<MetricDef> defs, int num_shards, size_t series_limit)
    : defs_(std::move(defs)), num_shards_(num_shards) {
  for (const MetricDef& def : defs_) {
    if (IsComputed(def.type)) {
      indexes_.push_back(nullptr);
      continue;
    }
    const size_t limit = def.fixed_series_limit > 0 ? def.fixed_series_limit : series_limit;
    indexes_.push_back(std::make_unique<SeriesIndex>(def.labels.size(), limit));
  }
  for (int s = 0; s < num_shards_; ++s) {
    for (size_t m = 0; m < defs_.size(); ++m) {
      const size_t capacity = indexes_[m] ? indexes_[m]->capacity() : 0;
      cells_.push_back(std::make_unique<CellArray>(defs_[m].Width(), capacity));
      std::unique_ptr<int64_t[], FreeTimes>& last = last_ms_.emplace_back();
      if (defs_[m].expire_after_ms > 0 && capacity > 0) {
        last.reset(static_cast<int64_t*>(std::calloc(capacity, sizeof(int64_t))));
        if (last == nullptr) throw std::bad_alloc();
      }
    }
  }
}

int64_t MetricStore::LastEventMs(size_t m, uint32_t id) const {
  int64_t newest = 0;
  for (int s = 0; s < num_shards_; ++s) {
    if (int64_t* last = last_event_map(s, m)) {
      newest = std::max(newest, std::atomic_ref<int64_t>(last[id]).load(std::memory_order_relaxed));
    }
  }
  return newest;
}

size_t MetricStore::ExpireIdle(int64_t now_ms, std::vector<Removed>* removed) {
  size_t count = 0;
  std::vector<uint32_t> ids;
  for (size_t m = 0; m < defs_.size(); ++m) {
    const int64_t after = defs_[m].expire_after_ms;
    if (after <= 0 || IsComputed(defs_[m].type)) continue;
    SeriesIndex& idx = *indexes_[m];
    const int64_t cutoff = now_ms < INT64_MIN + after ? INT64_MIN : now_ms - after;
    ids.clear();
    const size_t n = idx.size();
    const uint32_t overflow = idx.overflow_id();
    for (uint32_t id = 0; id < n; ++id) {
      if (idx.IsFree(id) || id == overflow) continue;
      const int64_t last = LastEventMs(m, id);
      if (last != 0 && last <= cutoff) ids.push_back(id);
    }
    if (ids.empty()) continue;
    // Out of the index first, so that no reader lists a series whose cells
    // are being zeroed.
    idx.Remove(ids);
    const size_t width = defs_[m].Width();
    for (int s = 0; s < num_shards_; ++s) {
      CellArray& c = cells(s, m);
      int64_t* last = last_event_map(s, m);
      for (uint32_t id : ids) {
        for (size_t w = 0; w < width; ++w) c.ResetIfAllocated(id, w);
        std::atomic_ref<int64_t>(last[id]).store(0, std::memory_order_relaxed);
      }
    }
    count += ids.size();
    if (removed != nullptr) {
      for (uint32_t id : ids) removed->push_back({m, id});
    }
  }
  return count;
}

std::vector<FamilySnapshot> MetricStore::Snapshot(
    absl::FunctionRef<void(size_t m, AddSeries add)> computed) const {
  std::vector<FamilySnapshot> families;
  families.reserve(num_metrics());
  for (size_t m = 0; m < num_metrics(); ++m) {
    if (!IsComputed(def(m).type)) {
      families.push_back(Merge(m));
      continue;
    }
    FamilySnapshot f;
    f.def = &def(m);
    computed(m, [&f](std::string_view key, double value) {
      f.keys.push_back(key);
      f.words.push_back(std::bit_cast<uint64_t>(value));
    });
    families.push_back(std::move(f));
  }
  return families;
}

void MetricStore::AddSeriesCounts(AddSeries add) const {
  for (size_t m = 0; m < num_metrics(); ++m) {
    if (!IsComputed(def(m).type)) add(def(m).name, static_cast<double>(index(m).live()));
  }
}

FamilySnapshot MetricStore::Merge(size_t m) const {
  FamilySnapshot f;
  f.def = &defs_[m];
  f.width = defs_[m].Width();
  const SeriesIndex& idx = *indexes_[m];
  // Expiry may remove series meanwhile; the keys' bytes outlive it.
  const std::shared_lock<std::shared_mutex> lock = idx.ReadLock();
  f.key_owner = idx.KeyOwner();
  // Series in label order, not in the order workers happened to meet them,
  // so the same input always renders the same text.
  std::vector<uint32_t> order;
  idx.SortedIds(&order);
  const size_t n = order.size();
  f.keys.reserve(n);
  for (uint32_t id : order) f.keys.push_back(idx.Key(id));
  f.words.assign(n * f.width, 0);
  for (int s = 0; s < num_shards_; ++s) {
    const CellArray& c = cells(s, m);
    for (size_t i = 0; i < n; ++i) {
      uint64_t* out = &f.words[i * f.width];
      for (size_t w = 0; w < f.width; ++w) out[w] += c.Load(order[i], w);
    }
  }
  if (defs_[m].type == MetricType::kGauge) {
    // Entries minus exits; an exit merged before its entry must not show as
    // a negative depth.
    for (uint64_t& w : f.words) {
      w = std::bit_cast<uint64_t>(
          static_cast<double>(std::max<int64_t>(0, static_cast<int64_t>(w))));
    }
  }
  return f;
}

size_t MetricStore::MemoryBytes() const {
  size_t bytes = 0;
  for (const auto& idx : indexes_) bytes += idx ? idx->MemoryBytes() : 0;
  for (const auto& c : cells_) bytes += c->MemoryBytes();
  for (size_t i = 0; i < last_ms_.size(); ++i) {
    // calloc'ed: the pages of the ids in use.
    if (last_ms_[i] != nullptr) bytes += indexes_[i % defs_.size()]->size() * sizeof(int64_t);
  }
  for (const WindowRows& rows : window_rows_) bytes += rows.series_capacity * sizeof(uint32_t);
  return bytes;
}

size_t MetricStore::SlotMemoryBytes() const {
  size_t bytes = 0;
  for (const auto& c : slot_cells_) bytes += c ? c->MemoryBytes() : 0;
  return bytes;
}

std::string MetricStore::Fingerprint() const {
  std::string out;
  for (const MetricDef& def : defs_) {
    absl::StrAppend(&out, std::string(def.name), ":", static_cast<int>(def.type), ":", def.sum_unit,
                    "{");
    for (std::string_view l : def.labels) absl::StrAppend(&out, std::string(l), ",");
    out += "}[";
    for (double b : def.buckets) {
      char buf[32];
      out.append(buf, std::to_chars(buf, buf + sizeof(buf), b).ptr);
      out += ',';
    }
    out += "]\n";
  }
  return out;
}

void MetricStore::SaveCumulative(StateWriter* w) const {
  for (size_t m = 0; m < defs_.size(); ++m) {
    if (IsComputed(defs_[m].type)) continue;
    const SeriesIndex& idx = *indexes_[m];
    const size_t n = idx.size();
    const size_t width = defs_[m].Width();
    w->U64(n);
    for (uint32_t id = 0; id < n; ++id) {
      if (idx.IsFree(id)) {
        // A free id keeps its place, so that the ids the window state is
        // saved by stay the same when loaded.
        w->Str(kFreeSeriesKey);
        for (size_t word = 0; word < width; ++word) w->U64(0);
        continue;
      }
      w->Str(idx.Key(id));
      for (size_t word = 0; word < width; ++word) {
        uint64_t sum = 0;
        for (int s = 0; s < num_shards_; ++s) sum += cells(s, m).Load(id, word);
        w->U64(sum);
      }
    }
  }
}

absl::Status MetricStore::LoadFamily(StateReader* r, size_t m, bool* same_ids) {
  SeriesIndex& idx = *indexes_[m];
  const size_t width = defs_[m].Width();
  size_t n = 0;
  if (!r->Count(&n, 1 + width)) return r->Error(defs_[m].name);
  // Free ids keep their places when every saved id fits below the limit;
  // otherwise (a smaller series limit) they are left out, so that they do
  // not take the places of series, and the ids move.
  const bool keep_free = n <= idx.limit();
  for (size_t i = 0; i < n; ++i) {
    std::string_view key;
    if (!r->View(&key)) return r->Error(defs_[m].name);
    bool overflowed = false;
    // A smaller series limit than the saved one folds the excess into the
    // overflow series, as it would have folded the events.
    if (key == kFreeSeriesKey) {
      if (!keep_free || idx.AddFree() != i) *same_ids = false;
      for (size_t word = 0; word < width; ++word) {
        uint64_t v = 0;
        if (!r->U64(&v)) return r->Error(defs_[m].name);
      }
      continue;
    }
    const uint32_t id =
        key == idx.overflow_key() ? idx.ResolveOverflow() : idx.Restore(key, &overflowed);
    if (id != i) *same_ids = false;
    for (size_t word = 0; word < width; ++word) {
      uint64_t v = 0;
      if (!r->U64(&v)) return r->Error(defs_[m].name);
      if (v != 0) cells(0, m).Add(id, word, v);
    }
  }
  return absl::OkStatus();
}

absl::Status MetricStore::LoadCumulative(StateReader* r, bool* same_ids) {
  *same_ids = true;
  for (size_t m = 0; m < defs_.size(); ++m) {
    if (IsComputed(defs_[m].type)) continue;
    if (absl::Status s = LoadFamily(r, m, same_ids); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<MetricStore::SavedFamilies> MetricStore::MatchSavedFamilies(
    std::string_view fingerprint) const {
  // The lines of a fingerprint, one a family.
  auto lines_of = [](std::string_view text) {
    std::vector<std::string_view> lines;
    while (!text.empty()) {
      const size_t nl = text.find('\n');
      if (nl != 0) lines.push_back(text.substr(0, nl));
      if (nl == std::string_view::npos) break;
      text.remove_prefix(nl + 1);
    }
    return lines;
  };
  const std::string mine = Fingerprint();
  const std::vector<std::string_view> lines = lines_of(mine);
  std::vector<bool> matched(defs_.size(), false);
  SavedFamilies saved;
  for (std::string_view line : lines_of(fingerprint)) {
    // name:type:sum_unit{labels,}[buckets,]; a name may hold ':', not '{'.
    const size_t brace = line.find('{');
    const size_t bracket = line.rfind('[');
    const std::string_view head = line.substr(0, brace);
    const size_t unit = head.rfind(':');
    const size_t type_at = unit == std::string_view::npos || unit == 0 ? std::string_view::npos
                                                                       : head.rfind(':', unit - 1);
    int type = -1;
    if (type_at != std::string_view::npos) {
      const char* end = head.data() + unit;
      if (std::from_chars(head.data() + type_at + 1, end, type).ptr != end) type = -1;
    }
    if (brace == std::string_view::npos || bracket == std::string_view::npos || bracket < brace ||
        type < 0 || type > static_cast<int>(MetricType::kComputedCounter)) {
      return absl::InvalidArgumentError("not a metric set's fingerprint");
    }
    const std::string_view buckets = line.substr(bracket);
    const auto kind = static_cast<MetricType>(type);
    saved.width.push_back(
        kind == MetricType::kHistogram
            ? static_cast<size_t>(std::count(buckets.begin(), buckets.end(), ',')) + 2
            : 1);
    saved.computed.push_back(IsComputed(kind) ? 1 : 0);
    int to = -1;
    for (size_t m = 0; m < lines.size(); ++m) {
      if (lines[m] == line && !matched[m]) {
        to = static_cast<int>(m);
        matched[m] = true;
        break;
      }
    }
    saved.to.push_back(to);
  }
  for (size_t m = 0; m < defs_.size(); ++m) {
    if (!matched[m] && !IsComputed(defs_[m].type)) saved.fresh.emplace_back(defs_[m].name);
  }
  return saved;
}

absl::Status MetricStore::LoadCumulative(StateReader* r, const SavedFamilies& saved) {
  bool same_ids = true;
  for (size_t f = 0; f < saved.to.size(); ++f) {
    if (saved.computed[f]) continue;
    if (saved.to[f] >= 0) {
      if (absl::Status s = LoadFamily(r, static_cast<size_t>(saved.to[f]), &same_ids); !s.ok()) {
        return s;
      }
      continue;
    }
    size_t n = 0;
    if (!r->Count(&n, 1 + saved.width[f])) return r->Error("metrics");
    for (size_t i = 0; i < n; ++i) {
      std::string_view key;
      if (!r->View(&key)) return r->Error("metrics");
      for (size_t word = 0; word < saved.width[f]; ++word) {
        uint64_t v = 0;
        if (!r->U64(&v)) return r->Error("metrics");
      }
    }
  }
  return absl::OkStatus();
}

void MetricStore::SaveEventTimes(StateWriter* w) const {
  for (size_t m = 0; m < defs_.size(); ++m) {
    if (IsComputed(defs_[m].type)) continue;
    std::vector<std::pair<uint32_t, int64_t>> times;
    if (last_event_map(0, m) != nullptr) {
      const SeriesIndex& idx = *indexes_[m];
      for (uint32_t id = 0; id < idx.size(); ++id) {
        const int64_t t = LastEventMs(m, id);
        if (t != 0 && !idx.IsFree(id)) times.emplace_back(id, t);
      }
    }
    w->U64(times.size());
    for (const auto& [id, t] : times) {
      w->U64(id);
      w->I64(t);
    }
  }
}

absl::Status MetricStore::LoadEventTimes(StateReader* r, bool apply) {
  for (size_t m = 0; m < defs_.size(); ++m) {
    if (IsComputed(defs_[m].type)) continue;
    size_t n = 0;
    if (!r->Count(&n, 2)) return r->Error("event times");
    int64_t* last = last_event_map(0, m);
    const size_t size = indexes_[m]->size();
    for (size_t i = 0; i < n; ++i) {
      uint32_t id = 0;
      int64_t t = 0;
      if (!r->U32(&id) || !r->TimeMs(&t)) return r->Error("event times");
      if (!apply || last == nullptr) continue;
      if (id >= size) return r->Error("event times");
      last[id] = t;
    }
  }
  return absl::OkStatus();
}

void MetricStore::StampUntimed(int64_t ms) {
  if (ms <= 0) return;
  for (size_t m = 0; m < defs_.size(); ++m) {
    int64_t* last = IsComputed(defs_[m].type) ? nullptr : last_event_map(0, m);
    if (last == nullptr) continue;
    const SeriesIndex& idx = *indexes_[m];
    const uint32_t overflow = idx.overflow_id();
    for (uint32_t id = 0; id < idx.size(); ++id) {
      if (!idx.IsFree(id) && id != overflow && LastEventMs(m, id) == 0) last[id] = ms;
    }
  }
}

void MetricStore::SaveWindows(StateWriter* w) const {
  for (size_t m : window_spec_->families) {
    if (IsComputed(defs_[m].type)) continue;
    const size_t words = defs_[m].Width() * window_spec_->ring_slots;
    const size_t n = window_rows(m);
    std::vector<SpilledUpdate> nonzero;
    for (uint32_t id = 0; id < n; ++id) {
      for (size_t word = 0; word < words; ++word) {
        uint64_t sum = 0;
        for (int s = 0; s < num_shards_; ++s) sum += slot_cells(s, m)->Load(id, word);
        if (sum != 0)
          nonzero.push_back({static_cast<uint32_t>(m), id, static_cast<uint32_t>(word), sum});
      }
    }
    w->U64(nonzero.size());
    for (const SpilledUpdate& u : nonzero) {
      w->U64(u.series);
      w->U64(u.word);
      w->U64(u.delta);
    }
  }
  std::map<int64_t, std::vector<SpilledUpdate>> spilled;
  for (const auto& buffer : spills_) {
    std::lock_guard<std::mutex> lock(buffer->mu);
    for (const auto& [slot, updates] : buffer->by_slot) {
      std::vector<SpilledUpdate>& to = spilled[slot];
      to.insert(to.end(), updates.begin(), updates.end());
    }
  }
  w->U64(spilled.size());
  for (const auto& [slot, updates] : spilled) {
    w->I64(slot);
    w->U64(updates.size());
    for (const SpilledUpdate& u : updates) {
      w->U64(u.metric);
      w->U64(u.series);
      w->U64(u.word);
      w->U64(u.delta);
    }
  }
}

absl::Status MetricStore::LoadWindows(StateReader* r) {
  for (size_t m : window_spec_->families) {
    if (IsComputed(defs_[m].type)) continue;
    const size_t words = defs_[m].Width() * window_spec_->ring_slots;
    const size_t n = window_rows(m);
    size_t count = 0;
    if (!r->Count(&count, 3)) return r->Error("windows");
    for (size_t i = 0; i < count; ++i) {
      uint32_t id = 0;
      uint32_t word = 0;
      uint64_t v = 0;
      if (!r->U32(&id) || !r->U32(&word) || !r->U64(&v) || id >= n || word >= words) {
        return r->Error("windows");
      }
      slot_cells(0, m)->Add(id, word, v);
    }
  }
  size_t slots = 0;
  if (!r->Count(&slots, 2)) return r->Error("spill");
  SpillBuffer& to = *spills_[0];
  std::lock_guard<std::mutex> lock(to.mu);
  for (size_t i = 0; i < slots; ++i) {
    int64_t slot = 0;
    size_t count = 0;
    if (!r->I64(&slot) || !r->Count(&count, 4) || slot < -kMaxStateTimeMs / window_spec_->slot_ms ||
        slot > kMaxStateTimeMs / window_spec_->slot_ms) {
      return r->Error("spill");
    }
    std::vector<SpilledUpdate>& updates = to.by_slot[slot];
    for (size_t j = 0; j < count; ++j) {
      SpilledUpdate u{};
      if (!r->U32(&u.metric) || !r->U32(&u.series) || !r->U32(&u.word) || !r->U64(&u.delta) ||
          u.metric >= defs_.size() || slot_cells_[u.metric] == nullptr ||
          u.series >= indexes_[u.metric]->size() || u.word >= defs_[u.metric].Width()) {
        return r->Error("spill");
      }
      updates.push_back(u);
    }
    spilled_updates_.fetch_add(count, std::memory_order_relaxed);
  }
  return absl::OkStatus();
}

void MetricStore::EnableWindows(const WindowSpec& spec) {
  // Chunks of slot cells of about this size: a ring row of a histogram is
  // tens of KiB, so 256 rows a chunk would hand the budget out in lumps of
  // megabytes.
  constexpr size_t kSlotChunkBytes = 16 << 10;
  window_spec_ = std::make_unique<WindowSpec>(spec);
  slot_cells_.resize(static_cast<size_t>(num_shards_) * defs_.size());
  window_rows_.resize(defs_.size());
  for (size_t m : spec.families) {
    if (IsComputed(defs_[m].type)) continue;
    const size_t row_bytes = defs_[m].Width() * spec.ring_slots * sizeof(uint64_t);
    const size_t chunk_rows =
        std::clamp<size_t>(std::bit_floor(kSlotChunkBytes / row_bytes), 1, CellArray::kChunkSeries);
    WindowRows& rows = window_rows_[m];
    rows.series_capacity = indexes_[m]->capacity();
    rows.row_plus_one.reset(
        static_cast<uint32_t*>(std::calloc(rows.series_capacity, sizeof(uint32_t))));
    if (rows.row_plus_one == nullptr) throw std::bad_alloc();
    // A row costs at least its ring in every shard: no budget admits more
    // than this many (row 0 included).
    rows.capacity = rows.series_capacity + 1;
    if (spec.memory_bytes > 0) {
      rows.capacity = std::min(rows.capacity, spec.memory_bytes / (row_bytes * num_shards_) + 1);
    }
    rows.used = 1;  // row 0: the family's __overflow__ series
    for (int s = 0; s < num_shards_; ++s) {
      slot_cells_[s * defs_.size() + m] = std::make_unique<CellArray>(
          defs_[m].Width() * spec.ring_slots, rows.capacity, chunk_rows);
    }
  }
  for (int s = 0; s < num_shards_; ++s) spills_.push_back(std::make_unique<SpillBuffer>());
}

uint32_t MetricStore::AddWindowRow(size_t m) {
  WindowRows& rows = window_rows_[m];
  if (rows.used >= rows.capacity) return kNoWindowRow;
  return static_cast<uint32_t>(rows.used++);
}

ShardWriter::ShardWriter(MetricStore* store, int shard, size_t overflow_metric)
    : store_(store), shard_(shard), overflow_metric_(overflow_metric), expiry_(store->expires()) {
  overflow_series_.assign(store->num_metrics(), UINT32_MAX);
  for (size_t m = 0; m < store->num_metrics(); ++m) {
    last_ms_.push_back(store->last_event_map(shard, m));
    cells_.push_back(&store->cells(shard, m));
    slot_cells_.push_back(store->slot_cells(shard, m));
    window_rows_.push_back(store->window_row_map(m));
    widths_.push_back(store->def(m).Width());
    const std::vector<double>& bounds = store->def(m).buckets;
    std::array<double, kFixedBounds> padded;
    padded.fill(std::numeric_limits<double>::infinity());
    std::copy_n(bounds.begin(), std::min(bounds.size(), kFixedBounds), padded.begin());
    padded_bounds_.push_back(padded);
  }
  if (const WindowSpec* spec = store->window_spec()) {
    slot_ms_ = spec->slot_ms;
    ring_slots_ = static_cast<int64_t>(spec->ring_slots);
  }
}

size_t ShardWriter::CountBelow(const std::vector<double>& bounds, double value) {
  size_t below = 0;
  for (const double bound : bounds) below += bound < value ? 1 : 0;
  return below;
}

bool ShardWriter::SetEventTime(int64_t ts_ms) {
  event_ms_ = ts_ms;
  if (slot_ms_ == 0) {
    slot_mode_ = expiry_ ? SlotMode::kTimed : SlotMode::kNone;
    return true;
  }
  // Event times before 1970 are rejected by the parsers, but the arithmetic
  // stays right for them anyway.
  const int64_t slot = FloorDiv(ts_ms, slot_ms_);
  const int64_t open = store_->open_slot().load(std::memory_order_acquire);
  if ((slot + 1) * slot_ms_ <= watermark_ms_ || slot < open) {
    slot_mode_ = SlotMode::kNone;
    return false;
  }
  slot_ = slot;
  if (slot < open + ring_slots_) {
    // The ring position's previous slot (slot - ring_slots) is closed and
    // was zeroed by the reader before it published `open`.
    slot_mode_ = SlotMode::kRing;
    slot_pos_ = static_cast<size_t>(slot % ring_slots_);
  } else {
    slot_mode_ = SlotMode::kSpill;
  }
  return true;
}

void ShardWriter::TouchExpiring(size_t m, uint32_t series) {
  int64_t* last = last_ms_[m];
  if (last == nullptr) return;
  std::atomic_ref<int64_t> t(last[series]);
  if (event_ms_ > t.load(std::memory_order_relaxed)) t.store(event_ms_, std::memory_order_relaxed);
}

void ShardWriter::Spill(size_t m, uint32_t series, size_t word, uint64_t n) {
  spilled_.push_back({slot_, {static_cast<uint32_t>(m), series, static_cast<uint32_t>(word), n}});
}

void ShardWriter::FlushSpill() {
  if (spilled_.empty()) return;
  SpillBuffer& spill = store_->spill(shard_);
  std::lock_guard<std::mutex> lock(spill.mu);
  // A batch's updates fall in a few slots, mostly in runs: one map lookup
  // per run.
  int64_t last = 0;
  std::vector<SpilledUpdate>* to = nullptr;
  for (const auto& [slot, update] : spilled_) {
    if (to == nullptr || slot != last) {
      to = &spill.by_slot[slot];
      last = slot;
    }
    to->push_back(update);
  }
  store_->spilled_updates().fetch_add(spilled_.size(), std::memory_order_relaxed);
  spilled_.clear();
}

uint32_t ShardWriter::Resolve(size_t m, std::string_view key) {
  bool overflowed = false;
  const uint32_t id = store_->index(m).Resolve(key, &overflowed);
  if (!overflowed || m == overflow_metric_) return id;
  if (overflow_series_[m] == UINT32_MAX) {
    overflow_series_[m] = Resolve(overflow_metric_, store_->def(m).name);
  }
  Inc(overflow_metric_, overflow_series_[m]);
  return id;
}

}  // namespace novapulse
