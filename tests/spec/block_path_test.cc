// SpecDecoder's block path (records read straight from a block's structural
// index) against each line decoded alone: the metrics exported must be the
// same, byte for byte, for well-formed and broken lines alike, whatever the
// index windows' edges. And the lines the shipped specs are written for must
// take the block path at all, or it buys nothing.

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>

#include "aggregators/spec_metrics.h"
#include "base/file.h"
#include "gtest/gtest.h"
#include "pipeline/record_worker.h"
#include "simdjson.h"
#include "sinks/exposition.h"
#include "spec/metric_spec.h"
#include "spec/plan.h"
#include "tests/spec/spec_reference.h"

namespace novapulse {
namespace {

constexpr std::string_view kWeb = R"(inputs:
  - name: web
    time: ts
    detect: {all: [request], any: [status]}
    fields:
      ts: {type: time, format: auto}
      method: {path: request.method, type: string, required: true, values: [GET, POST],
               other: OTHER}
      uri: {path: request.uri, type: string, normalize: path}
      status: {type: int, default: 0}
      took: {path: t.s, type: number, min: 0}
      ok: bool
  - name: jobs
    time: at
    detect: {all: [job]}
    fields:
      at: {type: time, format: unix_ms}
      job: {type: string, values: [a, b], reject_reason: unknown_type}
metrics:
  - {name: web_requests_total, input: web, type: counter, labels: [method, uri, status]}
  - {name: web_took_seconds, input: web, type: histogram, value: took, buckets: [0.1, 1],
     when: 'ok == true'}
  - {name: jobs_total, input: jobs, type: counter, labels: [job]}
)";

// Lines whose every byte matters to the block path: escapes in skipped and
// read strings and in keys, \u escapes, numbers of every form, nulls,
// nesting, empty containers, broken grammar, text after the object, and
// records of each input and of none.
constexpr std::string_view kLines =
    R"({"ts":1795651300,"request":{"method":"GET","uri":"/a/1"},"status":200,"t":{"s":0.5},"ok":true}
{"ts":1795651300,"request":{"method":"POST","uri":"/a/2","h":{"q\"x":["a\\b","c\/d"]}},"status":201}
{"ts":1795651300,"request":{"method":"G\u0045T","uri":"/u"},"status":200}
{"ts":1795651300,"request":{"method":"GET","uri":"/x\ty"},"status":200}
{"ts":1795651300,"request":{"method":"GET","uri":"/e"},"ke\"y":1,"status":200}
{"ts":1795651300,"request":{"met\u0068od":"POST","uri":"/e"},"status":200}
{"ts":1795651300,"request":{"method":"GET","uri":"/e"},"status":200,"x":"bad \q escape"}
{"ts":1.7956513001234567e9,"request":{"method":"GET","uri":"/n"},"status":-1,"t":{"s":1e-1},"ok":true}
{"ts":"2026-11-27T10:00:00+01:00","request":{"method":"PUT","uri":"/p"},"status":2e2}
{"ts":1795651300,"request":{"method":"GET","uri":"/n"},"status":12345678901234567890}
{"ts":1795651300,"request":{"method":"GET","uri":"/n"},"t":{"s":-1}}
{"ts":1795651300,"request":{"method":"GET","uri":"/n","deep":[[{"a":[1,{"b":null}]}],[]],"e":{}},"status":200}
{"ts":1795651300,"request":{"method":"GET","uri":"/n"},"x":[1,2,],"status":200}
{"ts":1795651300,"request":{"method":"GET","uri":"/n"},"x":{"a" 1},"status":200}
{"ts":1795651300,"request":{"method":"GET","uri":"/n"},"x":01,"status":200}
{"ts":1795651300,"request":null,"status":200}
{"ts":1795651300,"request":"GET","status":200}
{"ts":1795651300,"request":{"method":["GET"]},"status":200}
{"ts":1795651300,"request":{"method":null},"status":200}
{"ts":1795651300,"request":{"method":"GET"},"status":null,"ok":null}
{"ts":1795651300,"request":{"method":"GET"},"status":200,"status":201}
{"ts":1795651300,"request":{"method":"GET"},"status":200} {"x":1}
{"ts":1795651300,"request":{"method":"GET"},"status":200}}
{"ts":1795651300,"request":{"method":"GET"},"status":200,}
  {"ts":1795651300,"request":{"method":"GET"},"status":200}	
{"at":1795651300123,"job":"a"}
{"at":1795651300123,"job":"c"}
{"at":"1795651300123","job":"a"}
{"at":1795651300123,"job":"b","extra":{"job":"a"}}
{"status":200}
{"neither":1}
[1,2]
not json
{"ts":1795651300,"request":{"method":"GET","uri":"/open
{"ts":1795651300,"request":{"method":"GET","uri":"/after-open"},"status":200}
)";

std::shared_ptr<const spec::SpecPlan> Plan(std::string_view text, std::string_view file) {
  absl::StatusOr<spec::MetricSpecSet> spec = spec::ParseMetricSpec(text, std::string(file));
  EXPECT_TRUE(spec.ok()) << spec.status();
  if (!spec.ok()) return nullptr;
  absl::StatusOr<std::shared_ptr<const spec::SpecPlan>> plan =
      spec::SpecPlan::Compile(*std::move(spec));
  EXPECT_TRUE(plan.ok()) << plan.status();
  return plan.ok() ? *plan : nullptr;
}

std::shared_ptr<const spec::SpecPlan> PlanOf(const std::string& path) {
  absl::StatusOr<std::string> text = ReadRegularFile(path);
  EXPECT_TRUE(text.ok()) << text.status();
  return text.ok() ? Plan(*text, path) : nullptr;
}

// The text /metrics would serve for `lines` decoded one by one.
std::string Alone(const std::shared_ptr<const spec::SpecPlan>& plan, int input,
                  std::string_view lines) {
  SpecMetrics metrics(plan, 1);
  spec::SpecDecoder decoder(*plan);
  testing::SpecLineByLine(input, lines, decoder, metrics.writer(0));
  return RenderPrometheusText(metrics.Snapshot());
}

struct Blocked {
  std::string text;
  uint64_t streamed = 0;
};

Blocked AsBlock(const std::shared_ptr<const spec::SpecPlan>& plan, int input,
                std::string_view lines, size_t window) {
  std::string padded(lines);
  padded.append(simdjson::SIMDJSON_PADDING, ' ');
  SpecMetrics metrics(plan, 1);
  spec::SpecDecoder decoder(*plan, size_t{1} << 20, window);
  ProcessSpecLines(input, padded.data(), lines.size(), padded.size(), decoder, metrics.writer(0));
  return {RenderPrometheusText(metrics.Snapshot()), decoder.streamed()};
}

TEST(SpecBlockPath, ExportsWhatEachLineAloneExports) {
  const std::shared_ptr<const spec::SpecPlan> plan = Plan(kWeb, "web.yaml");
  ASSERT_NE(plan, nullptr);
  const std::string expected = Alone(plan, -1, kLines);
  // Some lines of each kind are accepted, and some rejected for a reason.
  EXPECT_NE(expected.find("web_requests_total{method=\"POST\",uri=\"/a/:id\",status=\"201\"} 1"),
            std::string::npos)
      << expected;
  EXPECT_NE(expected.find("jobs_total{job=\"b\"} 1"), std::string::npos) << expected;
  EXPECT_NE(expected.find("reason=\"unknown_type\""), std::string::npos) << expected;
  // Most lines start a window of their own at 64 bytes; 1 makes every line
  // one. In one large window, the string left open near the end makes
  // stage 1 refuse the whole window: every line is decoded alone.
  for (const size_t window : {json::kDefaultIndexWindowBytes, size_t{64}, size_t{1}}) {
    const Blocked block = AsBlock(plan, -1, kLines, window);
    EXPECT_EQ(block.text, expected) << "window " << window;
    // 13 lines are accepted; all but the two with an escaped key (which
    // might unescape to a key the spec reads) take the block path.
    EXPECT_NE(expected.find("{topic=\"web\",result=\"accepted\"} 11"), std::string::npos);
    EXPECT_NE(expected.find("{topic=\"jobs\",result=\"accepted\"} 2"), std::string::npos);
    if (window == 1) EXPECT_EQ(block.streamed, 11u);
  }
}

TEST(SpecBlockPath, AFixedInputMatchesTooAndAnUnreadableWindowFallsBack) {
  const std::shared_ptr<const spec::SpecPlan> plan = Plan(kWeb, "web.yaml");
  ASSERT_NE(plan, nullptr);
  // Invalid UTF-8 makes stage 1 refuse the whole window: its lines are
  // decoded alone, the next window's from the index again.
  const std::string lines = std::string(kLines) + "{\"ts\":1795651300,\"x\":\"\xff\"}\n" +
                            std::string(kLines.substr(0, kLines.find('\n') + 1));
  for (const size_t window : {json::kDefaultIndexWindowBytes, size_t{200}}) {
    const Blocked block = AsBlock(plan, 0, lines, window);
    EXPECT_EQ(block.text, Alone(plan, 0, lines)) << "window " << window;
  }
}

// The lines the shipped specs are written for take the block path, every one.
void ExpectAllStreamed(const std::string& spec, const std::string& log) {
  const std::shared_ptr<const spec::SpecPlan> plan = PlanOf(spec);
  ASSERT_NE(plan, nullptr);
  absl::StatusOr<std::string> lines = ReadRegularFile(log);
  ASSERT_TRUE(lines.ok()) << lines.status();
  const Blocked block = AsBlock(plan, 0, *lines, json::kDefaultIndexWindowBytes);
  EXPECT_EQ(block.text, Alone(plan, 0, *lines));
  const auto newlines = static_cast<uint64_t>(std::count(lines->begin(), lines->end(), '\n'));
  EXPECT_EQ(block.streamed, newlines);
}

TEST(SpecBlockPath, CaddyAndTraefikSamplesAllTakeIt) {
  const std::string dir = std::string(NOVAPULSE_SOURCE_DIR) + "/configs/metrics/examples/";
  ExpectAllStreamed(dir + "caddy.yaml", dir + "caddy-access.log");
  ExpectAllStreamed(dir + "traefik.yaml", dir + "traefik-access.log");
}

// Bytes stage 1 takes for the start of a scalar just before a string (a
// fuzzer's find): the value's token is then not a string, escaped or not.
TEST(SpecBlockPath, ANulBeforeAStringIsNoString) {
  const std::shared_ptr<const spec::SpecPlan> plan = Plan(kWeb, "web.yaml");
  ASSERT_NE(plan, nullptr);
  using std::string_literals::operator""s;
  const std::string lines =
      "{\"ts\":1795651300,\"request\":{\"method\":\"GET\",\"uri\":\0\0\"/x\\ty\"},\"status\":400}\n"
      "{\"ts\":1795651300,\"request\":{\"method\":\"GET\",\"uri\":\0\"/x\"},\"status\":400}\n"s;
  const std::string expected = Alone(plan, -1, lines);
  EXPECT_NE(expected.find("reason=\"malformed_json\"} 2"), std::string::npos) << expected;
  for (const size_t window : {json::kDefaultIndexWindowBytes, size_t{1}}) {
    EXPECT_EQ(AsBlock(plan, -1, lines, window).text, expected) << "window " << window;
  }
}

}  // namespace
}  // namespace novapulse
