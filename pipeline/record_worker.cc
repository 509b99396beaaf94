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

// The checks after a record decoded, then its aggregation.
template <typename Event>
bool Accept(Topic topic, const Event& event, NovaGiftMetrics::Writer& writer,
            const RecordLimits& limits) {
  if (event.ts_us > limits.future_limit_us) {
    writer.Reject(topic, RejectReason::kFutureTimestamp);
    return false;
  }
  writer.Record(event);
  return true;
}

// Calls `line(begin, first, len, end)` for each non-blank line of
// `data[0, size)`: the line is [begin, begin + len) without its newline (at
// `end`, or the block's end) or a trailing CR, and its first non-blank byte
// is at begin + first. With `rejected`, every line (blank ones too) is
// counted in rejected->lines_seen before. Returns the non-blank lines.
template <typename Line>
uint64_t ForEachLine(const char* data, size_t size, DeadLetterBatch* rejected, Line line) {
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
      line(pos, first, len, line_end);
    }
    pos = line_end + 1;
  }
  return records;
}

// A record decoded from the block's stream as `topic`; false when the
// stream could not accept it (the caller parses it alone).
bool FromStream(Topic topic, bool detected, size_t begin, size_t end, RecordParser& parser,
                NovaGiftMetrics::Writer& writer, const RecordLimits& limits) {
  if (topic == Topic::kAccessLog) {
    AccessLogEvent event;
    if (!parser.NextAccessLog(begin, end, detected, &event)) return false;
    Accept(topic, event, writer, limits);
    return true;
  }
  OutboxEvent event;
  if (!parser.NextOutbox(begin, end, detected, &event)) return false;
  Accept(topic, event, writer, limits);
  return true;
}

}  // namespace

bool ProcessRecord(Topic topic, const char* data, size_t len, size_t capacity, RecordParser& parser,
                   NovaGiftMetrics::Writer& writer, DeadLetterBatch* rejected,
                   const DeadLetterOrigin& origin, const RecordLimits& limits) {
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
    return Accept(topic, event, writer, limits);
  }
  OutboxEvent event;
  if (auto reject = parser.ParseOutbox(data, len, capacity, &event)) {
    Reject(topic, *reject, data, len, writer, rejected, origin);
    return false;
  }
  return Accept(topic, event, writer, limits);
}

uint64_t ProcessLines(Topic topic, const char* data, size_t size, size_t capacity,
                      RecordParser& parser, NovaGiftMetrics::Writer& writer,
                      DeadLetterBatch* rejected, const RecordLimits& limits) {
  // Lines come from one simdjson pass over the block (see StartBlock); a
  // line it does not accept is parsed alone, and so are the rest of the
  // block's lines once the parser says the block path has ended. When the
  // topic is detected per line, the block path takes the first record's
  // topic and accepts only records detection would give that topic too.
  bool streaming = false;
  bool stream_started = false;
  Topic stream_topic = topic;
  return ForEachLine(data, size, rejected, [&](size_t pos, size_t first, size_t len, size_t end) {
    DeadLetterOrigin origin;
    if (rejected != nullptr) origin.line = rejected->lines_seen;
    if (!stream_started) {
      stream_started = true;
      if (topic == Topic::kAuto) stream_topic = parser.DetectTopic(data + pos, len, capacity - pos);
      streaming =
          stream_topic != Topic::kAuto && parser.StartBlock(data, size, capacity, stream_topic);
    }
    // An oversize record is rejected before it is parsed: alone.
    if (!streaming || len > parser.max_record_bytes() ||
        !FromStream(stream_topic, topic == Topic::kAuto, pos + first, end, parser, writer,
                    limits)) {
      ProcessRecord(topic, data + pos, len, capacity - pos, parser, writer, rejected, origin,
                    limits);
      streaming = streaming && parser.streaming();
    }
  });
}

namespace {

void RejectSpec(int input, RejectReason reason, const char* data, size_t len,
                SpecMetrics::Writer& writer, DeadLetterBatch* rejected,
                const DeadLetterOrigin& origin) {
  writer.Reject(input, reason);
  if (rejected != nullptr) rejected->Add(reason, input, origin, {data, len});
}

// The checks after a spec record decoded, then its aggregation.
bool AcceptSpec(int input, const spec::SpecDecoder& decoder, SpecMetrics::Writer& writer,
                const char* data, size_t len, DeadLetterBatch* rejected,
                const DeadLetterOrigin& origin, const RecordLimits& limits) {
  const spec::InputSpec& in = decoder.plan().spec().inputs[input];
  if (decoder.values()[in.time_field].time_us > limits.future_limit_us) {
    RejectSpec(input, RejectReason::kFutureTimestamp, data, len, writer, rejected, origin);
    return false;
  }
  writer.Record(input, decoder.values());
  return true;
}

}  // namespace

bool ProcessSpecRecord(int input, const char* data, size_t len, size_t capacity,
                       spec::SpecDecoder& decoder, SpecMetrics::Writer& writer,
                       DeadLetterBatch* rejected, const DeadLetterOrigin& origin,
                       const RecordLimits& limits) {
  if (input < 0) input = decoder.Detect(data, len, capacity);
  if (input < 0) {
    // Not ours to tell: valid JSON of no input's shape, or not JSON at all.
    // Decode it as the first input only to name the reason.
    const std::optional<RejectReason> reject = decoder.Decode(0, data, len, capacity);
    RejectSpec(
        -1,
        reject && *reject != RejectReason::kMissingField ? *reject : RejectReason::kUnknownTopic,
        data, len, writer, rejected, origin);
    return false;
  }
  if (auto reject = decoder.Decode(input, data, len, capacity)) {
    RejectSpec(input, *reject, data, len, writer, rejected, origin);
    return false;
  }
  return AcceptSpec(input, decoder, writer, data, len, rejected, origin, limits);
}

uint64_t ProcessSpecLines(int input, const char* data, size_t size, size_t capacity,
                          spec::SpecDecoder& decoder, SpecMetrics::Writer& writer,
                          DeadLetterBatch* rejected, const RecordLimits& limits) {
  // Lines are read from the block's structural index (see
  // SpecDecoder::StartBlock); a line the block path does not accept, or
  // longer than a record may be, is decoded alone.
  decoder.StartBlock(data, size, capacity);
  return ForEachLine(data, size, rejected, [&](size_t pos, size_t first, size_t len, size_t end) {
    DeadLetterOrigin origin;
    if (rejected != nullptr) origin.line = rejected->lines_seen;
    int as = -1;
    if (len <= decoder.max_record_bytes() && decoder.Next(input, pos + first, end, &as)) {
      AcceptSpec(as, decoder, writer, data + pos, len, rejected, origin, limits);
    } else {
      ProcessSpecRecord(input, data + pos, len, capacity - pos, decoder, writer, rejected, origin,
                        limits);
    }
  });
}

}  // namespace novapulse
