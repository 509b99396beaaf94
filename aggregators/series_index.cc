#include "aggregators/series_index.h"

#include "aggregators/metric_def.h"

namespace novapulse {

SeriesIndex::SeriesIndex(size_t num_labels, size_t limit)
    : limit_(limit), chunks_(new std::atomic<std::string*>[(limit + 1 + kChunk - 1) / kChunk]) {
  for (size_t i = 0; i < (limit_ + 1 + kChunk - 1) / kChunk; ++i) chunks_[i].store(nullptr);
  for (size_t i = 0; i < num_labels; ++i) {
    if (i > 0) overflow_key_.push_back(kLabelSeparator);
    overflow_key_.append(kOverflowLabelValue);
  }
}

SeriesIndex::~SeriesIndex() {
  for (size_t i = 0; i < (limit_ + 1 + kChunk - 1) / kChunk; ++i) {
    delete[] chunks_[i].load(std::memory_order_relaxed);
  }
}

std::string* SeriesIndex::Slot(uint32_t id) const {
  return chunks_[id / kChunk].load(std::memory_order_acquire) + id % kChunk;
}

std::string_view SeriesIndex::Key(uint32_t id) const { return *Slot(id); }

uint32_t SeriesIndex::Publish(std::string_view key) {
  const size_t id = size_.load(std::memory_order_relaxed);
  std::atomic<std::string*>& chunk = chunks_[id / kChunk];
  if (chunk.load(std::memory_order_relaxed) == nullptr) {
    chunk.store(new std::string[kChunk], std::memory_order_release);
  }
  chunk.load(std::memory_order_relaxed)[id % kChunk].assign(key);
  size_.store(id + 1, std::memory_order_release);
  return static_cast<uint32_t>(id);
}

uint32_t SeriesIndex::Resolve(std::string_view key, bool* overflowed) {
  absl::MutexLock lock(&mu_);
  *overflowed = false;
  if (auto it = ids_.find(key); it != ids_.end()) return it->second;
  if (ids_.size() < limit_) {
    const uint32_t id = Publish(key);
    ids_.emplace(std::string(key), id);
    return id;
  }
  *overflowed = true;
  if (overflow_id_ == UINT32_MAX) overflow_id_ = Publish(overflow_key_);
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
  size_t bytes = ids_.capacity() * (sizeof(std::string) + sizeof(uint32_t) + 1);
  const size_t n = size_.load(std::memory_order_relaxed);
  bytes += ((n + kChunk - 1) / kChunk) * kChunk * sizeof(std::string);
  for (uint32_t id = 0; id < n; ++id) {
    const std::string& key = *Slot(id);
    // Keys longer than the small-string buffer live on the heap twice: here and in ids_.
    if (key.capacity() > 15) bytes += 2 * (key.capacity() + 1);
  }
  return bytes;
}

}  // namespace novapulse
