#include "pipeline/checkpoint.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <array>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace novapulse {
namespace {

constexpr std::string_view kMagic = "NPCKPT\r\n";  // the CR LF catches text-mode mangling
constexpr size_t kHeaderBytes = 8 + 4 + 8 + 4;
constexpr std::string_view kFileName = "state.ckpt";

uint32_t Crc32(std::string_view bytes) {
  uLong crc = crc32(0L, Z_NULL, 0);
  // zlib takes the length as uInt: feed it in pieces.
  while (!bytes.empty()) {
    const size_t n = std::min<size_t>(bytes.size(), 1u << 30);
    crc = crc32(crc, reinterpret_cast<const Bytef*>(bytes.data()), static_cast<uInt>(n));
    bytes.remove_prefix(n);
  }
  return static_cast<uint32_t>(crc);
}

void PutLe(std::string* out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}

uint64_t GetLe(std::string_view in, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i)
    v |= static_cast<uint64_t>(static_cast<uint8_t>(in[i])) << (8 * i);
  return v;
}

absl::Status ErrnoError(std::string_view what, const std::string& path) {
  return absl::UnavailableError(
      absl::StrCat(std::string(what), " ", path, ": ", std::strerror(errno)));
}

// Writes all of `bytes`, retrying short writes.
bool WriteAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

#define NOVAPULSE_CHECKPOINT_METRICS(M)                                                        \
  M(kCheckpointsTotal, "novapulse_checkpoints_total", "State checkpoints written, by result.", \
    MetricType::kComputedCounter, {"result"}, {})                                              \
  M(kCheckpointDuration, "novapulse_checkpoint_duration_seconds",                              \
    "Time the last checkpoint took: draining the pipeline, encoding and the durable write.",   \
    MetricType::kComputed, {}, {})                                                             \
  M(kCheckpointSize, "novapulse_checkpoint_size_bytes", "Size of the last checkpoint.",        \
    MetricType::kComputed, {}, {})                                                             \
  M(kCheckpointTimestamp, "novapulse_checkpoint_timestamp_seconds",                            \
    "Wall time of the last successful checkpoint.", MetricType::kComputed, {}, {})

enum CheckpointMetric : size_t { NOVAPULSE_CHECKPOINT_METRICS(NOVAPULSE_METRIC_ID) };

const std::vector<MetricDef>& CheckpointMetricDefs() {
  static const std::vector<MetricDef> kDefs = {NOVAPULSE_CHECKPOINT_METRICS(NOVAPULSE_METRIC_DEF)};
  return kDefs;
}

}  // namespace

std::string EncodeCheckpoint(const CheckpointedState& state,
                             const std::vector<CheckpointOffset>& offsets, int64_t wall_ms) {
  StateWriter w;
  w.I64(wall_ms);
  w.Str(state.metrics->store().Fingerprint());
  w.U64(offsets.size());
  for (const CheckpointOffset& o : offsets) {
    w.Str(o.topic);
    w.I64(o.partition);
    w.I64(o.next_offset);
  }
  state.metrics->SaveState(&w);
  state.clock->SaveState(&w);
  if (state.rules == nullptr) {
    w.Str("");
    w.Str("");
  } else {
    // A section of its own, so that a reader with other rules can skip it.
    StateWriter rules;
    state.rules->SaveState(&rules);
    w.Str(state.rules->Fingerprint());
    w.Str(rules.bytes());
  }
  return std::move(w.mutable_bytes());
}

absl::StatusOr<RestoredCheckpoint> DecodeCheckpoint(std::string_view payload,
                                                    const CheckpointedState& state,
                                                    int64_t wall_ms) {
  StateReader r(payload);
  RestoredCheckpoint out;
  std::string_view fingerprint;
  if (!r.I64(&out.written_ms) || !r.View(&fingerprint)) return r.Error("header");
  if (fingerprint != state.metrics->store().Fingerprint()) {
    return absl::FailedPreconditionError(
        "the checkpoint was written for another metric set (a different novapulse version)");
  }
  size_t n = 0;
  if (!r.Count(&n, 3)) return r.Error("offsets");
  out.offsets.resize(n);
  for (CheckpointOffset& o : out.offsets) {
    int64_t partition = 0;
    if (!r.Str(&o.topic) || !r.I64(&partition) || !r.I64(&o.next_offset) || partition < 0 ||
        partition > INT32_MAX || o.next_offset < 0) {
      return r.Error("offsets");
    }
    o.partition = static_cast<int32_t>(partition);
  }
  bool same_ids = true;
  if (absl::Status s = state.metrics->LoadState(&r, &same_ids); !s.ok()) return s;
  if (absl::Status s = state.clock->LoadState(&r, wall_ms); !s.ok()) return s;
  std::string_view rules_fingerprint;
  std::string_view rules;
  if (!r.View(&rules_fingerprint) || !r.View(&rules) || !r.at_end()) return r.Error("rules");
  if (state.rules == nullptr) {
    out.rules_note = "no rules are configured";
  } else if (rules_fingerprint.empty()) {
    out.rules_note = "the checkpoint was written without rules";
  } else if (rules_fingerprint != state.rules->Fingerprint()) {
    out.rules_note = "the rules or the window settings changed since the checkpoint";
  } else if (!same_ids) {
    out.rules_note = "the series limit changed since the checkpoint";
  } else {
    StateReader rules_reader(rules);
    const absl::Status s = state.rules->LoadState(&rules_reader);
    if (absl::IsFailedPrecondition(s)) {
      // Nothing was loaded: the windows start afresh, as with other rules.
      out.rules_note = std::string(s.message());
      return out;
    }
    if (!s.ok()) return s;
    if (!rules_reader.at_end()) return rules_reader.Error("rules");
    out.rules_restored = true;
  }
  return out;
}

