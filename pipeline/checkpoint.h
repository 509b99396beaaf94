// Checkpoints of `novapulse run`: the whole aggregate state (cumulative
// metrics, window history, alert states, event clock) and the next offset of
// every partition it covers, written to CHECKPOINT_DIR/state.ckpt at an
// interval, on revoke and on shutdown. Offsets are committed only after a
// checkpoint that covers them, and on start the checkpoint, not the
// committed offset, says where each partition resumes.
//
// The file: an 8-byte magic, the format version (u32), the payload size
// (u64) and the payload's CRC-32 (u32), all little-endian, then the payload
// (EncodeCheckpoint). It is written to a temporary file, fsynced, renamed
// over the old one and the directory fsynced, so a crash leaves either the
// old checkpoint or the new one. A damaged file or one of another version
// is set aside (renamed), reported, and start-up goes on without it.
//
// Threads: CheckpointFile's Write and Read from one thread at a time;
// CollectMetrics and Record from any thread. Encode/Decode with the state's
// writers stopped (see NovaGiftMetrics::SaveState, RuleRunner::SaveState).
//   auto file = CheckpointFile::Build(config.checkpoint);
//   absl::StatusOr<std::string> payload = (*file)->Read();
//   ... DecodeCheckpoint(*payload, state, now) ...
//   (*file)->Write(EncodeCheckpoint(state, offsets));
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
#include "aggregators/metric_store.h"
#include "aggregators/novagift_metrics.h"
#include "pipeline/config.h"
#include "pipeline/event_clock.h"
#include "pipeline/rule_runner.h"

namespace novapulse {

inline constexpr uint32_t kCheckpointVersion = 1;

struct CheckpointOffset {
  std::string topic;
  int32_t partition = 0;
  int64_t next_offset = 0;
};

// The live objects a checkpoint covers.
struct CheckpointedState {
  NovaGiftMetrics* metrics = nullptr;
  RuleRunner* rules = nullptr;  // null without rules
  EventClock* clock = nullptr;
};

[[nodiscard]] std::string EncodeCheckpoint(const CheckpointedState& state,
                                           const std::vector<CheckpointOffset>& offsets,
                                           int64_t wall_ms);

struct RestoredCheckpoint {
  std::vector<CheckpointOffset> offsets;
  int64_t written_ms = 0;  // wall time it was written
  // False when the rules or the window layout changed since (or the series
  // ids moved): metrics and offsets are restored, windows and alerts start
  // empty. `rules_note` says why.
  bool rules_restored = false;
  std::string rules_note;
};

// Loads a payload into fresh objects (built from the same config, no writer
// started). FailedPrecondition when it was saved under another metric set;
// DataLoss when it does not decode. On an error the objects are partly
// loaded and must be rebuilt.
[[nodiscard]] absl::StatusOr<RestoredCheckpoint> DecodeCheckpoint(std::string_view payload,
                                                                  const CheckpointedState& state,
                                                                  int64_t wall_ms);

class CheckpointFile : public MetricSource {
 public:
  // Creates the directory if needed, checks it is writable, and removes a
  // temporary file a crash left behind.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<CheckpointFile>> Build(
      const CheckpointConfig& config);

  const std::string& path() const { return path_; }
  // The payload of the checkpoint: NotFound when there is none; DataLoss when
  // it is damaged (truncated, checksum); FailedPrecondition when it has
  // another version.
  [[nodiscard]] absl::StatusOr<std::string> Read() const;
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
