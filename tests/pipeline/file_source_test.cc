#include "pipeline/file_source.h"

#include <simdjson.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "aggregators/novagift_metrics.h"
#include "gtest/gtest.h"
#include "pipeline/replay.h"
#include "tests/pipeline/test_process.h"

namespace novapulse {
namespace {

using ::novapulse::testing::OnTmpfs;
using ::novapulse::testing::ScratchDir;
using ::novapulse::testing::StdinFrom;
using ::novapulse::testing::WriteWholeFile;

// A hang in a decompressor must fail the test, not stall the suite: SIGALRM's
// default action ends the process, which the runner reports as a failure.
class HangGuard {
 public:
  explicit HangGuard(unsigned seconds) { alarm(seconds); }
  ~HangGuard() { alarm(0); }
};

struct ReadResult {
  absl::Status status;
  std::vector<std::string> chunks;
  std::string joined;
  uint64_t oversize_lines = 0;
  uint64_t last_input_bytes = 0;
  uint64_t total_bytes = 0;
  std::vector<std::string> problems;  // chunk invariants that did not hold
  std::vector<std::string> dropped;   // "length:head" of each oversize line
  uint64_t mapped_chunks = 0;         // chunks served from a mapping of the file
};

// Reads `path` to the end, checking every chunk's invariants on the way.
ReadResult ReadAll(const std::string& path, const SourceOptions& options) {
  ReadResult r;
  absl::StatusOr<std::unique_ptr<FileSource>> source = FileSource::Open(path, options);
  if (!source.ok()) {
    r.status = source.status();
    return r;
  }
  r.total_bytes = (*source)->total_bytes();
  Chunk chunk;
  for (int guard = 0; guard < 10'000'000; ++guard) {
    absl::StatusOr<bool> more = (*source)->Next(&chunk);
    if (!more.ok()) {
      r.status = more.status();
      return r;
    }
    if (!*more) break;
    if (chunk.size > options.chunk_bytes + options.max_record_bytes) {
      r.problems.push_back("chunk of " + std::to_string(chunk.size) + " bytes exceeds its room");
    }
    if (chunk.capacity < chunk.size + simdjson::SIMDJSON_PADDING) {
      r.problems.push_back("chunk lacks simdjson padding");
    }
    if (chunk.mapped()) ++r.mapped_chunks;
    for (const Chunk::DroppedLine& d : chunk.dropped) {
      r.dropped.push_back(std::to_string(d.length) + ":" + d.head);
    }
    if (chunk.size == 0 && chunk.oversize_lines == 0) r.problems.push_back("empty chunk");
    r.oversize_lines += chunk.oversize_lines;
    r.last_input_bytes = chunk.input_bytes;
    r.chunks.emplace_back(chunk.data, chunk.size);
    r.joined += r.chunks.back();
  }
  // Every chunk but the input's last ends on a newline.
  for (size_t i = 0; i + 1 < r.chunks.size(); ++i) {
    if (!r.chunks[i].empty() && r.chunks[i].back() != '\n') {
      r.problems.push_back("chunk " + std::to_string(i) + " does not end on a newline");
    }
  }
  return r;
}

// Lines of random printable text (never a newline), some empty, some with a
// trailing CR; the last one without its newline when asked.
std::string RandomLines(uint64_t seed, size_t count, size_t max_len, bool final_newline) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<size_t> len(0, max_len);
  std::uniform_int_distribution<int> ch(0x20, 0x7e);
  std::string out;
  for (size_t i = 0; i < count; ++i) {
    const size_t n = i % 17 == 0 ? 0 : len(rng);
    for (size_t j = 0; j < n; ++j) out += static_cast<char>(ch(rng));
    if (i % 23 == 5) out += '\r';
    if (i + 1 < count || final_newline) out += '\n';
  }
  return out;
}

std::string Gzip(std::string_view in) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&zs, in.size()) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

// One zstd frame; with a content checksum when asked (as `zstd` writes by default).
std::string Zstd(std::string_view in, bool checksum = false) {
  ZSTD_CCtx* cctx = ZSTD_createCCtx();
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, 3);
  ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, checksum ? 1 : 0);
  std::string out(ZSTD_compressBound(in.size()), '\0');
  const size_t n = ZSTD_compress2(cctx, out.data(), out.size(), in.data(), in.size());
  ZSTD_freeCCtx(cctx);
  EXPECT_FALSE(ZSTD_isError(n)) << ZSTD_getErrorName(n);
  out.resize(n);
  return out;
}

// An access-log line that parses, exactly `size` bytes long (without the
// newline) thanks to an unknown padding field.
std::string AccessLineOfSize(size_t size) {
  const std::string head =
      R"({"ts":"2026-11-26T00:00:01.000Z","method":"GET","route":"/api/gifts","status":200,)"
      R"("duration_ms":12.5,"pad":")";
  const std::string tail = "\"}";
  EXPECT_GE(size, head.size() + tail.size());
  return head + std::string(size - head.size() - tail.size(), 'x') + tail;
}

