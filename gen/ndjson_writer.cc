#include "gen/ndjson_writer.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/status/status.h"
#include "base/str_cat.h"

namespace novapulse {
namespace {

// Buffered NDJSON output to one file, optionally compressed. Writes go out in
// kFlushBytes chunks; the first error sticks and is returned by every later
// call.
class NdjsonFile {
 public:
  NdjsonFile() = default;
  NdjsonFile(const NdjsonFile&) = delete;
  NdjsonFile& operator=(const NdjsonFile&) = delete;

  ~NdjsonFile() {
    if (fd_ >= 0) {
      Finish().IgnoreError();
    }
    if (zlib_ready_) deflateEnd(&zlib_);
    ZSTD_freeCCtx(zstd_);
  }

  absl::Status Open(std::string path, Compression compression) {
    path_ = std::move(path);
    compression_ = compression;
    buf_.reserve(kFlushBytes + 4096);
    if (compression_ == Compression::kGzip) {
      // Level 1: compression must not throttle a generator that produces
      // hundreds of MB/s; the output is test input, not an archive.
      // windowBits 15 + 16 selects the gzip wrapper.
      if (deflateInit2(&zlib_, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        return absl::InternalError(Cat(path_, ": cannot initialise zlib"));
      }
      zlib_ready_ = true;
      out_.resize(1 << 18);
    } else if (compression_ == Compression::kZstd) {
      zstd_ = ZSTD_createCCtx();
      if (zstd_ == nullptr ||
          ZSTD_isError(ZSTD_CCtx_setParameter(zstd_, ZSTD_c_compressionLevel, 1))) {
        return absl::InternalError(Cat(path_, ": cannot initialise zstd"));
      }
      out_.resize(ZSTD_CStreamOutSize());
    }
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) return absl::ErrnoToStatus(errno, Cat("open ", path_));
    return absl::OkStatus();
  }

  absl::Status Append(std::string_view line) {
    buf_.append(line);
    buf_.push_back('\n');
    if (buf_.size() >= kFlushBytes) return Drain(false);
    return error_;
  }

  absl::Status Finish() {
    if (fd_ < 0) return error_;
    if (error_.ok()) error_ = Drain(true);
    if (::close(fd_) != 0 && error_.ok()) {
      error_ = absl::ErrnoToStatus(errno, Cat("close ", path_));
    }
    fd_ = -1;
    return error_;
  }

 private:
  static constexpr size_t kFlushBytes = 1 << 20;

  absl::Status Drain(bool finish) {
    if (!error_.ok()) return error_;
    switch (compression_) {
      case Compression::kNone:
        error_ = WriteAll(buf_.data(), buf_.size());
        break;
      case Compression::kGzip:
        error_ = DrainGzip(finish);
        break;
      case Compression::kZstd:
        error_ = DrainZstd(finish);
        break;
    }
    buf_.clear();
    return error_;
  }

  absl::Status DrainGzip(bool finish) {
    zlib_.next_in = reinterpret_cast<Bytef*>(buf_.data());
    zlib_.avail_in = static_cast<uInt>(buf_.size());
    const int flush = finish ? Z_FINISH : Z_NO_FLUSH;
    for (;;) {
      zlib_.next_out = reinterpret_cast<Bytef*>(out_.data());
      zlib_.avail_out = static_cast<uInt>(out_.size());
      const int rc = deflate(&zlib_, flush);
      if (rc == Z_STREAM_ERROR) return absl::InternalError(Cat(path_, ": deflate failed"));
      if (absl::Status s = WriteAll(out_.data(), out_.size() - zlib_.avail_out); !s.ok()) return s;
      if (finish ? rc == Z_STREAM_END : (zlib_.avail_in == 0 && zlib_.avail_out != 0)) break;
    }
    return absl::OkStatus();
  }

  absl::Status DrainZstd(bool finish) {
    ZSTD_inBuffer in = {buf_.data(), buf_.size(), 0};
    const ZSTD_EndDirective mode = finish ? ZSTD_e_end : ZSTD_e_continue;
    for (;;) {
      ZSTD_outBuffer out = {out_.data(), out_.size(), 0};
      const size_t remaining = ZSTD_compressStream2(zstd_, &out, &in, mode);
      if (ZSTD_isError(remaining)) {
        return absl::InternalError(Cat(path_, ": zstd: ", ZSTD_getErrorName(remaining)));
      }
      if (absl::Status s = WriteAll(out_.data(), out.pos); !s.ok()) return s;
      if (finish ? remaining == 0 : in.pos == in.size) break;
    }
    return absl::OkStatus();
  }

  absl::Status WriteAll(const char* p, size_t n) {
    while (n > 0) {
      const ssize_t w = ::write(fd_, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        return absl::ErrnoToStatus(errno, Cat("write ", path_));
      }
      p += w;
      n -= static_cast<size_t>(w);
    }
    return absl::OkStatus();
  }

  std::string path_;
  Compression compression_ = Compression::kNone;
  int fd_ = -1;
  std::string buf_;
  std::vector<char> out_;
  z_stream zlib_ = {};
  bool zlib_ready_ = false;
  ZSTD_CCtx* zstd_ = nullptr;
  absl::Status error_;
};

class NdjsonDirSink : public TrafficSink {
 public:
  absl::Status Open(const std::string& dir, Compression compression) {
    for (int t = 0; t < kTopicCount; ++t) {
      if (absl::Status s =
              files_[t].Open(NdjsonPath(dir, static_cast<Topic>(t), compression), compression);
          !s.ok()) {
        return s;
      }
    }
    return absl::OkStatus();
  }

  absl::Status Write(Topic topic, std::string_view line) override {
    if (topic != Topic::kAccessLog && topic != Topic::kOutbox) {
      return absl::InvalidArgumentError("NdjsonDirSink: lines need a concrete topic");
    }
    return files_[static_cast<int>(topic)].Append(line);
  }

  absl::Status Finish() override {
    absl::Status first;
    for (NdjsonFile& f : files_) first.Update(f.Finish());
    return first;
  }

 private:
  std::array<NdjsonFile, kTopicCount> files_;
};

}  // namespace

std::string_view CompressionSuffix(Compression c) {
  switch (c) {
    case Compression::kNone:
      return "";
    case Compression::kGzip:
      return ".gz";
    case Compression::kZstd:
      return ".zst";
  }
  return "";
}

std::string NdjsonPath(const std::string& dir, Topic topic, Compression c) {
  return Cat(dir, "/", topic == Topic::kAccessLog ? "access-log" : "outbox", ".ndjson",
             CompressionSuffix(c));
}

absl::StatusOr<std::unique_ptr<TrafficSink>> MakeNdjsonDirSink(const std::string& dir,
                                                               Compression compression) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    return absl::ErrnoToStatus(ec.value(), Cat("create directory ", dir));
  }
  auto sink = std::make_unique<NdjsonDirSink>();
  if (absl::Status s = sink->Open(dir, compression); !s.ok()) return s;
  return sink;
}

}  // namespace novapulse
