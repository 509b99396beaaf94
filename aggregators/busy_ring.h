// BusyRing: per-shard busy time per second of event time, behind the
// concurrency gauges (requests in progress, averaged over a window): each
// record adds the part of [time - duration, time] that falls in each second.
//
// Single writer (the shard's worker), any reader: a reader sums the closed
// seconds of every shard's ring (AverageBusy).
#ifndef NOVAPULSE_AGGREGATORS_BUSY_RING_H_
#define NOVAPULSE_AGGREGATORS_BUSY_RING_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "base/state_codec.h"

namespace novapulse {

struct BusyRing {
  // The seconds a ring remembers: a window is at most kSlots - 8 seconds.
  static constexpr size_t kSlots = 128;
  std::array<std::atomic<int64_t>, kSlots> second{};
  std::array<std::atomic<uint64_t>, kSlots> busy_us{};
  // Adds [start_us, end_us]; only its last kSlots - 2 seconds are kept.
  void Add(int64_t start_us, int64_t end_us);
};

// Busy time per second of the `window_s` whole seconds before the one
// `now_us` falls in, summed over `rings`: the average number in progress.
double AverageBusy(const std::vector<std::unique_ptr<BusyRing>>& rings, int64_t now_us,
                   int64_t window_s);

// Checkpoints: `rings` merged into one ring (per slot, the newest second
// any ring holds and the busy time of the rings holding that second), and
// loaded back into the first ring of fresh `rings` (the rest stay empty).
// Save while no writer runs; Load before any does.
void SaveBusyRings(const std::vector<std::unique_ptr<BusyRing>>& rings, StateWriter* w);
[[nodiscard]] absl::Status LoadBusyRings(StateReader* r,
                                         std::vector<std::unique_ptr<BusyRing>>* rings);

}  // namespace novapulse

#endif  // NOVAPULSE_AGGREGATORS_BUSY_RING_H_
