// Backtest of the NovaGift rules (configs/alerts/novagift.yml): `novapulse
// gen` traffic replayed with `novapulse replay --rules --alerts-json`. Quiet
// days fire nothing; each generated incident fires the alert meant for it,
// within a window that follows from the rule's range, `for` and the 15 s
// group interval, resolves after the incident ends, and fires nothing else;
// one and two threads give byte-identical alert timelines and metrics.
//
// The incident timings are the ones tests/configs/alert_incidents.sh
// established with a real Prometheus over the same generated traffic. The
// access-log rate is 20/s, as there; gift and outbox rates are gen's
// defaults. Data goes through zstd files to keep the scratch space small.
#include <time.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "gtest/gtest.h"
#include "tests/pipeline/test_process.h"

namespace novapulse {
namespace {

using testing::ProcessResult;
using testing::ReadWholeFile;
using testing::RunProcess;
using testing::ScratchDir;

constexpr int64_t kSecond = 1000;
constexpr int64_t kMinute = 60 * kSecond;
constexpr int64_t kHour = 60 * kMinute;
constexpr char kStart[] = "2026-11-26T00:00:00Z";
// Slack for the evaluation grid (15 s) and for when a window's last
// samples are taken, on top of range + for.
constexpr int64_t kSlack = kMinute;

const std::string kRules = std::string(NOVAPULSE_SOURCE_DIR) + "/configs/alerts/novagift.yml";

// "2026-11-27T02:49:15.000Z" -> ms since the epoch; nullopt for null.
std::optional<int64_t> ParseTime(std::string_view s) {
  int y, mo, d, h, mi, sec, ms;
  if (std::sscanf(std::string(s).c_str(), "%d-%d-%dT%d:%d:%d.%dZ", &y, &mo, &d, &h, &mi, &sec,
                  &ms) != 7) {
    return std::nullopt;
  }
  struct tm tm = {};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  return static_cast<int64_t>(timegm(&tm)) * 1000 + ms;
}

const int64_t kStartMs = *ParseTime("2026-11-26T00:00:00.000Z");

struct Episode {
  std::string alertname;
  std::string labels;  // the JSON object, as written
  std::optional<int64_t> pending_ms, firing_ms, resolved_ms;
  std::string line;  // for messages
};

// Reads the timeline JSON that AlertTimelineJson writes: one episode per line.
std::vector<Episode> ParseTimeline(const std::string& json) {
  std::vector<Episode> out;
  size_t pos = 0;
  while (pos < json.size()) {
    size_t end = json.find('\n', pos);
    if (end == std::string::npos) end = json.size();
    const std::string line = json.substr(pos, end - pos);
    pos = end + 1;
    if (line.find("\"alertname\":") == std::string::npos) continue;
    auto field = [&line](std::string_view name) -> std::string {
      const std::string key = "\"" + std::string(name) + "\":";
      size_t at = line.find(key);
      if (at == std::string::npos) return "";
      at += key.size();
      if (line.compare(at, 4, "null") == 0) return "";
      if (line[at] == '{') return line.substr(at, line.find('}', at) - at + 1);
      return line.substr(at + 1, line.find('"', at + 1) - at - 1);
    };
    Episode e;
    e.alertname = field("alertname");
    e.labels = field("labels");
    e.pending_ms = ParseTime(field("pending_at"));
    e.firing_ms = ParseTime(field("firing_at"));
    e.resolved_ms = ParseTime(field("resolved_at"));
    e.line = line;
    out.push_back(std::move(e));
  }
  return out;
}

std::string Offset(int64_t ms) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "+%lldh%02lldm%02llds", static_cast<long long>(ms / kHour),
                static_cast<long long>(ms % kHour / kMinute),
                static_cast<long long>(ms % kMinute / kSecond));
  return buf;
}

// Generated traffic in a scratch directory.
class Traffic {
 public:
  Traffic(const std::string& duration, const std::vector<std::string>& incidents) {
    std::vector<std::string> args = {
        NOVAPULSE_BINARY, "gen", "--out",   dir_.path(), "--duration", duration, "--rate", "20",
        "--seed",         "1",   "--start", kStart,      "--compress", "zstd"};
    for (const std::string& i : incidents) {
      args.push_back("--incident");
      args.push_back(i);
    }
    const ProcessResult r = RunProcess(args, "/dev/null", std::chrono::seconds(120));
    EXPECT_EQ(r.exit_code, 0) << r.err;
  }

