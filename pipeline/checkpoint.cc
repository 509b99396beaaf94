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

const RestoredCheckpoint::Part* RestoredCheckpoint::part(std::string_view name) const {
  for (const Part& p : parts) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

namespace {

void EncodeOffsets(const std::vector<CheckpointOffset>& offsets, StateWriter* w) {
  w->U64(offsets.size());
  for (const CheckpointOffset& o : offsets) {
    w->Str(o.topic);
    w->I64(o.partition);
    w->I64(o.next_offset);
  }
}

absl::Status DecodeOffsets(StateReader* r, std::vector<CheckpointOffset>* offsets) {
  size_t n = 0;
  if (!r->Count(&n, 3)) return r->Error("offsets");
  offsets->resize(n);
  for (CheckpointOffset& o : *offsets) {
    int64_t partition = 0;
    if (!r->Str(&o.topic) || !r->I64(&partition) || !r->I64(&o.next_offset) || partition < 0 ||
        partition > INT32_MAX || o.next_offset < 0) {
      return r->Error("offsets");
    }
    o.partition = static_cast<int32_t>(partition);
  }
  return absl::OkStatus();
}

// Loads one part from `section`, saved under `fingerprint` (null: the
// checkpoint has no section for it). An error refuses the checkpoint; a part
// that starts empty instead is noted in `out`.
absl::Status LoadPart(const CheckpointParts::Entry& entry, const std::string_view* fingerprint,
                      StateReader* section, StateLoad* load, RestoredCheckpoint::Part* out) {
  StatePart& part = *entry.part;
  out->name = std::string(part.StateName());
  std::string why;
  if (fingerprint == nullptr) {
    why = absl::StrCat("the checkpoint holds no ", out->name, " state");
  } else if (*fingerprint != part.StateFingerprint()) {
    absl::Status s = part.LoadChangedState(section, *fingerprint, load, &out->note);
    if (s.ok()) {
      out->restored = true;
      return s;
    }
    if (!absl::IsFailedPrecondition(s)) return s;
    why = std::string(s.message());
  } else {
    absl::Status s = part.LoadState(section, load);
    if (s.ok()) {
      out->restored = true;
      return s;
    }
    if (!absl::IsFailedPrecondition(s)) return s;
    why = std::string(s.message());
  }
  if (entry.need == CheckpointParts::Need::kRequired) return absl::FailedPreconditionError(why);
  out->note = std::move(why);
  return absl::OkStatus();
}

const CheckpointParts::Entry* FindPart(const CheckpointParts& parts, std::string_view name) {
  for (const CheckpointParts::Entry& e : parts.entries()) {
    if (e.part->StateName() == name) return &e;
  }
  return nullptr;
}

// Version 1: the metric set's fingerprint, the offsets, the metrics and the
// event clock back to back, then the rules' fingerprint (empty without
// rules) and their state.
absl::StatusOr<RestoredCheckpoint> DecodeVersion1(std::string_view payload,
                                                  const CheckpointParts& parts, StateLoad* load) {
  StateReader r(payload);
  RestoredCheckpoint out;
  std::string_view metrics_fingerprint;
  if (!r.I64(&out.written_ms) || !r.View(&metrics_fingerprint)) return r.Error("header");
  if (absl::Status s = DecodeOffsets(&r, &out.offsets); !s.ok()) return s;
  const CheckpointParts::Entry* metrics = FindPart(parts, "metrics");
  const CheckpointParts::Entry* clock = FindPart(parts, "event_clock");
  if (metrics == nullptr || clock == nullptr) {
    return absl::FailedPreconditionError(
        "a version 1 checkpoint is read only with the NovaGift metrics and the event clock");
  }
  for (const CheckpointParts::Entry* e : {metrics, clock}) {
    const std::string_view fingerprint = e == metrics ? metrics_fingerprint : "";
    if (absl::Status s = LoadPart(*e, &fingerprint, &r, load, &out.parts.emplace_back()); !s.ok()) {
      return s;
    }
  }
  std::string_view rules_fingerprint;
  std::string_view rules;
  if (!r.View(&rules_fingerprint) || !r.View(&rules) || !r.at_end()) return r.Error("rules");
  if (const CheckpointParts::Entry* e = FindPart(parts, "rules"); e != nullptr) {
    StateReader section(rules);
    RestoredCheckpoint::Part& part = out.parts.emplace_back();
    if (absl::Status s = LoadPart(*e, rules_fingerprint.empty() ? nullptr : &rules_fingerprint,
                                  &section, load, &part);
        !s.ok()) {
      return s;
    }
    if (part.restored && !section.at_end()) return section.Error("rules");
  }
  return out;
}

}  // namespace

std::string EncodeCheckpoint(const CheckpointParts& parts,
                             const std::vector<CheckpointOffset>& offsets, int64_t wall_ms) {
  StateWriter w;
  w.I64(wall_ms);
  EncodeOffsets(offsets, &w);
  w.U64(parts.entries().size());
  StateWriter section;
  for (const CheckpointParts::Entry& e : parts.entries()) {
    section.mutable_bytes().clear();
    e.part->SaveState(&section);
    w.Str(e.part->StateName());
    w.Str(e.part->StateFingerprint());
    w.Str(section.bytes());
  }
  return std::move(w.mutable_bytes());
}

absl::StatusOr<RestoredCheckpoint> DecodeCheckpoint(std::string_view payload,
                                                    const CheckpointParts& parts, int64_t wall_ms,
                                                    uint32_t version) {
  StateLoad load{.wall_ms = wall_ms};
  if (version == 1) return DecodeVersion1(payload, parts, &load);
  if (version < kOldestCheckpointVersion || version > kCheckpointVersion) {
    return absl::FailedPreconditionError(absl::StrCat("checkpoint format version ", version));
  }
  load.sectioned = true;
  StateReader r(payload);
  RestoredCheckpoint out;
  if (!r.I64(&out.written_ms)) return r.Error("header");
  if (absl::Status s = DecodeOffsets(&r, &out.offsets); !s.ok()) return s;
  struct Section {
    std::string_view name;
    std::string_view fingerprint;
    std::string_view state;
  };
  // A handful of parts: more sections than this is damage (and would make
  // the check for repeated names slow).
  constexpr size_t kMaxSections = 64;
  size_t n = 0;
  if (!r.Count(&n, 3) || n > kMaxSections) return r.Error("sections");
  std::vector<Section> sections(n);
  for (size_t i = 0; i < n; ++i) {
    Section& s = sections[i];
    if (!r.View(&s.name) || !r.View(&s.fingerprint) || !r.View(&s.state)) {
      return r.Error("sections");
    }
    for (size_t j = 0; j < i; ++j) {
      if (sections[j].name == s.name)
        return r.Error(absl::StrCat("section ", std::string(s.name), " twice"));
    }
  }
  if (!r.at_end()) return r.Error("sections");
  for (const CheckpointParts::Entry& e : parts.entries()) {
    const Section* found = nullptr;
    for (const Section& s : sections) {
      if (s.name == e.part->StateName()) found = &s;
    }
    StateReader section(found != nullptr ? found->state : std::string_view());
    RestoredCheckpoint::Part& part = out.parts.emplace_back();
    if (absl::Status s =
            LoadPart(e, found != nullptr ? &found->fingerprint : nullptr, &section, &load, &part);
        !s.ok()) {
      return s;
    }
    if (part.restored && !section.at_end()) return section.Error(part.name);
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

absl::StatusOr<CheckpointPayload> CheckpointFile::Read() const {
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
  if (version < kOldestCheckpointVersion || version > kCheckpointVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat(path_, " has format version ", version, "; this novapulse reads versions ",
                     kOldestCheckpointVersion, " to ", kCheckpointVersion));
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
  return CheckpointPayload{.version = version, .bytes = std::move(bytes)};
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
