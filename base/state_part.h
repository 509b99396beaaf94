// StatePart: a part whose state a checkpoint keeps (the aggregate metrics,
// the event clock, the rule runner), so that the checkpoint loops over its
// parts instead of naming each (pipeline/checkpoint.h).
//
// Each part saves into a section of its own, tagged with the part's name
// and a fingerprint of what its state depends on (the metric set, the rules
// and window layout, ...). A section loads only into the part of the same
// name and fingerprint; a part whose section is missing or has another
// fingerprint starts empty, or rejects the whole checkpoint when the
// checkpoint's offsets are worthless without it.
//
// Threads: SaveState and LoadState with the part's writers stopped (each
// part says what that means for it).
#ifndef NOVAPULSE_BASE_STATE_PART_H_
#define NOVAPULSE_BASE_STATE_PART_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "base/state_codec.h"

namespace novapulse {

// What a load knows, and what parts loaded earlier tell the later ones.
struct StateLoad {
  int64_t wall_ms = 0;  // now
  // Set by the metrics: the series the windows refer to have other ids now.
  bool series_ids_moved = false;
  // The reader holds this part's section alone (format version 2 on): a
  // part may end in data added later, read only when it is there.
  bool sectioned = false;
};

class StatePart {
 public:
  virtual ~StatePart() = default;
  // The section's name: stable across versions, unique in a checkpoint.
  virtual std::string_view StateName() const = 0;
  // Names what the saved state depends on; a section saved under another
  // fingerprint is not loaded.
  virtual std::string StateFingerprint() const = 0;
  // Why a section with another fingerprint is not loaded, as a sentence.
  virtual std::string_view StateChanged() const = 0;
  virtual void SaveState(StateWriter* w) = 0;
  // Into a fresh part, from a section saved under the same fingerprint.
  // FailedPrecondition: nothing was loaded and the part starts empty (the
  // message says why); any other error: the section is damaged.
  [[nodiscard]] virtual absl::Status LoadState(StateReader* r, StateLoad* load) = 0;
  // Into a fresh part, from a section saved under another fingerprint
  // (`saved`): a part that can keep some of it (the families of a metric
  // spec that did not change) loads that, sets *note to what starts empty,
  // and returns OK. FailedPrecondition (the default, StateChanged()):
  // nothing was loaded; any other error: the section is damaged.
  [[nodiscard]] virtual absl::Status LoadChangedState(StateReader* /*r*/,
                                                      std::string_view /*saved*/,
                                                      StateLoad* /*load*/, std::string* /*note*/) {
    return absl::FailedPreconditionError(std::string(StateChanged()));
  }
};

}  // namespace novapulse

#endif  // NOVAPULSE_BASE_STATE_PART_H_
