#include "aggregators/busy_ring.h"

#include <algorithm>
#include <climits>

#include "parsers/timestamp.h"

namespace novapulse {

void BusyRing::Add(int64_t start_us, int64_t end_us) {
  // Only the last kSlots seconds matter; older parts of a long request are cut.
  start_us = std::max(start_us, end_us - static_cast<int64_t>(kSlots - 2) * kMicrosPerSecond);
  for (int64_t sec = start_us / kMicrosPerSecond; sec <= end_us / kMicrosPerSecond; ++sec) {
    const int64_t from = std::max(start_us, sec * kMicrosPerSecond);
    const int64_t to = std::min(end_us, (sec + 1) * kMicrosPerSecond);
    if (to <= from) continue;
    const size_t slot = static_cast<size_t>(sec) % kSlots;
    const int64_t held = second[slot].load(std::memory_order_relaxed);
    if (held == sec) {
      busy_us[slot].store(busy_us[slot].load(std::memory_order_relaxed) + (to - from),
                          std::memory_order_relaxed);
    } else if (held < sec) {
      busy_us[slot].store(static_cast<uint64_t>(to - from), std::memory_order_relaxed);
      second[slot].store(sec, std::memory_order_release);
    }  // else: older than the ring, too late to matter
  }
}

double AverageBusy(const std::vector<std::unique_ptr<BusyRing>>& rings, int64_t now_us,
                   int64_t window_s) {
  const int64_t now_sec = now_us / kMicrosPerSecond;
  uint64_t busy = 0;
  for (const auto& ring : rings) {
    for (int64_t sec = now_sec - window_s; sec < now_sec; ++sec) {
      const size_t slot = static_cast<size_t>(sec) % BusyRing::kSlots;
      if (ring->second[slot].load(std::memory_order_acquire) == sec) {
        busy += ring->busy_us[slot].load(std::memory_order_relaxed);
      }
    }
  }
  return static_cast<double>(busy) / static_cast<double>(window_s * kMicrosPerSecond);
}

void SaveBusyRings(const std::vector<std::unique_ptr<BusyRing>>& rings, StateWriter* w) {
  for (size_t slot = 0; slot < BusyRing::kSlots; ++slot) {
    int64_t second = INT64_MIN;
    uint64_t busy = 0;
    for (const auto& ring : rings) {
      const int64_t held = ring->second[slot].load(std::memory_order_acquire);
      const uint64_t us = ring->busy_us[slot].load(std::memory_order_relaxed);
      if (held > second) {
        second = held;
        busy = us;
      } else if (held == second) {
        busy += us;
      }
    }
    w->I64(second);
    w->U64(busy);
  }
}

absl::Status LoadBusyRings(StateReader* r, std::vector<std::unique_ptr<BusyRing>>* rings) {
  BusyRing& ring = *rings->front();
  for (size_t slot = 0; slot < BusyRing::kSlots; ++slot) {
    int64_t second = 0;
    uint64_t busy = 0;
    if (!r->I64(&second) || !r->U64(&busy)) return r->Error("busy time");
    ring.second[slot].store(second, std::memory_order_relaxed);
    ring.busy_us[slot].store(busy, std::memory_order_relaxed);
  }
  return absl::OkStatus();
}

}  // namespace novapulse