uint64_t CounterValue(const std::vector<FamilySnapshot>& families, std::string_view name,
                      std::initializer_list<std::string_view> labels) {
  std::string key;
  BuildKey(&key, labels);
  for (const FamilySnapshot& f : families) {
    if (f.def->name != name) continue;
    for (size_t s = 0; s < f.size(); ++s) {
      if (f.keys[s] == key) return f.Word(s, 0);
    }
  }
  return UINT64_MAX;
}

TEST(FileSource, ChunksEndOnNewlinesAndTogetherReproduceTheInput) {
  ScratchDir dir;
  for (const bool final_newline : {true, false}) {
    const std::string input = RandomLines(final_newline ? 1 : 2, 3000, 300, final_newline);
    const std::string path = dir.Path("lines.ndjson");
    WriteWholeFile(path, input);
    for (const size_t chunk_bytes : {64, 100, 1000, 4096}) {
      SCOPED_TRACE("chunk_bytes=" + std::to_string(chunk_bytes) +
                   " final_newline=" + std::to_string(final_newline));
      const ReadResult r = ReadAll(path, {.chunk_bytes = chunk_bytes, .max_record_bytes = 512});
      ASSERT_TRUE(r.status.ok()) << r.status;
      EXPECT_TRUE(r.problems.empty()) << r.problems.front();
      EXPECT_EQ(r.oversize_lines, 0u);
      EXPECT_EQ(r.joined, input);
      EXPECT_GT(r.chunks.size(), input.size() / (chunk_bytes + 512));
      EXPECT_EQ(r.chunks.back().back() == '\n', final_newline);
    }
  }
}

// Plain files are served from a mapping of the file up to where the final
// chunk would lack padding, then through read(2). Both paths must cut the
// same chunks and drop the same oversize lines, wherever the switch falls.
TEST(FileSource, MappedChunksAreTheChunksReadWouldGive) {
  ScratchDir dir;
  if (OnTmpfs(dir.Path(""))) GTEST_SKIP() << "the scratch directory is on tmpfs, never mapped";
  std::mt19937_64 rng(5);
  for (int round = 0; round < 40; ++round) {
    const size_t chunk_bytes = 64 + rng() % 2000;
    const size_t max_record_bytes = 64 + rng() % 600;
    std::string input = round % 5 == 0 ? "\xEF\xBB\xBF" : "";
    input += RandomLines(round, 200 + rng() % 3000, 200, round % 2 == 0);
    // Oversize lines here and there, one possibly at the very end.
    for (int k = 0; k < 3; ++k) {
      const size_t at = input.find('\n', rng() % input.size());
      if (at == std::string::npos) continue;
      input.insert(at + 1, std::string(max_record_bytes + rng() % (3 * chunk_bytes), 'o') + "\n");
    }
    if (round % 7 == 3) input += std::string(chunk_bytes + max_record_bytes + 10, 'z');
    const std::string path = dir.Path("lines.ndjson");
    WriteWholeFile(path, input);
    SCOPED_TRACE("round " + std::to_string(round) + " chunk_bytes=" + std::to_string(chunk_bytes) +
                 " max_record_bytes=" + std::to_string(max_record_bytes));
    // Heads of dropped lines shorter and longer than a record's room.
    SourceOptions options{.chunk_bytes = chunk_bytes,
                          .max_record_bytes = max_record_bytes,
                          .dropped_head_bytes = round % 3 == 0 ? size_t{1} << 16 : 40,
                          .map_files = true};
    const ReadResult mapped = ReadAll(path, options);
    options.map_files = false;
    const ReadResult read = ReadAll(path, options);
    ASSERT_TRUE(mapped.status.ok()) << mapped.status;
    ASSERT_TRUE(read.status.ok()) << read.status;
    EXPECT_TRUE(mapped.problems.empty()) << mapped.problems.front();
    EXPECT_GT(mapped.mapped_chunks, 0u);
    EXPECT_EQ(read.mapped_chunks, 0u);
    // Compared chunk by chunk, to report the first that differs.
    ASSERT_EQ(mapped.chunks.size(), read.chunks.size());
    for (size_t i = 0; i < read.chunks.size(); ++i) {
      ASSERT_EQ(mapped.chunks[i].size(), read.chunks[i].size()) << "chunk " << i;
      ASSERT_TRUE(mapped.chunks[i] == read.chunks[i]) << "chunk " << i;
    }
    EXPECT_EQ(mapped.oversize_lines, read.oversize_lines);
    EXPECT_EQ(mapped.dropped, read.dropped);
    if (::testing::Test::HasFailure()) break;
  }
}

