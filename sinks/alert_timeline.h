// AlertTimeline: the backtest's record of every alert episode (pending at,
// firing at, resolved at, value), built from the rule engine's transitions,
// rendered as a table for people and as JSON for machines.
//
// Threads: fed by the thread that drives the rule engine; read after.
//   AlertTimeline timeline;
//   engine.set_on_transition([&](const AlertTransition& t) { timeline.Add(t); });
//   std::cerr << FormatAlertTimeline(timeline.episodes());
#ifndef NOVAPULSE_SINKS_ALERT_TIMELINE_H_
#define NOVAPULSE_SINKS_ALERT_TIMELINE_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "rules/rule_engine.h"

namespace novapulse {

struct AlertEpisode {
  std::string alertname;
  promql::Labels labels;                                         // without alertname
  std::vector<std::pair<std::string, std::string>> annotations;  // as last evaluated
  int64_t pending_ms = 0;
  int64_t firing_ms = 0;    // 0: never fired (cancelled while pending, or still pending)
  int64_t resolved_ms = 0;  // 0: still active at the end of the input
  bool cancelled = false;   // went back to inactive while pending
  double value = 0;         // the value when it fired (else the last pending value)
};

class AlertTimeline {
 public:
  void Add(const AlertTransition& t);
  // Episodes in the order they started.
  const std::vector<AlertEpisode>& episodes() const { return episodes_; }
  // Episodes that fired.
  size_t fired() const;

 private:
  std::vector<AlertEpisode> episodes_;
  std::map<promql::Labels, size_t> open_;  // alert labels -> open episode
};

// One line per episode: alert, labels, pending at, firing at, resolved at,
// value; times in RFC 3339 UTC.
std::string FormatAlertTimeline(const std::vector<AlertEpisode>& episodes);
// A JSON array of episodes, times as RFC 3339 strings (null when absent).
std::string AlertTimelineJson(const std::vector<AlertEpisode>& episodes);

}  // namespace novapulse

#endif  // NOVAPULSE_SINKS_ALERT_TIMELINE_H_
