// End-to-end: `novapulse gen` writes 20 minutes of traffic with incidents,
// `novapulse replay` turns it into Prometheus text, and every NovaGift metric
// is compared with counts this test computes itself from the generated files
// (simdjson DOM, its own route normalisation and timestamp parsing; nothing
// of novapulse's parsers or aggregators).
#include "pipeline/replay.h"

#include <fcntl.h>
#include <simdjson.h>
#include <zstd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_format.h"
#include "aggregators/novagift_metrics.h"
#include "gen/traffic_gen.h"
#include "gtest/gtest.h"
#include "sinks/exposition.h"
#include "tests/pipeline/test_process.h"
#include "tests/sinks/prometheus_text.h"

namespace novapulse {
namespace {

using ::novapulse::testing::Labels;
using ::novapulse::testing::ParsePromText;
using ::novapulse::testing::ProcessResult;
using ::novapulse::testing::PromHistogram;
using ::novapulse::testing::PromText;
using ::novapulse::testing::ReadWholeFile;
using ::novapulse::testing::RunNovapulse;
using ::novapulse::testing::ScratchDir;
using ::novapulse::testing::SeriesKey;
using ::novapulse::testing::StdinFrom;
using ::novapulse::testing::ValidateExposition;
using ::novapulse::testing::WriteWholeFile;

// The bucket bounds novapulse documents (aggregators/novagift_metrics.cc).
const std::vector<double> kLatencyBounds = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                            0.5,   1,    2.5,   5,    10};
const std::vector<double> kProcessingBounds = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                               0.5,   1,    2.5,   5,    10,  30};
const std::vector<double> kAttemptBounds = {1, 2, 3, 4, 5, 6, 8, 10};
const std::vector<double> kUsdBounds = {1, 5, 10, 25, 50, 100, 250, 500, 1000};
const std::vector<double> kClaimBounds = {60,    300,   900,   1800,   3600,   7200,
                                          21600, 43200, 86400, 172800, 345600, 604800};

constexpr std::string_view kAccessTopic = "novagift.access-log";
constexpr std::string_view kOutboxTopic = "novagift.outbox";

struct ExpectedHistogram {
  const std::vector<double>* bounds = nullptr;
  std::vector<uint64_t> counts;  // per bucket, +Inf last; not cumulative
  double sum = 0;

  void Observe(double v) {
    if (counts.empty()) counts.assign(bounds->size() + 1, 0);
    size_t b = 0;
    while (b < bounds->size() && v > (*bounds)[b]) ++b;  // le: v <= bound
    ++counts[b];
    sum += v;
  }
};

// RFC 3339 with a 'Z' offset, any number of fraction digits, to microseconds.
std::optional<int64_t> ParseUtc(std::string_view s) {
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' ||
      s.back() != 'Z') {
    return std::nullopt;
  }
  auto num = [&s](size_t pos, size_t n) {
    int v = 0;
    for (size_t i = pos; i < pos + n; ++i) v = v * 10 + (s[i] - '0');
    return v;
  };
  using namespace std::chrono;
  const year_month_day ymd{year{num(0, 4)}, month{static_cast<unsigned>(num(5, 2))},
                           day{static_cast<unsigned>(num(8, 2))}};
  if (!ymd.ok()) return std::nullopt;
  int64_t micros = 0;
  if (s[19] == '.') {
    int64_t scale = 100000;
    for (size_t i = 20; i + 1 < s.size(); ++i, scale /= 10) micros += (s[i] - '0') * scale;
  }
  const int64_t days = sys_days(ymd).time_since_epoch().count();
  return (days * 86400 + num(11, 2) * 3600 + num(14, 2) * 60 + num(17, 2)) * 1'000'000 + micros;
}

// The documented route rule, written again here: numeric, UUID, hex of 16 or
// more, opaque tokens (16+ of [A-Za-z0-9_-] with a digit) and any segment of
// 48+ bytes become ":id"; query and fragment are dropped.
bool IdSegment(std::string_view seg) {
  if (seg.empty()) return false;
  if (seg.size() >= 48) return true;
  auto all = [&seg](auto pred) { return std::all_of(seg.begin(), seg.end(), pred); };
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  auto hex = [&digit](char c) {
    return digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
  };
  if (all(digit)) return true;
  if (seg.size() >= 16 && all(hex)) return true;
  if (seg.size() == 36) {
    bool uuid = true;
    for (size_t i = 0; i < 36; ++i) {
      const bool dash = i == 8 || i == 13 || i == 18 || i == 23;
      uuid &= dash ? seg[i] == '-' : hex(seg[i]);
    }
    if (uuid) return true;
  }
  const bool token = all([&digit](char c) {
    return digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || c == '_';
  });
  return seg.size() >= 16 && token && std::any_of(seg.begin(), seg.end(), digit);
}

std::string RouteOf(std::string_view path) {
  path = path.substr(0, path.find_first_of("?#"));
  std::string route;
  size_t start = 0;
  while (true) {
    const size_t slash = path.find('/', start);
    const std::string_view seg = path.substr(start, slash - start);
    route += IdSegment(seg) ? ":id" : std::string(seg);
    if (slash == std::string_view::npos) break;
    route += '/';
    start = slash + 1;
  }
  return route;
}

// What the metrics must say, computed from the generated files.
struct Expected {
  uint64_t access_lines = 0;
  uint64_t outbox_lines = 0;
  uint64_t path_only_lines = 0;
  std::set<std::string> path_only_routes;
  uint64_t route_path_disagreements = 0;  // lines where our RouteOf(path) != route
  std::string first_disagreement;
  // family -> SeriesKey -> value
  std::map<std::string, std::map<std::string, double>> counters;
  // family -> SeriesKey (without le) -> histogram
  std::map<std::string, std::map<std::string, ExpectedHistogram>> histograms;
  std::map<std::string, int64_t> gauge_deltas;    // SeriesKey -> entries minus exits
  std::vector<std::string> access_keys_in_order;  // http_requests_total keys per line
  std::vector<std::pair<int64_t, int64_t>> busy;  // [start, end] of each request, us
  int64_t newest_us = 0;
  std::vector<std::string> problems;  // lines the oracle could not read

  void Count(const std::string& family, const Labels& labels, double n = 1) {
    counters[family][SeriesKey(family, labels)] += n;
  }
  void Observe(const std::string& family, const std::vector<double>& bounds, const Labels& labels,
               double v) {
    ExpectedHistogram& h = histograms[family][SeriesKey(family, labels)];
    h.bounds = &bounds;
    h.Observe(v);
  }
  void Gauge(const std::string& family, const std::string& type, int64_t delta) {
    gauge_deltas[SeriesKey(family, {{"type", type}})] += delta;
  }
};

// A string field's value; empty when absent, null or not a string.
std::string Field(simdjson::dom::object o, std::string_view key) {
  std::string_view s;
  return o[key].get_string().get(s) ? std::string() : std::string(s);
}

