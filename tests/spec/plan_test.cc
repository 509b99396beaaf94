#include "spec/plan.h"

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace novapulse::spec {
namespace {

using ::testing::HasSubstr;

std::shared_ptr<const SpecPlan> Plan(std::string_view text) {
  absl::StatusOr<MetricSpecSet> spec = ParseMetricSpec(text, "spec.yaml");
  EXPECT_TRUE(spec.ok()) << spec.status();
  if (!spec.ok()) return nullptr;
  absl::StatusOr<std::shared_ptr<const SpecPlan>> plan = SpecPlan::Compile(*std::move(spec));
  EXPECT_TRUE(plan.ok()) << plan.status();
  return plan.ok() ? *plan : nullptr;
}

constexpr std::string_view kWeb = R"(inputs:
  - name: web
    time: ts
    fields:
      ts: {type: time, format: auto}
      method: {path: request.method, type: string, required: true, lowercase: true}
      host: {path: request.host, type: string, values: [a.example, b.example], other: other}
      uri: {path: request.uri, type: string, normalize: path, fallback: path}
      path: {type: string, default: /}
      status: {type: int, required: true, min: 100, max: 599}
      duration: {type: number, scale: 0.001, min: 0}
      user: {type: string, extract: '^(\w+)@', required: 'status == 401'}
      kind: {type: string, map: {x: ex, y: why}}
      ok: bool
metrics:
  - {name: web_requests_total, type: counter, labels: [method, host, uri, status]}
)";

TEST(SpecDecoder, ReadsNestedFieldsAndAppliesTransforms) {
  auto plan = Plan(kWeb);
  ASSERT_NE(plan, nullptr);
  SpecDecoder d(*plan);
  ASSERT_EQ(d.Decode(0, R"({"ts": 1796032801.5, "skip": {"deep": [1, {"x": null}]},
      "request": {"method": "GET", "host": "c.example", "uri": "/orders/8812?x=1", "other": 1},
      "status": 200, "duration": 42.5, "user": "ann@example.com", "kind": "y", "ok": true})"),
            std::nullopt);
  const std::vector<FieldValue>& v = d.values();
  EXPECT_EQ(v[0].time_us, 1796032801500000);
  EXPECT_EQ(v[1].text, "get");
  EXPECT_EQ(v[2].text, "other");  // not in `values`
  EXPECT_EQ(v[3].text, "/orders/:id");
  EXPECT_EQ(v[4].text, "/");  // the default
  EXPECT_EQ(v[5].number, 200);
  EXPECT_DOUBLE_EQ(v[6].number, 0.0425);
  EXPECT_EQ(v[7].text, "ann");
  EXPECT_EQ(v[8].text, "why");
  EXPECT_EQ(v[9].number, 1);
}

TEST(SpecDecoder, FallbackAndAbsentValues) {
  auto plan = Plan(kWeb);
  ASSERT_NE(plan, nullptr);
  SpecDecoder d(*plan);
  ASSERT_EQ(d.Decode(0, R"({"ts": "2026-11-30T10:00:00Z", "request": {"method": "PUT", "uri": null},
      "path": "/p/123", "status": 204, "user": "nobody"})"),
            std::nullopt);
  const std::vector<FieldValue>& v = d.values();
  EXPECT_FALSE(v[2].present);      // no host
  EXPECT_EQ(v[3].text, "/p/123");  // uri fell back to path (raw: path has no transform)
  EXPECT_FALSE(v[6].present);      // no duration
  EXPECT_FALSE(v[7].present);      // extract did not match
}

TEST(SpecDecoder, RejectsByReason) {
  auto plan = Plan(kWeb);
  ASSERT_NE(plan, nullptr);
  SpecDecoder d(*plan);
  const std::string ok = R"("ts": 1796032801, "request": {"method": "GET"}, "status": 200)";
  EXPECT_EQ(d.Decode(0, "{" + ok + "}"), std::nullopt);
  EXPECT_EQ(d.Decode(0, "{" + ok), RejectReason::kMalformedJson);
  EXPECT_EQ(d.Decode(0, "[1, 2]"), RejectReason::kNotObject);
  EXPECT_EQ(d.Decode(0, R"({"ts": 1796032801, "status": 200})"), RejectReason::kMissingField);
  EXPECT_EQ(d.Decode(0, "{" + ok + R"(, "status": 201})"), RejectReason::kDuplicateField);
  EXPECT_EQ(d.Decode(0, R"({"ts": 1796032801, "request": {"method": "GET"}, "status": 700})"),
            RejectReason::kOutOfRange);
  EXPECT_EQ(d.Decode(0, R"({"ts": 1796032801, "request": {"method": 7}, "status": 200})"),
            RejectReason::kWrongType);
  EXPECT_EQ(d.Decode(0, R"({"ts": 1796032801, "request": "GET", "status": 200})"),
            RejectReason::kWrongType);
  EXPECT_EQ(d.Decode(0, R"({"ts": "yesterday", "request": {"method": "GET"}, "status": 200})"),
            RejectReason::kBadTimestamp);
  EXPECT_EQ(d.Decode(0, "{" + ok + R"(, "skip": [1, tru]})"), RejectReason::kMalformedJson);
  // Required only when the condition holds.
  EXPECT_EQ(d.Decode(0, R"({"ts": 1796032801, "request": {"method": "GET"}, "status": 401})"),
            RejectReason::kMissingField);
  EXPECT_EQ(d.Decode(0, "{" + ok + R"(, "request2": {"method": "x"}})"), std::nullopt);
  const std::string huge(300, 'a');
  EXPECT_EQ(d.Decode(0, "{" + ok + R"(, "kind": ")" + huge + "\"}"), RejectReason::kOversize);
}

