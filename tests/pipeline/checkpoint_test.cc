// Checkpoints: a state saved mid-stream and loaded into fresh objects goes on
// exactly as the original does (metrics, windows, alert states), and the
// file format rejects damage and other versions.
#include "pipeline/checkpoint.h"

#include <simdjson.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "base/file.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pipeline/metric_engine.h"
#include "pipeline/service.h"
#include "sinks/exposition.h"
#include "sinks/rules_json.h"
#include "spec/metric_spec.h"

namespace novapulse {
namespace {

constexpr std::string_view kRules = R"(groups:
  - name: t
    interval: 15s
    rules:
      - record: route:requests:rate1m
        expr: sum by (route) (rate(http_requests_total[1m]))
      - alert: Errors
        expr: sum(rate(http_requests_total{status=~"5.."}[1m])) > 0.5
        for: 1m
        labels: {severity: page}
        annotations: {summary: "{{ $value }} errors/s"}
      - alert: SlowRequests
        expr: histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket[2m]))) > 0.2
        for: 30s
      - alert: Backlog
        expr: sum(outbox_queued_total) > 20
)";

constexpr int64_t kStartMs = 1'795'651'200'000;  // 2026-11-27T00:00:00Z

// One access-log line per second, two 5xx per second between minutes 5 and
// 15, slow requests between minutes 8 and 12, and outbox messages queued
// faster than they are processed from minute 6.
std::vector<std::pair<Topic, std::string>> Stream(int seconds) {
  std::vector<std::pair<Topic, std::string>> lines;
  for (int s = 0; s < seconds; ++s) {
    const int64_t ts = kStartMs + s * 1000LL;
    const double ms = s >= 480 && s < 720 ? 400.0 : 12.5 + s % 7;
    lines.emplace_back(Topic::kAccessLog,
                       absl::StrFormat(R"({"ts":%d,"method":"GET","route":"/r%d","status":200,)"
                                       R"("duration_ms":%.1f})",
                                       ts, s % 3, ms));
    if (s >= 300 && s < 900) {
      for (int i = 0; i < 2; ++i) {
        lines.emplace_back(Topic::kAccessLog,
                           absl::StrFormat(R"({"ts":%d,"method":"POST","route":"/e","status":503,)"
                                           R"("duration_ms":3,"error_code":"E%d"})",
                                           ts + i, i));
      }
    }
    if (s % 10 == 0) {
      lines.emplace_back(Topic::kOutbox,
                         absl::StrFormat(R"({"ts":%d,"id":"m%d","type":"gift.created",)"
                                         R"("status":"queued","attempt":1,"data":{"gift_id":"g%d",)"
                                         R"("mode":"link","theme":"t%d","value_usd":%d}})",
                                         ts, s, s, s % 4, 5 + s % 50));
    }
    if (s % 10 == 5 && (s < 360 || s % 20 == 5)) {
      lines.emplace_back(Topic::kOutbox,
                         absl::StrFormat(R"({"ts":%d,"id":"m%d","type":"gift.created",)"
                                         R"("status":"in_flight","attempt":1})",
                                         ts, s - 5));
    }
  }
  return lines;
}

// The shipped NovaGift spec, compiled; null for the compiled-in set.
std::shared_ptr<const spec::SpecPlan> NovaGiftPlan(bool spec) {
  if (!spec) return nullptr;
  absl::StatusOr<spec::MetricSpecSet> set =
      spec::LoadMetricSpec(std::string(NOVAPULSE_SOURCE_DIR) + "/configs/metrics/novagift.yaml");
  EXPECT_TRUE(set.ok()) << set.status();
  absl::StatusOr<std::shared_ptr<const spec::SpecPlan>> plan =
      spec::SpecPlan::Compile(*std::move(set));
  EXPECT_TRUE(plan.ok()) << plan.status();
  return *std::move(plan);
}

