#include "pipeline/record_worker.h"

#include <cstring>

namespace novapulse {

namespace {

void Reject(Topic topic, RejectReason reason, const char* data, size_t len,
            NovaGiftMetrics::Writer& writer, DeadLetterBatch* rejected,
            const DeadLetterOrigin& origin) {
  writer.Reject(topic, reason);
  if (rejected != nullptr) rejected->Add(reason, topic, origin, {data, len});
}

}  // namespace

bool ProcessRecord(Topic topic, const char* data, size_t len, size_t capacity, RecordParser& parser,
                   NovaGiftMetrics::Writer& writer, DeadLetterBatch* rejected,
                   const DeadLetterOrigin& origin) {
  if (topic == Topic::kAuto) {
    topic = parser.DetectTopic(data, len, capacity);
    if (topic == Topic::kAuto) {
      // Not ours to tell: valid JSON of neither schema, or not JSON at all.
      // Parse as an access log line only to name the reason.
      AccessLogEvent scratch;
      const std::optional<RejectReason> reject =
          parser.ParseAccessLog(data, len, capacity, &scratch);
      Reject(
          Topic::kAuto,
          reject && *reject != RejectReason::kMissingField ? *reject : RejectReason::kUnknownTopic,
          data, len, writer, rejected, origin);
      return false;
    }
  }
  if (topic == Topic::kAccessLog) {
    AccessLogEvent event;
    if (auto reject = parser.ParseAccessLog(data, len, capacity, &event)) {
      Reject(topic, *reject, data, len, writer, rejected, origin);
      return false;
    }
    if (event.ts_us > writer.future_limit_us()) {
      writer.Reject(topic, RejectReason::kFutureTimestamp);
      return false;
    }
    writer.Record(event);
    return true;
  }
  OutboxEvent event;
  if (auto reject = parser.ParseOutbox(data, len, capacity, &event)) {
    Reject(topic, *reject, data, len, writer, rejected, origin);
    return false;
  }
  if (event.ts_us > writer.future_limit_us()) {
    writer.Reject(topic, RejectReason::kFutureTimestamp);
    return false;
  }
  writer.Record(event);
  return true;
}

uint64_t ProcessLines(Topic topic, const char* data, size_t size, size_t capacity,
                      RecordParser& parser, NovaGiftMetrics::Writer& writer,
                      DeadLetterBatch* rejected) {
  uint64_t records = 0;
  size_t pos = 0;
  while (pos < size) {
    const char* nl = static_cast<const char*>(std::memchr(data + pos, '\n', size - pos));
    const size_t line_end = nl ? static_cast<size_t>(nl - data) : size;
    if (rejected != nullptr) ++rejected->lines_seen;
    size_t len = line_end - pos;
    if (len > 0 && data[pos + len - 1] == '\r') --len;
    size_t first = 0;
    while (first < len && (data[pos + first] == ' ' || data[pos + first] == '\t')) ++first;
    if (first < len) {
      ++records;
      DeadLetterOrigin origin;
      if (rejected != nullptr) origin.line = rejected->lines_seen;
      ProcessRecord(topic, data + pos, len, capacity - pos, parser, writer, rejected, origin);
    }
    pos = line_end + 1;
  }
  return records;
}

}  // namespace novapulse
