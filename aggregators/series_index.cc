#include "aggregators/series_index.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdlib>
#include <cstring>
#include <new>

#include "absl/hash/hash.h"
#include "aggregators/metric_def.h"

namespace novapulse {
namespace {

uint64_t HashKey(std::string_view key) { return absl::Hash<std::string_view>{}(key); }

uint64_t SlotValue(uint64_t hash, uint32_t id) { return (hash & ~0xffffffffULL) | (id + 1ULL); }

}  // namespace

SeriesIndex::SeriesIndex(size_t num_labels, size_t limit)
    : limit_(limit),
      num_chunks_((limit + 1 + kChunk - 1) / kChunk),
      mask_(std::bit_ceil(std::max<size_t>(64, 2 * (limit + 1))) - 1),
      table_(static_cast<uint64_t*>(std::calloc(mask_ + 1, sizeof(uint64_t)))),
      arena_(std::make_shared<Arena>()),
      free_(static_cast<uint8_t*>(std::calloc(limit + 1, 1))),
      chunks_(new std::atomic<std::string_view*>[num_chunks_]) {
  if (table_ == nullptr || free_ == nullptr) throw std::bad_alloc();
  for (size_t i = 0; i < num_chunks_; ++i) chunks_[i].store(nullptr, std::memory_order_relaxed);
  for (size_t i = 0; i < num_labels; ++i) {
    if (i > 0) overflow_key_.push_back(kLabelSeparator);
    overflow_key_.append(kOverflowLabelValue);
  }
}

SeriesIndex::~SeriesIndex() {
  std::free(table_);
  std::free(free_);
  for (size_t i = 0; i < num_chunks_; ++i) delete[] chunks_[i].load(std::memory_order_relaxed);
}

std::string_view SeriesIndex::Key(uint32_t id) const {
  return chunks_[id / kChunk].load(std::memory_order_acquire)[id % kChunk];
}

bool SeriesIndex::Lookup(std::string_view key, uint64_t hash, uint32_t* id) const {
  const uint64_t tag = hash & ~0xffffffffULL;
  for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
    const uint64_t slot = std::atomic_ref<uint64_t>(table_[i]).load(std::memory_order_acquire);
    if (slot == 0) return false;
    if ((slot & ~0xffffffffULL) == tag) {
      const uint32_t candidate = static_cast<uint32_t>(slot) - 1;
      if (Key(candidate) == key) {
        *id = candidate;
        return true;
      }
    }
  }
}

bool SeriesIndex::Find(std::string_view key, uint32_t* id) const {
  return Lookup(key, HashKey(key), id);
}

std::string_view SeriesIndex::Store(std::string_view key) {
  if (key.empty()) return {};  // a family without labels: nothing to keep
  live_key_bytes_ += key.size();
  std::vector<std::unique_ptr<char[]>>& blocks = arena_->blocks;
  if (key.size() > kArenaBlock / 4) {
    // A rare long key gets a block of its own at the front; the current
    // block stays last.
    blocks.insert(blocks.begin(), std::make_unique<char[]>(key.size()));
    std::memcpy(blocks.front().get(), key.data(), key.size());
    arena_bytes_ += key.size();
    return {blocks.front().get(), key.size()};
  }
  if (arena_used_ + key.size() > kArenaBlock) {
    blocks.push_back(std::make_unique<char[]>(kArenaBlock));
    arena_used_ = 0;
    arena_bytes_ += kArenaBlock;
  }
  char* at = blocks.back().get() + arena_used_;
  std::memcpy(at, key.data(), key.size());
  arena_used_ += key.size();
  return {at, key.size()};
}

uint32_t SeriesIndex::Append(std::string_view stored) {
  const size_t id = size_.load(std::memory_order_relaxed);
  std::atomic<std::string_view*>& chunk = chunks_[id / kChunk];
  if (chunk.load(std::memory_order_relaxed) == nullptr) {
    chunk.store(new std::string_view[kChunk], std::memory_order_release);
  }
  chunk.load(std::memory_order_relaxed)[id % kChunk] = stored;
  return static_cast<uint32_t>(id);
}

uint32_t SeriesIndex::NewId(std::string_view stored, bool reuse) {
  if (!reuse || free_ids_.empty()) return Append(stored);
  const uint32_t id = free_ids_.back();
  free_ids_.pop_back();
  chunks_[id / kChunk].load(std::memory_order_relaxed)[id % kChunk] = stored;
  return id;
}

