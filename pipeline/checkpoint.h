// Checkpoints of `novapulse run`: the whole aggregate state (cumulative
// metrics, window history, alert states, event clock) and the next offset of
// every partition it covers, written to CHECKPOINT_DIR/state.ckpt at an
// interval, on revoke and on shutdown. Offsets are committed only after a
// checkpoint that covers them, and on start the checkpoint, not the
// committed offset, says where each partition resumes.
//
// The file: an 8-byte magic, the format version (u32), the payload size
// (u64) and the payload's CRC-32 (u32), all little-endian, then the payload
// (EncodeCheckpoint): the wall time, the offsets, and one section per part
// (base/state_part.h) with its name, fingerprint and state, so the
// checkpoint loops over its parts and a part added, removed or changed
// costs only its own section. It is written to a temporary file, fsynced, renamed
// over the old one and the directory fsynced, so a crash leaves either the
// old checkpoint or the new one. A damaged file or one of another version
// is set aside (renamed), reported, and start-up goes on without it.
//
// Threads: CheckpointFile's Write and Read from one thread at a time;
// CollectMetrics and Record from any thread. Encode/Decode with the parts'
// writers stopped (see each part's SaveState).
//   CheckpointParts parts;
//   parts.Add(metrics, CheckpointParts::Need::kRequired).Add(rules, ...);
//   auto file = CheckpointFile::Build(config.checkpoint);
//   absl::StatusOr<CheckpointPayload> payload = (*file)->Read();
//   ... DecodeCheckpoint(payload->bytes, parts, now, payload->version) ...
//   (*file)->Write(EncodeCheckpoint(parts, offsets, now));
#ifndef NOVAPULSE_PIPELINE_CHECKPOINT_H_
#define NOVAPULSE_PIPELINE_CHECKPOINT_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "aggregators/metric_source.h"
#include "base/state_part.h"
#include "pipeline/config.h"

namespace novapulse {

inline constexpr uint32_t kCheckpointVersion = 2;
// Version 1 (one fixed sequence of metrics, event clock and rules) is still
// read.
inline constexpr uint32_t kOldestCheckpointVersion = 1;

struct CheckpointOffset {
  std::string topic;
  int32_t partition = 0;
  int64_t next_offset = 0;
};

// The live parts a checkpoint covers, in the order they load: a part may
// depend on what one before it reports (StateLoad).
class CheckpointParts {
 public:
  enum class Need {
    // The offsets are worthless without this part's state (the metrics
    // count up to them): a checkpoint whose section for it is missing or
    // does not load is refused as a whole.
    kRequired,
    // The part starts empty instead, and the rest is restored.
    kOptional,
  };
  struct Entry {
    StatePart* part;
    Need need;
  };

  // Null is skipped, so parts not configured can be added as they are.
  CheckpointParts& Add(StatePart* part, Need need) {
    if (part != nullptr) entries_.push_back({part, need});
    return *this;
  }
  const std::vector<Entry>& entries() const { return entries_; }

 private:
  std::vector<Entry> entries_;
};

[[nodiscard]] std::string EncodeCheckpoint(const CheckpointParts& parts,
                                           const std::vector<CheckpointOffset>& offsets,
                                           int64_t wall_ms);

struct RestoredCheckpoint {
  struct Part {
    std::string name;
    // False when it starts empty (its section is missing, its fingerprint
    // changed, or it refused the state); `note` says why.
    bool restored = false;
    std::string note;
  };

  std::vector<CheckpointOffset> offsets;
  int64_t written_ms = 0;   // wall time it was written
  std::vector<Part> parts;  // one per part, in load order
  // The part of that name, or null.
  const Part* part(std::string_view name) const;
};

// Loads a payload of format `version` into fresh parts (built from the same
// config, no writer started). Sections no part takes are dropped.
// FailedPrecondition when a required part's state does not load (saved
// under another metric set, say); DataLoss when the payload does not
// decode. On an error the parts are partly loaded and must be rebuilt.
[[nodiscard]] absl::StatusOr<RestoredCheckpoint> DecodeCheckpoint(
    std::string_view payload, const CheckpointParts& parts, int64_t wall_ms,
    uint32_t version = kCheckpointVersion);

struct CheckpointPayload {
  uint32_t version = kCheckpointVersion;
  std::string bytes;
};

class CheckpointFile : public MetricSource {
 public:
  // Creates the directory if needed, checks it is writable, and removes a
  // temporary file a crash left behind.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<CheckpointFile>> Build(
      const CheckpointConfig& config);

  const std::string& path() const { return path_; }
  // The payload of the checkpoint: NotFound when there is none; DataLoss when
  // it is damaged (truncated, checksum); FailedPrecondition when its format
  // version is not one this novapulse reads.
  [[nodiscard]] absl::StatusOr<CheckpointPayload> Read() const;
  // Renames the checkpoint to PATH.bad-UNIXTIME and returns that name (empty
  // when the rename failed).
  std::string SetAside() const;
  // Writes the payload durably (temporary file, fsync, rename, fsync of the
  // directory).
  [[nodiscard]] absl::Status Write(std::string_view payload);

  // A checkpoint attempt and what it took (drain, encode and write).
  void Record(bool ok, double seconds, size_t bytes);
  // novapulse_checkpoints_total{result}, novapulse_checkpoint_duration_seconds,
  // novapulse_checkpoint_size_bytes, novapulse_checkpoint_timestamp_seconds.
  void CollectMetrics(MetricFamilies* out) override;

 private:
  CheckpointFile(std::string dir, std::string path)
      : dir_(std::move(dir)), path_(std::move(path)) {}

  std::string dir_;
  std::string path_;
  std::atomic<uint64_t> ok_{0};
  std::atomic<uint64_t> failed_{0};
  std::atomic<double> last_seconds_{0};
  std::atomic<uint64_t> last_bytes_{0};
  std::atomic<double> last_time_{0};
};

}  // namespace novapulse

#endif  // NOVAPULSE_PIPELINE_CHECKPOINT_H_