void ReadAccess(const std::string& path, Expected& x) {
  simdjson::padded_string json;
  if (simdjson::padded_string::load(path).get(json)) {
    x.problems.push_back("cannot load " + path);
    return;
  }
  simdjson::dom::parser parser;
  simdjson::dom::document_stream docs;
  if (parser.parse_many(json).get(docs)) {
    x.problems.push_back("parse_many failed");
    return;
  }
  for (auto doc_result : docs) {
    simdjson::dom::object o;
    if (doc_result.get_object().get(o)) {
      x.problems.push_back("access line is not an object");
      continue;
    }
    ++x.access_lines;
    const std::optional<int64_t> ts = ParseUtc(Field(o, "ts"));
    int64_t status = 0;
    double duration_ms = 0;
    if (!ts || o["status"].get_int64().get(status) ||
        o["duration_ms"].get_double().get(duration_ms)) {
      x.problems.push_back("access line without ts, status or duration_ms");
      continue;
    }
    const std::string method = Field(o, "method");
    const std::string path = Field(o, "path");
    std::string route;
    if (o["route"].error() == simdjson::NO_SUCH_FIELD) {
      route = RouteOf(path);
      ++x.path_only_lines;
      x.path_only_routes.insert(route);
    } else {
      route = Field(o, "route");
      if (!path.empty() && RouteOf(path) != route) {
        if (x.route_path_disagreements++ == 0) x.first_disagreement = path + " vs " + route;
      }
    }
    const std::string status_text = std::to_string(status);
    x.Count("http_requests_total", {{"method", method}, {"route", route}, {"status", status_text}});
    x.access_keys_in_order.push_back(SeriesKey(
        "http_requests_total", {{"method", method}, {"route", route}, {"status", status_text}}));
    x.Observe("http_request_duration_seconds", kLatencyBounds,
              {{"method", method}, {"route", route}}, duration_ms / 1000.0);
    if (const std::string code = Field(o, "error_code"); !code.empty()) {
      x.Count("http_errors_total", {{"route", route}, {"error_code", code}});
    }
    x.busy.emplace_back(*ts - std::llround(duration_ms * 1000.0), *ts);
    x.newest_us = std::max(x.newest_us, *ts);
  }
}

void ReadOutbox(const std::string& path, Expected& x) {
  simdjson::padded_string json;
  if (simdjson::padded_string::load(path).get(json)) {
    x.problems.push_back("cannot load " + path);
    return;
  }
  simdjson::dom::parser parser;
  simdjson::dom::document_stream docs;
  if (parser.parse_many(json).get(docs)) {
    x.problems.push_back("parse_many failed");
    return;
  }
  for (auto doc_result : docs) {
    simdjson::dom::object o;
    if (doc_result.get_object().get(o)) {
      x.problems.push_back("outbox line is not an object");
      continue;
    }
    ++x.outbox_lines;
    const std::optional<int64_t> ts = ParseUtc(Field(o, "ts"));
    int64_t attempt = 0;
    if (!ts || o["attempt"].get_int64().get(attempt)) {
      x.problems.push_back("outbox line without ts or attempt");
      continue;
    }
    x.newest_us = std::max(x.newest_us, *ts);
    const std::string type = Field(o, "type");
    const std::string status = Field(o, "status");
    double processing_ms = -1;
    const bool has_processing = !o["processing_ms"].get_double().get(processing_ms);
    const std::string error = Field(o, "error");
    auto processing = [&] {
      if (has_processing) {
        x.Observe("outbox_processing_duration_seconds", kProcessingBounds, {{"type", type}},
                  processing_ms / 1000.0);
      }
    };
    if (status == "queued") {
      x.Gauge("outbox_queued_total", type, +1);
      simdjson::dom::object data;
      if (o["data"].get_object().get(data)) {
        x.problems.push_back("queued outbox line without data");
        continue;
      }
      const std::string mode = Field(data, "mode");
      const std::string theme = Field(data, "theme");
      if (type == "gift.created") {
        double value = 0;
        if (data["value_usd"].get_double().get(value)) x.problems.push_back("no value_usd");
        x.Count("gifts_created_total", {{"mode", mode}, {"theme", theme}});
        x.Observe("gift_value_usd", kUsdBounds, {{"mode", mode}}, value);
      } else if (type == "gift.claimed") {
        const std::optional<int64_t> created = ParseUtc(Field(data, "created_at"));
        if (!created) x.problems.push_back("claim without created_at");
        x.Count("gifts_claimed_total", {{"mode", mode}, {"theme", theme}});
        x.Observe("gift_claim_duration_seconds", kClaimBounds, {{"mode", mode}},
                  std::max<int64_t>(0, *ts - created.value_or(*ts)) / 1e6);
      } else if (type == "gift.expired") {
        x.Count("gifts_expired_total", {{"mode", mode}, {"theme", theme}});
      } else if (type == "wallet.transaction") {
        x.Count("wallet_transactions_total",
                {{"kind", Field(data, "kind")}, {"status", Field(data, "status")}});
      }
    } else if (status == "in_flight") {
      x.Gauge("outbox_queued_total", type, -1);
      x.Gauge("outbox_in_flight_total", type, +1);
    } else if (status == "processed") {
      x.Gauge("outbox_in_flight_total", type, -1);
      x.Count("outbox_processed_total", {{"type", type}});
      processing();
      x.Observe("outbox_retry_count", kAttemptBounds, {{"type", type}}, attempt);
    } else if (status == "failed") {
      x.Gauge("outbox_in_flight_total", type, -1);
      x.Gauge("outbox_queued_total", type, +1);
      x.Count("outbox_failed_total", {{"type", type}});
      x.Count("outbox_errors_total",
              {{"type", type}, {"error", error.empty() ? "unknown" : error}});
      processing();
    } else if (status == "dead") {
      x.Gauge("outbox_queued_total", type, -1);
      x.Count("outbox_dead_total", {{"type", type}});
      x.Observe("outbox_retry_count", kAttemptBounds, {{"type", type}}, attempt);
    } else {
      x.problems.push_back("unknown outbox status " + status);
    }
  }
}

// A counter or gauge family equals `expected`: every expected series has its
// value, and any other series the output has is zero.
void ExpectFamilyEquals(const PromText& text, const std::string& family,
                        const std::map<std::string, double>& expected) {
  SCOPED_TRACE(family);
  ASSERT_NE(text.Family(family), nullptr) << "no family " << family;
  const std::map<std::string, double> actual = text.Samples(family);
  int reported = 0;
  for (const auto& [key, value] : expected) {
    auto it = actual.find(key);
    const double got = it == actual.end() ? std::nan("") : it->second;
    if (got != value && ++reported <= 10)
      ADD_FAILURE() << key << ": got " << got << ", want " << value;
  }
  for (const auto& [key, value] : actual) {
    if (!expected.contains(key) && value != 0 && ++reported <= 10) {
      ADD_FAILURE() << key << ": got " << value << ", want nothing";
    }
  }
}

bool Near(double got, double want, double rel) {
  return std::abs(got - want) <= rel * std::max(std::abs(want), 1e-9);
}

