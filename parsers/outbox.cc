// Outbox envelope decoding: RecordParser::ParseOutbox.
#include <string.h>

#include <cstring>

#include "parsers/json_values.h"
#include "parsers/record_parser.h"

namespace novapulse {
namespace {

enum Field : int { kTs, kId, kType, kStatus, kAttempt, kProcessing, kError, kData };
enum DataField : int {
  kGiftId,
  kMode,
  kTheme,
  kValue,
  kCreatedAt,
  kKind,
  kAmount,
  kTxStatus,
};

int MatchField(const char* key) noexcept {
  using json::KeyIs;
  switch (key[0]) {
    case 't':
      return KeyIs(key, "ts") ? kTs : KeyIs(key, "type") ? kType : -1;
    case 'i':
      return KeyIs(key, "id") ? kId : -1;
    case 's':
      return KeyIs(key, "status") ? kStatus : -1;
    case 'a':
      return KeyIs(key, "attempt") ? kAttempt : -1;
    case 'p':
      return KeyIs(key, "processing_ms") ? kProcessing : -1;
    case 'e':
      return KeyIs(key, "error") ? kError : -1;
    case 'd':
      return KeyIs(key, "data") ? kData : -1;
    default:
      return -1;
  }
}

int MatchDataField(const char* key) noexcept {
  using json::KeyIs;
  switch (key[0]) {
    case 'g':
      return KeyIs(key, "gift_id") ? kGiftId : -1;
    case 'm':
      return KeyIs(key, "mode") ? kMode : -1;
    case 't':
      return KeyIs(key, "theme") ? kTheme : -1;
    case 'v':
      return KeyIs(key, "value_usd") ? kValue : -1;
    case 'c':
      return KeyIs(key, "created_at") ? kCreatedAt : -1;
    case 'k':
      return KeyIs(key, "kind") ? kKind : -1;
    case 'a':
      return KeyIs(key, "amount_usd") ? kAmount : -1;
    case 's':
      return KeyIs(key, "status") ? kTxStatus : -1;
    default:
      return -1;
  }
}

template <size_t N>
int MatchUnescaped(std::string_view key, const std::array<std::string_view, N>& names) {
  for (size_t i = 0; i < N; ++i) {
    if (key == names[i]) return static_cast<int>(i);
  }
  return -1;
}

constexpr std::array<std::string_view, 8> kFieldNames = {
    "ts", "id", "type", "status", "attempt", "processing_ms", "error", "data"};
constexpr std::array<std::string_view, 8> kDataFieldNames = {
    "gift_id", "mode", "theme", "value_usd", "created_at", "kind", "amount_usd", "status"};

bool ToType(std::string_view s, OutboxType* out) noexcept {
  for (int i = 0; i < kOutboxTypeCount; ++i) {
    if (s == OutboxTypeName(static_cast<OutboxType>(i))) {
      *out = static_cast<OutboxType>(i);
      return true;
    }
  }
  return false;
}

bool ToStatus(std::string_view s, OutboxStatus* out) noexcept {
  for (int i = 0; i < kOutboxStatusCount; ++i) {
    if (s == OutboxStatusName(static_cast<OutboxStatus>(i))) {
      *out = static_cast<OutboxStatus>(i);
      return true;
    }
  }
  return false;
}

json::Reject ReadData(const json::Reader& r, json::Value& v, OutboxEvent* out,
                      json::SeenFields* seen) noexcept {
  simdjson::ondemand::object data;
  if (auto error = v.get_object().get(data)) return json::FromError(error);
  for (auto field_result : data) {
    simdjson::ondemand::field field;
    if (auto error = std::move(field_result).get(field)) return json::FromError(error);
    const char* raw_key = field.key().raw();
    int id = MatchDataField(raw_key);
    if (id < 0 && r.escapes()) {
      id = MatchUnescaped(json::UnescapedIfEscaped(field, raw_key), kDataFieldNames);
    }
    json::Value& fv = field.value();
    if (id < 0) {
      if (auto reject = r.ValidateSkipped(fv, 3)) return reject;
      continue;
    }
    if (!seen->Mark(id)) return RejectReason::kDuplicateField;
    if (json::IsNull(fv)) continue;
    json::Reject reject;
    switch (id) {
      case kGiftId:
        reject = r.ReadString(fv, &out->gift_id);
        break;
      case kMode:
        reject = r.ReadLabel(fv, &out->mode);
        break;
      case kTheme:
        reject = r.ReadLabel(fv, &out->theme);
        break;
      case kValue:
        reject = r.ReadDouble(fv, &out->value_usd);
        if (!reject && out->value_usd < 0) reject = RejectReason::kOutOfRange;
        break;
      case kCreatedAt:
        reject = r.ReadTimestamp(fv, &out->created_at_us);
        out->has_created_at = !reject;
        break;
      case kKind:
        reject = r.ReadLabel(fv, &out->wallet_kind);
        break;
      case kAmount:
        reject = r.ReadDouble(fv, &out->amount_usd);
        if (!reject && out->amount_usd < 0) reject = RejectReason::kOutOfRange;
        break;
      case kTxStatus:
        reject = r.ReadLabel(fv, &out->wallet_status);
        break;
    }
    if (reject) return reject;
  }
  return std::nullopt;
}

// Business facts are read on `queued` only; each type needs its own fields.
json::Reject CheckData(const OutboxEvent& e, bool has_data) {
  if (e.status != OutboxStatus::kQueued) return std::nullopt;
  if (!has_data) return RejectReason::kMissingField;
  switch (e.type) {
    case OutboxType::kGiftCreated:
      if (e.mode.empty() || e.theme.empty() || e.value_usd < 0) return RejectReason::kMissingField;
      break;
    case OutboxType::kGiftClaimed:
      if (e.mode.empty() || e.theme.empty() || !e.has_created_at) {
        return RejectReason::kMissingField;
      }
      break;
    case OutboxType::kGiftExpired:
      if (e.mode.empty() || e.theme.empty()) return RejectReason::kMissingField;
      break;
    case OutboxType::kWalletTransaction:
      if (e.wallet_kind.empty() || e.wallet_status.empty() || e.amount_usd < 0) {
        return RejectReason::kMissingField;
      }
      break;
  }
  return std::nullopt;
}

}  // namespace

// The envelope's fields, from a root object both paths (one record alone, or
// one of a block's stream) have opened.
std::optional<RejectReason> RecordParser::DecodeOutbox(simdjson::ondemand::object& root,
                                                       bool escapes, size_t stream_end,
                                                       OutboxEvent* out) noexcept {
  const json::Reader r(escapes);
  *out = OutboxEvent{};
  json::SeenFields seen;
  json::SeenFields data_seen;
  std::string_view type_name, status_name;
  for (auto field_result : root) {
    simdjson::ondemand::field field;
    if (auto error = std::move(field_result).get(field)) return json::FromError(error);
    const char* raw_key = field.key().raw();
    int id = MatchField(raw_key);
    if (id < 0 && r.escapes()) {
      id = MatchUnescaped(json::UnescapedIfEscaped(field, raw_key), kFieldNames);
    }
    json::Value& v = field.value();
    if (id < 0) {
      if (auto reject = r.ValidateSkipped(v, 2)) return reject;
      continue;
    }
    if (!seen.Mark(id)) return RejectReason::kDuplicateField;
    json::Reject reject;
    switch (id) {
      case kTs:
        reject = r.ReadTimestamp(v, &out->ts_us);
        break;
      case kId:
        reject = r.ReadString(v, &out->id);
        break;
      case kType:
        reject = r.ReadString(v, &type_name);
        break;
      case kStatus:
        reject = r.ReadString(v, &status_name);
        break;
      case kAttempt:
        reject = r.ReadInt(v, &out->attempt);
        if (!reject && out->attempt < 1) reject = RejectReason::kOutOfRange;
        break;
      case kProcessing: {
        bool present;
        reject = r.ReadOptionalDouble(v, &out->processing_ms, &present);
        if (!reject && present && out->processing_ms < 0) reject = RejectReason::kOutOfRange;
        break;
      }
      case kError:
        reject = r.ReadOptionalLabel(v, &out->error);
        break;
      case kData:
        if (json::IsNull(v)) break;
        reject = ReadData(r, v, out, &data_seen);
        break;
    }
    if (reject) return reject;
  }
  if (!RootEnded(stream_end)) return RejectReason::kMalformedJson;
  if (!seen.Has(kTs) || !seen.Has(kId) || !seen.Has(kType) || !seen.Has(kStatus)) {
    return RejectReason::kMissingField;
  }
  if (!ToType(type_name, &out->type)) return RejectReason::kUnknownType;
  if (!ToStatus(status_name, &out->status)) return RejectReason::kUnknownStatus;
  return CheckData(*out, seen.Has(kData));
}

std::optional<RejectReason> RecordParser::ParseOutbox(const char* data, size_t len, size_t capacity,
                                                      OutboxEvent* out) noexcept {
  simdjson::ondemand::object root;
  if (auto reject = Start(data, len, capacity, &root)) return reject;
  return DecodeOutbox(root, std::memchr(data, '\\', len) != nullptr, kWholeRecord, out);
}

bool RecordParser::NextOutbox(size_t begin, size_t end, bool as_detected,
                              OutboxEvent* out) noexcept {
  // Accepted, the record has the raw keys "id" and "type", which make
  // DetectTopic say outbox unless it also has "method" and "duration_ms"
  // (or a key is escaped, which DetectTopic reads raw).
  if (as_detected && (LineEscapes(begin, end) ||
                      memmem(block_ + begin, end - begin, "\"duration_ms\"", 13) != nullptr)) {
    return Settle(false);
  }
  simdjson::ondemand::object root;
  if (!NextRoot(begin, &root)) return false;
  // Accepted only when the stream read it without a fault.
  return Settle(!DecodeOutbox(root, LineEscapes(begin, end), end, out));
}

}  // namespace novapulse
