// SeriesIndex interns the label-value tuples of one metric family into dense
// series ids, up to a limit; past the limit every new tuple folds into one
// overflow series whose label values are all "__overflow__".
//
// Thread-safety: every method may be called from any thread. Looking up a
// known key never locks (an open-addressing table of atomic slots, read with
// acquire loads); only inserting a new key takes the mutex, so a worker
// pays for the lock once per new series, and the hot path never waits.
// Keys are stored once, in an arena. SortedIds() keeps the ids in key order
// for readers; writers take its mutex never, and the index mutex only for a
// new series.
//
// Series can be removed (stale-series expiry): Remove() runs while no
// thread resolves or finds keys (the pipeline is drained), frees the ids for
// new keys, rebuilds the table and, once most of the arena is dead, moves
// the live keys to a new one. Readers may run meanwhile: they read ids and
// keys under ReadLock(), which Remove() takes exclusively, and keep the
// bytes of the keys they copied alive with KeyOwner().
//   SeriesIndex index(/*num_labels=*/2, /*limit=*/10000);
//   uint32_t id = index.Resolve(key, &overflowed);
#ifndef NOVAPULSE_AGGREGATORS_SERIES_INDEX_H_
#define NOVAPULSE_AGGREGATORS_SERIES_INDEX_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <span>
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
  // that holds it; never a free id).
  uint32_t ResolveOverflow();
  // The key of the overflow series: "__overflow__" for every label.
  std::string_view overflow_key() const { return overflow_key_; }
  // The id of the overflow series, or UINT32_MAX while there is none.
  uint32_t overflow_id() const;
  // Looks `key` up without inserting; false when unknown. Never locks.
  bool Find(std::string_view key, uint32_t* id) const;

  // Ids [0, size()) are published; those removed and not reused since are
  // free (their key is empty).
  size_t size() const { return size_.load(std::memory_order_acquire); }
  bool IsFree(uint32_t id) const {
    return std::atomic_ref<uint8_t>(free_[id]).load(std::memory_order_acquire) != 0;
  }
  // Series held: size() less the free ids.
  size_t live() const { return size() - free_count_.load(std::memory_order_acquire); }
  std::string_view Key(uint32_t id) const;
  // Ids never exceed this (limit plus the overflow series).
  size_t capacity() const { return limit_ + 1; }

  // Removes series `ids` and frees their ids; the next new keys take them.
  // Ids not live, and the overflow series', are skipped. Only while no thread calls Resolve,
  // ResolveOverflow or Find, nor until it returns; readers wait for it in ReadLock().
  void Remove(std::span<const uint32_t> ids);
  // Restoring a checkpoint, ids in saved order: Resolve that never takes a
  // free id, and the next id, published free (UINT32_MAX when no id is left
  // but the overflow series').
  uint32_t Restore(std::string_view key, bool* overflowed);
  uint32_t AddFree();
  // Held while reading ids and keys (SortedIds, Key, IsFree) when Remove()
  // may run meanwhile.
  std::shared_lock<std::shared_mutex> ReadLock() const {
    return std::shared_lock<std::shared_mutex>(remove_mu_);
  }
  // Keeps the bytes of every key read so far alive (keys that Remove()
  // drops, or moves to a new arena, included). Under ReadLock().
  std::shared_ptr<const void> KeyOwner() const;
  size_t limit() const { return limit_; }
  // Bytes the index has touched (table pages in use, key views, arena).
  size_t MemoryBytes() const;
  // Sets *ids to the live ids ordered by key. The order is cached: a call
  // sorts only the ids published (or reused) since the previous one and
  // merges them in. For readers (scrapes); blocks Resolve() only for a swap.
  void SortedIds(std::vector<uint32_t>* ids) const;

  static constexpr size_t kChunk = 1024;

 private:
  bool Lookup(std::string_view key, uint64_t hash, uint32_t* id) const;
  // Append writes the key of the next id; Publish makes it visible in size().
  uint32_t Append(std::string_view stored) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Publish(uint32_t id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string_view Store(std::string_view key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Inserts id's table slot (the key is not there yet).
  void Link(uint32_t id, uint64_t hash) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Copies the live keys to a new arena (Remove).
  void Compact() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint32_t Insert(std::string_view key, bool* overflowed, bool reuse);
  // The id for a new key: a free one (if `reuse`), else the next.
  uint32_t NewId(std::string_view stored, bool reuse) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

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
  // Blocks of key bytes; shared with the readers that keep keys (KeyOwner).
  struct Arena {
    std::vector<std::unique_ptr<char[]>> blocks;
  };
  std::shared_ptr<Arena> arena_ ABSL_GUARDED_BY(mu_);
  size_t arena_used_ ABSL_GUARDED_BY(mu_) = kArenaBlock;  // bytes used in blocks.back()
  size_t arena_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  size_t live_key_bytes_ ABSL_GUARDED_BY(mu_) = 0;  // of the live keys in the arena
  std::vector<uint32_t> free_ids_ ABSL_GUARDED_BY(mu_);
  // Ids reused since SortedIds() last ran.
  mutable std::vector<uint32_t> reused_ ABSL_GUARDED_BY(mu_);
  // Per id: 1 while free. calloc'ed; accessed through atomic_ref.
  uint8_t* free_;
  std::atomic<size_t> free_count_{0};
  // Remove() exclusively, readers shared. Lock order: remove_mu_, sorted_mu_, mu_.
  mutable std::shared_mutex remove_mu_;
  // Chunks of key views; a chunk pointer and a view are written once, under
  // mu_, before the id is published through size_ and the table slot.
  std::unique_ptr<std::atomic<std::string_view*>[]> chunks_;
  std::atomic<size_t> size_{0};
  // Readers only (and Remove): the live ids below sorted_end_ and those
  // reused before the last call, in key order.
  mutable std::mutex sorted_mu_;
  mutable std::vector<uint32_t> sorted_ ABSL_GUARDED_BY(sorted_mu_);
  mutable size_t sorted_end_ ABSL_GUARDED_BY(sorted_mu_) = 0;
};

}  // namespace novapulse

#endif  // NOVAPULSE_AGGREGATORS_SERIES_INDEX_H_