void SeriesIndex::Publish(uint32_t id) {
  if (id < size_.load(std::memory_order_relaxed)) {
    // A reused id: readers see it live, and SortedIds() places it.
    std::atomic_ref<uint8_t>(free_[id]).store(0, std::memory_order_release);
    free_count_.fetch_sub(1, std::memory_order_release);
    reused_.push_back(id);
    return;
  }
  size_.store(id + 1, std::memory_order_release);
}

void SeriesIndex::Link(uint32_t id, uint64_t hash) {
  size_t i = hash & mask_;
  while (std::atomic_ref<uint64_t>(table_[i]).load(std::memory_order_relaxed) != 0) {
    i = (i + 1) & mask_;
  }
  // The slot before the size: an id a reader sees in size() is findable.
  std::atomic_ref<uint64_t>(table_[i]).store(SlotValue(hash, id), std::memory_order_release);
}

uint32_t SeriesIndex::Resolve(std::string_view key, bool* overflowed) {
  return Insert(key, overflowed, /*reuse=*/true);
}

uint32_t SeriesIndex::Restore(std::string_view key, bool* overflowed) {
  return Insert(key, overflowed, /*reuse=*/false);
}

uint32_t SeriesIndex::Insert(std::string_view key, bool* overflowed, bool reuse) {
  *overflowed = false;
  const uint64_t hash = HashKey(key);
  uint32_t id;
  if (Lookup(key, hash, &id)) return id;
  std::lock_guard<std::mutex> lock(mu_);
  if (Lookup(key, hash, &id)) return id;  // inserted by another thread meanwhile
  const size_t size = size_.load(std::memory_order_relaxed);
  const bool has_overflow = overflow_id_ != UINT32_MAX;
  const size_t keys = size - free_ids_.size() - (has_overflow ? 1 : 0);
  // A new id must leave room for the overflow series' (a restore takes no
  // free id, so free ids do not make room for it).
  const bool room = (reuse && !free_ids_.empty()) || size + (has_overflow ? 0 : 1) < capacity();
  if (keys < limit_ && room) {
    id = NewId(Store(key), reuse);
    Link(id, hash);
    Publish(id);
    return id;
  }
  // Full. The overflow series is not in the table: its key must not shadow
  // a real label set with the same values.
  *overflowed = true;
  if (overflow_id_ == UINT32_MAX) {
    overflow_id_ = NewId(overflow_key_, reuse);
    Publish(overflow_id_);
  }
  return overflow_id_;
}

uint32_t SeriesIndex::ResolveOverflow() {
  std::lock_guard<std::mutex> lock(mu_);
  if (overflow_id_ == UINT32_MAX) {
    overflow_id_ = NewId(overflow_key_, /*reuse=*/false);
    Publish(overflow_id_);
  }
  return overflow_id_;
}

uint32_t SeriesIndex::overflow_id() const {
  std::lock_guard<std::mutex> lock(mu_);
  return overflow_id_;
}

uint32_t SeriesIndex::AddFree() {
  std::lock_guard<std::mutex> lock(mu_);
  // Room for the overflow series' id stays.
  if (size_.load(std::memory_order_relaxed) + (overflow_id_ == UINT32_MAX ? 1 : 0) >= capacity()) {
    return UINT32_MAX;
  }
  const uint32_t id = Append({});
  std::atomic_ref<uint8_t>(free_[id]).store(1, std::memory_order_relaxed);
  free_ids_.push_back(id);
  // The size first: live() = size - free never goes below zero.
  size_.store(id + 1, std::memory_order_release);
  free_count_.fetch_add(1, std::memory_order_release);
  return id;
}