// The objects `novapulse run` checkpoints, fed the way its pipeline feeds
// them: batches alternate between two shards, each batch gets the clock's
// watermark, and slots close as batches complete. The metrics are the
// compiled-in NovaGift set, or the shipped spec's with `spec`.
struct Service {
  explicit Service(const RuleSet& rules, size_t window_memory_bytes = kDefaultWindowMemoryBytes,
                   int shards = 2, bool spec = false)
      : Service(rules, NovaGiftPlan(spec), window_memory_bytes, shards) {}
  Service(const RuleSet& rules, const std::shared_ptr<const spec::SpecPlan>& plan,
          size_t window_memory_bytes = kDefaultWindowMemoryBytes, int shards = 2) {
    rules_runner = *RuleRunner::Build(
        rules, RuleRunnerOptions{.lateness_ms = 30'000, .window_memory_bytes = window_memory_bytes},
        MetricDefsOf(plan.get(), {}));
    engine = MakeMetricEngine(plan, shards, kDefaultSeriesLimit, &rules_runner->window_spec(), {},
                              1 << 20);
    rules_runner->Attach(&engine->store());
    clock = std::make_unique<EventClock>(30'000, 5'000);
  }
  // The runner's evaluation thread reads the metrics: it stops first.
  ~Service() { rules_runner->Stop(); }
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;
  StatePart* metrics() { return &engine->state(); }
  CheckpointParts state() { return RunCheckpointParts(metrics(), clock.get(), rules_runner.get()); }
  std::string MetricsText() {
    MetricFamilies families;
    engine->source().CollectMetrics(&families);
    return RenderPrometheusText(families.families());
  }

  void Feed(const std::vector<std::pair<Topic, std::string>>& lines, size_t from, size_t to) {
    constexpr size_t kBatch = 50;
    for (size_t b = from; b < to; b += kBatch) {
      if (!rules_runner->started()) rules_runner->Start(kStartMs);
      const int worker = static_cast<int>((b / kBatch) % engine->num_shards());
      engine->Start(worker, clock->BeginBatch());
      for (size_t i = b; i < std::min(to, b + kBatch); ++i) {
        std::string padded = lines[i].second;
        const size_t len = padded.size();
        padded.resize(len + simdjson::SIMDJSON_PADDING);
        engine->ProcessRecord(worker, InputOfTopic(lines[i].first), padded.data(), len,
                              padded.size(), nullptr, {}, {});
      }
      newest_us = std::max(newest_us, engine->EndBatch(worker));
      rules_runner->AdvanceTo(clock->EndBatch(newest_us, /*wall_ms=*/0));
    }
  }
  // Closes through the newest event and renders everything a scrape shows.
  std::string Finish() {
    rules_runner->Finish(newest_us / 1000);
    std::string text = MetricsText();
    WriteRuleSeries(rules_runner->engine().Snapshot().series, &text);
    const std::string rules = RulesJson(rules_runner->engine().Snapshot());
    return text + AlertsJson(rules_runner->engine().Snapshot()) +
           rules.substr(rules.find("\"windowMemory\""));
  }

  std::unique_ptr<RuleRunner> rules_runner;
  std::unique_ptr<MetricEngine> engine;
  std::unique_ptr<EventClock> clock;
  int64_t newest_us = INT64_MIN;
};

// The names of the parts restored, in load order.
std::vector<std::string> RestoredParts(const RestoredCheckpoint& loaded) {
  std::vector<std::string> names;
  for (const RestoredCheckpoint::Part& part : loaded.parts) {
    if (part.restored) names.push_back(part.name);
  }
  return names;
}

RuleSet Rules(std::string_view text = kRules) {
  absl::StatusOr<RuleSet> rules = ParseRuleFile(text, "test.yml");
  EXPECT_TRUE(rules.ok()) << rules.status();
  return *rules;
}

int CountSubstr(const std::string& s, std::string_view what) {
  int n = 0;
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
  return n;
}

// How the metrics are defined before and after a restart.
struct Sets {
  bool original_spec = false;
  bool restored_spec = false;
};

// Saves `original` after lines [0, cut), loads the state into a fresh
// service, feeds both the rest and expects the same end.
void ExpectRestoredGoesOnExactly(const std::vector<std::pair<Topic, std::string>>& lines,
                                 size_t cut, size_t window_memory_bytes = kDefaultWindowMemoryBytes,
                                 Sets sets = {}) {
  const RuleSet rules = Rules();
  Service original(rules, window_memory_bytes, 2, sets.original_spec);
  original.Feed(lines, 0, cut);
  const std::string payload =
      EncodeCheckpoint(original.state(), {{"novagift.access-log", 3, 1234}}, 42);
  const std::string at_cut = AlertsJson(original.rules_runner->engine().Snapshot());

  Service restored(rules, window_memory_bytes, 2, sets.restored_spec);
  absl::StatusOr<RestoredCheckpoint> loaded = DecodeCheckpoint(payload, restored.state(), 0);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_THAT(RestoredParts(*loaded), ::testing::ElementsAre("metrics", "event_clock", "rules"));
  EXPECT_EQ(loaded->written_ms, 42);
  ASSERT_EQ(loaded->offsets.size(), 1u);
  EXPECT_EQ(loaded->offsets[0].topic, "novagift.access-log");
  EXPECT_EQ(loaded->offsets[0].partition, 3);
  EXPECT_EQ(loaded->offsets[0].next_offset, 1234);
  restored.newest_us = original.newest_us;
  // The alerts as they were, before any more input.
  EXPECT_EQ(AlertsJson(restored.rules_runner->engine().Snapshot()), at_cut);

  original.Feed(lines, cut, lines.size());
  restored.Feed(lines, cut, lines.size());
  const std::string want = original.Finish();
  EXPECT_EQ(restored.Finish(), want) << "cut after " << cut << " lines";
  // The run covered what it should: the alerts fired, and every line counted.
  EXPECT_GE(CountSubstr(want, "ALERTS{"), 1) << want;
  EXPECT_NE(want.find("novapulse_events_total{topic=\"novagift.access-log\",result=\"accepted\"} " +
                      std::to_string(1200 + 2 * 600)),
            std::string::npos)
      << want;
}

TEST(Checkpoint, RestoredStateGoesOnExactlyAsTheOriginal) {
  const auto lines = Stream(1200);
  // Where the error alert is firing and the latency one pending.
  size_t firing = 0;
  while (firing < lines.size() &&
         lines[firing].second.find(absl::StrCat(kStartMs + 600'000)) == std::string::npos) {
    ++firing;
  }
  ASSERT_LT(firing, lines.size());
  // Also before any slot has closed, and before any series has samples.
  for (size_t cut : {size_t{0}, size_t{20}, size_t{120}, firing, lines.size() - 10}) {
    ExpectRestoredGoesOnExactly(lines, cut);
  }
}

TEST(Checkpoint, TheShippedSpecRestoresExactly) {
  const auto lines = Stream(1200);
  for (size_t cut : {size_t{0}, size_t{120}, lines.size() / 2, lines.size() - 10}) {
    ExpectRestoredGoesOnExactly(lines, cut, kDefaultWindowMemoryBytes,
                                {.original_spec = true, .restored_spec = true});
  }
}

// The shipped spec defines the compiled-in families: a checkpoint of either
// restores into the other, so moving to the spec keeps every count.
TEST(Checkpoint, TheCompiledInSetAndTheShippedSpecRestoreIntoEachOther) {
  const auto lines = Stream(1200);
  for (size_t cut : {size_t{120}, lines.size() / 2}) {
    ExpectRestoredGoesOnExactly(lines, cut, kDefaultWindowMemoryBytes,
                                {.original_spec = false, .restored_spec = true});
    ExpectRestoredGoesOnExactly(lines, cut, kDefaultWindowMemoryBytes,
                                {.original_spec = true, .restored_spec = false});
  }
}

// The lines of `text` that are samples of `family`.
std::string SamplesOf(const std::string& text, const std::string& family) {
  const std::vector<std::string> lines = absl::StrSplit(text, '\n');
  std::string out;
  for (const std::string& line : lines) {
    if (line.starts_with(family + "{") || line.starts_with(family + " ")) out += line + "\n";
  }
  return out;
}

// A spec changed between two runs (a reload, a restart): the families whose
// definition is the same keep their values, those that changed or are new
// start from 0, and the offsets still hold.
TEST(Checkpoint, AChangedSpecKeepsTheFamiliesThatDidNotChange) {
  absl::StatusOr<std::string> shipped =
      ReadRegularFile(std::string(NOVAPULSE_SOURCE_DIR) + "/configs/metrics/novagift.yaml");
  ASSERT_TRUE(shipped.ok()) << shipped.status();
  std::string text = *std::move(shipped);
  const std::string buckets = "buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]";
  ASSERT_NE(text.find(buckets), std::string::npos);
  text.replace(text.find(buckets), buckets.size(), "buckets: [0.1, 1, 10]");
  const std::string errors = "  - name: http_errors_total\n";
  ASSERT_NE(text.find(errors), std::string::npos);
  text.replace(text.find(errors), errors.size(), "  - name: http_failures_total\n");
  absl::StatusOr<spec::MetricSpecSet> changed_set = spec::ParseMetricSpec(text, "changed.yaml");
  ASSERT_TRUE(changed_set.ok()) << changed_set.status();
  absl::StatusOr<std::shared_ptr<const spec::SpecPlan>> changed =
      spec::SpecPlan::Compile(*std::move(changed_set));
  ASSERT_TRUE(changed.ok()) << changed.status();

  const auto lines = Stream(900);
  const size_t cut = lines.size() / 2;
  Service original(Rules(), kDefaultWindowMemoryBytes, 2, /*spec=*/true);
  original.Feed(lines, 0, cut);
  const std::string payload = EncodeCheckpoint(original.state(), {{"novagift.outbox", 1, 77}}, 0);

  Service restored(Rules(), *changed);
  absl::StatusOr<RestoredCheckpoint> loaded = DecodeCheckpoint(payload, restored.state(), 0);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  ASSERT_EQ(loaded->offsets.size(), 1u);
  EXPECT_EQ(loaded->offsets[0].next_offset, 77);
  ASSERT_NE(loaded->part("metrics"), nullptr);
  EXPECT_TRUE(loaded->part("metrics")->restored);
  EXPECT_EQ(loaded->part("metrics")->note,
            "the metric set changed; families that changed or are new start from 0: "
            "http_request_duration_seconds, http_failures_total");

  // The same lines from the start under the changed spec: what the kept
  // families should show. And only the rest of them: what the others should.
  Service whole(Rules(), *changed);
  whole.Feed(lines, 0, lines.size());
  Service rest(Rules(), *changed);
  rest.Feed(lines, cut, lines.size());
  restored.newest_us = original.newest_us;
  restored.Feed(lines, cut, lines.size());
  const std::string got = restored.MetricsText();
  for (const char* kept : {"http_requests_total", "outbox_queued_total", "gifts_created_total",
                           "novapulse_events_total"}) {
    EXPECT_EQ(SamplesOf(got, std::string(kept)), SamplesOf(whole.MetricsText(), std::string(kept)))
        << kept;
    EXPECT_NE(SamplesOf(got, std::string(kept)), "") << kept;
  }
  for (std::string_view fresh : {"http_request_duration_seconds_count",
                                 "http_request_duration_seconds_bucket", "http_failures_total"}) {
    EXPECT_EQ(SamplesOf(got, std::string(fresh)), SamplesOf(rest.MetricsText(), std::string(fresh)))
        << fresh;
    EXPECT_NE(SamplesOf(got, std::string(fresh)),
              SamplesOf(whole.MetricsText(), std::string(fresh)))
        << fresh;
  }
}

// A section whose fingerprint no metric set writes is refused as a whole.
TEST(Checkpoint, AMetricsFingerprintThatCannotBeReadIsRefused) {
  Service original(Rules(), kDefaultWindowMemoryBytes, 2, /*spec=*/true);
  std::string payload = EncodeCheckpoint(original.state(), {}, 0);
  const size_t at = payload.find("outbox_queued_total:");
  ASSERT_NE(at, std::string::npos);
  const size_t brace = payload.find('{', at);
  ASSERT_NE(brace, std::string::npos);
  payload[brace] = '(';
  Service restored(Rules(), kDefaultWindowMemoryBytes, 2, /*spec=*/true);
  absl::StatusOr<RestoredCheckpoint> loaded = DecodeCheckpoint(payload, restored.state(), 0);
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kFailedPrecondition) << loaded.status();
  EXPECT_THAT(loaded.status().message(), ::testing::HasSubstr("not a metric set's fingerprint"));
}

// Stream(), with a route of its own on every request of the first ten
// minutes: more label sets than a 1 MiB window budget holds.
std::vector<std::pair<Topic, std::string>> ManyRoutes(int seconds) {
  std::vector<std::pair<Topic, std::string>> lines = Stream(seconds);
  int n = 0;
  for (auto& [topic, line] : lines) {
    const size_t at = line.find("\"route\":\"/r");
    if (at == std::string::npos || n >= 600) continue;
    line.insert(at + 11, absl::StrCat("u", n++, "-"));
  }
  return lines;
}

TEST(Checkpoint, RestoredWindowsUnderABudgetGoOnExactly) {
  const auto lines = ManyRoutes(1200);
  constexpr size_t kBudget = size_t{1} << 20;
  Service probe(Rules(), kBudget);
  probe.Feed(lines, 0, lines.size());
  probe.Finish();
  ASSERT_FALSE(probe.rules_runner->history()->folded().empty());
  // Before the budget is spoken for, while folding, and after.
  for (size_t cut : {size_t{150}, size_t{400}, size_t{1000}}) {
    ExpectRestoredGoesOnExactly(lines, cut, kBudget);
  }
}

TEST(Checkpoint, WindowsTooBigForTheBudgetWithMoreThreadsStartAfresh) {
  const auto lines = ManyRoutes(400);
  constexpr size_t kBudget = size_t{1} << 20;
  Service original(Rules(), kBudget, /*shards=*/2);
  original.Feed(lines, 0, lines.size());
  const std::string payload = EncodeCheckpoint(original.state(), {}, 0);

  // With twice the threads every ring costs twice as much.
  Service restored(Rules(), kBudget, /*shards=*/4);
  absl::StatusOr<RestoredCheckpoint> loaded = DecodeCheckpoint(payload, restored.state(), 0);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_THAT(RestoredParts(*loaded), ::testing::ElementsAre("metrics", "event_clock"));
  EXPECT_THAT(loaded->part("rules")->note,
              ::testing::HasSubstr("threads, over the window memory budget"));
  EXPECT_FALSE(restored.rules_runner->started());
  EXPECT_EQ(restored.MetricsText(), original.MetricsText());

  // The same threads, or a budget that holds them: restored.
  Service same(Rules(), kBudget, /*shards=*/2);
  loaded = DecodeCheckpoint(payload, same.state(), 0);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_THAT(RestoredParts(*loaded), ::testing::ElementsAre("metrics", "event_clock", "rules"));
}

TEST(Checkpoint, OtherRulesRestoreTheMetricsButNotTheWindows) {
  const auto lines = Stream(400);
  Service original(Rules());
  original.Feed(lines, 0, lines.size());
  const std::string payload = EncodeCheckpoint(original.state(), {}, 0);

  std::string other(kRules);
  other.replace(other.find("for: 1m"), 7, "for: 2m");
  Service restored(Rules(other));
  absl::StatusOr<RestoredCheckpoint> loaded = DecodeCheckpoint(payload, restored.state(), 0);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_THAT(RestoredParts(*loaded), ::testing::ElementsAre("metrics", "event_clock"));
  EXPECT_EQ(loaded->part("rules")->note,
            "the rules or the window settings changed since the checkpoint");
  EXPECT_FALSE(restored.rules_runner->started());
  EXPECT_EQ(restored.MetricsText(), original.MetricsText());
}

TEST(Checkpoint, AnotherMetricSetIsRefused) {
  Service original(Rules());
  std::string payload = EncodeCheckpoint(original.state(), {}, 0);
  const size_t at = payload.find("http_requests_total:");
  ASSERT_NE(at, std::string::npos);
  payload[at] = 'H';
  Service restored(Rules());
  absl::StatusOr<RestoredCheckpoint> loaded = DecodeCheckpoint(payload, restored.state(), 0);
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kFailedPrecondition) << loaded.status();
}

// A version 1 payload, laid out as novapulse wrote it before sections: the
// metric set's fingerprint, the offsets, the metrics and the event clock
// back to back, then the rules' fingerprint and state.
std::string EncodeVersion1(Service& s, const std::vector<CheckpointOffset>& offsets,
                           int64_t wall_ms) {
  StateWriter w;
  w.I64(wall_ms);
  w.Str(s.metrics()->StateFingerprint());
  w.U64(offsets.size());
  for (const CheckpointOffset& o : offsets) {
    w.Str(o.topic);
    w.I64(o.partition);
    w.I64(o.next_offset);
  }
  s.metrics()->SaveState(&w);
  s.clock->SaveState(&w);
  StateWriter rules;
  s.rules_runner->SaveState(&rules);
  w.Str(s.rules_runner->StateFingerprint());
  w.Str(rules.bytes());
  return w.bytes();
}

TEST(Checkpoint, Version1StillLoadsAndGoesOnExactly) {
  const auto lines = Stream(900);
  const size_t cut = lines.size() / 2;
  Service original(Rules());
  original.Feed(lines, 0, cut);
  const std::string payload = EncodeVersion1(original, {{"novagift.outbox", 2, 99}}, 7);

  Service restored(Rules());
  absl::StatusOr<RestoredCheckpoint> loaded =
      DecodeCheckpoint(payload, restored.state(), 0, /*version=*/1);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_THAT(RestoredParts(*loaded), ::testing::ElementsAre("metrics", "event_clock", "rules"));
  EXPECT_EQ(loaded->written_ms, 7);
  ASSERT_EQ(loaded->offsets.size(), 1u);
  EXPECT_EQ(loaded->offsets[0].next_offset, 99);
  restored.newest_us = original.newest_us;
  original.Feed(lines, cut, lines.size());
  restored.Feed(lines, cut, lines.size());
  EXPECT_EQ(restored.Finish(), original.Finish());

  // Every prefix of it fails cleanly too.
  for (size_t n = 0; n < payload.size(); n += 1 + n / 16) {
    Service fresh(Rules());
    EXPECT_FALSE(DecodeCheckpoint(payload.substr(0, n), fresh.state(), 0, 1).ok()) << n;
  }
}

TEST(Checkpoint, AMissingRequiredPartRefusesTheCheckpoint) {
  const auto lines = Stream(300);
  Service original(Rules());
  original.Feed(lines, 0, lines.size());
  CheckpointParts without_metrics;
  without_metrics.Add(original.clock.get(), CheckpointParts::Need::kRequired);
  const std::string payload = EncodeCheckpoint(without_metrics, {{"t", 0, 5}}, 0);

  Service restored(Rules());
  absl::StatusOr<RestoredCheckpoint> loaded = DecodeCheckpoint(payload, restored.state(), 0);
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kFailedPrecondition) << loaded.status();
  EXPECT_THAT(loaded.status().message(), ::testing::HasSubstr("no metrics state"));
}

