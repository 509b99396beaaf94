// RecordParser decodes one NDJSON record (an access-log line or an outbox
// envelope) with simdjson's On-Demand API, or a block of them in one simdjson
// pass (see StartBlock).
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
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "parsers/block_index.h"
#include "parsers/event.h"

namespace novapulse {

namespace json {
class SeenFields;
}  // namespace json

inline constexpr size_t kDefaultMaxRecordBytes = 1 << 20;
// Stage 1 indexes an access-log block this much at a time (see BlockIndex).
inline constexpr size_t kDefaultIndexWindowBytes = json::kDefaultIndexWindowBytes;

class RecordParser {
 public:
  // `index_window_bytes` is for tests, which move the windows' edges.
  explicit RecordParser(size_t max_record_bytes = kDefaultMaxRecordBytes,
                        size_t index_window_bytes = kDefaultIndexWindowBytes);
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

  // Blocks: one simdjson stage-1 pass over a block of newline-delimited
  // records instead of one per record. Access-log lines are then read
  // straight from the block's structural index (see flat_record.h), outbox
  // envelopes from an On-Demand stream (iterate_many) over the block. The
  // block path only ever accepts; a record it does not accept is parsed
  // alone with the calls above, which name the reasons. So a block's
  // results are those of its lines parsed alone.
  //
  //   bool streaming = parser.StartBlock(block, size, capacity, topic);
  //   for each non-blank line [begin, end) of the block, in order:
  //     if (!streaming || !parser.NextAccessLog(begin, end, false, &event))
  //       ... ParseAccessLog(line) ...
  //     streaming = streaming && parser.streaming();
  //
  // StartBlock returns false when the block cannot be streamed (too large;
  // for outbox, stage 1 rejects it, e.g. one line holds invalid UTF-8). An
  // access-log window stage 1 rejects has its lines parsed alone.
  // `data` must be readable for `capacity` >= size + SIMDJSON_PADDING bytes.
  [[nodiscard]] bool StartBlock(const char* data, size_t size, size_t capacity,
                                Topic topic) noexcept;
  // Decodes the block's next record, which must be the whole line whose
  // first non-blank byte is at offset `begin` and whose newline (or the
  // block's end) is at `end`. True when accepted. Past a record not
  // accepted, streaming() says whether the block's later lines may still
  // come from the block path (always for access logs, never for outbox).
  // With `as_detected` (blocks whose topic is detected per line), a record
  // is accepted only when DetectTopic would surely find it of this topic.
  [[nodiscard]] bool NextAccessLog(size_t begin, size_t end, bool as_detected,
                                   AccessLogEvent* out) noexcept;
  [[nodiscard]] bool NextOutbox(size_t begin, size_t end, bool as_detected,
                                OutboxEvent* out) noexcept;
  bool streaming() const noexcept { return streaming_; }
  size_t max_record_bytes() const noexcept { return max_record_bytes_; }
  // Records accepted from block streams so far (for tests and benchmarks).
  uint64_t streamed() const noexcept { return streamed_; }

  // Convenience for tests and tools: copies `record` into a padded buffer.
  [[nodiscard]] std::optional<RejectReason> ParseAccessLog(std::string_view record,
                                                           AccessLogEvent* out);
  [[nodiscard]] std::optional<RejectReason> ParseOutbox(std::string_view record, OutboxEvent* out);
  [[nodiscard]] Topic DetectTopic(std::string_view record);

 private:
  [[nodiscard]] std::optional<RejectReason> Start(const char* data, size_t len, size_t capacity,
                                                  simdjson::ondemand::object* root) noexcept;
  std::string_view CopyToPadded(std::string_view record);
  // The fields of a record whose root object is open; for outbox,
  // `stream_end` is the line's end when it comes from a block's stream, else
  // kWholeRecord.
  static constexpr size_t kWholeRecord = ~size_t{0};
  [[nodiscard]] std::optional<RejectReason> DecodeAccessLog(simdjson::ondemand::object& root,
                                                            bool escapes,
                                                            AccessLogEvent* out) noexcept;
  // The checks after the last field, for both access-log decoders.
  [[nodiscard]] std::optional<RejectReason> FinishAccessLog(const json::SeenFields& seen,
                                                            std::string_view path,
                                                            AccessLogEvent* out) noexcept;
  // The line [begin, end) of an indexed block: true when the fast path
  // accepts it (then `out` is what DecodeAccessLog would give).
  [[nodiscard]] bool DecodeFlatAccessLog(size_t begin, size_t end, AccessLogEvent* out) noexcept;
  [[nodiscard]] std::optional<RejectReason> DecodeOutbox(simdjson::ondemand::object& root,
                                                         bool escapes, size_t stream_end,
                                                         OutboxEvent* out) noexcept;
  // True when nothing but whitespace follows the root value: in the record
  // alone, or on its line of the block.
  [[nodiscard]] bool RootEnded(size_t stream_end) noexcept;

  // Block streaming: the next document's root object when it starts at
  // `begin`; the stream's state after a record; the line's escapes.
  [[nodiscard]] bool NextRoot(size_t begin, simdjson::ondemand::object* root) noexcept;
  [[nodiscard]] bool Settle(bool accepted) noexcept;
  [[nodiscard]] bool LineEscapes(size_t begin, size_t end) const noexcept;

  simdjson::ondemand::parser parser_;
  simdjson::ondemand::document doc_;
  simdjson::dom::parser dom_;  // validates records whose root is not an object
  size_t max_record_bytes_;
  std::string route_;   // normalised route when only `path` is given
  std::string padded_;  // scratch for the string_view overloads

  // Access-log blocks: stage 1 alone, a window of lines at a time, its
  // structural index walked by DecodeFlatAccessLog.
  json::BlockIndex index_;
  bool indexed_ = false;

  simdjson::ondemand::parser stream_parser_;  // sized for whole blocks
  simdjson::ondemand::document_stream stream_;
  simdjson::ondemand::document_stream::iterator next_;
  size_t stream_batch_ = 0;      // the batch size stream_parser_ is allocated for
  const char* block_ = nullptr;  // the block being streamed
  size_t block_size_ = 0;
  bool streaming_ = false;      // later lines may still come from the block
  bool started_ = false;        // next_ is at the first document, not yet taken
  bool block_escapes_ = false;  // the outbox block has a backslash
  uint64_t streamed_ = 0;
};

}  // namespace novapulse

#endif  // NOVAPULSE_PARSERS_RECORD_PARSER_H_
