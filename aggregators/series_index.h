// SeriesIndex interns the label-value tuples of one metric family into dense
// series ids, up to a limit; past the limit every new tuple folds into one
// overflow series whose label values are all "__overflow__".
//
// Thread-safety: every method may be called from any thread. Looking up a
// known key never locks (an open-addressing table of atomic slots, read with
// acquire loads); only inserting a new key takes the mutex, so a worker
// pays for the lock once per new series, and the hot path never waits.
// Keys are stored once, in an arena, and never move: the view Key(id)
// returns stays valid for the index's life. SortedIds() keeps the ids in key
// order for readers; only readers take its mutex, so writers never wait.
//   SeriesIndex index(/*num_labels=*/2, /*limit=*/10000);
//   uint32_t id = index.Resolve(key, &overflowed);
#ifndef NOVAPULSE_AGGREGATORS_SERIES_INDEX_H_
#define NOVAPULSE_AGGREGATORS_SERIES_INDEX_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"

namespace novapulse {

inline constexpr size_t kDefaultSeriesLimit = 10000;

class SeriesIndex {
 public:
  SeriesIndex(size_t num_labels, size_t limit);
  ~SeriesIndex();
  SeriesIndex(const SeriesIndex&) = delete;
  SeriesIndex& operator=(const SeriesIndex&) = delete;

  // Returns the id of `key`, inserting it if new; sets *overflowed when it
  // folded into the overflow series instead.
  uint32_t Resolve(std::string_view key, bool* overflowed);
  // The id of the overflow series, created if new (restoring a checkpoint
  // that holds it).
  uint32_t ResolveOverflow();
  // The key of the overflow series: "__overflow__" for every label.
  std::string_view overflow_key() const { return overflow_key_; }
  // Looks `key` up without inserting; false when unknown. Never locks.
  bool Find(std::string_view key, uint32_t* id) const;

  // Ids [0, size()) are published.
  size_t size() const { return size_.load(std::memory_order_acquire); }
  std::string_view Key(uint32_t id) const;
  // Ids never exceed this (limit plus the overflow series).
  size_t capacity() const { return limit_ + 1; }
  size_t limit() const { return limit_; }
  // Bytes the index has touched (table pages in use, key views, arena).
  size_t MemoryBytes() const;
  // Sets *ids to the ids [0, n) ordered by key, for the n = size() seen at the
  // call. The order is cached: a call sorts only the ids published since the
  // previous one and merges them in. For readers (scrapes); never blocks
  // Resolve().
  void SortedIds(std::vector<uint32_t>* ids) const;

  static constexpr size_t kChunk = 1024;

 private:
  bool Lookup(std::string_view key, uint64_t hash, uint32_t* id) const;
  // Append writes the key of the next id; Publish makes it visible in size().
  uint32_t Append(std::string_view stored) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Publish(uint32_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string_view Store(std::string_view key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  static constexpr size_t kArenaBlock = 64 * 1024;

  const size_t limit_;
  const size_t num_chunks_;
  const size_t mask_;  // table size - 1; the table is at most half full
  std::string overflow_key_;
  // Slot: (hash >> 32) << 32 | (id + 1); 0 when empty. calloc'ed, so pages
  // no key has reached are never touched; accessed through atomic_ref.
  uint64_t* table_;
  // std::mutex, not absl::Mutex: Debian's abseil is not built for TSan, which
  // would then report the inserts it guards as races.
  mutable std::mutex mu_;
  uint32_t overflow_id_ ABSL_GUARDED_BY(mu_) = UINT32_MAX;
  std::vector<std::unique_ptr<char[]>> arena_ ABSL_GUARDED_BY(mu_);
  size_t arena_used_ ABSL_GUARDED_BY(mu_) = kArenaBlock;  // bytes used in arena_.back()
  size_t arena_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // Chunks of key views; a chunk pointer and a view are written once, under
  // mu_, before the id is published through size_ and the table slot.
  std::unique_ptr<std::atomic<std::string_view*>[]> chunks_;
  std::atomic<size_t> size_{0};
  // Readers only: ids [0, sorted_.size()) in key order.
  mutable std::mutex sorted_mu_;
  mutable std::vector<uint32_t> sorted_ ABSL_GUARDED_BY(sorted_mu_);
};

}  // namespace novapulse

#endif  // NOVAPULSE_AGGREGATORS_SERIES_INDEX_H_