// A mapped oversize line is scanned for its end a few MiB at a time, its
// pages dropped as it goes; what is dropped and what follows are as read(2)
// gives them, for lines longer than a scan step and one running to the end.
TEST(FileSource, MappedOversizeLinesLongerThanAScanStepAreDroppedAsReadDropsThem) {
  ScratchDir dir;
  if (OnTmpfs(dir.Path(""))) GTEST_SKIP() << "the scratch directory is on tmpfs, never mapped";
  const std::string lines = RandomLines(9, 3000, 200, true);
  const std::string input = lines + std::string(10 << 20, 'x') + "\n" + lines +
                            std::string(9 << 20, 'y') + "\n" + lines + std::string(5 << 20, 'z');
  const std::string path = dir.Path("lines.ndjson");
  WriteWholeFile(path, input);
  SourceOptions options{.chunk_bytes = 64 << 10,
                        .max_record_bytes = 4096,
                        .dropped_head_bytes = 100,
                        .map_files = true,
                        .mapped_behind_bytes = 1 << 20};
  const ReadResult mapped = ReadAll(path, options);
  options.map_files = false;
  const ReadResult read = ReadAll(path, options);
  ASSERT_TRUE(mapped.status.ok()) << mapped.status;
  ASSERT_TRUE(read.status.ok()) << read.status;
  EXPECT_GT(mapped.mapped_chunks, 0u);
  EXPECT_EQ(mapped.oversize_lines, 3u);
  EXPECT_EQ(mapped.oversize_lines, read.oversize_lines);
  EXPECT_EQ(mapped.dropped, read.dropped);
  EXPECT_TRUE(mapped.joined == read.joined);
  EXPECT_TRUE(mapped.joined == lines + lines + lines);
}

// Files on tmpfs are read(2) even when mapping is asked for: their 4 KiB
// pages cost more to map than to copy.
TEST(FileSource, FilesOnTmpfsAreReadNotMapped) {
  if (!OnTmpfs("/dev/shm")) GTEST_SKIP() << "no tmpfs at /dev/shm";
  const std::string input = RandomLines(8, 20000, 200, true);
  const SourceOptions options{.chunk_bytes = 4096, .max_record_bytes = 4096, .map_files = true};
  const std::string shm = "/dev/shm/novapulse_file_source_test_" + std::to_string(getpid());
  WriteWholeFile(shm, input);
  const ReadResult on_tmpfs = ReadAll(shm, options);
  std::remove(shm.c_str());
  ScratchDir dir;
  WriteWholeFile(dir.Path("lines.ndjson"), input);
  const ReadResult elsewhere = ReadAll(dir.Path("lines.ndjson"), options);
  ASSERT_TRUE(on_tmpfs.status.ok()) << on_tmpfs.status;
  EXPECT_EQ(on_tmpfs.mapped_chunks, 0u);
  EXPECT_EQ(on_tmpfs.joined, input);
  // The same file elsewhere is mapped, unless that is tmpfs too.
  if (!OnTmpfs(dir.Path(""))) EXPECT_GT(elsewhere.mapped_chunks, 0u);
}

// A mapped file truncated by another process mid-read faults with SIGBUS:
// the process ends with a message naming the cause, not a crash.
TEST(FileSourceDeathTest, MappedFileTruncatedWhileReadEndsWithAMessage) {
  ScratchDir dir;
  if (OnTmpfs(dir.Path(""))) GTEST_SKIP() << "the scratch directory is on tmpfs, never mapped";
  const std::string path = dir.Path("lines.ndjson");
  WriteWholeFile(path, RandomLines(3, 20000, 200, true));
  EXPECT_EXIT(
      {
        absl::StatusOr<std::unique_ptr<FileSource>> source = FileSource::Open(
            path, {.chunk_bytes = 4096, .max_record_bytes = 4096, .map_files = true});
        if (!source.ok() || !(*source)->mapped()) _exit(3);
        Chunk chunk;
        if (!(*source)->Next(&chunk).ok()) _exit(4);
        if (truncate(path.c_str(), 0) != 0) _exit(5);
        for (int i = 0; i < 1000; ++i) (void)(*source)->Next(&chunk);
        _exit(6);
      },
      ::testing::ExitedWithCode(1), "lines.ndjson: could not be read any more");
}

