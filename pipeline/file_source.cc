#include "pipeline/file_source.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <simdjson.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <string_view>

#include "absl/strings/str_cat.h"

namespace novapulse {

// Reads decompressed bytes. Read returns 0 at end of input.
class ByteReader {
 public:
  virtual ~ByteReader() = default;
  virtual absl::StatusOr<size_t> Read(char* buf, size_t n) = 0;
  // Bytes of the underlying file consumed so far.
  virtual uint64_t consumed() const = 0;
  // The file descriptor read from.
  virtual int fd() const = 0;
  // Goes on reading at byte `offset` of the file; plain files only.
  virtual absl::Status SeekTo(uint64_t /*offset*/) {
    return absl::UnimplementedError("cannot seek a compressed input");
  }
};

namespace {

absl::Status IoError(const std::string& path, const char* what) {
  return absl::InternalError(absl::StrCat(path, ": ", what, ": ", std::strerror(errno)));
}

// Reads a file descriptor, first serving bytes already peeked for the magic.
class FdReader {
 public:
  FdReader(int fd, std::string path, std::string peeked)
      : fd_(fd), path_(std::move(path)), peeked_(std::move(peeked)) {}
  ~FdReader() {
    if (fd_ > STDIN_FILENO) close(fd_);
  }
  absl::StatusOr<size_t> Read(char* buf, size_t n) {
    if (peek_pos_ < peeked_.size()) {
      const size_t take = std::min(n, peeked_.size() - peek_pos_);
      std::memcpy(buf, peeked_.data() + peek_pos_, take);
      peek_pos_ += take;
      consumed_ += take;
      return take;
    }
    while (true) {
      const ssize_t got = ::read(fd_, buf, n);
      if (got >= 0) {
        consumed_ += static_cast<uint64_t>(got);
        return static_cast<size_t>(got);
      }
      if (errno != EINTR) return IoError(path_, "read");
    }
  }
  uint64_t consumed() const { return consumed_; }
  const std::string& path() const { return path_; }
  int fd() const { return fd_; }
  void SkipPeeked(size_t n) {
    peek_pos_ += n;
    consumed_ += n;
  }
  absl::Status SeekTo(uint64_t offset) {
    if (lseek(fd_, static_cast<off_t>(offset), SEEK_SET) < 0) return IoError(path_, "seek");
    peek_pos_ = peeked_.size();
    consumed_ = offset;
    return absl::OkStatus();
  }

 private:
  int fd_;
  std::string path_;
  std::string peeked_;
  size_t peek_pos_ = 0;
  uint64_t consumed_ = 0;
};

class PlainReader : public ByteReader {
 public:
  explicit PlainReader(std::unique_ptr<FdReader> fd) : fd_(std::move(fd)) {}
  absl::StatusOr<size_t> Read(char* buf, size_t n) override { return fd_->Read(buf, n); }
  uint64_t consumed() const override { return fd_->consumed(); }
  int fd() const override { return fd_->fd(); }
  absl::Status SeekTo(uint64_t offset) override { return fd_->SeekTo(offset); }

 private:
  std::unique_ptr<FdReader> fd_;
};

class GzipReader : public ByteReader {
 public:
  explicit GzipReader(std::unique_ptr<FdReader> fd) : fd_(std::move(fd)), in_(1 << 18) {
    std::memset(&zs_, 0, sizeof(zs_));
    // 16 + MAX_WBITS: gzip framing only.
    ok_ = inflateInit2(&zs_, 16 + MAX_WBITS) == Z_OK;
  }
  ~GzipReader() override { inflateEnd(&zs_); }

  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    if (!ok_) return absl::InternalError(absl::StrCat(fd_->path(), ": cannot start gzip"));
    zs_.next_out = reinterpret_cast<Bytef*>(buf);
    zs_.avail_out = static_cast<uInt>(n);
    while (zs_.avail_out == n) {
      if (zs_.avail_in == 0) {
        absl::StatusOr<size_t> got = fd_->Read(in_.data(), in_.size());
        if (!got.ok()) return got.status();
        if (*got == 0) {
          if (!stream_ended_) {
            return absl::DataLossError(absl::StrCat(fd_->path(), ": truncated gzip stream"));
          }
          break;
        }
        zs_.next_in = reinterpret_cast<Bytef*>(in_.data());
        zs_.avail_in = static_cast<uInt>(*got);
      }
      stream_ended_ = false;
      const int rc = inflate(&zs_, Z_NO_FLUSH);
      if (rc == Z_STREAM_END) {
        // Concatenated gzip members (as `cat a.gz b.gz` makes) continue.
        stream_ended_ = true;
        inflateReset(&zs_);
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        return absl::DataLossError(absl::StrCat(
            fd_->path(), ": corrupt gzip data: ", zs_.msg ? zs_.msg : "inflate failed"));
      }
    }
    return n - zs_.avail_out;
  }
  uint64_t consumed() const override { return fd_->consumed(); }
  int fd() const override { return fd_->fd(); }

