// FileSource reads NDJSON from a file or stdin ("-") in large chunks that end
// on a newline, so workers can parse the lines of a chunk independently.
// Compression is told by magic bytes, not the name: gzip and zstd are
// decompressed on the fly; anything else is read as plain text.
//
// Single-threaded: the pipeline's serial input stage owns it.
//   auto source = FileSource::Open("access.ndjson.zst", options);
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
  // Serve uncompressed regular files from a read-only mapping instead of
  // read(2), without a copy; not those on tmpfs, where the copy is cheaper.
  // Another process truncating a mapped file ends this one with a message
  // (SIGBUS, caught); one rewriting it in place changes lines between the
  // parser's passes over them, where read(2) would have copied them once.
  bool map_files = false;
  // Mapped bytes left resident behind the next chunk; at least the bytes of
  // the chunks still being parsed (those further back fault their pages in
  // again when read).
  uint64_t mapped_behind_bytes = 8 << 20;
};

// A block of whole lines, plus room after them so any line can be handed to
// simdjson without a copy (its padding requirement).
struct Chunk {
  // The lines: data[0, size), readable up to data[capacity). `data` points
  // into `buffer`, or into the source's mapping of the file (valid while the
  // source lives).
  const char* data = nullptr;
  size_t size = 0;
  size_t capacity = 0;
  std::vector<char> buffer;  // for read(2): chunk_bytes + max_record_bytes + padding
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

  bool mapped() const { return data != nullptr && data != buffer.data(); }
};

class ByteReader;

class FileSource {
 public:
  static absl::StatusOr<std::unique_ptr<FileSource>> Open(const std::string& path,
                                                          const SourceOptions& options);
  ~FileSource();

  // Fills `chunk` with the next whole lines. Returns false at end of input.
  absl::StatusOr<bool> Next(Chunk* chunk);

  // Size of the input on disk, 0 when unknown (stdin, pipes).
  uint64_t total_bytes() const { return total_bytes_; }
  const std::string& path() const { return path_; }
  // Size every Chunk buffer needs.
  size_t ChunkCapacity() const;
  // Whether chunks come from a mapping of the file (so far).
  bool mapped() const { return map_ != nullptr && !map_done_; }

 private:
  FileSource(std::string path, const SourceOptions& options, std::unique_ptr<ByteReader> reader,
             uint64_t total_bytes);
  absl::StatusOr<bool> NextMapped(Chunk* chunk);
  absl::StatusOr<bool> NextRead(Chunk* chunk);
  // An error when the file is now shorter than it was at open.
  absl::Status CheckNotShrunk() const;
  void Map(int fd, uint64_t start);
  // Drops the mapping's pages more than mapped_behind_bytes before
  // `position` from memory.
  void ReleaseBehind(uint64_t position);

  std::string path_;
  SourceOptions options_;
  std::unique_ptr<ByteReader> reader_;
  uint64_t total_bytes_;
  std::vector<char> carry_;  // the incomplete last line of the previous read
  bool skipping_ = false;    // inside an oversize line, dropping to its newline
  bool eof_ = false;
  // The mapping of a plain file: chunks come from it up to where the final
  // chunk would lack padding, then the rest through read(2).
  const char* map_ = nullptr;
  uint64_t map_size_ = 0;
  int map_slot_ = -1;      // its entry in the SIGBUS handler's table
  uint64_t offset_ = 0;    // next byte of the mapping to serve
  uint64_t released_ = 0;  // pages before this are dropped from memory
  bool map_done_ = false;
  // The stretch an oversize line is scanned for its newline at a time.
  static constexpr uint64_t kOversizeScanBytes = 4 << 20;
};

}  // namespace novapulse

#endif  // NOVAPULSE_PIPELINE_FILE_SOURCE_H_
