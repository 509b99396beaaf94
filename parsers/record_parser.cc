#include "parsers/record_parser.h"

#include <cstring>

#include "parsers/json_values.h"

namespace novapulse {

namespace {

bool Contains(std::string_view haystack, std::string_view needle) noexcept {
  // glibc's memmem skips ahead by whole windows; string_view::find stops at
  // every occurrence of the needle's first byte, which is '"' here.
  return memmem(haystack.data(), haystack.size(), needle.data(), needle.size()) != nullptr;
}

}  // namespace

Topic DetectTopic(std::string_view record) noexcept {
  // A key only the access log has, then keys only the outbox envelope has.
  if (Contains(record, "\"method\"")) return Topic::kAccessLog;
  if (Contains(record, "\"attempt\"") || Contains(record, "\"type\"")) return Topic::kOutbox;
  if (Contains(record, "\"duration_ms\"")) return Topic::kAccessLog;
  return Topic::kAuto;
}

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
  if (type != simdjson::ondemand::json_type::object) return RejectReason::kNotObject;
  if (auto error = doc_.get_object().get(*root)) return json::FromError(error);
  return std::nullopt;
}

bool RecordParser::AtEnd() noexcept {
  const char* location;
  return doc_.current_location().get(location) == simdjson::OUT_OF_BOUNDS;
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
