#include "pipeline/event_clock.h"

#include <algorithm>

namespace novapulse {

int64_t EventClock::BeginBatch() {
  std::lock_guard<std::mutex> lock(mu_);
  in_flight_.push_back(watermark_ms_);
  return watermark_ms_;
}

int64_t EventClock::ClosableLocked() const {
  return in_flight_.empty() ? watermark_ms_ : in_flight_.front();
}

int64_t EventClock::EndBatch(int64_t newest_us, int64_t wall_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!in_flight_.empty()) in_flight_.pop_front();
  if (newest_us != INT64_MIN) {
    const int64_t newest_ms = newest_us / 1000;
    if (newest_ms > newest_ms_) {
      newest_ms_ = newest_ms;
      newest_wall_ms_ = wall_ms;
    }
    watermark_ms_ = std::max(watermark_ms_, newest_ms_ - lateness_ms_);
  }
  return ClosableLocked();
}

std::optional<int64_t> EventClock::Tick(int64_t wall_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!in_flight_.empty() || newest_ms_ == INT64_MIN) return std::nullopt;
  const int64_t idle = wall_ms - newest_wall_ms_;
  if (idle < idle_after_ms_) return std::nullopt;
  const int64_t advanced = newest_ms_ + idle - lateness_ms_;
  if (advanced <= watermark_ms_) return std::nullopt;
  watermark_ms_ = advanced;
  return watermark_ms_;
}

int64_t EventClock::watermark_ms() const {
  std::lock_guard<std::mutex> lock(mu_);
  return watermark_ms_;
}

void EventClock::SaveState(StateWriter* w) const {
  std::lock_guard<std::mutex> lock(mu_);
  w->I64(watermark_ms_);
  w->I64(newest_ms_);
}

absl::Status EventClock::LoadState(StateReader* r, int64_t wall_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!r->TimeMs(&watermark_ms_, /*unset_ok=*/true) || !r->TimeMs(&newest_ms_, true)) {
    return r->Error("event clock");
  }
  newest_wall_ms_ = wall_ms;
  return absl::OkStatus();
}

}  // namespace novapulse
