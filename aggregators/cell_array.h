// CellArray: the per-worker, single-writer storage of one metric family:
// `width` 64-bit words per series, in chunks of series that never move once
// allocated (256 series a chunk unless told; a power of two).
//
// Exactly one thread (the shard's worker) writes; any thread may read at the
// same time. Writes are relaxed load + relaxed store (no read-modify-write),
// reads are relaxed loads: a reader sees each word's latest or a slightly
// older value, never a torn one, and never waits.
//   CellArray cells(/*width=*/1, /*capacity=*/10001);
//   cells.Add(series, 0, 1);                    // writer thread only
//   uint64_t v = cells.Load(series, 0);         // any thread
#ifndef NOVAPULSE_AGGREGATORS_CELL_ARRAY_H_
#define NOVAPULSE_AGGREGATORS_CELL_ARRAY_H_

#include <atomic>
#include <bit>
#include <cstdint>
#include <memory>

namespace novapulse {

class CellArray {
 public:
  static constexpr size_t kChunkSeries = 256;

  CellArray(size_t width, size_t capacity, size_t chunk_series = kChunkSeries)
      : width_(width),
        shift_(std::countr_zero(chunk_series)),
        mask_(chunk_series - 1),
        num_chunks_((capacity + chunk_series - 1) / chunk_series),
        chunks_(new std::atomic<std::atomic<uint64_t>*>[num_chunks_]) {
    for (size_t i = 0; i < num_chunks_; ++i) chunks_[i].store(nullptr, std::memory_order_relaxed);
  }
  ~CellArray() {
    for (size_t i = 0; i < num_chunks_; ++i) delete[] chunks_[i].load(std::memory_order_relaxed);
  }
  CellArray(const CellArray&) = delete;
  CellArray& operator=(const CellArray&) = delete;

  size_t width() const { return width_; }
  size_t chunk_series() const { return mask_ + 1; }
  // Heap bytes of one chunk, once written.
  size_t chunk_bytes() const { return chunk_series() * width_ * sizeof(uint64_t); }

  // Writer thread only.
  void Add(uint32_t series, size_t word, uint64_t delta) {
    std::atomic<uint64_t>& w = WritableWord(series, word);
    w.store(w.load(std::memory_order_relaxed) + delta, std::memory_order_relaxed);
  }
  void Store(uint32_t series, size_t word, uint64_t value) {
    WritableWord(series, word).store(value, std::memory_order_relaxed);
  }

  // Sets a word to zero, if its chunk exists. Not the writer's call: for a
  // reader that owns the word at that moment by protocol (a closed window
  // slot that no writer may touch until the reader publishes it free).
  void ResetIfAllocated(uint32_t series, size_t word) {
    std::atomic<uint64_t>* chunk = chunks_[series >> shift_].load(std::memory_order_acquire);
    if (chunk != nullptr) {
      chunk[(series & mask_) * width_ + word].store(0, std::memory_order_relaxed);
    }
  }

  // Any thread. Zero for series this shard never wrote.
  uint64_t Load(uint32_t series, size_t word) const {
    const std::atomic<uint64_t>* chunk = chunks_[series >> shift_].load(std::memory_order_acquire);
    if (chunk == nullptr) return 0;
    return chunk[(series & mask_) * width_ + word].load(std::memory_order_relaxed);
  }

  // Heap bytes held (for the series-memory report).
  size_t MemoryBytes() const {
    size_t bytes = num_chunks_ * sizeof(void*);
    for (size_t i = 0; i < num_chunks_; ++i) {
      if (chunks_[i].load(std::memory_order_relaxed) != nullptr) bytes += chunk_bytes();
    }
    return bytes;
  }

 private:
  std::atomic<uint64_t>& WritableWord(uint32_t series, size_t word) {
    std::atomic<std::atomic<uint64_t>*>& slot = chunks_[series >> shift_];
    std::atomic<uint64_t>* chunk = slot.load(std::memory_order_relaxed);
    if (chunk == nullptr) [[unlikely]] {
      chunk = new std::atomic<uint64_t>[chunk_series() * width_]();
      slot.store(chunk, std::memory_order_release);
    }
    return chunk[(series & mask_) * width_ + word];
  }

  const size_t width_;
  const int shift_;
  const size_t mask_;
  const size_t num_chunks_;
  std::unique_ptr<std::atomic<std::atomic<uint64_t>*>[]> chunks_;
};

}  // namespace novapulse

#endif  // NOVAPULSE_AGGREGATORS_CELL_ARRAY_H_