TEST(Checkpoint, PartsComeAndGoWithoutTheirSections) {
  const auto lines = Stream(300);
  Service original(Rules());
  original.Feed(lines, 0, lines.size());
  const std::string metrics = original.MetricsText();

  // Written without rules, read with them: the rules start empty.
  const std::string no_rules = EncodeCheckpoint(
      RunCheckpointParts(original.metrics(), original.clock.get(), nullptr), {}, 0);
  Service with_rules(Rules());
  absl::StatusOr<RestoredCheckpoint> loaded = DecodeCheckpoint(no_rules, with_rules.state(), 0);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_THAT(RestoredParts(*loaded), ::testing::ElementsAre("metrics", "event_clock"));
  EXPECT_EQ(loaded->part("rules")->note, "the checkpoint holds no rules state");
  EXPECT_FALSE(with_rules.rules_runner->started());
  EXPECT_EQ(with_rules.MetricsText(), metrics);

  // Written with rules, read without: their section is dropped.
  const std::string all = EncodeCheckpoint(original.state(), {}, 0);
  Service without(Rules());
  loaded =
      DecodeCheckpoint(all, RunCheckpointParts(without.metrics(), without.clock.get(), nullptr), 0);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_THAT(RestoredParts(*loaded), ::testing::ElementsAre("metrics", "event_clock"));
  EXPECT_EQ(loaded->part("rules"), nullptr);
  EXPECT_EQ(without.MetricsText(), metrics);
}