 private:
  std::unique_ptr<FdReader> fd_;
  std::vector<char> in_;
  z_stream zs_;
  bool ok_ = false;
  bool stream_ended_ = false;
};

class ZstdReader : public ByteReader {
 public:
  explicit ZstdReader(std::unique_ptr<FdReader> fd)
      : fd_(std::move(fd)), dctx_(ZSTD_createDCtx()), in_(ZSTD_DStreamInSize()) {}
  ~ZstdReader() override { ZSTD_freeDCtx(dctx_); }

  absl::StatusOr<size_t> Read(char* buf, size_t n) override {
    ZSTD_outBuffer out = {buf, n, 0};
    while (out.pos == 0) {
      if (input_.pos == input_.size) {
        absl::StatusOr<size_t> got = fd_->Read(in_.data(), in_.size());
        if (!got.ok()) return got.status();
        if (*got == 0) {
          if (last_ret_ != 0) {
            return absl::DataLossError(absl::StrCat(fd_->path(), ": truncated zstd stream"));
          }
          break;
        }
        input_ = {in_.data(), *got, 0};
      }
      last_ret_ = ZSTD_decompressStream(dctx_, &out, &input_);
      if (ZSTD_isError(last_ret_)) {
        return absl::DataLossError(
            absl::StrCat(fd_->path(), ": corrupt zstd data: ", ZSTD_getErrorName(last_ret_)));
      }
    }
    return out.pos;
  }
  uint64_t consumed() const override { return fd_->consumed(); }
  int fd() const override { return fd_->fd(); }

 private:
  std::unique_ptr<FdReader> fd_;
  ZSTD_DCtx* dctx_;
  std::vector<char> in_;
  ZSTD_inBuffer input_ = {nullptr, 0, 0};
  size_t last_ret_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<FileSource>> FileSource::Open(const std::string& path,
                                                             const SourceOptions& options) {
  int fd = STDIN_FILENO;
  uint64_t total = 0;
  if (path != "-") {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return IoError(path, "cannot open");
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) total = static_cast<uint64_t>(st.st_size);
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  }
  const std::string name = path == "-" ? "<stdin>" : path;
  // Peek the magic bytes through a reader so stdin works too.
  std::string magic(4, '\0');
  size_t have = 0;
  while (have < magic.size()) {
    const ssize_t got = ::read(fd, magic.data() + have, magic.size() - have);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      if (fd > STDIN_FILENO) close(fd);
      return IoError(name, "read");
    }
    if (got == 0) break;
    have += static_cast<size_t>(got);
  }
  magic.resize(have);
  auto fd_reader = std::make_unique<FdReader>(fd, name, magic);
  std::unique_ptr<ByteReader> reader;
  if (have >= 2 && static_cast<unsigned char>(magic[0]) == 0x1f &&
      static_cast<unsigned char>(magic[1]) == 0x8b) {
    reader = std::make_unique<GzipReader>(std::move(fd_reader));
  } else if (have == 4 && magic == std::string("\x28\xb5\x2f\xfd", 4)) {
    reader = std::make_unique<ZstdReader>(std::move(fd_reader));
  } else {
    // A UTF-8 byte order mark (editors on Windows write one) is not part of
    // the first record.
    const bool bom = magic.starts_with("\xEF\xBB\xBF");
    if (bom) fd_reader->SkipPeeked(3);
    reader = std::make_unique<PlainReader>(std::move(fd_reader));
    auto source =
        std::unique_ptr<FileSource>(new FileSource(name, options, std::move(reader), total));
    if (options.map_files && total > 0) source->Map(fd, bom ? 3 : 0);
    return source;
  }
  return std::unique_ptr<FileSource>(new FileSource(name, options, std::move(reader), total));
}

