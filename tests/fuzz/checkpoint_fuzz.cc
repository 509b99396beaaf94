// libFuzzer target: checkpoint payloads. Random bytes would stop at the
// metric-set fingerprint, so the input is a list of edits to a valid payload
// (the state of a few generated minutes with the NovaGift rules, built once):
// 4-byte records of (offset: 2 bytes, scaled to the payload; operation; value)
// that overwrite, flip, insert or delete bytes, then an optional truncation.
// Loading the result into fresh objects (the compiled-in NovaGift set, or
// the shipped NovaGift spec's, by the input's length: an edited fingerprint
// takes the spec's family-by-family load) must succeed or fail with an
// error, never crash, hang or allocate without bound; a state that loads
// must then evaluate, render and save again.
#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "gen/traffic_gen.h"
#include "parsers/event_time_sniff.h"
#include "pipeline/checkpoint.h"
#include "pipeline/metric_engine.h"
#include "pipeline/rule_files.h"
#include "pipeline/service.h"
#include "sinks/exposition.h"
#include "spec/metric_spec.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

struct State {
  std::unique_ptr<novapulse::RuleRunner> rules;
  std::unique_ptr<novapulse::MetricEngine> metrics;
  std::unique_ptr<novapulse::EventClock> clock;
  novapulse::CheckpointParts checkpointed() const {
    return novapulse::RunCheckpointParts(&metrics->state(), clock.get(), rules.get());
  }
};

// The shipped NovaGift spec, compiled once.
const std::shared_ptr<const novapulse::spec::SpecPlan>& NovaGiftSpec() {
  static const auto* plan = [] {
    absl::StatusOr<novapulse::spec::MetricSpecSet> set = novapulse::spec::LoadMetricSpec(
        std::string(NOVAPULSE_SOURCE_DIR) + "/configs/metrics/novagift.yaml");
    FUZZ_CHECK(set.ok());
    absl::StatusOr<std::shared_ptr<const novapulse::spec::SpecPlan>> compiled =
        novapulse::spec::SpecPlan::Compile(*std::move(set));
    FUZZ_CHECK(compiled.ok());
    return new std::shared_ptr<const novapulse::spec::SpecPlan>(*std::move(compiled));
  }();
  return *plan;
}

const novapulse::RuleSet& Rules() {
  static const novapulse::RuleSet* rules = [] {
    absl::StatusOr<novapulse::RuleSet> set = novapulse::LoadRuleFiles(
        {std::string(NOVAPULSE_SOURCE_DIR) + "/configs/alerts/novagift.yml"});
    FUZZ_CHECK(set.ok());
    return new novapulse::RuleSet(*std::move(set));
  }();
  return *rules;
}

State Fresh(bool spec = false) {
  State s;
  const std::shared_ptr<const novapulse::spec::SpecPlan> plan = spec ? NovaGiftSpec() : nullptr;
  s.rules = *novapulse::RuleRunner::Build(Rules(), novapulse::RuleRunnerOptions{},
                                          novapulse::MetricDefsOf(plan.get(), {}));
  s.metrics = novapulse::MakeMetricEngine(plan, 2, 1000, &s.rules->window_spec(), {}, 1 << 20);
  s.rules->Attach(&s.metrics->store());
  s.clock = std::make_unique<novapulse::EventClock>(30'000, 5'000);
  return s;
}

class Feeder : public novapulse::TrafficSink {
 public:
  explicit Feeder(State* s) : s_(s) {}
  absl::Status Write(novapulse::Topic topic, std::string_view line) override {
    if (!s_->rules->started()) {
      int64_t ms = 0;
      if (novapulse::FirstLineEventTime(line, &ms)) s_->rules->Start(ms);
    }
    novapulse::MetricEngine& engine = *s_->metrics;
    const int worker = static_cast<int>(n_++ % 2);
    engine.Start(worker, s_->clock->BeginBatch());
    std::string padded(line);
    padded.resize(line.size() + simdjson::SIMDJSON_PADDING);
    engine.ProcessRecord(worker, novapulse::InputOfTopic(topic), padded.data(), line.size(),
                         padded.size(), nullptr, {}, {});
    s_->rules->AdvanceTo(s_->clock->EndBatch(engine.EndBatch(worker), 0));
    return absl::OkStatus();
  }

 private:
  State* s_;
  uint64_t n_ = 0;
};

const std::string& Valid() {
  static const std::string* payload = [] {
    State s = Fresh();
    novapulse::GenConfig config;
    config.duration_us = 20LL * 60 * 1'000'000;
    config.access_rate = 2;
    config.gifts_per_minute = 6;
    config.wallet_per_minute = 3;
    Feeder feeder(&s);
    FUZZ_CHECK(novapulse::GenerateTraffic(config, feeder).ok());
    auto* p = new std::string(
        novapulse::EncodeCheckpoint(s.checkpointed(), {{"novagift.outbox", 1, 77}}, 1));
    s.rules->Stop();
    return p;
  }();
  return *payload;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > 4096) return 0;
  std::string payload = Valid();
  size_t i = 0;
  for (; i + 4 <= size && !payload.empty(); i += 4) {
    const size_t at = ((size_t{data[i]} << 8 | data[i + 1]) * payload.size()) >> 16;
    const char value = static_cast<char>(data[i + 3]);
    switch (data[i + 2] % 4) {
      case 0:
        payload[at] = value;
        break;
      case 1:
        payload[at] = static_cast<char>(payload[at] ^ value);
        break;
      case 2:
        payload.insert(at, 1, value);
        break;
      case 3:
        payload.erase(at, 1 + static_cast<uint8_t>(value) % 8);
        break;
    }
  }
  if (i + 2 <= size) payload.resize(std::min(payload.size(), size_t{data[i]} << 8 | data[i + 1]));

  State s = Fresh(/*spec=*/size % 2 == 1);
  absl::StatusOr<novapulse::RestoredCheckpoint> restored =
      novapulse::DecodeCheckpoint(payload, s.checkpointed(), 0);
  if (restored.ok()) {
    // What loaded must work: close a few slots, render, save again.
    if (s.rules->started()) {
      const int64_t until = s.rules->history()->open_slot_end_ms() + 60'000;
      s.rules->AdvanceTo(until);
      s.rules->WaitFor(until);
    }
    novapulse::MetricFamilies families;
    s.metrics->source().CollectMetrics(&families);
    (void)novapulse::RenderPrometheusText(families.families());
    (void)novapulse::EncodeCheckpoint(s.checkpointed(), restored->offsets, 0);
  }
  s.rules->Stop();
  // The same bytes read as format 1: fails or loads, never more.
  State old = Fresh(/*spec=*/size % 2 == 1);
  (void)novapulse::DecodeCheckpoint(payload, old.checkpointed(), 0, /*version=*/1);
  old.rules->Stop();
  return 0;
}
