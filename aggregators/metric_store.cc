#include "aggregators/metric_store.h"

#include <algorithm>

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
    }
  }
}

FamilySnapshot MetricStore::Merge(size_t m) const {
  FamilySnapshot f;
  f.def = &defs_[m];
  f.width = defs_[m].Width();
  const SeriesIndex& idx = *indexes_[m];
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
  return bytes;
}

size_t MetricStore::SlotMemoryBytes() const {
  size_t bytes = 0;
  for (const auto& c : slot_cells_) bytes += c ? c->MemoryBytes() : 0;
  return bytes;
}

void MetricStore::EnableWindows(const WindowSpec& spec) {
  window_spec_ = std::make_unique<WindowSpec>(spec);
  slot_cells_.resize(static_cast<size_t>(num_shards_) * defs_.size());
  for (int s = 0; s < num_shards_; ++s) {
    for (size_t m : spec.families) {
      if (IsComputed(defs_[m].type)) continue;
      slot_cells_[s * defs_.size() + m] =
          std::make_unique<CellArray>(defs_[m].Width() * spec.ring_slots, indexes_[m]->capacity());
    }
    spills_.push_back(std::make_unique<SpillBuffer>());
  }
}

ShardWriter::ShardWriter(MetricStore* store, int shard, size_t overflow_metric)
    : store_(store), shard_(shard), overflow_metric_(overflow_metric) {
  overflow_series_.assign(store->num_metrics(), UINT32_MAX);
  for (size_t m = 0; m < store->num_metrics(); ++m) {
    cells_.push_back(&store->cells(shard, m));
    slot_cells_.push_back(store->slot_cells(shard, m));
    widths_.push_back(store->def(m).Width());
  }
  if (const WindowSpec* spec = store->window_spec()) {
    slot_ms_ = spec->slot_ms;
    ring_slots_ = static_cast<int64_t>(spec->ring_slots);
  }
}

bool ShardWriter::SetEventTime(int64_t ts_ms) {
  if (slot_ms_ == 0) return true;
  // Floor division: event times before 1970 are rejected by the parsers,
  // but the arithmetic stays right for them anyway.
  int64_t slot = ts_ms / slot_ms_;
  if (ts_ms % slot_ms_ < 0) --slot;
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

void ShardWriter::Spill(size_t m, uint32_t series, size_t word, uint64_t n) {
  spilled_.push_back({slot_, {static_cast<uint32_t>(m), series, static_cast<uint32_t>(word), n}});
}

void ShardWriter::FlushSpill() {
  if (spilled_.empty()) return;
  SpillBuffer& spill = store_->spill(shard_);
  std::lock_guard<std::mutex> lock(spill.mu);
  for (const auto& [slot, update] : spilled_) spill.by_slot[slot].push_back(update);
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