namespace {

// A mapped file that shrinks (another process truncates it) makes reads
// past its new end fault with SIGBUS. The mapped ranges are registered so
// that the handler can tell that apart from any other SIGBUS and end the
// process with a message instead of a crash.
struct MappedRange {
  std::atomic<uintptr_t> begin{0};
  std::atomic<uintptr_t> end{0};
  std::atomic<const char*> path{nullptr};  // the FileSource's, while mapped
};
std::array<MappedRange, 64> mapped_ranges;
struct sigaction previous_sigbus;

void OnSigbus(int sig, siginfo_t* info, void* /*context*/) {
  const uintptr_t address = reinterpret_cast<uintptr_t>(info->si_addr);
  for (const MappedRange& r : mapped_ranges) {
    if (info->si_code > 0 && address >= r.begin.load(std::memory_order_relaxed) &&
        address < r.end.load(std::memory_order_relaxed)) {
      // What FileSource::CheckNotShrunk says, with async-signal-safe calls.
      // (An I/O error under the mapping faults the same way.)
      static constexpr std::string_view kPrefix = "novapulse: ";
      static constexpr std::string_view kMessage =
          ": could not be read any more (shrank while it was being read, or an I/O error); "
          "the replay is incomplete\n";
      const char* path = r.path.load(std::memory_order_relaxed);
      (void)!write(STDERR_FILENO, kPrefix.data(), kPrefix.size());
      if (path != nullptr) (void)!write(STDERR_FILENO, path, strlen(path));
      (void)!write(STDERR_FILENO, kMessage.data(), kMessage.size());
      _exit(1);
    }
  }
  // Not a mapped input: whatever handled SIGBUS before (by default, the
  // default action) takes it, when the fault repeats or, for a signal sent
  // by a process, raised again.
  sigaction(SIGBUS, &previous_sigbus, nullptr);
  if (info->si_code <= 0) raise(sig);
}

// Registers [begin, begin + size); the slot taken, -1 when all are.
int RegisterMapped(const char* begin, size_t size, const std::string& path) {
  static const bool installed = [] {
    struct sigaction action = {};
    action.sa_sigaction = OnSigbus;
    action.sa_flags = SA_SIGINFO;
    sigemptyset(&action.sa_mask);
    return sigaction(SIGBUS, &action, &previous_sigbus) == 0;
  }();
  if (!installed) return -1;
  for (size_t i = 0; i < mapped_ranges.size(); ++i) {
    MappedRange& r = mapped_ranges[i];
    uintptr_t free = 0;
    if (r.begin.compare_exchange_strong(free, reinterpret_cast<uintptr_t>(begin))) {
      r.path.store(path.c_str(), std::memory_order_relaxed);
      r.end.store(reinterpret_cast<uintptr_t>(begin) + size, std::memory_order_relaxed);
      return static_cast<int>(i);
    }
  }
  return -1;
}

// Before the range is unmapped, so the slot never names another mapping.
void UnregisterMapped(int slot) {
  MappedRange& r = mapped_ranges[static_cast<size_t>(slot)];
  r.end.store(0, std::memory_order_relaxed);
  r.begin.store(0, std::memory_order_relaxed);
}

}  // namespace

void FileSource::Map(int fd, uint64_t start) {
  // Only worth it when at least one chunk can come from the mapping.
  const uint64_t room = options_.chunk_bytes + options_.max_record_bytes;
  if (total_bytes_ < start + room + simdjson::SIMDJSON_PADDING) return;
  // tmpfs holds a file in 4 KiB pages (unless mounted with huge=), and
  // mapping those in and out costs more than read(2)'s copy of them: 0.18 s
  // of CPU per GB against 0.10-0.13 here. ext4 reads files from disk into
  // large folios, where mapping costs 0.02-0.03 s per GB against 0.05-0.07.
  struct statfs fs;
  if (fstatfs(fd, &fs) == 0 && (fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC)) return;
  void* map = mmap(nullptr, total_bytes_, PROT_READ, MAP_SHARED, fd, 0);
  if (map == MAP_FAILED) return;  // read(2) serves the file instead
  map_slot_ = RegisterMapped(static_cast<const char*>(map), total_bytes_, path_);
  if (map_slot_ < 0) {
    munmap(map, total_bytes_);
    return;
  }
  madvise(map, total_bytes_, MADV_SEQUENTIAL);
  map_ = static_cast<const char*>(map);
  map_size_ = total_bytes_;
  offset_ = start;
}