  struct Output {
    std::string alerts_json;
    std::string metrics;
    std::string backfill;  // OpenMetrics with timestamps
    std::vector<Episode> episodes;
  };
  Output Replay(int threads) const {
    const std::string tag = std::to_string(threads);
    const std::string alerts = dir_.Path("alerts" + tag + ".json");
    const std::string metrics = dir_.Path("metrics" + tag + ".prom");
    const std::string backfill = dir_.Path("backfill" + tag + ".om");
    const ProcessResult r =
        RunProcess({NOVAPULSE_BINARY, "replay", "-q", "--threads", tag, "--rules", kRules,
                    "--alerts-json", alerts, "--output", metrics, "--openmetrics", backfill,
                    dir_.Path("access-log.ndjson.zst"), dir_.Path("outbox.ndjson.zst")},
                   "/dev/null", std::chrono::seconds(180));
    EXPECT_EQ(r.exit_code, 0) << r.err;
    Output out;
    out.alerts_json = ReadWholeFile(alerts);
    out.metrics = ReadWholeFile(metrics);
    out.backfill = ReadWholeFile(backfill);
    out.episodes = ParseTimeline(out.alerts_json);
    return out;
  }

 private:
  ScratchDir dir_;
};

std::set<std::string> Fired(const std::vector<Episode>& episodes) {
  std::set<std::string> out;
  for (const Episode& e : episodes) {
    if (e.firing_ms) out.insert(e.alertname);
  }
  return out;
}

TEST(NovaGiftBacktest, TwoQuietDaysFireNothing) {
  // Two days, so that GiftClaimRateDrop (which compares with the same hour a
  // day earlier) is evaluated over a whole day, nightly low included.
  Traffic traffic("2d", {});
  const Traffic::Output out = traffic.Replay(2);
  ASSERT_FALSE(out.alerts_json.empty());
  EXPECT_EQ(Fired(out.episodes), std::set<std::string>{}) << out.alerts_json;
}

// An incident and what it must trip. For each expected alert, with the
// incident from S to E (offsets from the start of the data, D its end):
//   the first episode fires in [S + for, S + first_firing_by];
//   every episode fires at or after S + for, and none after E + resolve_by;
//   the last one resolves after E and by E + resolve_by, or is still firing
//   at the end of the data when E + resolve_by is past D.
struct ExpectedAlert {
  std::string name;
  int64_t for_ms;
  int64_t first_firing_by_ms;  // range + for + slack, unless said otherwise
  int64_t resolve_by_ms;       // range + slack, unless said otherwise
};
struct IncidentCase {
  std::string test_name;
  std::string duration;
  int64_t duration_ms;
  std::string incident;  // NAME@OFFSET+DURATION
  int64_t start_ms;
  int64_t end_ms;
  std::vector<ExpectedAlert> expected;
};

std::vector<IncidentCase> IncidentCases() {
  // 5xx share and p95 over 5 minutes, for 5 minutes.
  const ExpectedAlert high_error = {"HighErrorRate", 5 * kMinute, 10 * kMinute + kSlack,
                                    5 * kMinute + kSlack};
  const ExpectedAlert latency = {"APIResponseTimeHigh", 5 * kMinute, 10 * kMinute + kSlack,
                                 5 * kMinute + kSlack};
  const ExpectedAlert outbox_failed = {"OutboxFailedMessages", 5 * kMinute, 10 * kMinute + kSlack,
                                       5 * kMinute + kSlack};
  // A gauge, for 5 minutes: the queue passes 1000 some 15-45 minutes into the
  // stall at these rates, so it must fire before the incident ends; the
  // queue drains within minutes after.
  const ExpectedAlert backlog = {"OutboxQueueBacklog", 5 * kMinute, 1 * kHour, 15 * kMinute};
  // 1 h ratios and increases, for 15 minutes.
  const ExpectedAlert gift_expiry = {"HighGiftExpiryRate", 15 * kMinute,
                                     1 * kHour + 15 * kMinute + kSlack, 1 * kHour + kSlack};
  const ExpectedAlert low_creation = {"LowGiftCreation", 15 * kMinute,
                                      1 * kHour + 15 * kMinute + kSlack, 1 * kHour + kSlack};
  const ExpectedAlert claim_drop = {"GiftClaimRateDrop", 15 * kMinute,
                                    1 * kHour + 15 * kMinute + kSlack, 1 * kHour + kSlack};
  // A 24 h ratio, for 1 hour: it keeps firing well past these datasets.
  const ExpectedAlert expiry = {"HighExpiryRate", 1 * kHour, 25 * kHour + kSlack,
                                24 * kHour + kSlack};
  return {
      {"ErrorSpike",
       "4h",
       4 * kHour,
       "error_spike@2h+30m",
       2 * kHour,
       2 * kHour + 30 * kMinute,
       {high_error}},
      {"LatencySpike",
       "4h",
       4 * kHour,
       "latency_spike@2h+30m",
       2 * kHour,
       2 * kHour + 30 * kMinute,
       {latency}},
      {"OutboxFailures",
       "4h",
       4 * kHour,
       "outbox_failures@2h+30m",
       2 * kHour,
       2 * kHour + 30 * kMinute,
       {outbox_failed}},
      {"OutboxBacklog", "4h", 4 * kHour, "outbox_backlog@2h+1h", 2 * kHour, 3 * kHour, {backlog}},
      {"ExpirySpike",
       "6h",
       6 * kHour,
       "expiry_spike@2h+2h",
       2 * kHour,
       4 * kHour,
       {gift_expiry, expiry}},
      {"CreationDrought",
       "5h",
       5 * kHour,
       "creation_drought@2h+2h",
       2 * kHour,
       4 * kHour,
       {low_creation}},
      // Needs a day of history. Fewer claims also raise the expired share of
      // claims + expiries, so HighGiftExpiryRate fires too.
      {"ClaimDrop",
       "30h",
       30 * kHour,
       "claim_drop@26h+3h",
       26 * kHour,
       29 * kHour,
       {claim_drop, gift_expiry}},
  };
}

