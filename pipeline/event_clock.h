// EventClock: the watermark of `novapulse run`. The watermark is the newest
// event time seen minus the allowed lateness; while the input is idle, event
// time moves on with the wall clock from the newest event, so that absence
// alerts (too few gifts per hour) still fire when nothing arrives.
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
#include <mutex>
#include <optional>

#include "absl/status/status.h"
#include "base/state_codec.h"

namespace novapulse {

class EventClock {
 public:
  EventClock(int64_t lateness_ms, int64_t idle_after_ms)
      : lateness_ms_(lateness_ms), idle_after_ms_(idle_after_ms) {}

  // A batch enters the pipeline: returns its watermark (ms; INT64_MIN before
  // the first event).
  int64_t BeginBatch();
  // The oldest batch in flight completed with `newest_us` its newest event
  // time (INT64_MIN if none) at wall time `wall_ms`. Returns how far slots
  // may close.
  int64_t EndBatch(int64_t newest_us, int64_t wall_ms);
  // Called about once a second: when no batch is in flight and none has
  // brought events for idle_after_ms, event time advances with the wall
  // clock from the newest event. Returns how far slots may close, if that
  // moved.
  std::optional<int64_t> Tick(int64_t wall_ms);

  int64_t watermark_ms() const;

  // Checkpoints: the watermark and the newest event time. LoadState before
  // any batch; the input counts as active from `wall_ms` on.
  void SaveState(StateWriter* w) const;
  [[nodiscard]] absl::Status LoadState(StateReader* r, int64_t wall_ms);

 private:
  int64_t ClosableLocked() const;

  const int64_t lateness_ms_;
  const int64_t idle_after_ms_;
  mutable std::mutex mu_;
  int64_t watermark_ms_ = INT64_MIN;  // guarded by mu_
  int64_t newest_ms_ = INT64_MIN;     // guarded by mu_
  int64_t newest_wall_ms_ = 0;        // guarded by mu_: wall time the newest event came
  std::deque<int64_t> in_flight_;     // guarded by mu_: watermarks of batches in flight
};

}  // namespace novapulse

#endif  // NOVAPULSE_PIPELINE_EVENT_CLOCK_H_
