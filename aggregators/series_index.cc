#include "aggregators/series_index.h"

#include <cstring>

#include "aggregators/metric_def.h"

namespace novapulse {

SeriesIndex::SeriesIndex(size_t num_labels, size_t limit)
    : limit_(limit),
      num_chunks_((limit + 1 + kChunk - 1) / kChunk),
      chunks_(new std::atomic<std::string_view*>[num_chunks_]) {
  for (size_t i = 0; i < num_chunks_; ++i) chunks_[i].store(nullptr, std::memory_order_relaxed);
  for (size_t i = 0; i < num_labels; ++i) {
    if (i > 0) overflow_key_.push_back(kLabelSeparator);
    overflow_key_.append(kOverflowLabelValue);
  }
}

SeriesIndex::~SeriesIndex() {
  for (size_t i = 0; i < num_chunks_; ++i) delete[] chunks_[i].load(std::memory_order_relaxed);
}

std::string_view* SeriesIndex::Slot(uint32_t id) const {
  return chunks_[id / kChunk].load(std::memory_order_acquire) + id % kChunk;
}

std::string_view SeriesIndex::Key(uint32_t id) const { return *Slot(id); }

std::string_view SeriesIndex::Store(std::string_view key) {
  if (key.size() > kArenaBlock / 4) {
    // Rare long keys get a block of their own at the front; the current
    // block stays last.
    arena_.insert(arena_.begin(), std::make_unique<char[]>(key.size()));
    char* block = arena_.front().get();
    std::memcpy(block, key.data(), key.size());
    arena_bytes_ += key.size();
    return {block, key.size()};
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

uint32_t SeriesIndex::Publish(std::string_view key) {
  const size_t id = size_.load(std::memory_order_relaxed);
  std::atomic<std::string_view*>& chunk = chunks_[id / kChunk];
  if (chunk.load(std::memory_order_relaxed) == nullptr) {
    chunk.store(new std::string_view[kChunk], std::memory_order_release);
  }
  const std::string_view stored = Store(key);
  chunk.load(std::memory_order_relaxed)[id % kChunk] = stored;
  ids_.emplace(stored, static_cast<uint32_t>(id));
  size_.store(id + 1, std::memory_order_release);
  return static_cast<uint32_t>(id);
}

uint32_t SeriesIndex::Resolve(std::string_view key, bool* overflowed) {
  absl::MutexLock lock(&mu_);
  *overflowed = false;
  if (auto it = ids_.find(key); it != ids_.end()) return it->second;
  if (ids_.size() < limit_) return Publish(key);
  *overflowed = true;
  if (overflow_id_ == UINT32_MAX) {
    // The overflow series is not in ids_: its key must not shadow a real
    // label set of the same values.
    const size_t id = size_.load(std::memory_order_relaxed);
    std::atomic<std::string_view*>& chunk = chunks_[id / kChunk];
    if (chunk.load(std::memory_order_relaxed) == nullptr) {
      chunk.store(new std::string_view[kChunk], std::memory_order_release);
    }
    chunk.load(std::memory_order_relaxed)[id % kChunk] = overflow_key_;
    size_.store(id + 1, std::memory_order_release);
    overflow_id_ = static_cast<uint32_t>(id);
  }
  return overflow_id_;
}

bool SeriesIndex::Find(std::string_view key, uint32_t* id) const {
  absl::MutexLock lock(&mu_);
  auto it = ids_.find(key);
  if (it == ids_.end()) return false;
  *id = it->second;
  return true;
}

size_t SeriesIndex::MemoryBytes() const {
  absl::MutexLock lock(&mu_);
  const size_t n = size_.load(std::memory_order_relaxed);
  return ids_.capacity() * (sizeof(std::string_view) + sizeof(uint32_t) + 1) +
         ((n + kChunk - 1) / kChunk) * kChunk * sizeof(std::string_view) + arena_bytes_ +
         arena_.capacity() * sizeof(void*);
}

}  // namespace novapulse