class NovaGiftIncident : public ::testing::TestWithParam<IncidentCase> {};

TEST_P(NovaGiftIncident, FiresItsAlertInTimeAndNothingElse) {
  const IncidentCase& c = GetParam();
  Traffic traffic(c.duration, {c.incident});
  const Traffic::Output out = traffic.Replay(2);
  ASSERT_FALSE(out.alerts_json.empty());
  std::set<std::string> expected;
  for (const ExpectedAlert& a : c.expected) expected.insert(a.name);
  EXPECT_EQ(Fired(out.episodes), expected) << out.alerts_json;

  const int64_t start = kStartMs + c.start_ms;
  const int64_t end = kStartMs + c.end_ms;
  const int64_t data_end = kStartMs + c.duration_ms;
  for (const ExpectedAlert& a : c.expected) {
    SCOPED_TRACE(a.name);
    std::vector<const Episode*> fired;
    for (const Episode& e : out.episodes) {
      if (e.alertname == a.name && e.firing_ms) fired.push_back(&e);
    }
    ASSERT_FALSE(fired.empty()) << out.alerts_json;
    int64_t first = *fired[0]->firing_ms;
    const Episode* last = fired[0];
    for (const Episode* e : fired) {
      first = std::min(first, *e->firing_ms);
      if (!e->resolved_ms || (last->resolved_ms && *e->resolved_ms > *last->resolved_ms)) last = e;
      EXPECT_GE(*e->firing_ms, start + a.for_ms)
          << "fired at " << Offset(*e->firing_ms - kStartMs) << ": " << e->line;
      EXPECT_LE(*e->firing_ms, end + a.resolve_by_ms) << e->line;
    }
    EXPECT_LE(first, start + a.first_firing_by_ms) << "first fired at " << Offset(first - kStartMs)
                                                   << ", incident from " << Offset(c.start_ms);
    if (end + a.resolve_by_ms <= data_end) {
      ASSERT_TRUE(last->resolved_ms.has_value()) << "still firing: " << last->line;
    }
    if (last->resolved_ms) {
      EXPECT_GT(*last->resolved_ms, end) << last->line;
      EXPECT_LE(*last->resolved_ms, end + a.resolve_by_ms)
          << "resolved at " << Offset(*last->resolved_ms - kStartMs) << ", incident ended at "
          << Offset(c.end_ms);
    }
    std::printf("%s %s: fired %s (incident %s..%s), last resolved %s\n", c.test_name.c_str(),
                a.name.c_str(), Offset(first - kStartMs).c_str(), Offset(c.start_ms).c_str(),
                Offset(c.end_ms).c_str(),
                last->resolved_ms ? Offset(*last->resolved_ms - kStartMs).c_str() : "(firing)");
  }
}

INSTANTIATE_TEST_SUITE_P(Incidents, NovaGiftIncident, ::testing::ValuesIn(IncidentCases()),
                         [](const ::testing::TestParamInfo<IncidentCase>& info) {
                           return info.param.test_name;
                         });

// The claim drop needs every part of the rules (24 h ranges, offset 1d, alerts
// on recorded series); the outbox failures give several alerts by label.
TEST(NovaGiftBacktest, OneAndTwoThreadsGiveIdenticalAlertsAndMetrics) {
  for (const auto& [duration, incident] : std::vector<std::pair<std::string, std::string>>{
           {"30h", "claim_drop@26h+3h"}, {"4h", "outbox_failures@2h+30m"}}) {
    SCOPED_TRACE(incident);
    Traffic traffic(duration, {incident});
    const Traffic::Output one = traffic.Replay(1);
    const Traffic::Output two = traffic.Replay(2);
    EXPECT_FALSE(Fired(one.episodes).empty());
    EXPECT_TRUE(one.alerts_json == two.alerts_json) << "1 thread:\n"
                                                    << one.alerts_json << "2 threads:\n"
                                                    << two.alerts_json;
    EXPECT_FALSE(one.metrics.empty());
    EXPECT_TRUE(one.metrics == two.metrics) << "metrics differ between 1 and 2 threads";
    EXPECT_TRUE(one.backfill.ends_with("# EOF\n"));
    EXPECT_TRUE(one.backfill == two.backfill) << "backfills differ between 1 and 2 threads";
  }
}

}  // namespace
}  // namespace novapulse
