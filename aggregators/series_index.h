// SeriesIndex interns the label-value tuples of one metric family into dense
// series ids, up to a limit; past the limit every new tuple folds into one
// overflow series whose label values are all "__overflow__".
//
// Thread-safety: Resolve may be called from any thread (it locks; workers call
// it only on a miss of their own cache, so once per series per worker).
// size() and Key() never lock: keys are published with release ordering and
// never move, so readers (scrapes, rule evaluation) see a consistent prefix,
// and workers may keep the views Key() returns as their own cache keys.
// Each key is stored once, in an arena of blocks.
//   SeriesIndex index(/*num_labels=*/2, /*limit=*/10000);
//   uint32_t id = index.Resolve(key, &overflowed);
#ifndef NOVAPULSE_AGGREGATORS_SERIES_INDEX_H_
#define NOVAPULSE_AGGREGATORS_SERIES_INDEX_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "aggregators/string_map.h"

namespace novapulse {

inline constexpr size_t kDefaultSeriesLimit = 10000;

class SeriesIndex {
 public:
  SeriesIndex(size_t num_labels, size_t limit);
  ~SeriesIndex();
  SeriesIndex(const SeriesIndex&) = delete;
  SeriesIndex& operator=(const SeriesIndex&) = delete;

  // Returns the id of `key`; sets *overflowed when it folded into overflow.
  uint32_t Resolve(std::string_view key, bool* overflowed);
  // Looks `key` up without inserting; false when unknown.
  bool Find(std::string_view key, uint32_t* id) const;

  // Ids [0, size()) are published; the view Key(id) returns stays valid for
  // the index's life.
  size_t size() const { return size_.load(std::memory_order_acquire); }
  std::string_view Key(uint32_t id) const;
  // Ids never exceed this (limit plus the overflow series).
  size_t capacity() const { return limit_ + 1; }
  size_t limit() const { return limit_; }
  // Heap bytes the index holds, for the series-memory report.
  size_t MemoryBytes() const;

  static constexpr size_t kChunk = 1024;

 private:
  std::string_view* Slot(uint32_t id) const;
  uint32_t Publish(std::string_view key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string_view Store(std::string_view key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  static constexpr size_t kArenaBlock = 64 * 1024;

  const size_t limit_;
  const size_t num_chunks_;
  std::string overflow_key_;
  mutable absl::Mutex mu_;
  StringViewMap<uint32_t> ids_ ABSL_GUARDED_BY(mu_);  // views into arena_
  uint32_t overflow_id_ ABSL_GUARDED_BY(mu_) = UINT32_MAX;
  std::vector<std::unique_ptr<char[]>> arena_ ABSL_GUARDED_BY(mu_);
  size_t arena_used_ ABSL_GUARDED_BY(mu_) = kArenaBlock;  // bytes used in arena_.back()
  size_t arena_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // Chunks of key views; a chunk pointer is written once, under mu_, before
  // the ids in it are published through size_.
  std::unique_ptr<std::atomic<std::string_view*>[]> chunks_;
  std::atomic<size_t> size_{0};
};

}  // namespace novapulse

#endif  // NOVAPULSE_AGGREGATORS_SERIES_INDEX_H_
