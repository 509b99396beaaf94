#include "aggregators/window.h"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace novapulse {
namespace {

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
      ring_slots_(store->window_spec()->ring_slots) {
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
    const std::string name(f.def->name);
    if (f.def->type == MetricType::kHistogram) {
      if (w.buckets) out_->SetRetention(name + "_bucket", keep);
      if (w.sum) out_->SetRetention(name + "_sum", keep);
      if (w.count) out_->SetRetention(name + "_count", keep);
    } else {
      out_->SetRetention(name, keep);
    }
    families_.push_back(std::move(f));
  }
}

void WindowHistory::Start(int64_t first_slot) {
  open_slot_ = first_slot;
  store_->open_slot().store(first_slot, std::memory_order_release);
}

void WindowHistory::AddSeries(Family& f, uint32_t id) {
  const std::vector<std::string_view> values = SplitKey(store_->index(f.wanted.metric).Key(id));
  promql::Labels base;
  for (size_t i = 0; i < f.def->labels.size() && i < values.size(); ++i) {
    base.push_back({std::string(f.def->labels[i]), std::string(values[i])});
  }
  size_t part = id * f.parts;
  const std::string name(f.def->name);
  auto add = [&](std::string_view suffix, const promql::Label* extra) {
    promql::Labels labels = base;
    if (extra != nullptr) labels.push_back(*extra);
    if (sink_ != nullptr) {
      std::vector<std::pair<std::string, std::string>> plain;
      for (const promql::Label& l : labels) plain.emplace_back(l.name, l.value);
      f.sink_refs[part] = sink_->AddSeries(*f.def, suffix, std::move(plain));
    }
    labels.push_back({"__name__", name + std::string(suffix)});
    std::sort(labels.begin(), labels.end());
    f.refs[part++] = out_->Ref(labels);
  };
  if (f.def->type != MetricType::kHistogram) {
    add("", nullptr);
    ++series_;
    return;
  }
  if (f.wanted.buckets) {
    for (size_t b = 0; b <= f.def->buckets.size(); ++b) {
      const promql::Label le{"le",
                             b < f.def->buckets.size() ? FormatLe(f.def->buckets[b]) : "+Inf"};
      add("_bucket", &le);
    }
  }
  if (f.wanted.sum) add("_sum", nullptr);
  if (f.wanted.count) add("_count", nullptr);
  series_ += f.parts;
}

void WindowHistory::CloseSlot() {
  const int64_t slot = open_slot_;
  const size_t pos = static_cast<size_t>(slot % static_cast<int64_t>(ring_slots_));
  std::vector<SpilledUpdate> spilled;
  for (int s = 0; s < store_->num_shards(); ++s) {
    SpillBuffer& buffer = store_->spill(s);
    std::lock_guard<std::mutex> lock(buffer.mu);
    auto due = buffer.by_slot.find(slot);
    if (due == buffer.by_slot.end()) continue;
    spilled.insert(spilled.end(), due->second.begin(), due->second.end());
    buffer.by_slot.erase(due);
  }
  for (Family& f : families_) Fold(f, f.wanted.metric, pos, slot, spilled);
  ++open_slot_;
  store_->open_slot().store(open_slot_, std::memory_order_release);
  if (++closes_ % 16 == 0) out_->Trim(open_slot_ * slot_ms_);
}

