#include "aggregators/metric_set_state.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace novapulse {

void SaveMetricSetState(const MetricStore& store, int64_t newest_us, const BusyRingSets& rings,
                        StateWriter* w) {
  store.SaveCumulative(w);
  w->I64(newest_us);
  for (const auto* set : rings) SaveBusyRings(*set, w);
  // Only with expiry on, so that a checkpoint without it stays readable by
  // the releases before expiry.
  if (store.expires()) store.SaveEventTimes(w);
}

absl::Status LoadMetricSetState(MetricStore& store, const BusyRingSets& rings, StateReader* r,
                                StateLoad* load, int64_t* newest_us) {
  bool same_ids = true;
  if (absl::Status s = store.LoadCumulative(r, &same_ids); !s.ok()) return s;
  if (!same_ids) load->series_ids_moved = true;
  if (!r->I64(newest_us)) return r->Error("event time");
  for (auto* set : rings) {
    if (absl::Status s = LoadBusyRings(r, set); !s.ok()) return s;
  }
  // Added after the first checkpoints: a section may end before them.
  if (load->sectioned && !r->at_end()) {
    if (absl::Status s = store.LoadEventTimes(r, same_ids); !s.ok()) return s;
  }
  store.StampUntimed(*newest_us / 1000);
  return absl::OkStatus();
}

absl::Status LoadChangedMetricSetState(MetricStore& store, std::string_view saved, StateReader* r,
                                       StateLoad* load, int64_t* newest_us, std::string* note) {
  // A version 1 checkpoint's parts run on in one reader: the rest of this
  // one could not be skipped.
  if (!load->sectioned) {
    return absl::FailedPreconditionError("the metric set changed since the checkpoint");
  }
  absl::StatusOr<MetricStore::SavedFamilies> families = store.MatchSavedFamilies(saved);
  if (!families.ok()) return absl::FailedPreconditionError(families.status().message());
  if (absl::Status s = store.LoadCumulative(r, *families); !s.ok()) return s;
  load->series_ids_moved = true;
  if (!r->I64(newest_us)) return r->Error("event time");
  r->SkipRest();
  store.StampUntimed(*newest_us / 1000);
  *note = families->fresh.empty()
              ? "the metric set changed; every family it keeps is restored"
              : absl::StrCat(
                    "the metric set changed; families that changed or are new start "
                    "from 0: ",
                    absl::StrJoin(families->fresh, ", "));
  return absl::OkStatus();
}

}  // namespace novapulse
