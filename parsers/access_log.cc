// Access-log line decoding: RecordParser::ParseAccessLog.
#include <cstring>

#include "absl/base/attributes.h"
#include "parsers/flat_record.h"
#include "parsers/json_values.h"
#include "parsers/record_parser.h"
#include "parsers/route.h"

namespace novapulse {
namespace {

enum Field : int { kTs, kMethod, kRoute, kPath, kStatus, kDuration, kError };

// Known key of a raw key, -1 for any other. `request_id`, `instance` and
// `bytes_out` are part of the schema but feed no metric, so they are skipped
// unread like unknown keys. Inlined into both decoders: it runs for every
// field of every record.
ABSL_ATTRIBUTE_ALWAYS_INLINE inline int MatchField(const char* key) noexcept {
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

// One known field's value into `out`; `path` keeps the raw path until the
// end shows whether a route came. The same for both decoders: `Reader` is
// json::Reader over On-Demand values or json::TokenReader over raw tokens.
template <typename Reader, typename Value>
json::Reject ReadField(const Reader& r, int id, Value& v, std::string_view* path,
                       AccessLogEvent* out) noexcept {
  json::Reject reject;
  switch (id) {
    case kTs:
      return r.ReadTimestamp(v, &out->ts_us);
    case kMethod:
      return r.ReadLabel(v, &out->method);
    case kRoute:
      return r.ReadOptionalLabel(v, &out->route);
    case kPath:
      // Only needed when there is no route; skip the copy when route came first.
      if (!out->route.empty()) return r.ValidateSkipped(v, 2);
      reject = r.ReadOptionalLabel(v, path);
      if (reject == RejectReason::kOversize) reject.reset();  // only its route must fit
      return reject;
    case kStatus: {
      int64_t status = 0;
      reject = r.ReadInt(v, &status);
      if (!reject && (status < 100 || status > 599)) reject = RejectReason::kOutOfRange;
      out->status = static_cast<uint16_t>(status);
      return reject;
    }
    case kDuration:
      reject = r.ReadDouble(v, &out->duration_ms);
      if (!reject && out->duration_ms < 0) reject = RejectReason::kOutOfRange;
      return reject;
    case kError:
      return r.ReadOptionalLabel(v, &out->error_code);
    default:
      return r.ValidateSkipped(v, 2);
  }
}

}  // namespace

std::optional<RejectReason> RecordParser::FinishAccessLog(const json::SeenFields& seen,
                                                          std::string_view path,
                                                          AccessLogEvent* out) noexcept {
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

// The record's fields, On-Demand, from the root object Start opened.
std::optional<RejectReason> RecordParser::DecodeAccessLog(simdjson::ondemand::object& root,
                                                          bool escapes,
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
    if (id >= 0 && !seen.Mark(id)) return RejectReason::kDuplicateField;
    if (auto reject = ReadField(r, id, field.value(), &path, out)) return reject;
  }
  if (!RootEnded(kWholeRecord)) return RejectReason::kMalformedJson;
  return FinishAccessLog(seen, path, out);
}

bool RecordParser::DecodeFlatAccessLog(size_t begin, size_t end, AccessLogEvent* out) noexcept {
  // Lines with a backslash take the On-Demand path, which unescapes.
  uint32_t first;
  if (!index_.Line(begin, &first) || index_.Escapes(begin, end)) return false;
  const json::TokenReader r;
  *out = AccessLogEvent{};
  json::SeenFields seen;
  std::string_view path;
  json::FlatFields fields(index_.window(), index_.index(), index_.count(), first);
  while (fields.Next()) {
    const int id = MatchField(fields.key());
    if (id >= 0 && !seen.Mark(id)) return false;
    std::string_view value = fields.value();
    if (ReadField(r, id, value, &path, out)) return false;
  }
  // The object ends on its line, with only whitespace after it there.
  if (!fields.ended() || !index_.EndsLine(fields.next() - 1, end)) return false;
  if (FinishAccessLog(seen, path, out)) return false;
  index_.Advance(fields.next());
  return true;
}

std::optional<RejectReason> RecordParser::ParseAccessLog(const char* data, size_t len,
                                                         size_t capacity,
                                                         AccessLogEvent* out) noexcept {
  simdjson::ondemand::object root;
  if (auto reject = Start(data, len, capacity, &root)) return reject;
  return DecodeAccessLog(root, std::memchr(data, '\\', len) != nullptr, out);
}

bool RecordParser::NextAccessLog(size_t begin, size_t end, bool /*as_detected*/,
                                 AccessLogEvent* out) noexcept {
  // Accepted, the record has the raw keys "method" and "duration_ms" and no
  // backslash, so DetectTopic says access log: `as_detected` asks nothing
  // more. A line not accepted is parsed alone; the index stays valid and
  // the next line is read from it again.
  const bool accepted = indexed_ && DecodeFlatAccessLog(begin, end, out);
  streamed_ += accepted ? 1 : 0;
  return accepted;
}

}  // namespace novapulse