TEST(SpecDecoder, EscapedKeysAndValues) {
  auto plan = Plan(kWeb);
  ASSERT_NE(plan, nullptr);
  SpecDecoder d(*plan);
  ASSERT_EQ(d.Decode(0, R"({"t\u0073": 1796032801, "request": {"method": "G\u0045T"},
      "status": 200, "kind": "a\"b"})"),
            std::nullopt);
  EXPECT_EQ(d.values()[1].text, "get");
  EXPECT_EQ(d.values()[8].text, "a\"b");
}

// Keys are matched whole, by their bytes and closing quote in up to two
// words and the rest compared after: keys around those edges, sharing
// prefixes, and near misses that must be skipped, through On-Demand and
// through the block path.
TEST(SpecDecoder, KeysMatchWholeAtEveryLength) {
  auto plan = Plan(R"(inputs:
  - name: keys
    time: ts
    fields:
      ts: {type: time, format: auto}
      f7: {path: abcdefg, type: int}
      f8: {path: abcdefgh, type: int}
      f15: {path: abcdefghijklmno, type: int}
      f16: {path: abcdefghijklmnop, type: int}
      f17: {path: abcdefghijklmnopq, type: int}
      f36: {path: abcdefghijklmnopqrstuvwxyz0123456789, type: int}
metrics:
  - {name: keys_total, type: counter}
)");
  ASSERT_NE(plan, nullptr);
  const std::string record =
      R"({"ts": 1796032801, "abcdefgX": 90, "abcdefghX": 91, "abcdefghijklmnoX": 92,)"
      R"( "abcdefghijklmnopX": 93, "abcdefghijklmnopqr": 94, "abcdefghijklmno": 15,)"
      R"( "abcdefghijklmnopqrstuvwxyz012345678": 95, "abcdefgh": 8, "abcdefg": 7,)"
      R"( "abcdefghijklmnop": 16, "abcdefghijklmnopqrstuvwxyz0123456789": 36,)"
      R"( "abcdefghijklmnopqrstuvwxyz01234567890": 96, "abcdefghijklmnopq": 17, "a": 97})";
  auto expect = [](const std::vector<FieldValue>& v) {
    const double want[] = {7, 8, 15, 16, 17, 36};
    for (size_t f = 1; f <= 6; ++f) {
      EXPECT_TRUE(v[f].present) << f;
      EXPECT_EQ(v[f].number, want[f - 1]) << f;
    }
  };
  SpecDecoder alone(*plan);
  ASSERT_EQ(alone.Decode(0, record), std::nullopt);
  expect(alone.values());

  SpecDecoder block(*plan);
  std::string data = record + "\n";
  const size_t size = data.size();
  data.append(simdjson::SIMDJSON_PADDING, ' ');
  block.StartBlock(data.data(), size, data.size());
  int as = -1;
  ASSERT_TRUE(block.Next(0, 0, record.size(), &as));
  EXPECT_EQ(as, 0);
  expect(block.values());
}

