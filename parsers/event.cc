#include "parsers/event.h"

namespace novapulse {

std::string_view TopicName(Topic topic) {
  switch (topic) {
    case Topic::kAccessLog:
      return "novagift.access-log";
    case Topic::kOutbox:
      return "novagift.outbox";
    case Topic::kAuto:
      return "auto";
  }
  return "unknown";
}

std::string_view RejectReasonName(RejectReason reason) {
  static constexpr std::array<std::string_view, kRejectReasonCount> kNames = {
      "malformed_json", "not_object",      "missing_field",   "wrong_type",     "out_of_range",
      "bad_timestamp",  "oversize",        "unknown_type",    "unknown_status", "too_deep",
      "unknown_topic",  "duplicate_field", "future_timestamp"};
  return kNames[static_cast<int>(reason)];
}

std::string_view OutboxTypeName(OutboxType type) {
  static constexpr std::array<std::string_view, kOutboxTypeCount> kNames = {
      "gift.created", "gift.claimed", "gift.expired", "wallet.transaction"};
  return kNames[static_cast<int>(type)];
}

std::string_view OutboxStatusName(OutboxStatus status) {
  static constexpr std::array<std::string_view, kOutboxStatusCount> kNames = {
      "queued", "in_flight", "processed", "failed", "dead"};
  return kNames[static_cast<int>(status)];
}

}  // namespace novapulse
