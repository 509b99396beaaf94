#include "parsers/record_parser.h"

#include <string.h>

#include <cstring>

#include "parsers/json_values.h"

namespace novapulse {

RecordParser::RecordParser(size_t max_record_bytes) : max_record_bytes_(max_record_bytes) {
  // Allocation failure here leaves the parser to allocate on first use.
  if (parser_.allocate(max_record_bytes_, kMaxJsonDepth) != simdjson::SUCCESS) return;
  route_.reserve(256);
}

std::optional<RejectReason> RecordParser::Start(const char* data, size_t len, size_t capacity,
                                                simdjson::ondemand::object* root) noexcept {
  if (len > max_record_bytes_) return RejectReason::kOversize;
  if (capacity < len + simdjson::SIMDJSON_PADDING) {
    const std::string_view padded = CopyToPadded({data, len});
    data = padded.data();
    capacity = padded_.size();
  }
  if (auto error = parser_.iterate(data, len, capacity).get(doc_)) return json::FromError(error);
  simdjson::ondemand::json_type type;
  if (auto error = doc_.type().get(type)) return json::FromError(error);
  if (type != simdjson::ondemand::json_type::object) {
    // The type is read from the first character only: "[1,2" or "123abc"
    // would pass for arrays and numbers. Rare, so a full DOM parse decides.
    simdjson::dom::element element;
    if (auto error = dom_.parse(data, len, /*realloc_if_needed=*/false).get(element)) {
      return json::FromError(error);
    }
    return RejectReason::kNotObject;
  }
  if (auto error = doc_.get_object().get(*root)) return json::FromError(error);
  return std::nullopt;
}

bool RecordParser::AtEnd() noexcept {
  const char* location;
  return doc_.current_location().get(location) == simdjson::OUT_OF_BOUNDS;
}

namespace {

bool Contains(std::string_view haystack, std::string_view needle) noexcept {
  return memmem(haystack.data(), haystack.size(), needle.data(), needle.size()) != nullptr;
}

// For records that do not parse: the keys' names still tell the likely topic,
// so the error is counted under it.
Topic ScanTopic(std::string_view record) noexcept {
  if (Contains(record, "\"method\"") || Contains(record, "\"duration_ms\"")) {
    return Topic::kAccessLog;
  }
  if (Contains(record, "\"type\"") || Contains(record, "\"attempt\"")) return Topic::kOutbox;
  return Topic::kAuto;
}

}  // namespace

Topic RecordParser::DetectTopic(const char* data, size_t len, size_t capacity) noexcept {
  simdjson::ondemand::object root;
  if (Start(data, len, capacity, &root)) return ScanTopic({data, len});
  // Top-level keys only (values are skipped unread), so a key inside `data`
  // or inside an unknown field cannot decide. Each schema's required keys
  // decide first, then any key only one schema has.
  bool method = false, duration = false, access_other = false;
  bool id = false, type = false, outbox_other = false;
  for (auto field_result : root) {
    simdjson::ondemand::field field;
    if (std::move(field_result).get(field)) return ScanTopic({data, len});
    const char* key = field.key().raw();
    using json::KeyIs;
    method |= KeyIs(key, "method");
    duration |= KeyIs(key, "duration_ms");
    access_other |= KeyIs(key, "route") || KeyIs(key, "path");
    id |= KeyIs(key, "id");
    type |= KeyIs(key, "type");
    outbox_other |= KeyIs(key, "attempt") || KeyIs(key, "processing_ms") || KeyIs(key, "data");
  }
  if (method && duration) return Topic::kAccessLog;
  if (id && type) return Topic::kOutbox;
  if (method || duration || access_other) return Topic::kAccessLog;
  if (id || type || outbox_other) return Topic::kOutbox;
  return Topic::kAuto;
}

Topic RecordParser::DetectTopic(std::string_view record) {
  if (record.size() > max_record_bytes_) return Topic::kAuto;
  const std::string_view padded = CopyToPadded(record);
  return DetectTopic(padded.data(), padded.size(), padded_.size());
}

std::string_view RecordParser::CopyToPadded(std::string_view record) {
  padded_.assign(record);
  padded_.append(simdjson::SIMDJSON_PADDING, ' ');
  return {padded_.data(), record.size()};
}

std::optional<RejectReason> RecordParser::ParseAccessLog(std::string_view record,
                                                         AccessLogEvent* out) {
  if (record.size() > max_record_bytes_) return RejectReason::kOversize;
  const std::string_view padded = CopyToPadded(record);
  return ParseAccessLog(padded.data(), padded.size(), padded_.size(), out);
}

std::optional<RejectReason> RecordParser::ParseOutbox(std::string_view record, OutboxEvent* out) {
  if (record.size() > max_record_bytes_) return RejectReason::kOversize;
  const std::string_view padded = CopyToPadded(record);
  return ParseOutbox(padded.data(), padded.size(), padded_.size(), out);
}

}  // namespace novapulse
