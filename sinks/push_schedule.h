// PushSchedule: when a pushing client's sender (Alertmanager, remote write)
// may send, retry and give up: the stop-and-flush that every sender of the
// client shares, and each sender's exponential backoff.
//
// Threads: PushStop is read and changed under the client's mutex, except
// cut(), which a request in flight reads without it. A Backoff belongs to
// its sender thread.
//   if (stop.Finished(queue.empty(), now)) return;
//   if (!queue.empty() && backoff.Due(now)) break;
//   wake.WaitWithDeadline(&mu, stop.Until(queue.empty() ? absl::InfiniteFuture() : backoff.at()));
#ifndef NOVAPULSE_SINKS_PUSH_SCHEDULE_H_
#define NOVAPULSE_SINKS_PUSH_SCHEDULE_H_

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "absl/time/time.h"

namespace novapulse {

class PushStop {
 public:
  // Starts stopping (the first call only): senders go on until the queue is
  // empty or `flush` has passed; a request in flight is cut then. False when
  // already stopping.
  bool Begin(absl::Duration flush) {
    if (stopping_) return false;
    stopping_ = true;
    deadline_ = absl::Now() + flush;
    cut_unix_ns_.store(absl::ToUnixNanos(deadline_), std::memory_order_relaxed);
    return true;
  }
  bool stopping() const { return stopping_; }
  // A sender is done: stopping, and nothing is queued or the flush is over.
  bool Finished(bool queue_empty, absl::Time now) const {
    return stopping_ && (queue_empty || now >= deadline_);
  }
  // How long a sender waiting for `until` may wait: no later than the flush.
  absl::Time Until(absl::Time until) const {
    return stopping_ ? std::min(until, deadline_) : until;
  }
  // The flush deadline (Unix ns) for requests in flight; read without a lock.
  const std::atomic<int64_t>* cut() const { return &cut_unix_ns_; }

 private:
  bool stopping_ = false;
  absl::Time deadline_ = absl::InfiniteFuture();
  std::atomic<int64_t> cut_unix_ns_{INT64_MAX};
};

// From `min`, doubling up to `max` after each failure; back to none after
// a success.
class Backoff {
 public:
  Backoff(absl::Duration min, absl::Duration max) : min_(min), max_(max) {}
  void Failed(absl::Time now) {
    delay_ = delay_ == absl::ZeroDuration() ? min_ : std::min(delay_ * 2, max_);
    at_ = now + delay_;
  }
  void Succeeded() {
    delay_ = absl::ZeroDuration();
    at_ = absl::InfinitePast();
  }
  bool Due(absl::Time now) const { return now >= at_; }
  absl::Time at() const { return at_; }

 private:
  const absl::Duration min_;
  const absl::Duration max_;
  absl::Duration delay_ = absl::ZeroDuration();
  absl::Time at_ = absl::InfinitePast();
};

}  // namespace novapulse

#endif  // NOVAPULSE_SINKS_PUSH_SCHEDULE_H_