FileSource::FileSource(std::string path, const SourceOptions& options,
                       std::unique_ptr<ByteReader> reader, uint64_t total_bytes)
    : path_(std::move(path)),
      options_(options),
      reader_(std::move(reader)),
      total_bytes_(total_bytes) {}

FileSource::~FileSource() {
  if (map_ == nullptr) return;
  UnregisterMapped(map_slot_);
  munmap(const_cast<char*>(map_), map_size_);
}

absl::Status FileSource::CheckNotShrunk() const {
  // A file another process truncates while it is read just ends early for
  // read(2); its size at open tells.
  struct stat st;
  if (total_bytes_ == 0 || fstat(reader_->fd(), &st) != 0 || !S_ISREG(st.st_mode) ||
      static_cast<uint64_t>(st.st_size) >= total_bytes_) {
    return absl::OkStatus();
  }
  return absl::DataLossError(absl::StrCat(path_, ": shrank from ", total_bytes_, " to ", st.st_size,
                                          " bytes while it was being read (truncated?); the "
                                          "replay is incomplete"));
}

size_t FileSource::ChunkCapacity() const {
  return options_.chunk_bytes + options_.max_record_bytes + simdjson::SIMDJSON_PADDING + 1;
}

namespace {

// The pages a chunk of the mapping spans.
std::pair<char*, size_t> Pages(const char* data, size_t size) {
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = reinterpret_cast<uintptr_t>(data) & ~(page - 1);
  const uintptr_t end = (reinterpret_cast<uintptr_t>(data) + size + page - 1) & ~(page - 1);
  return {reinterpret_cast<char*>(begin), end - begin};
}

}  // namespace

absl::StatusOr<bool> FileSource::Next(Chunk* chunk) {
  chunk->oversize_lines = 0;
  chunk->dropped.clear();
  chunk->data = nullptr;
  chunk->size = 0;
  chunk->capacity = 0;
  if (map_ != nullptr && !map_done_) {
    absl::StatusOr<bool> mapped = NextMapped(chunk);
    if (!mapped.ok() || *mapped) return mapped;
  }
  return NextRead(chunk);
}

void FileSource::ReleaseBehind(uint64_t position) {
  if (position <= released_ + options_.mapped_behind_bytes) return;
  const uint64_t end = position - options_.mapped_behind_bytes;
  // The pages leave this process's memory; the page cache keeps them. So
  // the resident size stays flat however large the file.
  const auto [pages, length] = Pages(map_ + released_, end - released_);
  madvise(pages, length, MADV_DONTNEED);
  released_ = end;
}

absl::StatusOr<bool> FileSource::NextMapped(Chunk* chunk) {
  // The same cuts as NextRead makes: after the last newline of the next
  // chunk_bytes, or of a record's room beyond them; no newline within the
  // room is an oversize line, dropped to its newline.
  const size_t room = options_.chunk_bytes + options_.max_record_bytes;
  while (offset_ + room + simdjson::SIMDJSON_PADDING <= map_size_) {
    const char* base = map_ + offset_;
    // Fault the chunk's pages in here, on the reader's thread, not in the
    // workers (best effort: kernels before 5.14 lack it).
    const auto [pages, length] = Pages(base, room);
    madvise(pages, length, MADV_POPULATE_READ);
    // Pages well behind are done with (a chunk still in flight that far
    // back only faults its pages in again).
    ReleaseBehind(offset_);
    const char* last = static_cast<const char*>(memrchr(base, '\n', options_.chunk_bytes));
    if (last == nullptr) last = static_cast<const char*>(memrchr(base, '\n', room));
    if (last != nullptr) {
      chunk->data = base;
      chunk->size = static_cast<size_t>(last - base) + 1;
      chunk->capacity = map_size_ - offset_;
      offset_ += chunk->size;
      chunk->input_bytes = offset_;
      return true;
    }
    // An oversize line: its head as read(2) keeps it (a record's room at
    // most), then on to its newline a stretch at a time, dropping the pages
    // passed so a line the size of the file does not fault it all in.
    ++chunk->oversize_lines;
    if (options_.dropped_head_bytes > 0) {
      chunk->dropped.push_back(
          {std::string(base, std::min<uint64_t>(room, options_.dropped_head_bytes)), 0});
    }
    uint64_t scan = offset_ + room;
    const char* nl = nullptr;
    while (scan < map_size_ && nl == nullptr) {
      const uint64_t n = std::min<uint64_t>(kOversizeScanBytes, map_size_ - scan);
      nl = static_cast<const char*>(std::memchr(map_ + scan, '\n', n));
      scan += n;
      ReleaseBehind(scan);
    }
    const uint64_t line = nl != nullptr ? static_cast<uint64_t>(nl - base) : map_size_ - offset_;
    if (options_.dropped_head_bytes > 0) chunk->dropped.back().length = line;
    offset_ += line + (nl != nullptr ? 1 : 0);
  }
  // The final chunk needs padding after it that the file does not have: the
  // rest goes through read(2), from where the mapping stopped. The pages of
  // chunks still in flight stay mapped.
  if (absl::Status seek = reader_->SeekTo(offset_); !seek.ok()) return seek;
  map_done_ = true;
  ReleaseBehind(offset_);
  return false;
}