// A part of its own name with nothing in it.
class EmptyPart : public StatePart {
 public:
  explicit EmptyPart(std::string name) : name_(std::move(name)) {}
  std::string_view StateName() const override { return name_; }
  std::string StateFingerprint() const override { return ""; }
  std::string_view StateChanged() const override { return ""; }
  void SaveState(StateWriter* /*w*/) override {}
  absl::Status LoadState(StateReader* /*r*/, StateLoad* /*load*/) override {
    return absl::OkStatus();
  }

 private:
  std::string name_;
};

TEST(Checkpoint, MoreSectionsThanAnyNovapulseWritesAreDamage) {
  std::vector<std::unique_ptr<EmptyPart>> parts;
  CheckpointParts many;
  for (int i = 0; i < 65; ++i) {
    parts.push_back(std::make_unique<EmptyPart>(absl::StrCat("p", i)));
    many.Add(parts.back().get(), CheckpointParts::Need::kOptional);
  }
  const std::string payload = EncodeCheckpoint(many, {}, 0);
  absl::StatusOr<RestoredCheckpoint> loaded = DecodeCheckpoint(payload, many, 0);
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss) << loaded.status();
}

TEST(Checkpoint, ASectionTwiceIsDamage) {
  Service original(Rules());
  CheckpointParts twice;
  twice.Add(original.clock.get(), CheckpointParts::Need::kRequired)
      .Add(original.clock.get(), CheckpointParts::Need::kRequired);
  const std::string payload = EncodeCheckpoint(twice, {}, 0);
  Service restored(Rules());
  absl::StatusOr<RestoredCheckpoint> loaded = DecodeCheckpoint(payload, restored.state(), 0);
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss) << loaded.status();
}

