#include "parsers/record_parser.h"

#include <string.h>

#include <algorithm>
#include <bit>
#include <cstring>

#include "parsers/json_values.h"

namespace novapulse {

RecordParser::RecordParser(size_t max_record_bytes, size_t index_window_bytes)
    : max_record_bytes_(max_record_bytes), index_(index_window_bytes) {
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

bool RecordParser::RootEnded(size_t stream_end) noexcept {
  const char* location;
  if (stream_end == kWholeRecord) {
    return doc_.current_location().get(location) == simdjson::OUT_OF_BOUNDS;
  }
  // Between the record's last token and the stream's next token (another
  // document's first, or the block's end) there is only whitespace. So the
  // record ended on its line, with nothing but whitespace after it there,
  // exactly when the bytes from the line's end to that next token are all
  // whitespace: usually a single newline.
  const simdjson::error_code error = (*next_).current_location().get(location);
  if (error && error != simdjson::OUT_OF_BOUNDS) return false;
  const char* const next = error ? block_ + block_size_ : location;
  for (const char* p = block_ + stream_end; p < next; ++p) {
    if (!json::detail::IsJsonSpace(*p)) return false;
  }
  return next >= block_ + stream_end;
}

namespace {

// Blocks up to this size are streamed (the replay's chunks are 1 MiB plus
// one record by default); a larger one is parsed line by line rather than
// holding a parser of its size.
constexpr size_t kMaxStreamBlockBytes = size_t{64} << 20;
constexpr size_t kMinStreamBatchBytes = size_t{1} << 16;

}  // namespace

bool RecordParser::StartBlock(const char* data, size_t size, size_t capacity,
                              Topic topic) noexcept {
  streaming_ = false;
  indexed_ = false;
  if (size == 0 || size > kMaxStreamBlockBytes || capacity < size + simdjson::SIMDJSON_PADDING) {
    return false;
  }
  block_ = data;
  block_size_ = size;
  if (topic == Topic::kAccessLog) {  // indexed a window at a time, as its lines come
    indexed_ = index_.Start(data, size, capacity);
    streaming_ = indexed_;
    return indexed_;
  }
  block_escapes_ = std::memchr(data, '\\', size) != nullptr;
#ifdef SIMDJSON_THREADS_ENABLED
  // Stage 1 of the next batch on a thread of its own would take a second
  // core per worker; the workers are the parallelism here.
  stream_parser_.threaded = false;
#endif
  // One batch covers the whole block, so each document's end is known to be
  // the block's or the next document's start. The batch size only grows,
  // so the parser is reallocated a few times at most.
  stream_batch_ = std::max(stream_batch_, std::max(kMinStreamBatchBytes, std::bit_ceil(size)));
  if (stream_parser_.iterate_many(data, size, stream_batch_).get(stream_)) return false;
  next_ = stream_.begin();  // runs stage 1 over the block
  if (!(next_ != stream_.end()) || (*next_).error()) return false;
  started_ = true;
  streaming_ = true;
  return true;
}

bool RecordParser::NextRoot(size_t begin, simdjson::ondemand::object* root) noexcept {
  if (!streaming_) return false;
  if (!started_) ++next_;  // skips what is left of the previous document
  started_ = false;
  simdjson::ondemand::document_reference doc;
  if (!(next_ != stream_.end()) || (*next_).get(doc) || next_.current_index() != begin) {
    streaming_ = false;
    return false;
  }
  simdjson::ondemand::json_type type;
  if (doc.type().get(type) || type != simdjson::ondemand::json_type::object ||
      doc.get_object().get(*root)) {
    streaming_ = false;
    return false;
  }
  return true;
}

bool RecordParser::Settle(bool accepted) noexcept {
  streaming_ = accepted;
  streamed_ += accepted ? 1 : 0;
  return accepted;
}

bool RecordParser::LineEscapes(size_t begin, size_t end) const noexcept {
  return block_escapes_ && std::memchr(block_ + begin, '\\', end - begin) != nullptr;
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