// read(2) of a file truncated mid-read just meets its end early: the size
// the file had at open tells, and the source says so instead of ending
// quietly with part of the input. (A compressed stream cut short is an
// error of its own.)
TEST(FileSource, FileTruncatedWhileReadIsAnErrorNotAnEarlyEnd) {
  ScratchDir dir;
  const std::string lines = RandomLines(4, 20000, 200, true);
  for (const bool gzip : {false, true}) {
    SCOPED_TRACE(gzip ? "gzip" : "plain");
    const std::string path = dir.Path(gzip ? "lines.ndjson.gz" : "lines.ndjson");
    WriteWholeFile(path, gzip ? Gzip(lines) : lines);
    absl::StatusOr<std::unique_ptr<FileSource>> source =
        FileSource::Open(path, {.chunk_bytes = 4096, .max_record_bytes = 4096});
    ASSERT_TRUE(source.ok()) << source.status();
    Chunk chunk;
    ASSERT_TRUE(*(*source)->Next(&chunk));
    ASSERT_EQ(truncate(path.c_str(), static_cast<off_t>((*source)->total_bytes() / 2)), 0);
    absl::StatusOr<bool> more = true;
    for (int i = 0; i < 100000 && more.ok() && *more; ++i) more = (*source)->Next(&chunk);
    ASSERT_FALSE(more.ok());
    EXPECT_EQ(more.status().code(), absl::StatusCode::kDataLoss) << more.status();
    const std::string_view expected = gzip ? "truncated gzip stream" : "shrank from";
    EXPECT_NE(std::string(more.status().message()).find(expected), std::string::npos)
        << more.status();
  }
}

// chunk_bytes sets the chunk size ("--chunk-bytes: bytes read per chunk");
// max_record_bytes only adds room so the line that crosses the chunk_bytes
// mark can end whole. A large record limit must not make every chunk large,
// or a small input becomes one chunk and one worker.
TEST(FileSource, ChunkEndsAtTheFirstLineEndPastChunkBytes) {
  ScratchDir dir;
  std::string input;
  for (int i = 0; i < 3000; ++i) input += std::string(99, static_cast<char>('a' + i % 26)) + "\n";
  WriteWholeFile(dir.Path("lines.ndjson"), input);
  const ReadResult r =
      ReadAll(dir.Path("lines.ndjson"), {.chunk_bytes = 4096, .max_record_bytes = 1 << 20});
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.joined, input);
  EXPECT_GE(r.chunks.size(), input.size() / (4096 + 100));
  for (size_t i = 0; i + 1 < r.chunks.size(); ++i) {
    EXPECT_LE(r.chunks[i].size(), 4096u + 100) << "chunk " << i << " of " << r.chunks.size();
  }
}

TEST(FileSource, EmptyFileGivesNoChunks) {
  ScratchDir dir;
  WriteWholeFile(dir.Path("empty.ndjson"), "");
  const ReadResult r = ReadAll(dir.Path("empty.ndjson"), {});
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_TRUE(r.chunks.empty());
}

TEST(FileSource, ReportsFileSizeAndInputBytesConsumed) {
  ScratchDir dir;
  const std::string input = RandomLines(3, 2000, 200, true);
  const std::string gz = Gzip(input);
  WriteWholeFile(dir.Path("a.ndjson"), input);
  WriteWholeFile(dir.Path("a.ndjson.gz"), gz);
  const ReadResult plain = ReadAll(dir.Path("a.ndjson"), {.chunk_bytes = 4096});
  EXPECT_EQ(plain.total_bytes, input.size());
  EXPECT_EQ(plain.last_input_bytes, input.size());
  const ReadResult zipped = ReadAll(dir.Path("a.ndjson.gz"), {.chunk_bytes = 4096});
  EXPECT_EQ(zipped.total_bytes, gz.size());
  EXPECT_EQ(zipped.last_input_bytes, gz.size());
  EXPECT_EQ(zipped.joined, input);
}

TEST(FileSource, GzipInputGivesTheSameBytesAsPlain) {
  ScratchDir dir;
  const std::string input = RandomLines(4, 4000, 250, false);
  WriteWholeFile(dir.Path("a.gz"), Gzip(input));
  for (const size_t chunk_bytes : {64, 4096, 1 << 20}) {
    SCOPED_TRACE("chunk_bytes=" + std::to_string(chunk_bytes));
    const ReadResult r =
        ReadAll(dir.Path("a.gz"), {.chunk_bytes = chunk_bytes, .max_record_bytes = 512});
    ASSERT_TRUE(r.status.ok()) << r.status;
    EXPECT_TRUE(r.problems.empty()) << r.problems.front();
    EXPECT_EQ(r.joined, input);
  }
}