// Every series: each `le` bucket (cumulative), _count exactly, _sum within
// 1e-6 relative; series the output has beyond `expected` must be empty.
void ExpectHistogramsEqual(const PromText& text, const std::string& family,
                           const std::map<std::string, ExpectedHistogram>& expected,
                           const std::vector<double>& bounds) {
  SCOPED_TRACE(family);
  ASSERT_NE(text.Family(family), nullptr) << "no family " << family;
  const std::map<std::string, PromHistogram> actual = text.Histograms(family);
  for (const auto& [key, want] : expected) {
    auto it = actual.find(key);
    if (it == actual.end()) {
      ADD_FAILURE() << "missing series " << key;
      continue;
    }
    const PromHistogram& got = it->second;
    std::vector<double> les = bounds;
    les.push_back(std::numeric_limits<double>::infinity());
    ASSERT_EQ(got.buckets.size(), les.size()) << key;
    uint64_t cumulative = 0;
    for (size_t b = 0; b < les.size(); ++b) {
      cumulative += want.counts[b];
      auto bucket = got.buckets.find(les[b]);
      ASSERT_NE(bucket, got.buckets.end()) << key << " has no le=" << les[b];
      EXPECT_EQ(bucket->second, static_cast<double>(cumulative)) << key << " le=" << les[b];
    }
    EXPECT_EQ(got.count, static_cast<double>(cumulative)) << key;
    EXPECT_TRUE(Near(got.sum, want.sum, 1e-6)) << key << " _sum " << got.sum << " vs " << want.sum;
  }
  for (const auto& [key, got] : actual) {
    if (!expected.contains(key)) {
      EXPECT_EQ(got.count, 0) << "unexpected series " << key;
    }
  }
}

// The same series with the same values; histogram sums may differ in the
// last bits (floating-point addition order).
void ExpectSameMetrics(const PromText& a, const PromText& b) {
  int reported = 0;
  for (const auto& [key, value] : a.values) {
    auto it = b.values.find(key);
    if (it == b.values.end()) {
      if (++reported <= 10) ADD_FAILURE() << "only in the first: " << key;
      continue;
    }
    const bool is_sum = key.find("_sum{") != std::string::npos;
    const bool same = is_sum ? Near(it->second, value, 1e-9) : it->second == value;
    if (!same && ++reported <= 10) ADD_FAILURE() << key << ": " << value << " vs " << it->second;
  }
  for (const auto& [key, value] : b.values) {
    if (!a.values.contains(key) && ++reported <= 10) ADD_FAILURE() << "only in the second: " << key;
  }
}

struct ReplayRun {
  ProcessResult process;
  std::string text;
  PromText parsed;
};

// Generated input, expectations and replays are made once per process and
// only when a test asks for them (ctest runs each test in its own process).
class ReplayEndToEnd : public ::testing::Test {
 protected:
  // Removed when the process exits.
  static ScratchDir& Dir() {
    static ScratchDir dir;
    return dir;
  }
  static std::string AccessPath() { return Dir().Path("gen/access-log.ndjson"); }
  static std::string OutboxPath() { return Dir().Path("gen/outbox.ndjson"); }

  static bool Generate() {
    static const bool ok = [] {
      const ProcessResult r = RunNovapulse(
          {"gen", "--out", Dir().Path("gen"), "--duration", "20m", "--rate", "200", "--seed", "7",
           "--incident", "error_spike@5m+4m", "--incident", "outbox_failures@9m+6m"});
      EXPECT_EQ(r.exit_code, 0) << r.err;
      return r.exit_code == 0;
    }();
    return ok;
  }

  static const Expected& Want() {
    static const Expected* expected = [] {
      auto* x = new Expected;
      if (Generate()) {
        ReadAccess(AccessPath(), *x);
        ReadOutbox(OutboxPath(), *x);
      }
      return x;
    }();
    return *expected;
  }

  static ReplayRun Replay(std::vector<std::string> args,
                          const std::string& stdin_path = "/dev/null") {
    ReplayRun run;
    if (!Generate()) return run;
    const std::string out = Dir().Path("metrics-" + std::to_string(counter_++) + ".txt");
    args.insert(args.begin(), "replay");
    args.insert(args.end(), {"--output", out});
    run.process = RunNovapulse(args, stdin_path);
    run.text = ReadWholeFile(out);
    run.parsed = ParsePromText(run.text);
    return run;
  }

  // Named replays, each run once.
  static const ReplayRun& Replayed(const std::string& name) {
    static std::map<std::string, ReplayRun>* runs = new std::map<std::string, ReplayRun>;
    if (auto it = runs->find(name); it != runs->end()) return it->second;
    ReplayRun run;
    if (!Generate()) return runs->emplace(name, std::move(run)).first->second;
    if (name == "threads2") {
      run = Replay({"--threads", "2", AccessPath(), OutboxPath()});
    } else if (name == "threads1") {
      run = Replay({"--threads", "1", AccessPath(), OutboxPath()});
    } else if (name == "stdin") {
      run = Replay(
          {"--threads", "2", "--topic", "access-log", "-", "--topic", "outbox", OutboxPath()},
          AccessPath());
    } else if (name == "zstd") {
      for (const std::string& path : {AccessPath(), OutboxPath()}) {
        const std::string plain = ReadWholeFile(path);
        std::string zst(ZSTD_compressBound(plain.size()), '\0');
        zst.resize(ZSTD_compress(zst.data(), zst.size(), plain.data(), plain.size(), 1));
        WriteWholeFile(path + ".zst", zst);
      }
      run = Replay({"--threads", "2", AccessPath() + ".zst", OutboxPath() + ".zst"});
    } else if (name == "spec") {
      // The same metrics declared in the shipped spec, not compiled in.
      run = Replay({"--threads", "2", "--metrics", NovaGiftSpec(), AccessPath(), OutboxPath()});
    }
    return runs->emplace(name, std::move(run)).first->second;
  }

  static std::string NovaGiftSpec() {
    return std::string(NOVAPULSE_SOURCE_DIR) + "/configs/metrics/novagift.yaml";
  }

  // The replays every value test checks.
  static std::vector<std::string> ValueRuns() { return {"threads2", "threads1", "spec"}; }

  static inline int counter_ = 0;
};