// A spec key longer than the raw key it starts like is compared without
// reading past the raw key (the block ends right after this record, with
// only the padding after it), and a spec key holding a quote matches only
// the record's escaped key, never raw bytes that happen to spell it.
TEST(SpecDecoder, KeysNeverMatchPastTheRawKeyOrAcrossAQuote) {
  const std::string long_key = std::string(16, 'a') + std::string(200, 'b');
  auto plan = Plan(absl::StrCat(R"(inputs:
  - name: keys
    time: ts
    fields:
      ts: {type: time, format: auto}
      long: {path: )",
                                long_key, R"(, type: int}
      quoted: {path: 'a":"xyz', type: string}
      escaped: {path: 'k"q', type: int}
metrics:
  - {name: keys_total, type: counter}
)"));
  ASSERT_NE(plan, nullptr);
  const std::string record = R"({"ts":1,"aaaaaaaaaaaaaaaa":1,"a":"xyz"})";
  const size_t size = record.size() + 1;
  std::unique_ptr<char[]> block(new char[size + simdjson::SIMDJSON_PADDING]);
  std::memcpy(block.get(), record.data(), record.size());
  block[record.size()] = '\n';
  std::memset(block.get() + size, ' ', simdjson::SIMDJSON_PADDING);
  SpecDecoder d(*plan);
  d.StartBlock(block.get(), size, size + simdjson::SIMDJSON_PADDING);
  int as = -1;
  ASSERT_TRUE(d.Next(0, 0, record.size(), &as));
  EXPECT_FALSE(d.values()[1].present);
  EXPECT_FALSE(d.values()[2].present);
  ASSERT_EQ(d.Decode(0, block.get(), record.size(), size + simdjson::SIMDJSON_PADDING),
            std::nullopt);
  EXPECT_FALSE(d.values()[1].present);
  EXPECT_FALSE(d.values()[2].present);

  ASSERT_EQ(d.Decode(0, R"({"ts":1,"a\":\"xyz":"yes","k\"q":3})"), std::nullopt);
  EXPECT_EQ(d.values()[2].text, "yes");
  EXPECT_EQ(d.values()[3].number, 3);
}

TEST(SpecDecoder, ValueOutsideAListRejectsWithItsReason) {
  auto plan = Plan(R"(inputs:
  - name: jobs
    time: at
    fields:
      at: {type: time, format: unix_ms}
      type: {type: string, values: [a, b], reject_reason: unknown_type}
metrics: []
)");
  ASSERT_NE(plan, nullptr);
  SpecDecoder d(*plan);
  EXPECT_EQ(d.Decode(0, R"({"at": 1796032801000, "type": "c"})"), RejectReason::kUnknownType);
  ASSERT_EQ(d.Decode(0, R"({"at": 1796032801250, "type": "a"})"), std::nullopt);
  EXPECT_EQ(d.values()[0].time_us, 1796032801250000);
}

TEST(SpecDecoder, DetectsTheInputOfAMixedStream) {
  auto plan = Plan(R"(inputs:
  - name: a
    time: ts
    detect: {all: [method, status], any: [method]}
    fields: {ts: time}
  - name: b
    time: ts
    detect: {all: [id, type], any: [id, data]}
    fields: {ts: time}
metrics: []
)");
  ASSERT_NE(plan, nullptr);
  SpecDecoder d(*plan);
  auto detect = [&](std::string s) {
    s.append(simdjson::SIMDJSON_PADDING, ' ');
    return d.Detect(s.data(), s.size() - simdjson::SIMDJSON_PADDING, s.size());
  };
  EXPECT_EQ(detect(R"({"method": 1, "status": 2})"), 0);
  EXPECT_EQ(detect(R"({"id": 1, "type": 2, "method": 3})"), 1);  // all of b beats any of a
  EXPECT_EQ(detect(R"({"data": 1})"), 1);
  EXPECT_EQ(detect(R"({"x": 1})"), -1);
  EXPECT_EQ(detect("not json"), -1);
}

TEST(SpecPlan, RefusesTwoFieldsOnOnePath) {
  absl::StatusOr<MetricSpecSet> spec = ParseMetricSpec(R"(inputs:
  - name: a
    time: ts
    fields:
      ts: time
      x: {path: r.m, type: string}
      y: {path: r.m.n, type: string}
metrics: []
)",
                                                       "spec.yaml");
  ASSERT_TRUE(spec.ok()) << spec.status();
  absl::StatusOr<std::shared_ptr<const SpecPlan>> plan = SpecPlan::Compile(*std::move(spec));
  ASSERT_FALSE(plan.ok());
  EXPECT_THAT(plan.status().message(),
              HasSubstr("spec.yaml:7:7: inputs.a.fields.y: its path 'r.m.n' meets another"));
}

TEST(Holds, ComparisonsAndAbsentFields) {
  auto plan = Plan(kWeb);
  ASSERT_NE(plan, nullptr);
  const InputSpec& in = plan->spec().inputs[0];
  auto cond = [&](std::string_view text) {
    absl::StatusOr<Condition> c =
        ParseCondition(text, [&](std::string_view n) { return in.FieldIndex(n); });
    EXPECT_TRUE(c.ok()) << c.status();
    return *c;
  };
  std::vector<FieldValue> v(in.fields.size());
  v[5] = {true, {}, 503, 0};
  v[1] = {true, "get", 0, 0};
  EXPECT_TRUE(Holds(cond("status >= 500 and method == \"get\""), v, in));
  EXPECT_FALSE(Holds(cond("status in [200, 204]"), v, in));
  EXPECT_TRUE(Holds(cond("status not in [200, 204]"), v, in));
  EXPECT_TRUE(Holds(cond("method =~ \"g.t\""), v, in));
  EXPECT_FALSE(Holds(cond("kind != \"x\""), v, in));  // absent: false
  EXPECT_TRUE(Holds(cond("not kind exists or kind != \"x\""), v, in));
}

}  // namespace
}  // namespace novapulse::spec
