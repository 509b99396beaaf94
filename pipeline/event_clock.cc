#include "pipeline/event_clock.h"

#include <algorithm>

namespace novapulse {

void EventClock::AddPartition(uint64_t partition, int64_t wall_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  partitions_[partition] = Partition{.active_wall_ms = wall_ms};
}

void EventClock::RemovePartition(uint64_t partition) {
  std::lock_guard<std::mutex> lock(mu_);
  partitions_.erase(partition);
}

int64_t EventClock::BeginBatch() {
  std::lock_guard<std::mutex> lock(mu_);
  in_flight_.push_back(watermark_ms_);
  return watermark_ms_;
}

int64_t EventClock::ClosableLocked() const {
  return in_flight_.empty() ? watermark_ms_ : in_flight_.front();
}

std::optional<int64_t> EventClock::SlowestBehindLocked(int64_t wall_ms) const {
  std::optional<int64_t> slowest;
  for (const auto& [key, p] : partitions_) {
    if (p.at_end || wall_ms - p.active_wall_ms >= partition_idle_ms_) continue;
    slowest = std::min(slowest.value_or(INT64_MAX), p.newest_ms);
  }
  return slowest;
}

void EventClock::AdvanceLocked(int64_t wall_ms) {
  int64_t newest = newest_ms_;
  if (std::optional<int64_t> slowest = SlowestBehindLocked(wall_ms)) {
    newest = std::min(newest, *slowest);
  }
  if (newest != INT64_MIN) watermark_ms_ = std::max(watermark_ms_, newest - lateness_ms_);
}

int64_t EventClock::EndBatch(int64_t newest_us, int64_t wall_ms,
                             std::span<const PartitionProgress> partitions) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!in_flight_.empty()) in_flight_.pop_front();
  for (const PartitionProgress& progress : partitions) {
    const auto it = partitions_.find(progress.partition);
    if (it == partitions_.end()) continue;  // revoked meanwhile
    Partition& p = it->second;
    if (progress.records) {
      p.at_end = false;
      p.active_wall_ms = wall_ms;
      if (progress.newest_us != INT64_MIN) {
        p.newest_ms = std::max(p.newest_ms, progress.newest_us / 1000);
      }
    }
    if (progress.reached_end) p.at_end = true;
  }
  if (newest_us != INT64_MIN) {
    const int64_t newest_ms = newest_us / 1000;
    if (newest_ms > newest_ms_) {
      newest_ms_ = newest_ms;
      newest_wall_ms_ = wall_ms;
    }
  }
  AdvanceLocked(wall_ms);
  return ClosableLocked();
}

std::optional<int64_t> EventClock::Tick(int64_t wall_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t before = watermark_ms_;
  // A partition gone silent no longer holds time back.
  AdvanceLocked(wall_ms);
  const int64_t idle = wall_ms - newest_wall_ms_;
  if (in_flight_.empty() && newest_ms_ != INT64_MIN && idle >= idle_after_ms_ &&
      !SlowestBehindLocked(wall_ms)) {
    watermark_ms_ = std::max(watermark_ms_, newest_ms_ + idle - lateness_ms_);
  }
  if (!in_flight_.empty() || watermark_ms_ == before) return std::nullopt;
  return watermark_ms_;
}

int64_t EventClock::watermark_ms() const {
  std::lock_guard<std::mutex> lock(mu_);
  return watermark_ms_;
}

void EventClock::SaveState(StateWriter* w) {
  std::lock_guard<std::mutex> lock(mu_);
  w->I64(watermark_ms_);
  w->I64(newest_ms_);
}

absl::Status EventClock::LoadState(StateReader* r, StateLoad* load) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!r->TimeMs(&watermark_ms_, /*unset_ok=*/true) || !r->TimeMs(&newest_ms_, true)) {
    return r->Error("event clock");
  }
  newest_wall_ms_ = load->wall_ms;
  return absl::OkStatus();
}

}  // namespace novapulse