absl::StatusOr<std::unique_ptr<CheckpointFile>> CheckpointFile::Build(
    const CheckpointConfig& config) {
  if (config.dir.empty()) return absl::InvalidArgumentError("checkpoint.dir is empty");
  std::error_code ec;
  std::filesystem::create_directories(config.dir, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("creating checkpoint.dir ", config.dir, ": ", ec.message()));
  }
  std::unique_ptr<CheckpointFile> file(
      new CheckpointFile(config.dir, (std::filesystem::path(config.dir) / kFileName).string()));
  const std::string tmp = file->path_ + ".tmp";
  // A crash during a write leaves this; the checkpoint itself is intact.
  if (::unlink(tmp.c_str()) != 0 && errno != ENOENT) return ErrnoError("removing", tmp);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("checkpoint.dir is not writable: creating", tmp);
  ::close(fd);
  ::unlink(tmp.c_str());
  return file;
}

absl::StatusOr<std::string> CheckpointFile::Read() const {
  std::ifstream in(path_, std::ios::binary);
  if (!in) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat("no checkpoint at ", path_));
    return ErrnoError("reading", path_);
  }
  std::ostringstream buffer;
  buffer << in.rdbuf();
  std::string bytes = std::move(buffer).str();
  if (bytes.size() < kHeaderBytes || std::string_view(bytes).substr(0, 8) != kMagic) {
    return absl::DataLossError(absl::StrCat(path_, " is not a novapulse checkpoint"));
  }
  const std::string_view view(bytes);
  const auto version = static_cast<uint32_t>(GetLe(view.substr(8), 4));
  if (version != kCheckpointVersion) {
    return absl::FailedPreconditionError(absl::StrCat(path_, " has format version ", version,
                                                      "; this novapulse reads version ",
                                                      kCheckpointVersion));
  }
  const uint64_t size = GetLe(view.substr(12), 8);
  const auto crc = static_cast<uint32_t>(GetLe(view.substr(20), 4));
  if (size != bytes.size() - kHeaderBytes) {
    return absl::DataLossError(absl::StrCat(path_, " is truncated: ", bytes.size() - kHeaderBytes,
                                            " payload bytes of ", size));
  }
  if (Crc32(view.substr(kHeaderBytes)) != crc) {
    return absl::DataLossError(absl::StrCat(path_, " fails its checksum"));
  }
  bytes.erase(0, kHeaderBytes);
  return bytes;
}

std::string CheckpointFile::SetAside() const {
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  std::string aside = absl::StrCat(path_, ".bad-", now);
  if (std::rename(path_.c_str(), aside.c_str()) != 0) return "";
  return aside;
}

absl::Status CheckpointFile::Write(std::string_view payload) {
  std::string header(kMagic);
  PutLe(&header, kCheckpointVersion, 4);
  PutLe(&header, payload.size(), 8);
  PutLe(&header, Crc32(payload), 4);
  const std::string tmp = path_ + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError("creating", tmp);
  if (!WriteAll(fd, header) || !WriteAll(fd, payload) || ::fsync(fd) != 0) {
    absl::Status error = ErrnoError("writing", tmp);
    ::close(fd);
    ::unlink(tmp.c_str());
    return error;
  }
  if (::close(fd) != 0) return ErrnoError("closing", tmp);
  if (std::rename(tmp.c_str(), path_.c_str()) != 0) return ErrnoError("renaming to", path_);
  // The rename itself is durable only once the directory is.
  const int dir = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir < 0) return ErrnoError("opening", dir_);
  const bool synced = ::fsync(dir) == 0;
  ::close(dir);
  if (!synced) return ErrnoError("syncing", dir_);
  return absl::OkStatus();
}

void CheckpointFile::Record(bool ok, double seconds, size_t bytes) {
  (ok ? ok_ : failed_).fetch_add(1, std::memory_order_relaxed);
  last_seconds_.store(seconds, std::memory_order_relaxed);
  if (!ok) return;
  last_bytes_.store(bytes, std::memory_order_relaxed);
  last_time_.store(
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count(),
      std::memory_order_relaxed);
}

void CheckpointFile::CollectMetrics(MetricFamilies* out) {
  const std::vector<MetricDef>& defs = CheckpointMetricDefs();
  FamilySnapshot& total = out->Start(defs[kCheckpointsTotal]);
  for (const bool success : {false, true}) {
    out->Add(total, {success ? "success" : "failure"},
             static_cast<double>((success ? ok_ : failed_).load(std::memory_order_relaxed)));
  }
  out->AddSingle(defs[kCheckpointDuration], last_seconds_.load(std::memory_order_relaxed));
  out->AddSingle(defs[kCheckpointSize],
                 static_cast<double>(last_bytes_.load(std::memory_order_relaxed)));
  out->AddSingle(defs[kCheckpointTimestamp], last_time_.load(std::memory_order_relaxed));
}

}  // namespace novapulse