TEST(FileSource, ConcatenatedGzipMembersReadAsOneStream) {
  ScratchDir dir;
  // The first member ends mid-line: members are byte streams, not line groups.
  const std::string input = RandomLines(5, 3000, 250, true);
  const size_t cut = input.size() / 3 + 7;
  // Empty members (as `gzip < /dev/null` makes) anywhere in the stream add nothing.
  WriteWholeFile(dir.Path("two.gz"), Gzip("") + Gzip(input.substr(0, cut)) + Gzip("") +
                                         Gzip(input.substr(cut)) + Gzip(""));
  for (const size_t chunk_bytes : {64, 1 << 20}) {
    SCOPED_TRACE("chunk_bytes=" + std::to_string(chunk_bytes));
    const ReadResult r =
        ReadAll(dir.Path("two.gz"), {.chunk_bytes = chunk_bytes, .max_record_bytes = 512});
    ASSERT_TRUE(r.status.ok()) << r.status;
    EXPECT_EQ(r.joined, input);
  }
}

TEST(FileSource, ReadsGzipMadeByTheGzipTool) {
  ScratchDir dir;
  const std::string input = RandomLines(6, 2000, 200, true);
  WriteWholeFile(dir.Path("tool.ndjson"), input);
  ASSERT_EQ(std::system(("gzip -q " + dir.Path("tool.ndjson")).c_str()), 0);
  const ReadResult r = ReadAll(dir.Path("tool.ndjson.gz"), {.chunk_bytes = 4096});
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.joined, input);
}

TEST(FileSource, ReadsZstdMadeByTheZstdTool) {
  ScratchDir dir;
  const std::string input = RandomLines(15, 2000, 200, true);
  WriteWholeFile(dir.Path("tool.ndjson"), input);
  ASSERT_EQ(std::system(("zstd -q --rm " + dir.Path("tool.ndjson")).c_str()), 0);
  const ReadResult r = ReadAll(dir.Path("tool.ndjson.zst"), {.chunk_bytes = 4096});
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.joined, input);
}

TEST(FileSource, ZstdInputGivesTheSameBytesAsPlain) {
  ScratchDir dir;
  // Larger than a zstd block (128 KiB), so frames have several blocks.
  const std::string input = RandomLines(7, 4000, 250, false);
  ASSERT_GT(input.size(), 300'000u);
  WriteWholeFile(dir.Path("a.zst"), Zstd(input));
  for (const size_t chunk_bytes : {64, 4096, 1 << 20}) {
    SCOPED_TRACE("chunk_bytes=" + std::to_string(chunk_bytes));
    const ReadResult r =
        ReadAll(dir.Path("a.zst"), {.chunk_bytes = chunk_bytes, .max_record_bytes = 512});
    ASSERT_TRUE(r.status.ok()) << r.status;
    EXPECT_TRUE(r.problems.empty()) << r.problems.front();
    EXPECT_EQ(r.joined, input);
  }
}

TEST(FileSource, ConcatenatedZstdFramesReadAsOneStream) {
  ScratchDir dir;
  const std::string input = RandomLines(8, 2000, 250, true);
  const size_t cut = input.size() / 2 + 3;
  WriteWholeFile(dir.Path("two.zst"), Zstd("") + Zstd(input.substr(0, cut)) + Zstd("") +
                                          Zstd(input.substr(cut)) + Zstd(""));
  const ReadResult r = ReadAll(dir.Path("two.zst"), {.chunk_bytes = 100, .max_record_bytes = 512});
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.joined, input);
}

TEST(FileSource, CompressionIsToldByMagicBytesNotByName) {
  ScratchDir dir;
  const std::string input = RandomLines(9, 500, 100, true);
  WriteWholeFile(dir.Path("really-gzip.ndjson"), Gzip(input));
  WriteWholeFile(dir.Path("really-zstd.txt"), Zstd(input));
  WriteWholeFile(dir.Path("really-plain.gz"), input);
  for (const char* name : {"really-gzip.ndjson", "really-zstd.txt", "really-plain.gz"}) {
    SCOPED_TRACE(name);
    const ReadResult r = ReadAll(dir.Path(name), {.chunk_bytes = 4096});
    ASSERT_TRUE(r.status.ok()) << r.status;
    EXPECT_EQ(r.joined, input);
  }
}

TEST(FileSource, InputShorterThanTheMagicIsReadAsPlain) {
  ScratchDir dir;
  for (const std::string input : {"{", "\x1f", "\n\n", "{}\n"}) {
    WriteWholeFile(dir.Path("tiny"), input);
    const ReadResult r = ReadAll(dir.Path("tiny"), {.chunk_bytes = 64});
    ASSERT_TRUE(r.status.ok()) << r.status;
    EXPECT_EQ(r.joined, input);
  }
}