TEST(Checkpoint, TruncatedPayloadsFailCleanly) {
  const auto lines = Stream(700);
  Service original(Rules());
  original.Feed(lines, 0, lines.size());
  const std::string payload = EncodeCheckpoint(original.state(), {{"t", 0, 1}}, 0);
  // Every prefix: an error, never a crash or a huge allocation (ASan checks).
  for (size_t n = 0; n < payload.size(); n += 1 + n / 16) {
    Service restored(Rules());
    absl::StatusOr<RestoredCheckpoint> loaded =
        DecodeCheckpoint(payload.substr(0, n), restored.state(), 0);
    EXPECT_FALSE(loaded.ok()) << n;
  }
}

class CheckpointFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           absl::StrCat("novapulse-ckpt-", ::testing::UnitTest::GetInstance()->random_seed(), "-",
                        reinterpret_cast<uintptr_t>(this));
    std::filesystem::remove_all(dir_);
    absl::StatusOr<std::unique_ptr<CheckpointFile>> file =
        CheckpointFile::Build({.dir = (dir_ / "nested").string()});
    ASSERT_TRUE(file.ok()) << file.status();
    file_ = *std::move(file);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Bytes() {
    std::ifstream in(file_->path(), std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
  void Put(const std::string& bytes) {
    std::ofstream(file_->path(), std::ios::binary | std::ios::trunc) << bytes;
  }

  std::filesystem::path dir_;
  std::unique_ptr<CheckpointFile> file_;
};

TEST_F(CheckpointFileTest, WritesAndReadsBack) {
  EXPECT_TRUE(absl::IsNotFound(file_->Read().status()));
  ASSERT_TRUE(file_->Write("first").ok());
  ASSERT_TRUE(file_->Write(std::string(100'000, 'x')).ok());
  absl::StatusOr<CheckpointPayload> read = file_->Read();
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->version, kCheckpointVersion);
  EXPECT_EQ(read->bytes, std::string(100'000, 'x'));
  EXPECT_FALSE(std::filesystem::exists(file_->path() + ".tmp"));
}

TEST_F(CheckpointFileTest, DamageIsReportedAndSetAside) {
  ASSERT_TRUE(file_->Write("payload bytes").ok());
  const std::string good = Bytes();

  std::string flipped = good;
  flipped.back() ^= 0x01;
  Put(flipped);
  EXPECT_EQ(file_->Read().status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(std::string(file_->Read().status().message()).find("checksum"), std::string::npos);

  Put(good.substr(0, good.size() - 3));
  EXPECT_EQ(file_->Read().status().code(), absl::StatusCode::kDataLoss);
  EXPECT_NE(std::string(file_->Read().status().message()).find("truncated"), std::string::npos);

  Put("not a checkpoint at all, just text");
  EXPECT_EQ(file_->Read().status().code(), absl::StatusCode::kDataLoss);

  std::string other_version = good;
  other_version[8] = static_cast<char>(kCheckpointVersion + 1);
  Put(other_version);
  EXPECT_EQ(file_->Read().status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(std::string(file_->Read().status().message())
                .find(absl::StrCat("format version ", kCheckpointVersion + 1)),
            std::string::npos);
  // An older version this novapulse still reads: the payload, tagged.
  other_version[8] = static_cast<char>(kOldestCheckpointVersion);
  Put(other_version);
  absl::StatusOr<CheckpointPayload> old = file_->Read();
  ASSERT_TRUE(old.ok()) << old.status();
  EXPECT_EQ(old->version, kOldestCheckpointVersion);

  const std::string aside = file_->SetAside();
  ASSERT_FALSE(aside.empty());
  EXPECT_TRUE(std::filesystem::exists(aside));
  EXPECT_TRUE(absl::IsNotFound(file_->Read().status()));
}

TEST_F(CheckpointFileTest, LeftoverTemporaryFileIsRemoved) {
  std::ofstream(file_->path() + ".tmp") << "half written";
  absl::StatusOr<std::unique_ptr<CheckpointFile>> again =
      CheckpointFile::Build({.dir = (dir_ / "nested").string()});
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(std::filesystem::exists(file_->path() + ".tmp"));
}

TEST(CheckpointFile, UnwritableDirectoryIsAnError) {
  absl::StatusOr<std::unique_ptr<CheckpointFile>> file =
      CheckpointFile::Build({.dir = "/proc/novapulse-no-such-dir"});
  EXPECT_FALSE(file.ok());
}

}  // namespace
}  // namespace novapulse
