// RecordParser decodes one NDJSON record (an access-log line or an outbox
// envelope) with simdjson's On-Demand API.
//
// One RecordParser per worker thread, reused for every record: it owns the
// simdjson parser and the buffers that string_views in the decoded events
// point into. Not thread-safe. The decoded event is valid until the next Parse
// call on the same RecordParser.
//
// Input must be readable for `len + simdjson::SIMDJSON_PADDING` bytes
// (`capacity` says how many bytes are readable from `data`); the pipeline's
// chunk buffers guarantee that, so records are never copied.
//
//   RecordParser parser;
//   AccessLogEvent event;
//   if (auto err = parser.ParseAccessLog(line, len, cap, &event)) Count(*err);
#ifndef NOVAPULSE_PARSERS_RECORD_PARSER_H_
#define NOVAPULSE_PARSERS_RECORD_PARSER_H_

#include <simdjson.h>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "parsers/event.h"

namespace novapulse {

inline constexpr size_t kDefaultMaxRecordBytes = 1 << 20;

class RecordParser {
 public:
  explicit RecordParser(size_t max_record_bytes = kDefaultMaxRecordBytes);
  RecordParser(const RecordParser&) = delete;
  RecordParser& operator=(const RecordParser&) = delete;

  // Each returns nullopt on success, else the reason the record is rejected.
  [[nodiscard]] std::optional<RejectReason> ParseAccessLog(const char* data, size_t len,
                                                           size_t capacity,
                                                           AccessLogEvent* out) noexcept;
  [[nodiscard]] std::optional<RejectReason> ParseOutbox(const char* data, size_t len,
                                                        size_t capacity, OutboxEvent* out) noexcept;

  // Which topic a record belongs to, for inputs that mix both: the first
  // top-level key only one schema has decides. kAuto when no key decides or
  // the record is not a JSON object (parse it as either to learn why).
  [[nodiscard]] Topic DetectTopic(const char* data, size_t len, size_t capacity) noexcept;

  // Convenience for tests and tools: copies `record` into a padded buffer.
  [[nodiscard]] std::optional<RejectReason> ParseAccessLog(std::string_view record,
                                                           AccessLogEvent* out);
  [[nodiscard]] std::optional<RejectReason> ParseOutbox(std::string_view record, OutboxEvent* out);
  [[nodiscard]] Topic DetectTopic(std::string_view record);

 private:
  [[nodiscard]] std::optional<RejectReason> Start(const char* data, size_t len, size_t capacity,
                                                  simdjson::ondemand::object* root) noexcept;
  std::string_view CopyToPadded(std::string_view record);
  // True when nothing but whitespace follows the root value.
  bool AtEnd() noexcept;

  simdjson::ondemand::parser parser_;
  simdjson::ondemand::document doc_;
  simdjson::dom::parser dom_;  // validates records whose root is not an object
  size_t max_record_bytes_;
  std::string route_;   // normalised route when only `path` is given
  std::string padded_;  // scratch for the string_view overloads
};

}  // namespace novapulse

#endif  // NOVAPULSE_PARSERS_RECORD_PARSER_H_
