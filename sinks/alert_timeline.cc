#include "sinks/alert_timeline.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "parsers/timestamp.h"
#include "sinks/json_text.h"

namespace novapulse {
namespace {

std::string Time(int64_t ms) { return ms == 0 ? "-" : FormatRfc3339Millis(ms * 1000); }

std::string LabelText(const promql::Labels& labels) {
  std::string out;
  for (const promql::Label& l : labels) {
    if (!out.empty()) out += ",";
    absl::StrAppend(&out, l.name, "=", l.value);
  }
  return out.empty() ? "-" : out;
}

std::string Value(double v) { return FormatGoFloat(v); }

}  // namespace

void AlertTimeline::Add(const AlertTransition& t) {
  const Alert& a = *t.alert;
  if (t.from == AlertState::kInactive && t.to == AlertState::kPending) {
    AlertEpisode e;
    for (const promql::Label& l : a.labels) {
      if (l.name == "alertname") {
        e.alertname = l.value;
      } else {
        e.labels.push_back(l);
      }
    }
    e.annotations = a.annotations;
    e.pending_ms = t.t_ms;
    e.value = a.value;
    open_[a.labels] = episodes_.size();
    episodes_.push_back(std::move(e));
    return;
  }
  auto it = open_.find(a.labels);
  if (it == open_.end()) return;
  AlertEpisode& e = episodes_[it->second];
  e.annotations = a.annotations;
  if (t.to == AlertState::kFiring) {
    e.firing_ms = t.t_ms;
    e.value = a.value;
    return;
  }
  if (t.from == AlertState::kPending) {
    e.cancelled = true;
    e.value = a.value;
  }
  e.resolved_ms = t.t_ms;
  open_.erase(it);
}

size_t AlertTimeline::fired() const {
  return static_cast<size_t>(std::count_if(episodes_.begin(), episodes_.end(),
                                           [](const AlertEpisode& e) { return e.firing_ms != 0; }));
}

std::string FormatAlertTimeline(const std::vector<AlertEpisode>& episodes) {
  std::vector<std::vector<std::string>> rows = {
      {"alert", "labels", "pending at", "firing at", "resolved at", "value"}};
  for (const AlertEpisode& e : episodes) {
    std::string resolved = Time(e.resolved_ms);
    if (e.cancelled) resolved += " (cancelled while pending)";
    if (e.resolved_ms == 0) resolved = e.firing_ms != 0 ? "(still firing)" : "(still pending)";
    rows.push_back({e.alertname, LabelText(e.labels), Time(e.pending_ms), Time(e.firing_ms),
                    resolved, Value(e.value)});
  }
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& row : rows) {
    for (size_t c = 0; c < row.size(); ++c) width[c] = std::max(width[c], row[c].size());
  }
  std::string out;
  size_t fired = 0;
  for (const AlertEpisode& e : episodes) fired += e.firing_ms != 0 ? 1 : 0;
  absl::StrAppend(&out, "alert timeline: ", episodes.size(), " episode(s), ", fired, " fired\n");
  if (episodes.empty()) return out;
  for (const auto& row : rows) {
    std::string line = " ";
    for (size_t c = 0; c < row.size(); ++c) {
      line += " ";
      line += row[c];
      if (c + 1 < row.size()) line.append(width[c] - row[c].size() + 1, ' ');
    }
    absl::StrAppend(&out, line, "\n");
  }
  return out;
}

std::string AlertTimelineJson(const std::vector<AlertEpisode>& episodes) {
  std::string out = "[";
  auto time = [&out](int64_t ms) {
    if (ms == 0) {
      out += "null";
    } else {
      AppendJsonString(&out, FormatRfc3339Millis(ms * 1000));
    }
  };
  for (size_t i = 0; i < episodes.size(); ++i) {
    const AlertEpisode& e = episodes[i];
    out += i == 0 ? "\n  {" : ",\n  {";
    out += "\"alertname\":";
    AppendJsonString(&out, e.alertname);
    out += ",\"labels\":{";
    for (size_t l = 0; l < e.labels.size(); ++l) {
      if (l > 0) out += ",";
      AppendJsonString(&out, e.labels[l].name);
      out += ":";
      AppendJsonString(&out, e.labels[l].value);
    }
    out += "},\"annotations\":{";
    for (size_t a = 0; a < e.annotations.size(); ++a) {
      if (a > 0) out += ",";
      AppendJsonString(&out, e.annotations[a].first);
      out += ":";
      AppendJsonString(&out, e.annotations[a].second);
    }
    out += "},\"pending_at\":";
    time(e.pending_ms);
    out += ",\"firing_at\":";
    time(e.firing_ms);
    out += ",\"resolved_at\":";
    time(e.resolved_ms);
    absl::StrAppend(&out, ",\"cancelled\":", e.cancelled ? "true" : "false", ",\"value\":");
    // JSON has no NaN or infinities: those values are written as strings.
    const std::string v = Value(e.value);
    if (v == "NaN" || v == "+Inf" || v == "-Inf") {
      AppendJsonString(&out, v);
    } else {
      out += v;
    }
    out += "}";
  }
  out += episodes.empty() ? "]\n" : "\n]\n";
  return out;
}

}  // namespace novapulse