void SeriesIndex::Remove(std::span<const uint32_t> ids) {
  if (ids.empty()) return;
  std::unique_lock<std::shared_mutex> remove(remove_mu_);
  std::lock_guard<std::mutex> sorted(sorted_mu_);
  std::lock_guard<std::mutex> lock(mu_);
  auto slot = [this](size_t i) { return std::atomic_ref<uint64_t>(table_[i]); };
  auto home = [this](uint64_t value) {
    return HashKey(Key(static_cast<uint32_t>(value) - 1)) & mask_;
  };
  size_t removed = 0;
  for (uint32_t id : ids) {
    // Not live, or the overflow series (which stays: writers keep its id).
    if (id >= size_.load(std::memory_order_relaxed) || IsFree(id) || id == overflow_id_) continue;
    // Unlink by backward shift (linear probing without tombstones): each
    // later slot of the probe run whose home is not between the hole and
    // itself moves into the hole.
    size_t i = HashKey(Key(id)) & mask_;
    for (uint64_t value; (value = slot(i).load(std::memory_order_relaxed)) != 0 &&
                         static_cast<uint32_t>(value) != id + 1;) {
      i = (i + 1) & mask_;
    }
    // (An empty slot here: the key is not in the table; nothing to unlink.)
    for (size_t j = i; slot(i).load(std::memory_order_relaxed) != 0;) {
      j = (j + 1) & mask_;
      const uint64_t value = slot(j).load(std::memory_order_relaxed);
      if (value == 0) break;
      const size_t h = home(value);
      const bool stays = i <= j ? (i < h && h <= j) : (i < h || h <= j);
      if (stays) continue;
      slot(i).store(value, std::memory_order_relaxed);
      i = j;
    }
    slot(i).store(0, std::memory_order_relaxed);
    live_key_bytes_ -= Key(id).size();
    chunks_[id / kChunk].load(std::memory_order_relaxed)[id % kChunk] = {};
    std::atomic_ref<uint8_t>(free_[id]).store(1, std::memory_order_relaxed);
    free_ids_.push_back(id);
    ++removed;
  }
  free_count_.fetch_add(removed, std::memory_order_release);
  std::erase_if(sorted_, [this](uint32_t id) { return IsFree(id); });
  std::erase_if(reused_, [this](uint32_t id) { return IsFree(id); });
  if (arena_bytes_ > kArenaBlock && live_key_bytes_ < arena_bytes_ / 2) Compact();
}

void SeriesIndex::Compact() {
  const std::shared_ptr<Arena> old = std::move(arena_);  // alive until the copies are done
  arena_ = std::make_shared<Arena>();
  arena_used_ = kArenaBlock;
  arena_bytes_ = 0;
  live_key_bytes_ = 0;
  const size_t n = size_.load(std::memory_order_relaxed);
  for (uint32_t id = 0; id < n; ++id) {
    if (IsFree(id) || id == overflow_id_) continue;
    std::string_view& view = chunks_[id / kChunk].load(std::memory_order_relaxed)[id % kChunk];
    view = Store(view);
  }
}

std::shared_ptr<const void> SeriesIndex::KeyOwner() const {
  std::lock_guard<std::mutex> lock(mu_);
  return arena_;
}

void SeriesIndex::SortedIds(std::vector<uint32_t>* ids) const {
  std::lock_guard<std::mutex> lock(sorted_mu_);
  // Key(id) of a live id never changes while this lock is held (Remove
  // takes it too): the cached order stays valid, and only the ids published
  // or reused since need placing.
  const size_t n = size();
  std::vector<uint32_t> fresh;
  for (size_t id = sorted_end_; id < n; ++id) {
    if (!IsFree(static_cast<uint32_t>(id))) fresh.push_back(static_cast<uint32_t>(id));
  }
  {
    std::lock_guard<std::mutex> index_lock(mu_);
    // An id at or past n is placed by the next call, as published.
    for (uint32_t id : reused_) {
      if (id < n) fresh.push_back(id);
    }
    reused_.clear();
  }
  if (!fresh.empty()) {
    std::sort(fresh.begin(), fresh.end());
    fresh.erase(std::unique(fresh.begin(), fresh.end()), fresh.end());
    auto by_key = [this](uint32_t a, uint32_t b) { return Key(a) < Key(b); };
    const size_t old = sorted_.size();
    sorted_.insert(sorted_.end(), fresh.begin(), fresh.end());
    const auto middle = sorted_.begin() + static_cast<std::ptrdiff_t>(old);
    std::sort(middle, sorted_.end(), by_key);
    std::inplace_merge(sorted_.begin(), middle, sorted_.end(), by_key);
  }
  sorted_end_ = n;
  *ids = sorted_;
}

size_t SeriesIndex::MemoryBytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  const size_t n = size_.load(std::memory_order_relaxed);
  // Table pages are touched as keys land on them: at most one page per key.
  const size_t table_bytes = std::min((mask_ + 1) * sizeof(uint64_t), n * 4096);
  return table_bytes + ((n + kChunk - 1) / kChunk) * kChunk * sizeof(std::string_view) + n +
         arena_bytes_ + arena_->blocks.capacity() * sizeof(void*) +
         free_ids_.capacity() * sizeof(uint32_t);
}

}  // namespace novapulse
