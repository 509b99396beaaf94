// EventClock: the watermark of `novapulse run`. The watermark is the newest
// event time seen minus the allowed lateness; while the input is idle, event
// time moves on with the wall clock from the newest event, so that absence
// alerts (too few gifts per hour) still fire when nothing arrives.
//
// With partitions (AddPartition), "newest" is that of the slowest partition
// still behind: one not yet at its end and not silent for partition_idle_ms.
// A consumer catching up a backlog is handed some partitions well ahead of
// others (librdkafka prefetches each on its own); the slots of the lagging
// ones stay open until their records are in. A partition just assigned
// holds time back until its first records or its end. A partition is at its
// end once the batch in which its consumer reached the end has completed
// (the batch carries the end after the partition's records); records of a
// later batch make it behind again until its next end. Without partitions,
// the newest event overall counts.
//
// Each batch is handed the watermark current when it enters the pipeline; a
// window slot may close only once every batch that could still write it has
// completed, i.e. up to the watermark of the oldest batch in flight (batches
// complete in order and watermarks only grow).
//
// Threads: every method may be called from any thread (one mutex; a few
// calls per batch).
//   int64_t w = clock.BeginBatch();            // input stage
//   int64_t bound = clock.EndBatch(newest_us);  // completion stage, in order
//   runner.AdvanceTo(bound);
#ifndef NOVAPULSE_PIPELINE_EVENT_CLOCK_H_
#define NOVAPULSE_PIPELINE_EVENT_CLOCK_H_

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "base/state_codec.h"
#include "base/state_part.h"

namespace novapulse {

class EventClock final : public StatePart {
 public:
  // What one completed batch brought of one partition.
  struct PartitionProgress {
    uint64_t partition = 0;         // the caller's key
    bool records = false;           // the batch has records of it
    int64_t newest_us = INT64_MIN;  // their newest accepted event time, if any
    bool reached_end = false;       // the batch ends with the partition at its end
  };

  static constexpr int64_t kPartitionIdleMs = 30'000;

  EventClock(int64_t lateness_ms, int64_t idle_after_ms,
             int64_t partition_idle_ms = kPartitionIdleMs)
      : lateness_ms_(lateness_ms),
        idle_after_ms_(idle_after_ms),
        partition_idle_ms_(partition_idle_ms) {}

  // A partition was assigned at wall time `wall_ms`: it holds event time
  // back until it brings records or reaches its end. Any thread.
  void AddPartition(uint64_t partition, int64_t wall_ms);
  // Revoked or lost: no longer holds event time back. Any thread.
  void RemovePartition(uint64_t partition);

  // A batch enters the pipeline: returns its watermark (ms; INT64_MIN before
  // the first event).
  int64_t BeginBatch();
  // The oldest batch in flight completed with `newest_us` its newest event
  // time (INT64_MIN if none) at wall time `wall_ms`. Returns how far slots
  // may close.
  // `partitions`: what the batch brought of each partition (those not
  // added are ignored).
  int64_t EndBatch(int64_t newest_us, int64_t wall_ms,
                   std::span<const PartitionProgress> partitions = {});
  // Called about once a second: when no batch is in flight, none has
  // brought events for idle_after_ms and no partition is behind, event time
  // advances with the wall clock from the newest event. Returns how far
  // slots may close, if that moved.
  std::optional<int64_t> Tick(int64_t wall_ms);

  int64_t watermark_ms() const;

  // Checkpoints (section "event_clock"): the watermark and the newest event
  // time. LoadState before any batch; the input counts as active from
  // load->wall_ms on.
  std::string_view StateName() const override { return "event_clock"; }
  std::string StateFingerprint() const override { return ""; }
  std::string_view StateChanged() const override { return ""; }
  void SaveState(StateWriter* w) override;
  [[nodiscard]] absl::Status LoadState(StateReader* r, StateLoad* load) override;

 private:
  struct Partition {
    int64_t newest_ms = INT64_MIN;  // INT64_MIN: no accepted records yet
    bool at_end = false;
    int64_t active_wall_ms = 0;  // when assigned or last brought records
  };

  int64_t ClosableLocked() const;
  // Moves the watermark on to what the partitions allow at `wall_ms`.
  void AdvanceLocked(int64_t wall_ms);
  // Newest event time of the slowest partition behind at `wall_ms`
  // (INT64_MIN: one has no records yet), or nullopt when none is behind.
  std::optional<int64_t> SlowestBehindLocked(int64_t wall_ms) const;

  const int64_t lateness_ms_;
  const int64_t idle_after_ms_;
  const int64_t partition_idle_ms_;
  mutable std::mutex mu_;
  std::map<uint64_t, Partition> partitions_;  // guarded by mu_
  int64_t watermark_ms_ = INT64_MIN;          // guarded by mu_
  int64_t newest_ms_ = INT64_MIN;             // guarded by mu_
  int64_t newest_wall_ms_ = 0;                // guarded by mu_: wall time the newest event came
  std::deque<int64_t> in_flight_;             // guarded by mu_: watermarks of batches in flight
};

}  // namespace novapulse

#endif  // NOVAPULSE_PIPELINE_EVENT_CLOCK_H_
