// Decoded NovaGift events and the reasons a record can be rejected.
//
// An event is what a parser hands to the aggregators: typed values plus
// string_views that point into the parser's own buffers (or into the input
// line). They stay valid only until that parser decodes its next record, so
// the aggregator of the same worker consumes an event before the next parse.
#ifndef NOVAPULSE_PARSERS_EVENT_H_
#define NOVAPULSE_PARSERS_EVENT_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace novapulse {

// The two input topics. kAuto is only a source setting: detect per record.
enum class Topic : uint8_t { kAccessLog = 0, kOutbox = 1, kAuto = 2 };
inline constexpr int kTopicCount = 2;

std::string_view TopicName(Topic topic);

// A topic as an input number of the pipeline (pipeline/metric_engine.h):
// its value, -1 for kAuto (detect); and an input number as a topic.
constexpr int InputOfTopic(Topic topic) {
  return topic == Topic::kAuto ? -1 : static_cast<int>(topic);
}
constexpr Topic TopicOfInput(int input) {
  return input < 0 || input >= kTopicCount ? Topic::kAuto : static_cast<Topic>(input);
}

// Why a record was rejected. Stable names (RejectReasonName) are label values
// of novapulse_parse_errors_total{reason}.
enum class RejectReason : uint8_t {
  kMalformedJson = 0,  // not parseable JSON (includes invalid UTF-8, truncation)
  kNotObject,          // valid JSON whose root is not an object
  kMissingField,       // a required field is absent
  kWrongType,          // a field has the wrong JSON type
  kOutOfRange,         // negative duration, status outside 100-599, attempt < 1, ...
  kBadTimestamp,       // a timestamp that does not parse or is outside 1970-9999
  kOversize,           // the record or one of its label values is above the size limit
  kUnknownType,        // outbox `type` not one we know
  kUnknownStatus,      // outbox `status` not one we know
  kTooDeep,            // nesting deeper than the parser allows
  kUnknownTopic,       // topic auto-detection found neither schema
  kDuplicateField,     // a field we read appears twice (ambiguous record)
  kFutureTimestamp,    // event time too far ahead of the wall clock (run's max_future)
};
inline constexpr int kRejectReasonCount = 13;

std::string_view RejectReasonName(RejectReason reason);

// Label values longer than this are rejected as oversize: they would bloat
// every series they appear in.
inline constexpr size_t kMaxLabelValueBytes = 256;
// Deeper nesting than this is rejected as too_deep; our schemas need 2 levels.
inline constexpr size_t kMaxJsonDepth = 64;

struct AccessLogEvent {
  int64_t ts_us = 0;  // event time, microseconds since the Unix epoch
  std::string_view method;
  std::string_view route;  // normalised if it came from `path`
  // request_id, instance and bytes_out are part of the schema but feed no
  // metric; they are not decoded.
  uint16_t status = 0;
  double duration_ms = 0;
  std::string_view error_code;  // empty when absent
};

enum class OutboxType : uint8_t {
  kGiftCreated = 0,
  kGiftClaimed,
  kGiftExpired,
  kWalletTransaction,
};
inline constexpr int kOutboxTypeCount = 4;
std::string_view OutboxTypeName(OutboxType type);

enum class OutboxStatus : uint8_t { kQueued = 0, kInFlight, kProcessed, kFailed, kDead };
inline constexpr int kOutboxStatusCount = 5;
std::string_view OutboxStatusName(OutboxStatus status);

struct OutboxEvent {
  int64_t ts_us = 0;
  std::string_view id;
  OutboxType type = OutboxType::kGiftCreated;
  OutboxStatus status = OutboxStatus::kQueued;
  int64_t attempt = 1;
  double processing_ms = -1;  // < 0 when absent
  std::string_view error;     // empty when absent
  // Business facts from `data`; only the ones the type needs are validated.
  std::string_view gift_id;
  std::string_view mode;
  std::string_view theme;
  double value_usd = -1;
  int64_t created_at_us = 0;
  bool has_created_at = false;
  std::string_view wallet_kind;
  std::string_view wallet_status;
  double amount_usd = -1;
};

}  // namespace novapulse

#endif  // NOVAPULSE_PARSERS_EVENT_H_