TEST(FileSource, DashReadsStdinThroughAPipeIncludingGzip) {
  const std::string input = RandomLines(10, 3000, 200, true);
  for (const bool compressed : {false, true}) {
    SCOPED_TRACE(compressed ? "gzip" : "plain");
    const std::string bytes = compressed ? Gzip(input) : input;
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    std::thread writer([&bytes, fd = fds[1]] {
      size_t done = 0;
      while (done < bytes.size()) {
        const ssize_t n = write(fd, bytes.data() + done, bytes.size() - done);
        if (n <= 0) break;
        done += static_cast<size_t>(n);
      }
      close(fd);
    });
    ReadResult r;
    {
      StdinFrom redirect(fds[0]);
      HangGuard guard(20);
      absl::StatusOr<std::unique_ptr<FileSource>> source =
          FileSource::Open("-", {.chunk_bytes = 4096});
      ASSERT_TRUE(source.ok()) << source.status();
      EXPECT_EQ((*source)->path(), "<stdin>");
      EXPECT_EQ((*source)->total_bytes(), 0u);
      Chunk chunk;
      while (true) {
        absl::StatusOr<bool> more = (*source)->Next(&chunk);
        ASSERT_TRUE(more.ok()) << more.status();
        if (!*more) break;
        r.joined.append(chunk.data, chunk.size);
      }
    }
    writer.join();
    EXPECT_EQ(r.joined, input);
  }
}

