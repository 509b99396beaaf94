// The parallel stage's work on one record or one block of lines: decode with
// the worker's RecordParser, aggregate into the worker's shard, count every
// rejection by reason. Shared by every source.
//
// Runs on a worker thread that owns both `parser` and `writer`.
#ifndef NOVAPULSE_PIPELINE_RECORD_WORKER_H_
#define NOVAPULSE_PIPELINE_RECORD_WORKER_H_

#include <cstddef>
#include <cstdint>

#include "aggregators/novagift_metrics.h"
#include "parsers/record_parser.h"

namespace novapulse {

// `data` is readable for `capacity` bytes (>= len + SIMDJSON_PADDING avoids a
// copy). Returns true when the record was accepted.
bool ProcessRecord(Topic topic, const char* data, size_t len, size_t capacity, RecordParser& parser,
                   NovaGiftMetrics::Writer& writer);

// Processes every line of `data[0, size)`; blank lines (and a trailing CR)
// are skipped. Returns the number of non-blank lines.
uint64_t ProcessLines(Topic topic, const char* data, size_t size, size_t capacity,
                      RecordParser& parser, NovaGiftMetrics::Writer& writer);

}  // namespace novapulse

#endif  // NOVAPULSE_PIPELINE_RECORD_WORKER_H_
