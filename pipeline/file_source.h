// FileSource reads NDJSON from a file or stdin ("-") in large chunks that end
// on a newline, so workers can parse the lines of a chunk independently.
// Compression is told by magic bytes, not the name: gzip and zstd are
// decompressed on the fly; anything else is read as plain text.
//
// Single-threaded: the pipeline's serial input stage owns it.
//   auto source = FileSource::Open("access.ndjson.zst", Topic::kAccessLog, options);
//   while (*source->Next(&chunk)) { ... }
#ifndef NOVAPULSE_PIPELINE_FILE_SOURCE_H_
#define NOVAPULSE_PIPELINE_FILE_SOURCE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "parsers/event.h"

namespace novapulse {

struct SourceOptions {
  size_t chunk_bytes = 1 << 20;
  size_t max_record_bytes = 1 << 20;
  // Bytes kept of each line dropped as oversize (Chunk::dropped), for dead
  // letters; 0 keeps none.
  size_t dropped_head_bytes = 0;
};

// A block of whole lines, plus room after them so any line can be handed to
// simdjson without a copy (its padding requirement).
struct Chunk {
  std::vector<char> buffer;  // capacity: chunk_bytes + max_record_bytes + padding
  size_t size = 0;           // bytes of lines in `buffer`
  Topic topic = Topic::kAuto;
  // Lines longer than max_record_bytes, dropped by the source and counted.
  uint32_t oversize_lines = 0;
  // With SourceOptions::dropped_head_bytes: the head and full length of each
  // of those lines, in input order. They precede the chunk's lines.
  struct DroppedLine {
    std::string head;
    uint64_t length = 0;
  };
  std::vector<DroppedLine> dropped;
  uint64_t input_bytes = 0;  // bytes of the (possibly compressed) input consumed so far
};

class ByteReader;

class FileSource {
 public:
  static absl::StatusOr<std::unique_ptr<FileSource>> Open(const std::string& path, Topic topic,
                                                          const SourceOptions& options);
  ~FileSource();

  // Fills `chunk` with the next whole lines. Returns false at end of input.
  absl::StatusOr<bool> Next(Chunk* chunk);

  // Size of the input on disk, 0 when unknown (stdin, pipes).
  uint64_t total_bytes() const { return total_bytes_; }
  const std::string& path() const { return path_; }
  // Size every Chunk buffer needs.
  size_t ChunkCapacity() const;

 private:
  FileSource(std::string path, Topic topic, const SourceOptions& options,
             std::unique_ptr<ByteReader> reader, uint64_t total_bytes);

  std::string path_;
  Topic topic_;
  SourceOptions options_;
  std::unique_ptr<ByteReader> reader_;
  uint64_t total_bytes_;
  std::vector<char> carry_;  // the incomplete last line of the previous read
  bool skipping_ = false;    // inside an oversize line, dropping to its newline
  bool eof_ = false;
};

}  // namespace novapulse

#endif  // NOVAPULSE_PIPELINE_FILE_SOURCE_H_