TEST(FileSource, OversizeLineLongerThanAChunkIsDroppedAndCounted) {
  ScratchDir dir;
  const SourceOptions options = {.chunk_bytes = 64, .max_record_bytes = 256};
  const std::string big(5000, 'z');
  const std::string huge(70'000, 'q');
  struct Case {
    const char* name;
    std::string input;
    std::string kept;
    uint64_t oversize;
  };
  const std::vector<Case> cases = {
      {"middle", "a1\nb2\n" + big + "\nc3\n", "a1\nb2\nc3\n", 1},
      {"first line", big + "\nc3\nd4\n", "c3\nd4\n", 1},
      {"last line without newline", "a1\nb2\n" + big, "a1\nb2\n", 1},
      {"last line with newline", "a1\n" + big + "\n", "a1\n", 1},
      {"two in a row", "a1\n" + big + "\n" + huge + "\nc3\n", "a1\nc3\n", 2},
      {"after many short lines", std::string(40, '\n') + "k\n" + big + "\nm\n",
       std::string(40, '\n') + "k\nm\n", 1},
      {"alone", huge, "", 1},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    WriteWholeFile(dir.Path("big.ndjson"), c.input);
    HangGuard guard(20);
    const ReadResult r = ReadAll(dir.Path("big.ndjson"), options);
    ASSERT_TRUE(r.status.ok()) << r.status;
    EXPECT_TRUE(r.problems.empty()) << r.problems.front();
    EXPECT_EQ(r.oversize_lines, c.oversize);
    EXPECT_EQ(r.joined, c.kept);
  }
}

// The source drops exactly the lines that cannot fit a chunk's room
// (chunk_bytes + max_record_bytes) and passes every other line on, wherever
// the lines fall relative to chunk boundaries.
TEST(FileSource, DropsExactlyTheLinesLongerThanAChunksRoom) {
  ScratchDir dir;
  const SourceOptions options = {.chunk_bytes = 64, .max_record_bytes = 256};
  const size_t room = options.chunk_bytes + options.max_record_bytes;
  std::mt19937_64 rng(99);
  const std::vector<size_t> lengths = {0,        1,        10,       63,       64,       65,
                                       255,      256,      257,      room - 2, room - 1, room,
                                       room + 1, room + 2, 2 * room, 5000,     100'000};
  std::uniform_int_distribution<size_t> pick(0, lengths.size() - 1);
  for (int round = 0; round < 20; ++round) {
    SCOPED_TRACE("round=" + std::to_string(round));
    std::string input, kept;
    uint64_t dropped = 0;
    const int lines = 200;
    for (int i = 0; i < lines; ++i) {
      const std::string line(lengths[pick(rng)], static_cast<char>('a' + i % 26));
      const bool last_without_newline = round % 2 == 1 && i + 1 == lines;
      const std::string text = last_without_newline ? line : line + "\n";
      input += text;
      if (line.size() >= room) {
        ++dropped;
      } else {
        kept += text;
      }
    }
    WriteWholeFile(dir.Path("stress.ndjson"), input);
    HangGuard guard(20);
    const ReadResult r = ReadAll(dir.Path("stress.ndjson"), options);
    ASSERT_TRUE(r.status.ok()) << r.status;
    EXPECT_TRUE(r.problems.empty()) << r.problems.front();
    EXPECT_EQ(r.oversize_lines, dropped);
    EXPECT_TRUE(r.joined == kept) << "kept lines differ";
  }
}

TEST(FileSource, OversizeLineSurvivesInGzipAndZstdToo) {
  ScratchDir dir;
  const std::string input = "a1\nb2\n" + std::string(9000, 'z') + "\nc3\n";
  WriteWholeFile(dir.Path("big.gz"), Gzip(input));
  WriteWholeFile(dir.Path("big.zst"), Zstd(input));
  for (const char* name : {"big.gz", "big.zst"}) {
    SCOPED_TRACE(name);
    const ReadResult r = ReadAll(dir.Path(name), {.chunk_bytes = 64, .max_record_bytes = 256});
    ASSERT_TRUE(r.status.ok()) << r.status;
    EXPECT_EQ(r.oversize_lines, 1u);
    EXPECT_EQ(r.joined, "a1\nb2\nc3\n");
  }
}

TEST(FileSource, LineAboveTheLimitThatFitsAChunkIsPassedOnWhole) {
  ScratchDir dir;
  // 300 bytes: above max_record_bytes, within chunk_bytes + max_record_bytes.
  const std::string input = "a1\n" + std::string(300, 'y') + "\nc3\n";
  WriteWholeFile(dir.Path("mid.ndjson"), input);
  const ReadResult r =
      ReadAll(dir.Path("mid.ndjson"), {.chunk_bytes = 64, .max_record_bytes = 256});
  ASSERT_TRUE(r.status.ok()) << r.status;
  EXPECT_EQ(r.oversize_lines, 0u);
  EXPECT_EQ(r.joined, input);
}

TEST(FileSource, ReplayCountsOversizeLinesFromBothPathsAndKeepsTheRest) {
  ScratchDir dir;
  constexpr size_t kMax = 256;
  std::string input;
  int good = 0;
  auto add_good = [&](size_t size) {
    input += AccessLineOfSize(size) + "\n";
    ++good;
  };
  add_good(150);
  add_good(kMax);                              // exactly at the limit: accepted
  input += AccessLineOfSize(kMax + 1) + "\n";  // just above: the parser rejects it
  add_good(200);
  input += AccessLineOfSize(300) + "\n";  // fits a chunk: the parser rejects it
  add_good(120);
  input += AccessLineOfSize(6000) + "\n";  // beyond a chunk's room: the source drops it
  add_good(130);
  input += "\n   \n";  // blank lines are not records
  add_good(140);
  WriteWholeFile(dir.Path("mixed.ndjson"), input);

  for (const int threads : {1, 2}) {
    SCOPED_TRACE("threads=" + std::to_string(threads));
    NovaGiftMetrics metrics(threads);
    ReplayOptions options;
    options.threads = threads;
    options.source = {.chunk_bytes = 64, .max_record_bytes = kMax};
    absl::StatusOr<ReplayStats> stats =
        RunReplay({{dir.Path("mixed.ndjson"), InputOfTopic(Topic::kAccessLog)}}, options, metrics);
    ASSERT_TRUE(stats.ok()) << stats.status();
    const std::vector<FamilySnapshot> families = metrics.Snapshot();
    const std::string_view topic = TopicName(Topic::kAccessLog);
    EXPECT_EQ(CounterValue(families, "novapulse_parse_errors_total", {topic, "oversize"}), 3u);
    EXPECT_EQ(CounterValue(families, "novapulse_events_total", {topic, "accepted"}),
              static_cast<uint64_t>(good));
    EXPECT_EQ(CounterValue(families, "novapulse_events_total", {topic, "rejected"}), 3u);
    EXPECT_EQ(CounterValue(families, "http_requests_total", {"GET", "/api/gifts", "200"}),
              static_cast<uint64_t>(good));
    EXPECT_EQ(stats->records, static_cast<uint64_t>(good) + 3);
  }
}

TEST(FileSource, MissingFileErrorNamesThePath) {
  ScratchDir dir;
  const std::string path = dir.Path("no-such-file.ndjson");
  absl::StatusOr<std::unique_ptr<FileSource>> source = FileSource::Open(path, SourceOptions{});
  ASSERT_FALSE(source.ok());
  EXPECT_NE(source.status().message().find(path), std::string_view::npos) << source.status();
  EXPECT_NE(source.status().message().find("No such file"), std::string_view::npos)
      << source.status();
}

TEST(FileSource, ReplayOfAMissingSecondFileFailsNamingIt) {
  ScratchDir dir;
  WriteWholeFile(dir.Path("ok.ndjson"), AccessLineOfSize(150) + "\n");
  const std::string missing = dir.Path("missing.ndjson");
  NovaGiftMetrics metrics(1);
  ReplayOptions options;
  absl::StatusOr<ReplayStats> stats =
      RunReplay({{dir.Path("ok.ndjson"), -1}, {missing, -1}}, options, metrics);
  ASSERT_FALSE(stats.ok());
  EXPECT_NE(stats.status().message().find(missing), std::string_view::npos) << stats.status();
}

TEST(FileSource, DirectoryInsteadOfAFileIsAnErrorNamingIt) {
  ScratchDir dir;
  HangGuard guard(20);
  const ReadResult r = ReadAll(dir.path(), {});
  ASSERT_FALSE(r.status.ok());
  EXPECT_NE(r.status.message().find(dir.path()), std::string_view::npos) << r.status;
}

TEST(FileSource, TruncatedGzipIsAnErrorNotAHang) {
  ScratchDir dir;
  const std::string input = RandomLines(11, 3000, 200, true);
  const std::string gz = Gzip(input);
  // Cut mid-stream, inside the 8-byte trailer, and just after the header.
  for (const size_t keep : {gz.size() / 2, gz.size() - 4, gz.size() - 1, size_t{12}}) {
    SCOPED_TRACE("keep=" + std::to_string(keep));
    WriteWholeFile(dir.Path("cut.gz"), gz.substr(0, keep));
    for (const size_t chunk_bytes : {64, 1 << 20}) {
      HangGuard guard(20);
      const ReadResult r =
          ReadAll(dir.Path("cut.gz"), {.chunk_bytes = chunk_bytes, .max_record_bytes = 512});
      ASSERT_FALSE(r.status.ok());
      EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss) << r.status;
      EXPECT_NE(r.status.message().find(dir.Path("cut.gz")), std::string_view::npos) << r.status;
      EXPECT_NE(r.status.message().find("gzip"), std::string_view::npos) << r.status;
    }
  }
}

TEST(FileSource, TruncatedZstdIsAnErrorNotAHang) {
  ScratchDir dir;
  const std::string input = RandomLines(12, 3000, 200, true);
  for (const bool checksum : {false, true}) {
    const std::string zst = Zstd(input, checksum);
    // Cut mid-frame, just before the end (inside the checksum when there is
    // one), right after the magic and inside the frame header.
    for (const size_t keep : {zst.size() / 2, zst.size() - 1, size_t{4}, size_t{9}}) {
      SCOPED_TRACE("checksum=" + std::to_string(checksum) + " keep=" + std::to_string(keep));
      WriteWholeFile(dir.Path("cut.zst"), zst.substr(0, keep));
      for (const size_t chunk_bytes : {64, 1 << 20}) {
        HangGuard guard(20);
        const ReadResult r =
            ReadAll(dir.Path("cut.zst"), {.chunk_bytes = chunk_bytes, .max_record_bytes = 512});
        ASSERT_FALSE(r.status.ok());
        EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss) << r.status;
        EXPECT_NE(r.status.message().find(dir.Path("cut.zst")), std::string_view::npos) << r.status;
        EXPECT_NE(r.status.message().find("zstd"), std::string_view::npos) << r.status;
      }
    }
  }
}

