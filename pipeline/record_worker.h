// The parallel stage's work on one record or one block of lines: decode with
// the worker's RecordParser, aggregate into the worker's shard, count every
// rejection by reason. Shared by every source.
//
// Runs on a worker thread that owns both `parser` and `writer` (and
// `rejected`, the dead letters of the batch being processed, when set).
#ifndef NOVAPULSE_PIPELINE_RECORD_WORKER_H_
#define NOVAPULSE_PIPELINE_RECORD_WORKER_H_

#include <cstddef>
#include <cstdint>

#include "aggregators/novagift_metrics.h"
#include "aggregators/spec_metrics.h"
#include "parsers/record_parser.h"
#include "sinks/dead_letter.h"
#include "spec/plan.h"

namespace novapulse {

// What the pipeline allows of a record beyond its schema.
struct RecordLimits {
  // Events stamped after this (microseconds) are rejected as
  // future_timestamp. No limit by default.
  int64_t future_limit_us = INT64_MAX;
};

// `data` is readable for `capacity` bytes (>= len + SIMDJSON_PADDING avoids a
// copy). Returns true when the record was accepted. A rejected record is
// also added to `rejected` (when not null) with `origin`.
bool ProcessRecord(Topic topic, const char* data, size_t len, size_t capacity, RecordParser& parser,
                   NovaGiftMetrics::Writer& writer, DeadLetterBatch* rejected = nullptr,
                   const DeadLetterOrigin& origin = {}, const RecordLimits& limits = {});

// Processes every line of `data[0, size)`; blank lines (and a trailing CR)
// are skipped. Returns the number of non-blank lines. With `rejected`, lines
// are numbered on from rejected->lines_seen, which ends up counting every
// line of the block, blank ones included.
uint64_t ProcessLines(Topic topic, const char* data, size_t size, size_t capacity,
                      RecordParser& parser, NovaGiftMetrics::Writer& writer,
                      DeadLetterBatch* rejected = nullptr, const RecordLimits& limits = {});

// The same for a metric spec's input `input` (-1: each record's input is
// detected, see spec::DetectSpec), decoded by the worker's SpecDecoder into
// its SpecMetrics writer; a dead letter's input is the spec's input index.
bool ProcessSpecRecord(int input, const char* data, size_t len, size_t capacity,
                       spec::SpecDecoder& decoder, SpecMetrics::Writer& writer,
                       DeadLetterBatch* rejected = nullptr, const DeadLetterOrigin& origin = {},
                       const RecordLimits& limits = {});
uint64_t ProcessSpecLines(int input, const char* data, size_t size, size_t capacity,
                          spec::SpecDecoder& decoder, SpecMetrics::Writer& writer,
                          DeadLetterBatch* rejected = nullptr, const RecordLimits& limits = {});

}  // namespace novapulse

#endif  // NOVAPULSE_PIPELINE_RECORD_WORKER_H_