TEST_F(ReplayEndToEnd, GeneratedInputIsReadableAndExercisesEveryFamily) {
  const Expected& x = Want();
  ASSERT_TRUE(x.problems.empty()) << x.problems.front();
  EXPECT_GT(x.access_lines, 100'000u);
  EXPECT_GT(x.outbox_lines, 1000u);
  // The incidents make errors, failed attempts, retries and dead messages.
  uint64_t server_errors = 0;
  for (const auto& [key, n] : x.counters.at("http_requests_total")) {
    if (key.find("status=\"5") != std::string::npos) server_errors += n;
  }
  EXPECT_GT(server_errors, 1000u);
  EXPECT_FALSE(x.counters.at("outbox_dead_total").empty());
  EXPECT_FALSE(x.counters.at("outbox_failed_total").empty());
  for (const char* family : {"http_errors_total", "gifts_created_total", "gifts_claimed_total",
                             "gifts_expired_total", "wallet_transactions_total"}) {
    EXPECT_TRUE(x.counters.contains(family)) << family;
  }
  for (const char* family : {"gift_value_usd", "gift_claim_duration_seconds", "outbox_retry_count",
                             "outbox_processing_duration_seconds"}) {
    EXPECT_TRUE(x.histograms.contains(family)) << family;
  }
}

TEST_F(ReplayEndToEnd, ExitsZeroWithValidPrometheusTextAndASummary) {
  for (const std::string& name : ValueRuns()) {
    SCOPED_TRACE(name);
    const ReplayRun& run = Replayed(name);
    EXPECT_EQ(run.process.exit_code, 0) << run.process.err;
    const std::vector<std::string> problems = ValidateExposition(run.parsed);
    EXPECT_TRUE(problems.empty()) << problems.front();
    const uint64_t total = Want().access_lines + Want().outbox_lines;
    EXPECT_NE(run.process.err.find("replayed " + std::to_string(total) + " records (" +
                                   std::to_string(total) + " accepted, 0 rejected)"),
              std::string::npos)
        << run.process.err;
    EXPECT_TRUE(run.process.out.empty()) << "metrics went to --output, not stdout";
  }
}

TEST_F(ReplayEndToEnd, PathOnlyLinesCountUnderTheirNormalisedRoutes) {
  const Expected& x = Want();
  EXPECT_GT(x.path_only_lines, 1000u);
  // Our rule agrees with the generator's route on every line that has both,
  // so using it for path-only lines is sound.
  EXPECT_EQ(x.route_path_disagreements, 0u) << x.first_disagreement;
  EXPECT_TRUE(x.path_only_routes.contains("/api/gifts/:id"));
  EXPECT_TRUE(x.path_only_routes.contains("/api/users/:id/gifts"));
  for (const std::string& route : x.path_only_routes) {
    EXPECT_EQ(route.find_first_of("0123456789"), std::string::npos) << route;
  }
  const testing::PromFamily* requests = Replayed("threads2").parsed.Family("http_requests_total");
  ASSERT_NE(requests, nullptr);
  for (const testing::PromSample& sample : requests->samples) {
    for (const auto& [label, value] : sample.labels) {
      if (label == "route") {
        EXPECT_EQ(value.find_first_of("0123456789"), std::string::npos)
            << "a raw id became a route label: " << value;
      }
    }
  }
}

TEST_F(ReplayEndToEnd, HttpRequestsTotalMatchesIndependentCounts) {
  for (const std::string& name : ValueRuns()) {
    SCOPED_TRACE(name);
    ExpectFamilyEquals(Replayed(name).parsed, "http_requests_total",
                       Want().counters.at("http_requests_total"));
  }
}

TEST_F(ReplayEndToEnd, HttpRequestDurationHistogramMatchesIndependentCounts) {
  for (const std::string& name : ValueRuns()) {
    SCOPED_TRACE(name);
    ExpectHistogramsEqual(Replayed(name).parsed, "http_request_duration_seconds",
                          Want().histograms.at("http_request_duration_seconds"), kLatencyBounds);
  }
}

TEST_F(ReplayEndToEnd, HttpErrorsTotalMatchesIndependentCounts) {
  for (const std::string& name : ValueRuns()) {
    SCOPED_TRACE(name);
    ExpectFamilyEquals(Replayed(name).parsed, "http_errors_total",
                       Want().counters.at("http_errors_total"));
  }
}

TEST_F(ReplayEndToEnd, OutboxCountersAndFinalGaugesMatchIndependentCounts) {
  const Expected& x = Want();
  std::map<std::string, double> queued, in_flight;
  for (const auto& [key, delta] : x.gauge_deltas) {
    auto& target = key.starts_with("outbox_queued_total") ? queued : in_flight;
    target[key] = static_cast<double>(std::max<int64_t>(0, delta));
  }
  for (const std::string& name : ValueRuns()) {
    SCOPED_TRACE(name);
    const PromText& text = Replayed(name).parsed;
    for (const char* family : {"outbox_processed_total", "outbox_failed_total", "outbox_dead_total",
                               "outbox_errors_total"}) {
      ExpectFamilyEquals(text, family, x.counters.at(family));
    }
    ExpectFamilyEquals(text, "outbox_queued_total", queued);
    ExpectFamilyEquals(text, "outbox_in_flight_total", in_flight);
  }
}

TEST_F(ReplayEndToEnd, OutboxHistogramsMatchIndependentCounts) {
  for (const std::string& name : ValueRuns()) {
    SCOPED_TRACE(name);
    const PromText& text = Replayed(name).parsed;
    ExpectHistogramsEqual(text, "outbox_retry_count", Want().histograms.at("outbox_retry_count"),
                          kAttemptBounds);
    ExpectHistogramsEqual(text, "outbox_processing_duration_seconds",
                          Want().histograms.at("outbox_processing_duration_seconds"),
                          kProcessingBounds);
  }
}

TEST_F(ReplayEndToEnd, GiftAndWalletMetricsMatchIndependentCounts) {
  for (const std::string& name : ValueRuns()) {
    SCOPED_TRACE(name);
    const PromText& text = Replayed(name).parsed;
    for (const char* family : {"gifts_created_total", "gifts_claimed_total", "gifts_expired_total",
                               "wallet_transactions_total"}) {
      ExpectFamilyEquals(text, family, Want().counters.at(family));
    }
    ExpectHistogramsEqual(text, "gift_value_usd", Want().histograms.at("gift_value_usd"),
                          kUsdBounds);
    ExpectHistogramsEqual(text, "gift_claim_duration_seconds",
                          Want().histograms.at("gift_claim_duration_seconds"), kClaimBounds);
  }
}

TEST_F(ReplayEndToEnd, SelfMetricsCountEveryLineAndTheNewestEventTime) {
  const Expected& x = Want();
  std::map<std::string, double> events = {
      {SeriesKey("novapulse_events_total",
                 {{"topic", std::string(kAccessTopic)}, {"result", "accepted"}}),
       static_cast<double>(x.access_lines)},
      {SeriesKey("novapulse_events_total",
                 {{"topic", std::string(kOutboxTopic)}, {"result", "accepted"}}),
       static_cast<double>(x.outbox_lines)},
  };
  for (const std::string& name : ValueRuns()) {
    SCOPED_TRACE(name);
    const PromText& text = Replayed(name).parsed;
    ExpectFamilyEquals(text, "novapulse_events_total", events);
    ExpectFamilyEquals(text, "novapulse_parse_errors_total", {});
    EXPECT_NEAR(text.Value("novapulse_newest_event_time_seconds"), x.newest_us / 1e6, 1e-5);
    EXPECT_EQ(text.Value("novapulse_series", {{"metric", "http_requests_total"}}),
              x.counters.at("http_requests_total").size());
    EXPECT_EQ(text.Value("novapulse_series", {{"metric", "gifts_created_total"}}),
              x.counters.at("gifts_created_total").size());
  }
}

TEST_F(ReplayEndToEnd, ActiveConnectionsAverageTheLastMinuteOfBusyTime) {
  const Expected& x = Want();
  // The 60 whole event-time seconds before the one in progress (the one of
  // the newest event).
  const int64_t newest_second = x.newest_us / 1'000'000;
  const int64_t from = (newest_second - 60) * 1'000'000, to = newest_second * 1'000'000;
  int64_t busy = 0, requests = 0;
  for (const auto& [start, end] : x.busy) {
    const int64_t overlap = std::min(end, to) - std::max(start, from);
    if (overlap > 0) {
      busy += overlap;
      ++requests;
    }
  }
  const double want = busy / 60e6;
  ASSERT_GT(want, 1.0);
  for (const std::string& name : ValueRuns()) {
    SCOPED_TRACE(name);
    // Durations are cut to whole microseconds: at most 1 us per request.
    EXPECT_NEAR(Replayed(name).parsed.Value("http_active_connections"), want,
                requests * 1e-6 / 60 + 1e-9);
  }
}

TEST_F(ReplayEndToEnd, OneAndTwoThreadsGiveByteIdenticalOutput) {
  const std::string& one = Replayed("threads1").text;
  const std::string& two = Replayed("threads2").text;
  ASSERT_FALSE(one.empty());
  if (one == two) return;
  size_t line = 1, i = 0;
  while (i < one.size() && i < two.size() && one[i] == two[i]) line += one[i++] == '\n';
  auto line_at = [](const std::string& s, size_t pos) {
    const size_t start = s.rfind('\n', pos == 0 ? 0 : pos - 1);
    const size_t begin = start == std::string::npos ? 0 : start + 1;
    return s.substr(begin, s.find('\n', begin) - begin);
  };
  ADD_FAILURE() << "outputs differ first at line " << line
                << ":\n  --threads 1: " << line_at(one, i)
                << "\n  --threads 2: " << line_at(two, i);
}

TEST_F(ReplayEndToEnd, OneAndTwoThreadsGiveTheSameValues) {
  ExpectSameMetrics(Replayed("threads1").parsed, Replayed("threads2").parsed);
}

TEST_F(ReplayEndToEnd, StdinReplayGivesTheSameMetrics) {
  const ReplayRun& run = Replayed("stdin");
  EXPECT_EQ(run.process.exit_code, 0) << run.process.err;
  ExpectFamilyEquals(run.parsed, "http_requests_total", Want().counters.at("http_requests_total"));
  ExpectSameMetrics(Replayed("threads2").parsed, run.parsed);
}

TEST_F(ReplayEndToEnd, ZstdReplayGivesTheSameMetrics) {
  const ReplayRun& run = Replayed("zstd");
  EXPECT_EQ(run.process.exit_code, 0) << run.process.err;
  ExpectFamilyEquals(run.parsed, "http_requests_total", Want().counters.at("http_requests_total"));
  ExpectSameMetrics(Replayed("threads2").parsed, run.parsed);
}

TEST_F(ReplayEndToEnd, TheShippedSpecGivesTheCompiledInOutputByteForByte) {
  const ReplayRun& spec = Replayed("spec");
  ASSERT_EQ(spec.process.exit_code, 0) << spec.process.err;
  ASSERT_FALSE(spec.text.empty());
  EXPECT_EQ(spec.text, Replayed("threads2").text);
}

TEST_F(ReplayEndToEnd, TheShippedSpecGivesTheCompiledInAlertTimeline) {
  // A backtest with expiry and zero-started series, both ways.
  const std::string rules = std::string(NOVAPULSE_SOURCE_DIR) + "/configs/alerts/novagift.yml";
  std::string timelines[2], texts[2];
  for (int spec = 0; spec < 2; ++spec) {
    const std::string json = Dir().Path("alerts-" + std::to_string(spec) + ".json");
    std::vector<std::string> args = {"--threads",        "2",  "--rules",        rules,
                                     "--alerts-json",    json, "--expire-after", "3m",
                                     "--zero-new-series"};
    if (spec) args.insert(args.end(), {"--metrics", NovaGiftSpec()});
    args.insert(args.end(), {AccessPath(), OutboxPath()});
    const ReplayRun run = Replay(args);
    ASSERT_EQ(run.process.exit_code, 0) << run.process.err;
    timelines[spec] = ReadWholeFile(json);
    texts[spec] = run.text;
  }
  // The incidents fire alerts: the comparison is not of two empty lists.
  EXPECT_NE(timelines[0].find("\"HighErrorRate\""), std::string::npos) << timelines[0];
  EXPECT_NE(timelines[0].find("\"firing_at\":\"2026"), std::string::npos) << timelines[0];
  EXPECT_EQ(timelines[1], timelines[0]);
  EXPECT_EQ(texts[1], texts[0]);
}

TEST_F(ReplayEndToEnd, SpecInputsAreNamedByTheSpec) {
  const std::string caddy = std::string(NOVAPULSE_SOURCE_DIR) + "/configs/metrics/examples/";
  const ReplayRun run = Replay(
      {"--metrics", caddy + "caddy.yaml", "--topic", "caddy-access", caddy + "caddy-access.log"});
  ASSERT_EQ(run.process.exit_code, 0) << run.process.err;
  EXPECT_TRUE(run.parsed.errors.empty());
  // Every line is a request, counted once.
  const std::string sample = ReadWholeFile(caddy + "caddy-access.log");
  double requests = 0;
  for (const auto& [key, value] : run.parsed.Samples("caddy_http_requests_total")) {
    requests += value;
  }
  EXPECT_EQ(requests, static_cast<double>(std::count(sample.begin(), sample.end(), '\n')));
  EXPECT_GT(requests, 100);
  EXPECT_NE(run.process.err.find(" 0 rejected"), std::string::npos) << run.process.err;

  // NovaGift's names are not the Caddy spec's, and the spec's are not NovaGift's.
  const ReplayRun wrong = Replay(
      {"--metrics", caddy + "caddy.yaml", "--topic", "access-log", caddy + "caddy-access.log"});
  EXPECT_EQ(wrong.process.exit_code, 2);
  EXPECT_NE(wrong.process.err.find("--topic: unknown input 'access-log' (the metric spec's "
                                   "inputs: caddy-access; or auto)"),
            std::string::npos)
      << wrong.process.err;
  const ReplayRun novagift = Replay({"--topic", "caddy-access", AccessPath()});
  EXPECT_EQ(novagift.process.exit_code, 2);
  EXPECT_NE(novagift.process.err.find("unknown topic 'caddy-access'"), std::string::npos)
      << novagift.process.err;

  // Rejected records of a spec's input are dead letters too, named by the
  // input's topic, with their file and line.
  const std::string mixed = Dir().Path("caddy-mixed.log");
  const size_t cut = sample.find('\n', sample.find('\n') + 1) + 1;  // after two lines
  WriteWholeFile(mixed, sample.substr(0, cut) + "not json\n" + sample.substr(cut) +
                            "{\"ts\": 1796033382.5, \"status\": \"ok\"}\n");
  const std::string dead = Dir().Path("dead.ndjson");
  const ReplayRun letters =
      Replay({"--metrics", caddy + "caddy.yaml", "--dead-letter", dead, mixed});
  ASSERT_EQ(letters.process.exit_code, 0) << letters.process.err;
  const std::string written = ReadWholeFile(dead);
  EXPECT_EQ(std::count(written.begin(), written.end(), '\n'), 2) << written;
  EXPECT_NE(
      written.find(absl::StrCat(R"({"reason":"malformed_json","topic":"caddy-access","source":")",
                                mixed, R"(","line":3,)")),
      std::string::npos)
      << written;
  EXPECT_NE(written.find(absl::StrCat(R"("topic":"caddy-access","source":")", mixed, R"(","line":)",
                                      std::count(sample.begin(), sample.end(), '\n') + 2, ",")),
            std::string::npos)
      << written;
  EXPECT_NE(letters.process.err.find(" 2 rejected"), std::string::npos) << letters.process.err;

  // Names are checked before any output file is touched.
  WriteWholeFile(dead, "kept\n");
  const ReplayRun named = Replay({"--metrics", caddy + "caddy.yaml", "--topic", "nope",
                                  "--dead-letter", dead, caddy + "caddy-access.log"});
  EXPECT_EQ(named.process.exit_code, 2);
  EXPECT_EQ(ReadWholeFile(dead), "kept\n");
  // A wrong name after the last file is as wrong.
  const ReplayRun trailing = Replay({AccessPath(), "--topic", "nope"});
  EXPECT_EQ(trailing.process.exit_code, 2);
  EXPECT_NE(trailing.process.err.find("unknown topic 'nope'"), std::string::npos)
      << trailing.process.err;

  // A spec that does not load names the file, line and column.
  const std::string bad = Dir().Path("bad-spec.yaml");
  WriteWholeFile(bad, "inputs: []\nmetrics:\n  - nme: x\n");
  const ReplayRun broken = Replay({"--metrics", bad, AccessPath()});
  EXPECT_EQ(broken.process.exit_code, 1);
  EXPECT_NE(broken.process.err.find(bad + ":"), std::string::npos) << broken.process.err;
}

TEST_F(ReplayEndToEnd, SeriesLimitFoldsLaterSeriesIntoOverflowAndCountsThem) {
  const Expected& x = Want();
  constexpr size_t kLimit = 20;
  // One thread reads the files in order: the first 20 label sets get series.
  std::set<std::string> first;
  uint64_t folded = 0;
  std::map<std::string, double> want;
  for (const std::string& key : x.access_keys_in_order) {
    if (first.size() < kLimit) first.insert(key);
    if (first.contains(key)) {
      ++want[key];
    } else {
      ++folded;
    }
  }
  ASSERT_GT(folded, 0u);
  want[SeriesKey("http_requests_total", {{"method", "__overflow__"},
                                         {"route", "__overflow__"},
                                         {"status", "__overflow__"}})] = folded;
  const ReplayRun run = Replay(
      {"--threads", "1", "--series-limit", std::to_string(kLimit), AccessPath(), OutboxPath()});
  ASSERT_EQ(run.process.exit_code, 0) << run.process.err;
  ExpectFamilyEquals(run.parsed, "http_requests_total", want);
  EXPECT_EQ(
      run.parsed.Value("novapulse_series_overflow_total", {{"metric", "http_requests_total"}}),
      folded);
  EXPECT_NE(run.process.err.find("series limit reached: http_requests_total (" +
                                 std::to_string(folded) + " events folded into __overflow__)"),
            std::string::npos)
      << run.process.err;
}

// The self metrics have fixed label sets (topics x reasons); a limit meant
// for label values from the input must not fold them, or rejections lose
// their reason.
TEST_F(ReplayEndToEnd, SeriesLimitLeavesSelfMetricsWhole) {
  const ReplayRun run =
      Replay({"--threads", "1", "--series-limit", "20", AccessPath(), OutboxPath()});
  ASSERT_EQ(run.process.exit_code, 0) << run.process.err;
  for (const char* family : {"novapulse_parse_errors_total", "novapulse_events_total"}) {
    for (const auto& [key, value] : run.parsed.Samples(family)) {
      EXPECT_EQ(key.find("__overflow__"), std::string::npos) << key;
    }
    EXPECT_FALSE(run.parsed.Has("novapulse_series_overflow_total", {{"metric", family}}))
        << run.process.err;
  }
}

TEST_F(ReplayEndToEnd, SmallSeriesLimitDoesNotCrash) {
  for (const std::string limit : {"1", "3", "5"}) {
    SCOPED_TRACE("--series-limit " + limit);
    const ReplayRun run =
        Replay({"--threads", "1", "--series-limit", limit, AccessPath(), OutboxPath()});
    EXPECT_EQ(run.process.exit_code, 0) << "killed or failed: " << run.process.err;
    double requests = 0;
    for (const auto& [key, value] : run.parsed.Samples("http_requests_total")) requests += value;
    EXPECT_EQ(requests, Want().access_lines);
  }
}

TEST_F(ReplayEndToEnd, WindowMemoryBudgetFoldsTheWindowsAndSaysSo) {
  const std::string rules = std::string(NOVAPULSE_SOURCE_DIR) + "/configs/alerts/novagift.yml";
  const std::vector<std::string> args = {
      "--threads", "2",          "--rules",   rules, "--window-memory-bytes",
      "1048576",   AccessPath(), OutboxPath()};
  const ReplayRun run = Replay(args);
  ASSERT_EQ(run.process.exit_code, 0) << run.process.err;
  EXPECT_NE(run.process.err.find("window memory budget reached: http_request_duration_seconds ("),
            std::string::npos)
      << run.process.err;
  // The metrics are the windows' business only; the rules' outputs are the
  // same on every run.
  constexpr std::string_view kRuleSeries = "# TYPE novagift:";
  EXPECT_NE(run.text.find(kRuleSeries), std::string::npos);
  EXPECT_EQ(run.text.substr(0, run.text.find(kRuleSeries)), Replayed("threads2").text);
  EXPECT_EQ(Replay(args).text, run.text);

  const ReplayRun bad = Replay({"--window-memory-bytes", "1000", AccessPath()});
  EXPECT_EQ(bad.process.exit_code, 2);
  EXPECT_NE(bad.process.err.find("--window-memory-bytes: '1000' is not an integer in [1048576, "),
            std::string::npos)
      << bad.process.err;
}

// 200 routes, each with 3 requests in 2 seconds, one route every 10 s, and
// /keep once a second throughout (0 s to 1992 s).
std::string ChurningRoutes() {
  std::string out;
  auto line = [&out](int second, const std::string& route) {
    out += absl::StrFormat(R"({"ts":"2026-11-26T%02d:%02d:%02d.000Z","method":"GET","route":"%s",)"
                           R"("status":200,"duration_ms":12.5})"
                           "\n",
                           second / 3600, second / 60 % 60, second % 60, route);
  };
  for (int second = 0; second <= 1992; ++second) {
    line(second, "/keep");
    if (second % 10 < 3 && second / 10 < 200) line(second, absl::StrFormat("/r%03d", second / 10));
  }
  return out;
}

TEST(ReplayExpiry, IdleRoutesLeaveTheMetricsTheWindowsAndTheBackfill) {
  ScratchDir dir;
  WriteWholeFile(dir.Path("access.ndjson"), ChurningRoutes());
  WriteWholeFile(dir.Path("rules.yml"), ::novapulse::testing::kRouteCountRules);
  auto replay = [&](const std::string& threads, const std::string& expire) {
    const std::string n = threads + "-" + expire;
    ProcessResult r = RunNovapulse({"replay", "--threads", threads, "--chunk-bytes", "4096",
                                    "--expire-after", expire, "--rules", dir.Path("rules.yml"),
                                    "--openmetrics", dir.Path("om-" + n), "--output",
                                    dir.Path("metrics-" + n), dir.Path("access.ndjson")});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return r;
  };
  const ProcessResult two = replay("2", "2m");
  const PromText text = ParsePromText(ReadWholeFile(dir.Path("metrics-2-2m")));
  // The newest event is at 1992 s: a route last updated by 1872 s is gone
  // (routes 0 to 187), with its request and duration series.
  size_t routes = 0;
  for (int k = 0; k < 200; ++k) {
    const Labels labels = {
        {"method", "GET"}, {"route", absl::StrFormat("/r%03d", k)}, {"status", "200"}};
    EXPECT_EQ(text.Has("http_requests_total", labels), k >= 188) << k;
    if (text.Has("http_requests_total", labels)) {
      EXPECT_EQ(text.Value("http_requests_total", labels), 3);
      ++routes;
    }
  }
  EXPECT_EQ(routes, 12u);
  EXPECT_EQ(
      text.Value("http_requests_total", {{"method", "GET"}, {"route", "/keep"}, {"status", "200"}}),
      1993);
  EXPECT_EQ(text.Value("novapulse_series", {{"metric", "http_requests_total"}}), 13);
  EXPECT_EQ(text.Histograms("http_request_duration_seconds").size(), 13u);
  EXPECT_NE(two.err.find("replayed 2593 records (2593 accepted"), std::string::npos) << two.err;
  EXPECT_NE(two.err.find("expiry: 376 series idle for 2m of event time removed in "),
            std::string::npos)
      << two.err;
  // The windows lost them too. A sweep runs where the input passes each
  // 12 s of event time, held back to where the windows are closed: 5
  // chunks (about 25 s each here) and 30 s of lateness behind the input.
  // So the rules' last evaluation counts /keep and the routes of the last
  // 2 min + 12 s + about 155 s, about 30, not all 200.
  const double counted = text.Value("routes:http_requests:count");
  EXPECT_GE(counted, 13);
  EXPECT_LE(counted, 40);
  // The backfill: /r000's samples end within the same span of its last
  // request (at most about 20 steps of 15 s), not at the end of the input
  // (133 steps).
  const std::string om = ReadWholeFile(dir.Path("om-2-2m"));
  size_t r000 = 0;
  for (size_t at = 0; (at = om.find("http_requests_total{method=\"GET\",route=\"/r000\"", at)) !=
                      std::string::npos;
       ++at) {
    ++r000;
  }
  EXPECT_GE(r000, 8u);
  EXPECT_LE(r000, 24u);

  // Where the sweeps fall depends on the input alone: one thread gives the
  // same bytes.
  replay("1", "2m");
  EXPECT_EQ(ReadWholeFile(dir.Path("metrics-1-2m")), ReadWholeFile(dir.Path("metrics-2-2m")));
  EXPECT_EQ(ReadWholeFile(dir.Path("om-1-2m")), om);

  // Without expiry every route stays, in the windows too.
  replay("2", "0");
  const PromText kept = ParsePromText(ReadWholeFile(dir.Path("metrics-2-0")));
  EXPECT_EQ(kept.Value("novapulse_series", {{"metric", "http_requests_total"}}), 201);
  EXPECT_EQ(kept.Value("routes:http_requests:count"), 201);

  const ProcessResult bad = RunNovapulse({"replay", "--expire-after", "soon", "x"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("--expire-after: expected a duration like 15m or 1h"), std::string::npos)
      << bad.err;
}

TEST(FormatProgress, RewritesOneLineOnATerminalAndWritesWholeLinesElsewhere) {
  const ReplayProgress p{.input_bytes = 250,
                         .total_bytes = 1000,
                         .line_bytes = 3'000'000,
                         .records = 10'000,
                         .elapsed_seconds = 2};
  const std::string terminal = FormatProgress(p, true);
  EXPECT_TRUE(terminal.starts_with("\r\033[K")) << terminal;
  EXPECT_EQ(terminal.find('\n'), std::string::npos) << terminal;
  const std::string plain = FormatProgress(p, false);
  EXPECT_EQ(plain, "novapulse replay:  25.0% 3.0 MB, 5000 events/s, ETA 6s\n");
  EXPECT_EQ(plain.find('\r'), std::string::npos);
  EXPECT_EQ(plain.find('\033'), std::string::npos);
  // Unknown size (stdin): no share, no ETA.
  EXPECT_EQ(FormatProgress({.line_bytes = 1'000'000, .records = 10, .elapsed_seconds = 1}, false),
            "novapulse replay: 1.0 MB, 10 events/s, ETA ?\n");
}

TEST(RunReplay, CountsRecordsAndBytesOfStdinInput) {
  ScratchDir dir;
  std::string input;
  for (int i = 0; i < 3000; ++i) {
    input +=
        R"({"ts":"2026-11-26T00:00:01.000Z","method":"GET","route":"/api/gifts","status":200,"duration_ms":)" +
        std::to_string(i % 100) + "}\n";
  }
  WriteWholeFile(dir.Path("in.ndjson"), input);
  NovaGiftMetrics metrics(2);
  ReplayOptions options;
  options.threads = 2;
  options.source.chunk_bytes = 4096;
  absl::StatusOr<ReplayStats> stats;
  {
    StdinFrom redirect(open(dir.Path("in.ndjson").c_str(), O_RDONLY));
    stats = RunReplay({{"-", InputOfTopic(Topic::kAccessLog)}}, options, metrics);
  }
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->records, 3000u);
  EXPECT_EQ(stats->line_bytes, input.size());
  EXPECT_EQ(stats->input_bytes, input.size()) << "bytes consumed from stdin";
}

TEST(RunReplay, ProgressGrowsToTheInputSize) {
  ScratchDir dir;
  std::string input;
  for (int i = 0; i < 3000; ++i) {
    input +=
        R"({"ts":"2026-11-26T00:00:01.000Z","method":"GET","route":"/x","status":200,"duration_ms":1}
)";
  }
  WriteWholeFile(dir.Path("a.ndjson"), input);
  WriteWholeFile(dir.Path("b.ndjson"), input);
  NovaGiftMetrics metrics(1);
  ReplayOptions options;
  options.source = {.chunk_bytes = 4096, .max_record_bytes = 4096};
  options.progress_interval_seconds = 0;
  std::vector<ReplayProgress> seen;
  options.on_progress = [&seen](const ReplayProgress& p) { seen.push_back(p); };
  absl::StatusOr<ReplayStats> stats =
      RunReplay({{dir.Path("a.ndjson"), -1}, {dir.Path("b.ndjson"), -1}}, options, metrics);
  ASSERT_TRUE(stats.ok()) << stats.status();
  ASSERT_GT(seen.size(), 10u);
  for (size_t i = 1; i < seen.size(); ++i) {
    EXPECT_GE(seen[i].records, seen[i - 1].records);
    EXPECT_GE(seen[i].input_bytes, seen[i - 1].input_bytes);
    EXPECT_LE(seen[i].input_bytes, seen[i].total_bytes);
  }
  EXPECT_EQ(seen.back().total_bytes, 2 * input.size());
  EXPECT_EQ(seen.back().input_bytes, 2 * input.size());
  EXPECT_EQ(seen.back().records, 6000u);
  EXPECT_EQ(stats->records, 6000u);
  EXPECT_EQ(stats->input_bytes, 2 * input.size());
}