void WindowHistory::Fold(Family& f, size_t m, size_t pos, int64_t slot,
                         const std::vector<SpilledUpdate>& spilled) {
  const size_t n = store_->index(m).size();
  if (f.known < n) {
    f.cumulative.resize(n * f.width, 0);
    f.started.resize(n, 0);
    f.spill_touched.resize(n, 0);
    f.refs.resize(n * f.parts, 0);
    if (sink_ != nullptr) f.sink_refs.resize(n * f.parts, 0);
    f.known = n;
  }
  const size_t width = f.width;
  const size_t base = pos * width;
  delta_.assign(width, 0);
  const int64_t t_ms = (slot + 1) * slot_ms_;
  const bool to_sink = sink_ != nullptr && t_ms % sink_step_ms_ == 0;
  for (const SpilledUpdate& u : spilled) {
    if (u.metric != m || u.series >= n) continue;
    f.cumulative[u.series * width + u.word] += u.delta;
    f.spill_touched[u.series] = 1;
  }
  for (uint32_t id = 0; id < n; ++id) {
    bool any = false;
    for (int s = 0; s < store_->num_shards(); ++s) {
      CellArray* cells = store_->slot_cells(s, m);
      for (size_t w = 0; w < width; ++w) {
        const uint64_t v = cells->Load(id, base + w);
        if (v == 0) continue;
        delta_[w] += v;
        cells->ResetIfAllocated(id, base + w);
        any = true;
      }
    }
    if (f.spill_touched[id]) {
      f.spill_touched[id] = 0;
      any = true;
    }
    uint64_t* cum = &f.cumulative[id * width];
    if (any) {
      for (size_t w = 0; w < width; ++w) {
        cum[w] += delta_[w];
        delta_[w] = 0;
      }
      if (!f.started[id]) {
        // Named and emitted after the loop, in label order (see below).
        f.started[id] = 1;
        fresh_.push_back(id);
        continue;
      }
    }
    if (f.started[id]) Emit(f, id, t_ms, to_sink);
  }
  // Series that start in this slot get their sample streams in label order,
  // not id order: ids follow which worker met a series first, and the order
  // of the streams decides the order of sums and of the backfill file.
  const SeriesIndex& index = store_->index(m);
  std::sort(fresh_.begin(), fresh_.end(),
            [&index](uint32_t a, uint32_t b) { return index.Key(a) < index.Key(b); });
  for (uint32_t id : fresh_) {
    AddSeries(f, id);
    Emit(f, id, t_ms, to_sink);
  }
  fresh_.clear();
}

void WindowHistory::Emit(Family& f, uint32_t id, int64_t t_ms, bool to_sink) {
  const size_t width = f.width;
  const uint64_t* cum = &f.cumulative[id * width];
  const uint32_t* refs = &f.refs[id * f.parts];
  const uint32_t* sink_refs = to_sink ? &f.sink_refs[id * f.parts] : nullptr;
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

void WindowHistory::SaveState(StateWriter* w) const {
  w->I64(open_slot_);
  w->U64(series_);
  w->U64(closes_);
  for (const Family& f : families_) {
    w->U64(f.known);
    for (size_t i = 0; i < f.known * f.width; ++i) w->U64(f.cumulative[i]);
    for (size_t i = 0; i < f.known; ++i) w->Bool(f.started[i] != 0);
    for (size_t i = 0; i < f.known * f.parts; ++i) w->U64(f.refs[i]);
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
    size_t known = 0;
    if (!r->Count(&known, f.width + 1 + f.parts) || known > store_->index(f.wanted.metric).size()) {
      return r->Error("window history");
    }
    f.known = known;
    f.cumulative.assign(known * f.width, 0);
    f.started.assign(known, 0);
    f.spill_touched.assign(known, 0);
    f.refs.assign(known * f.parts, 0);
    for (uint64_t& v : f.cumulative) {
      if (!r->U64(&v)) return r->Error("window history");
    }
    for (uint8_t& started : f.started) {
      bool b = false;
      if (!r->Bool(&b)) return r->Error("window history");
      started = b ? 1 : 0;
    }
    for (size_t i = 0; i < f.refs.size(); ++i) {
      // Refs are made when a series starts; the others stay 0.
      if (!r->U32(&f.refs[i]) || (f.started[i / f.parts] && f.refs[i] >= out_->size())) {
        return r->Error("window history");
      }
    }
  }
  store_->open_slot().store(open_slot_, std::memory_order_release);
  return absl::OkStatus();
}

size_t WindowHistory::MemoryBytes() const {
  size_t bytes = store_->SlotMemoryBytes() + out_->MemoryBytes();
  for (const Family& f : families_) {
    bytes += f.cumulative.capacity() * sizeof(uint64_t) + f.started.capacity() +
             f.refs.capacity() * sizeof(uint32_t);
  }
  return bytes;
}

}  // namespace novapulse
