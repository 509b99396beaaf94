// libFuzzer target: a block of NDJSON lines through a metric spec's worker
// code (ProcessSpecLines) into SpecMetrics, with the input detected per
// line, for two specs: the shipped NovaGift spec and a nested one using every
// transform (lower-casing, path normalising, map, replace, extract, values
// with `other`, fallbacks, defaults, conditions). Checks that every non-blank
// line is counted exactly once, accepted or rejected, whatever its bytes,
// and that the block path (records read from the block's structural index,
// in small windows too) exports exactly what decoding each line alone does.
#include <cstddef>
#include <cstdint>
#include <string>

#include "aggregators/spec_metrics.h"
#include "pipeline/record_worker.h"
#include "sinks/exposition.h"
#include "spec/plan.h"
#include "tests/fuzz/fuzz_support.h"
#include "tests/spec/spec_reference.h"

namespace {

constexpr size_t kMaxRecordBytes = 64 * 1024;
// Few series, so the overflow path is fuzzed too and memory stays bounded.
constexpr size_t kSeriesLimit = 64;

constexpr std::string_view kNested = R"(inputs:
  - name: web
    time: ts
    detect: {all: [request], any: [status]}
    fields:
      ts: {type: time, format: auto}
      method: {path: request.method, type: string, required: true, lowercase: true,
               values: [get, post], other: other}
      host: {path: request.host, type: string, replace: {regex: ':[0-9]+$', with: ''},
             map: {a: b}, default: none}
      uri: {path: request.uri, type: string, normalize: path, fallback: path, max_bytes: 4096}
      path: {type: string, extract: '^(/[a-z]*)'}
      status: {type: int, min: 0, max: 999, default: 0}
      size: {type: int, min: 0}
      took: {path: t.ns, type: number, scale: 1e-9, min: 0}
      ok: bool
  - name: jobs
    time: at
    detect: {all: [job], any: [at]}
    fields:
      at: {type: time, format: unix_ms}
      job: {type: string, values: [a, b], reject_reason: unknown_type}
      started: {type: time, format: rfc3339}
metrics:
  - {name: web_requests_total, input: web, type: counter, labels: [method, host, uri, status]}
  - {name: web_bytes_total, input: web, type: counter, value: size, labels: [{site: {value: x}}]}
  - {name: web_took_seconds, input: web, type: histogram, value: took, buckets: [0.01, 1],
     when: 'status >= 500 or uri =~ "/a.*" or ok == true'}
  - {name: web_busy, input: web, type: concurrency, duration: took}
  - {name: web_open, input: web, type: gauge, floor: 0,
     ops: [{add: 1, when: 'method == "post"'}, {add: -1, when: 'method == "get"'}]}
  - {name: job_wait_seconds, input: jobs, type: histogram, labels: [job],
     value: {difference: [at, started], floor: 0}, buckets: [1, 60]}
)";

std::shared_ptr<const novapulse::spec::SpecPlan> Compile(std::string_view text) {
  absl::StatusOr<novapulse::spec::MetricSpecSet> spec =
      novapulse::spec::ParseMetricSpec(text, "fuzz.yaml");
  FUZZ_CHECK(spec.ok());
  absl::StatusOr<std::shared_ptr<const novapulse::spec::SpecPlan>> plan =
      novapulse::spec::SpecPlan::Compile(*std::move(spec));
  FUZZ_CHECK(plan.ok());
  return *plan;
}

std::shared_ptr<const novapulse::spec::SpecPlan> NovaGift() {
  absl::StatusOr<novapulse::spec::MetricSpecSet> spec =
      novapulse::spec::LoadMetricSpec(NOVAPULSE_SOURCE_DIR "/configs/metrics/novagift.yaml");
  FUZZ_CHECK(spec.ok());
  absl::StatusOr<std::shared_ptr<const novapulse::spec::SpecPlan>> plan =
      novapulse::spec::SpecPlan::Compile(*std::move(spec));
  FUZZ_CHECK(plan.ok());
  return *plan;
}

uint64_t EventsCounted(const novapulse::SpecMetrics& metrics) {
  uint64_t total = 0;
  for (const novapulse::FamilySnapshot& f : metrics.Snapshot()) {
    if (f.def->name != "novapulse_events_total") continue;
    for (size_t s = 0; s < f.size(); ++s) total += f.Word(s, 0);
  }
  return total;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::shared_ptr<const novapulse::spec::SpecPlan> plans[] = {NovaGift(),
                                                                           Compile(kNested)};
  const std::string_view block(reinterpret_cast<const char*>(data), size);
  std::string padded(block);
  padded.append(simdjson::SIMDJSON_PADDING, ' ');
  for (const auto& plan : plans) {
    novapulse::SpecMetrics alone(plan, 1, kSeriesLimit);
    novapulse::spec::SpecDecoder alone_decoder(*plan, kMaxRecordBytes);
    const uint64_t lines =
        novapulse::testing::SpecLineByLine(-1, block, alone_decoder, alone.writer(0));
    FUZZ_CHECK(EventsCounted(alone) == lines);
    const std::string expected = novapulse::RenderPrometheusText(alone.Snapshot());
    // A window of 64 bytes puts most lines in windows of their own.
    for (const size_t window : {novapulse::json::kDefaultIndexWindowBytes, size_t{64}}) {
      novapulse::SpecMetrics metrics(plan, 1, kSeriesLimit);
      novapulse::spec::SpecDecoder decoder(*plan, kMaxRecordBytes, window);
      const uint64_t records = novapulse::ProcessSpecLines(-1, padded.data(), size, padded.size(),
                                                           decoder, metrics.writer(0));
      FUZZ_CHECK(records == lines);
      FUZZ_CHECK(novapulse::RenderPrometheusText(metrics.Snapshot()) == expected);
    }
  }
  return 0;
}
