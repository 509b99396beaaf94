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
      chunks_(new std::atomic<std::string_view*>[num_chunks_]) {
  if (table_ == nullptr) throw std::bad_alloc();
  for (size_t i = 0; i < num_chunks_; ++i) chunks_[i].store(nullptr, std::memory_order_relaxed);
  for (size_t i = 0; i < num_labels; ++i) {
    if (i > 0) overflow_key_.push_back(kLabelSeparator);
    overflow_key_.append(kOverflowLabelValue);
  }
}

SeriesIndex::~SeriesIndex() {
  std::free(table_);
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
  if (key.size() > kArenaBlock / 4) {
    // A rare long key gets a block of its own at the front; the current
    // block stays last.
    arena_.insert(arena_.begin(), std::make_unique<char[]>(key.size()));
    std::memcpy(arena_.front().get(), key.data(), key.size());
    arena_bytes_ += key.size();
    return {arena_.front().get(), key.size()};
  }
  if (arena_used_ + key.size() > kArenaBlock) {
    arena_.push_back(std::make_unique<char[]>(kArenaBlock));
    arena_used_ = 0;
    arena_bytes_ += kArenaBlock;
  }
  char* at = arena_.back().get() + arena_used_;
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

void SeriesIndex::Publish(uint32_t id) { size_.store(id + 1, std::memory_order_release); }

uint32_t SeriesIndex::Resolve(std::string_view key, bool* overflowed) {
  *overflowed = false;
  const uint64_t hash = HashKey(key);
  uint32_t id;
  if (Lookup(key, hash, &id)) return id;
  std::lock_guard<std::mutex> lock(mu_);
  if (Lookup(key, hash, &id)) return id;  // inserted by another thread meanwhile
  if (size_.load(std::memory_order_relaxed) < limit_) {
    id = Append(Store(key));
    size_t i = hash & mask_;
    while (std::atomic_ref<uint64_t>(table_[i]).load(std::memory_order_relaxed) != 0) {
      i = (i + 1) & mask_;
    }
    // The slot before the size: an id a reader sees in size() is findable.
    std::atomic_ref<uint64_t>(table_[i]).store(SlotValue(hash, id), std::memory_order_release);
    Publish(id);
    return id;
  }
  // Full. The overflow series is not in the table: its key must not shadow
  // a real label set with the same values.
  *overflowed = true;
  if (overflow_id_ == UINT32_MAX) {
    overflow_id_ = Append(overflow_key_);
    Publish(overflow_id_);
  }
  return overflow_id_;
}

uint32_t SeriesIndex::ResolveOverflow() {
  std::lock_guard<std::mutex> lock(mu_);
  if (overflow_id_ == UINT32_MAX) {
    overflow_id_ = Append(overflow_key_);
    Publish(overflow_id_);
  }
  return overflow_id_;
}

void SeriesIndex::SortedIds(std::vector<uint32_t>* ids) const {
  std::lock_guard<std::mutex> lock(sorted_mu_);
  // Ids only grow, and Key(id) of a published id never changes: the cached
  // order stays valid, and only the ids published since need placing.
  const size_t n = size();
  const size_t old = sorted_.size();
  if (n > old) {
    auto by_key = [this](uint32_t a, uint32_t b) { return Key(a) < Key(b); };
    sorted_.reserve(n);
    for (size_t id = old; id < n; ++id) sorted_.push_back(static_cast<uint32_t>(id));
    const auto middle = sorted_.begin() + static_cast<std::ptrdiff_t>(old);
    std::sort(middle, sorted_.end(), by_key);
    std::inplace_merge(sorted_.begin(), middle, sorted_.end(), by_key);
  }
  *ids = sorted_;
}

size_t SeriesIndex::MemoryBytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  const size_t n = size_.load(std::memory_order_relaxed);
  // Table pages are touched as keys land on them: at most one page per key.
  const size_t table_bytes = std::min((mask_ + 1) * sizeof(uint64_t), n * 4096);
  return table_bytes + ((n + kChunk - 1) / kChunk) * kChunk * sizeof(std::string_view) +
         arena_bytes_ + arena_.capacity() * sizeof(void*);
}

}  // namespace novapulse