absl::StatusOr<bool> FileSource::NextRead(Chunk* chunk) {
  if (chunk->buffer.size() < ChunkCapacity()) chunk->buffer.resize(ChunkCapacity());
  chunk->data = chunk->buffer.data();
  chunk->capacity = chunk->buffer.size();
  if (eof_ && carry_.empty()) return chunk->oversize_lines > 0;
  char* buf = chunk->buffer.data();
  // Room for lines: chunk_bytes plus one maximal record, so a record that
  // starts near the end of a chunk still fits whole.
  const size_t room = options_.chunk_bytes + options_.max_record_bytes;
  size_t filled = carry_.size();
  // An empty vector's data() may be null, which memcpy must not be given.
  if (!carry_.empty()) std::memcpy(buf, carry_.data(), carry_.size());
  carry_.clear();
  size_t target = options_.chunk_bytes;
  while (true) {
    while (!eof_ && filled < target) {
      absl::StatusOr<size_t> got = reader_->Read(buf + filled, target - filled);
      if (!got.ok()) return got.status();
      if (*got == 0) {
        eof_ = true;
        if (absl::Status shrank = CheckNotShrunk(); !shrank.ok()) return shrank;
        break;
      }
      if (skipping_) {
        // Drop the rest of an oversize line up to and including its newline.
        char* nl = static_cast<char*>(std::memchr(buf + filled, '\n', *got));
        if (!chunk->dropped.empty()) {
          chunk->dropped.back().length += nl ? static_cast<size_t>(nl - (buf + filled)) : *got;
        }
        if (nl == nullptr) continue;
        skipping_ = false;
        const size_t keep = static_cast<size_t>((buf + filled + *got) - (nl + 1));
        std::memmove(buf + filled, nl + 1, keep);
        filled += keep;
        continue;
      }
      filled += *got;
    }
    size_t end = filled;
    if (!eof_) {
      // Cut after the last newline; the tail waits for the next chunk.
      const char* last = static_cast<const char*>(memrchr(buf, '\n', filled));
      if (last == nullptr) {
        if (filled < room) {
          target = room;  // the line may still end within the limit
          continue;
        }
        // A whole record's room without a newline: an oversize line.
        ++chunk->oversize_lines;
        if (options_.dropped_head_bytes > 0) {
          chunk->dropped.push_back(
              {std::string(buf, std::min(filled, options_.dropped_head_bytes)), filled});
        }
        skipping_ = true;
        filled = 0;
        target = options_.chunk_bytes;
        continue;
      }
      end = static_cast<size_t>(last - buf) + 1;
      carry_.assign(buf + end, buf + filled);
    }
    // The last line of the input may lack its newline; an oversize one is
    // rejected by the parser.
    std::memset(buf + end, ' ', simdjson::SIMDJSON_PADDING);
    chunk->size = end;
    chunk->input_bytes = reader_->consumed();
    return end > 0 || chunk->oversize_lines > 0;
  }
}

}  // namespace novapulse
