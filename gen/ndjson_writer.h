// The generator's file output: each topic to its own NDJSON file in a
// directory (access-log.ndjson, outbox.ndjson), gzip- or zstd-compressed
// when asked (".gz" / ".zst" appended). Buffered; the first error sticks.
//   absl::StatusOr<std::unique_ptr<TrafficSink>> sink =
//       MakeNdjsonDirSink("out", Compression::kZstd);
#ifndef NOVAPULSE_GEN_NDJSON_WRITER_H_
#define NOVAPULSE_GEN_NDJSON_WRITER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "gen/traffic_gen.h"
#include "parsers/event.h"

namespace novapulse {

enum class Compression : uint8_t { kNone, kGzip, kZstd };

// ".gz", ".zst" or "".
std::string_view CompressionSuffix(Compression c);
// The file of `topic` in `dir`: DIR/access-log.ndjson or DIR/outbox.ndjson,
// with the compression's suffix.
std::string NdjsonPath(const std::string& dir, Topic topic, Compression c);

// Creates `dir` if needed and opens both files, replacing what was there.
absl::StatusOr<std::unique_ptr<TrafficSink>> MakeNdjsonDirSink(const std::string& dir,
                                                               Compression compression);

}  // namespace novapulse

#endif  // NOVAPULSE_GEN_NDJSON_WRITER_H_
