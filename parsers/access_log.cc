// Access-log line decoding: RecordParser::ParseAccessLog.
#include <cstring>

#include "parsers/json_values.h"
#include "parsers/record_parser.h"
#include "parsers/route.h"

namespace novapulse {
namespace {

enum Field : int { kTs, kMethod, kRoute, kPath, kStatus, kDuration, kError };

// Known key of a raw key, -1 for any other. `request_id`, `instance` and
// `bytes_out` are part of the schema but feed no metric, so they are skipped
// unread like unknown keys.
int MatchField(const char* key) noexcept {
  using json::KeyIs;
  switch (key[0]) {
    case 't':
      return KeyIs(key, "ts") ? kTs : -1;
    case 'm':
      return KeyIs(key, "method") ? kMethod : -1;
    case 'r':
      return KeyIs(key, "route") ? kRoute : -1;
    case 'p':
      return KeyIs(key, "path") ? kPath : -1;
    case 's':
      return KeyIs(key, "status") ? kStatus : -1;
    case 'd':
      return KeyIs(key, "duration_ms") ? kDuration : -1;
    case 'e':
      return KeyIs(key, "error_code") ? kError : -1;
    default:
      return -1;
  }
}

int MatchUnescaped(std::string_view key) noexcept {
  constexpr std::string_view kNames[] = {"ts",     "method",      "route",     "path",
                                         "status", "duration_ms", "error_code"};
  for (int i = 0; i < 7; ++i) {
    if (key == kNames[i]) return i;
  }
  return -1;
}

}  // namespace

// The record's fields, from a root object both paths (one record alone, or
// one of a block's stream) have opened.
std::optional<RejectReason> RecordParser::DecodeAccessLog(simdjson::ondemand::object& root,
                                                          bool escapes, size_t stream_end,
                                                          AccessLogEvent* out) noexcept {
  const json::Reader r(escapes);
  *out = AccessLogEvent{};
  json::SeenFields seen;
  std::string_view path;
  for (auto field_result : root) {
    simdjson::ondemand::field field;
    if (auto error = std::move(field_result).get(field)) return json::FromError(error);
    const char* raw_key = field.key().raw();
    int id = MatchField(raw_key);
    if (id < 0 && r.escapes()) id = MatchUnescaped(json::UnescapedIfEscaped(field, raw_key));
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
      case kMethod:
        reject = r.ReadLabel(v, &out->method);
        break;
      case kRoute:
        reject = r.ReadOptionalLabel(v, &out->route);
        break;
      case kPath:
        // Only needed when there is no route; skip the copy when route came first.
        if (out->route.empty()) {
          reject = r.ReadOptionalLabel(v, &path);
          if (reject == RejectReason::kOversize) reject.reset();  // only its route must fit
        } else {
          reject = r.ValidateSkipped(v, 2);
        }
        break;
      case kStatus: {
        int64_t status = 0;
        reject = r.ReadInt(v, &status);
        if (!reject && (status < 100 || status > 599)) reject = RejectReason::kOutOfRange;
        out->status = static_cast<uint16_t>(status);
        break;
      }
      case kDuration:
        reject = r.ReadDouble(v, &out->duration_ms);
        if (!reject && out->duration_ms < 0) reject = RejectReason::kOutOfRange;
        break;
      case kError:
        reject = r.ReadOptionalLabel(v, &out->error_code);
        break;
    }
    if (reject) return reject;
  }
  if (!RootEnded(stream_end)) return RejectReason::kMalformedJson;
  if (!seen.Has(kTs) || !seen.Has(kMethod) || !seen.Has(kStatus) || !seen.Has(kDuration) ||
      (out->route.empty() && path.empty())) {
    return RejectReason::kMissingField;
  }
  if (out->route.empty()) {
    NormaliseRoute(path, &route_);
    if (route_.empty()) return RejectReason::kMissingField;  // e.g. a bare query string
    if (route_.size() > kMaxLabelValueBytes) return RejectReason::kOversize;
    out->route = route_;
  }
  return std::nullopt;
}

std::optional<RejectReason> RecordParser::ParseAccessLog(const char* data, size_t len,
                                                         size_t capacity,
                                                         AccessLogEvent* out) noexcept {
  simdjson::ondemand::object root;
  if (auto reject = Start(data, len, capacity, &root)) return reject;
  return DecodeAccessLog(root, std::memchr(data, '\\', len) != nullptr, kWholeRecord, out);
}

bool RecordParser::NextAccessLog(size_t begin, size_t end, bool as_detected,
                                 AccessLogEvent* out) noexcept {
  // Accepted, the record has the raw keys "method" and "duration_ms", which
  // make DetectTopic say access log; unless a key is escaped, which
  // DetectTopic reads raw.
  if (as_detected && LineEscapes(begin, end)) return Settle(false);
  simdjson::ondemand::object root;
  if (!NextRoot(begin, &root)) return false;
  // Accepted only when the stream read it without a fault.
  return Settle(!DecodeAccessLog(root, LineEscapes(begin, end), end, out));
}

}  // namespace novapulse