// Generated traffic of both topics, one file each.
class BothTopics : public TrafficSink {
 public:
  absl::Status Write(Topic topic, std::string_view line) override {
    std::string& out = topic == Topic::kOutbox ? outbox : access;
    out.append(line);
    out += '\n';
    return absl::OkStatus();
  }
  std::string access, outbox;
};

// The input is read on a thread of its own or by the pipeline's input stage
// (ReplayOptions::reader_thread, by default chosen from the CPUs free), which
// maps plain files unless map_files is off: the metrics and the counts must
// not depend on which, nor on the thread count.
TEST(RunReplay, ReaderThreadOrInputStageMappedOrReadGiveTheSameMetrics) {
  GenConfig config;
  config.seed = 7;
  config.start_us = (1795651200LL + 9 * 3600) * 1'000'000;
  config.duration_us = 20LL * 60 * 1'000'000;
  config.access_rate = 200;
  config.gifts_per_minute = 300;
  config.wallet_per_minute = 100;
  BothTopics traffic;
  ASSERT_TRUE(GenerateTraffic(config, traffic).ok());
  ASSERT_GT(traffic.outbox.size(), 100'000u);
  ScratchDir dir;
  WriteWholeFile(dir.Path("access.ndjson"), traffic.access);
  WriteWholeFile(dir.Path("outbox.ndjson"), traffic.outbox);
  const std::vector<ReplayInput> inputs = {
      {dir.Path("access.ndjson"), InputOfTopic(Topic::kAccessLog)},
      {dir.Path("outbox.ndjson"), -1}};
  std::string first_text;
  uint64_t first_records = 0;
  // The input stage maps the files unless told not to (or they are on
  // tmpfs); a reader thread read(2)s them.
  const bool on_tmpfs = ::novapulse::testing::OnTmpfs(dir.Path(""));
  struct Mode {
    bool reader_thread;
    bool map_files;
  };
  for (const int threads : {1, 2}) {
    for (const Mode mode : {Mode{true, true}, Mode{false, true}, Mode{false, false}}) {
      SCOPED_TRACE("threads=" + std::to_string(threads) +
                   " reader_thread=" + std::to_string(mode.reader_thread) +
                   " map_files=" + std::to_string(mode.map_files));
      NovaGiftMetrics metrics(threads);
      ReplayOptions options;
      options.threads = threads;
      options.reader_thread = mode.reader_thread;
      options.map_files = mode.map_files;
      options.source.chunk_bytes = 16 << 10;
      options.source.max_record_bytes = 16 << 10;
      absl::StatusOr<ReplayStats> stats = RunReplay(inputs, options, metrics);
      ASSERT_TRUE(stats.ok()) << stats.status();
      EXPECT_EQ(stats->input_bytes, traffic.access.size() + traffic.outbox.size());
      EXPECT_GT(stats->read_cpu_seconds, 0);
      if (!mode.reader_thread && mode.map_files && !on_tmpfs) {
        // All but each file's last (room + padding) bytes at most, which
        // go through read(2) for simdjson's padding after them.
        const uint64_t room = options.source.chunk_bytes + options.source.max_record_bytes;
        EXPECT_GT(stats->mapped_bytes, stats->line_bytes - 2 * (room + 64));
      } else {
        EXPECT_EQ(stats->mapped_bytes, 0u);
      }
      const std::string text = RenderPrometheusText(metrics.Snapshot());
      if (first_text.empty()) {
        first_text = text;
        first_records = stats->records;
        continue;
      }
      EXPECT_EQ(stats->records, first_records);
      EXPECT_TRUE(text == first_text) << "metrics differ from threads=1 with a reader thread";
    }
  }
  EXPECT_NE(first_text.find("outbox_processed_total{"), std::string::npos);
  EXPECT_NE(first_text.find("http_requests_total{"), std::string::npos);
}

// Expiry with two inputs, one sparse: a gift every 33 s in the outbox file
// (several chunks), requests every second in the access log. The gifts'
// series is never idle for 2 minutes, though the access log runs ahead of
// the outbox's next chunk: "now" is held to the slowest input still
// reading. The same bytes with a reader thread or the input stage, and 1 or
// 2 threads.
TEST(RunReplay, ExpiryWaitsForTheSlowestInputAndIsTheSameInEveryMode) {
  ScratchDir dir;
  constexpr int64_t kT0 = 1'795'651'200'000;
  std::string access;
  std::string outbox;
  for (int second = 0; second < 2000; ++second) {
    access +=
        absl::StrFormat(R"({"ts":%d,"method":"GET","route":"/r%d","status":200,"duration_ms":5})"
                        "\n",
                        kT0 + second * 1000, second / 100);  // a new route every 100 s
    if (second % 33 == 0) {
      outbox += absl::StrFormat(
          R"({"ts":%d,"id":"e%d","type":"gift.created","status":"queued","attempt":1,)"
          R"("data":{"gift_id":"g%d","mode":"single","theme":"birthday","value_usd":25}})"
          "\n",
          kT0 + second * 1000, second, second);
    }
  }
  WriteWholeFile(dir.Path("access.ndjson"), access);
  WriteWholeFile(dir.Path("outbox.ndjson"), outbox);
  const std::vector<ReplayInput> inputs = {
      {dir.Path("access.ndjson"), InputOfTopic(Topic::kAccessLog)},
      {dir.Path("outbox.ndjson"), InputOfTopic(Topic::kOutbox)}};
  std::string first;
  for (const int threads : {1, 2}) {
    for (const bool reader_thread : {true, false}) {
      SCOPED_TRACE(absl::StrFormat("threads=%d reader_thread=%d", threads, reader_thread));
      NovaGiftMetrics metrics(threads, kDefaultSeriesLimit, nullptr,
                              MetricExpiry{.default_ms = 120'000, .by_family = {}});
      ReplayOptions options;
      options.threads = threads;
      options.reader_thread = reader_thread;
      options.source.chunk_bytes = 4096;
      options.expiry_sweep_ms = ExpirySweepMs(120'000);
      absl::StatusOr<ReplayStats> stats = RunReplay(inputs, options, metrics);
      ASSERT_TRUE(stats.ok()) << stats.status();
      EXPECT_GT(stats->expiry_sweeps, 30u);
      // 20 routes of 100 s each: those last updated 2 minutes before the
      // newest event (1999 s) went, with their duration series: all but
      // /r18 (last at 1899 s) and /r19.
      EXPECT_EQ(stats->series_expired, 2u * 18);
      const PromText text = ParsePromText(RenderPrometheusText(metrics.Snapshot()));
      EXPECT_EQ(text.Value("gifts_created_total", {{"mode", "single"}, {"theme", "birthday"}}), 61);
      EXPECT_EQ(text.Value("novapulse_series", {{"metric", "http_requests_total"}}), 2);
      const std::string rendered = RenderPrometheusText(metrics.Snapshot());
      if (first.empty()) {
        first = rendered;
      } else {
        EXPECT_TRUE(rendered == first) << "metrics differ from threads=1 with a reader thread";
      }
    }
  }
}

TEST(RunReplay, RejectsThreadsThatDoNotMatchTheShards) {
  NovaGiftMetrics metrics(2);
  ReplayOptions options;
  options.threads = 1;
  EXPECT_EQ(RunReplay({}, options, metrics).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace novapulse