TEST(FileSource, CorruptGzipIsAnErrorNotAHang) {
  ScratchDir dir;
  std::string gz = Gzip(RandomLines(13, 3000, 200, true));
  for (size_t i = gz.size() / 2; i < gz.size() / 2 + 16; ++i) gz[i] = static_cast<char>(~gz[i]);
  WriteWholeFile(dir.Path("bad.gz"), gz);
  HangGuard guard(20);
  const ReadResult r = ReadAll(dir.Path("bad.gz"), {.chunk_bytes = 4096});
  ASSERT_FALSE(r.status.ok());
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss) << r.status;
}

TEST(FileSource, CorruptZstdIsAnErrorNotAHang) {
  ScratchDir dir;
  // Without a checksum, a flipped literal decodes to other text undetected.
  std::string zst = Zstd(RandomLines(14, 3000, 200, true), /*checksum=*/true);
  for (size_t i = zst.size() / 2; i < zst.size() / 2 + 16; ++i) zst[i] = static_cast<char>(~zst[i]);
  WriteWholeFile(dir.Path("bad.zst"), zst);
  HangGuard guard(20);
  const ReadResult r = ReadAll(dir.Path("bad.zst"), {.chunk_bytes = 4096});
  ASSERT_FALSE(r.status.ok());
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDataLoss) << r.status;
}

TEST(FileSource, ReplayStopsWithTheErrorOfATruncatedInput) {
  ScratchDir dir;
  std::string input;
  for (int i = 0; i < 2000; ++i) input += AccessLineOfSize(150) + "\n";
  const std::string gz = Gzip(input);
  WriteWholeFile(dir.Path("cut.gz"), gz.substr(0, gz.size() / 2));
  NovaGiftMetrics metrics(2);
  ReplayOptions options;
  options.threads = 2;
  HangGuard guard(20);
  absl::StatusOr<ReplayStats> stats =
      RunReplay({{dir.Path("cut.gz"), InputOfTopic(Topic::kAccessLog)}}, options, metrics);
  ASSERT_FALSE(stats.ok());
  EXPECT_EQ(stats.status().code(), absl::StatusCode::kDataLoss) << stats.status();
  EXPECT_NE(stats.status().message().find("truncated gzip"), std::string_view::npos);
}

}  // namespace
}  // namespace novapulse
