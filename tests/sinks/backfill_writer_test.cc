#include "sinks/backfill_writer.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "simdjson.h"
#include "tests/pipeline/run_service.h"
#include "tests/pipeline/test_process.h"
#include "tests/sinks/prometheus_process.h"

namespace novapulse {
namespace {

using ::novapulse::testing::HttpGet;
using ::novapulse::testing::ListeningPort;
using ::novapulse::testing::ReadWholeFile;
using ::novapulse::testing::RunProcess;
using ::novapulse::testing::ScratchDir;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr int64_t kT0 = 1795651200000;  // 2026-11-26T00:00:00Z, in ms
constexpr int64_t kStep = 15000;

MetricDef Counter() {
  return {.name = "gifts_created_total", .help = "Gifts created.", .labels = {"mode"}};
}
MetricDef Gauge() {
  return {.name = "outbox_queued_total", .help = "Messages waiting.", .type = MetricType::kGauge};
}
MetricDef Histogram() {
  return {.name = "outbox_retry_count",
          .help = "Attempts a message needed.",
          .type = MetricType::kHistogram,
          .labels = {"type"},
          .buckets = {1, 2.5}};
}

std::vector<std::string> Files(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::unique_ptr<BackfillWriter> Make(const std::string& path,
                                     BackfillWriter::Options options = {}) {
  auto w = BackfillWriter::Create(path, options);
  EXPECT_TRUE(w.ok()) << w.status();
  return w.ok() ? std::move(*w) : nullptr;
}

TEST(BackfillWriter, EmptyWriterWritesOnlyEof) {
  ScratchDir dir;
  auto w = Make(dir.Path("out.om"));
  ASSERT_TRUE(w->Finish().ok());
  EXPECT_EQ(ReadWholeFile(dir.Path("out.om")), "# EOF\n");
  EXPECT_EQ(Files(dir.path()), std::vector<std::string>{"out.om"});
}

TEST(BackfillWriter, CounterFamilyWithoutTotalSamplesWithIt) {
  ScratchDir dir;
  auto w = Make(dir.Path("out.om"));
  const MetricDef def = Counter();
  const uint32_t solo = w->AddSeries(def, "_total", {{"mode", "solo"}});
  const uint32_t group = w->AddSeries(def, "", {{"mode", "group"}});
  for (int64_t k = 0; k < 3; ++k) {
    w->Append(solo, kT0 + k * kStep, static_cast<double>(k));
    w->Append(group, kT0 + k * kStep, static_cast<double>(10 * k));
  }
  ASSERT_TRUE(w->Finish().ok());
  EXPECT_EQ(ReadWholeFile(dir.Path("out.om")),
            "# TYPE gifts_created counter\n"
            "# HELP gifts_created Gifts created.\n"
            "gifts_created_total{mode=\"solo\"} 0 1795651200\n"
            "gifts_created_total{mode=\"solo\"} 1 1795651215\n"
            "gifts_created_total{mode=\"solo\"} 2 1795651230\n"
            "gifts_created_total{mode=\"group\"} 0 1795651200\n"
            "gifts_created_total{mode=\"group\"} 10 1795651215\n"
            "gifts_created_total{mode=\"group\"} 20 1795651230\n"
            "# EOF\n");
}

TEST(BackfillWriter, GaugeIsPlainEvenWhenNamedTotal) {
  ScratchDir dir;
  auto w = Make(dir.Path("out.om"));
  const uint32_t s = w->AddSeries(Gauge(), "", {});
  w->Append(s, kT0, 3);
  w->Append(s, kT0 + 500, 2.5);
  ASSERT_TRUE(w->Finish().ok());
  EXPECT_EQ(ReadWholeFile(dir.Path("out.om")),
            "# TYPE outbox_queued_total gauge\n"
            "# HELP outbox_queued_total Messages waiting.\n"
            "outbox_queued_total 3 1795651200\n"
            "outbox_queued_total 2.5 1795651200.5\n"
            "# EOF\n");
}

TEST(BackfillWriter, HistogramPointsHaveBucketsInLeOrderThenCountThenSum) {
  ScratchDir dir;
  auto w = Make(dir.Path("out.om"));
  const MetricDef def = Histogram();
  // Registered out of order, le in assorted spellings.
  std::vector<uint32_t> a = {
      w->AddSeries(def, "_sum", {{"type", "a"}}),
      w->AddSeries(def, "_bucket", {{"type", "a"}, {"le", "+Inf"}}),
      w->AddSeries(def, "_bucket", {{"le", "2.50"}, {"type", "a"}}),
      w->AddSeries(def, "_bucket", {{"type", "a"}, {"le", "1"}}),
      w->AddSeries(def, "_count", {{"type", "a"}}),
  };
  const uint32_t b_count = w->AddSeries(def, "_count", {{"type", "b"}});
  for (int64_t k = 1; k <= 2; ++k) {
    for (uint32_t s : a) w->Append(s, kT0 + k * kStep, static_cast<double>(k));
    w->Append(b_count, kT0 + k * kStep, 7);
  }
  ASSERT_TRUE(w->Finish().ok());
  EXPECT_EQ(ReadWholeFile(dir.Path("out.om")),
            "# TYPE outbox_retry_count histogram\n"
            "# HELP outbox_retry_count Attempts a message needed.\n"
            "outbox_retry_count_bucket{type=\"a\",le=\"1.0\"} 1 1795651215\n"
            "outbox_retry_count_bucket{type=\"a\",le=\"2.5\"} 1 1795651215\n"
            "outbox_retry_count_bucket{type=\"a\",le=\"+Inf\"} 1 1795651215\n"
            "outbox_retry_count_count{type=\"a\"} 1 1795651215\n"
            "outbox_retry_count_sum{type=\"a\"} 1 1795651215\n"
            "outbox_retry_count_bucket{type=\"a\",le=\"1.0\"} 2 1795651230\n"
            "outbox_retry_count_bucket{type=\"a\",le=\"2.5\"} 2 1795651230\n"
            "outbox_retry_count_bucket{type=\"a\",le=\"+Inf\"} 2 1795651230\n"
            "outbox_retry_count_count{type=\"a\"} 2 1795651230\n"
            "outbox_retry_count_sum{type=\"a\"} 2 1795651230\n"
            "outbox_retry_count_count{type=\"b\"} 7 1795651215\n"
            "outbox_retry_count_count{type=\"b\"} 7 1795651230\n"
            "# EOF\n");
}

TEST(BackfillWriter, EscapesLabelValuesAndHelp) {
  ScratchDir dir;
  auto w = Make(dir.Path("out.om"));
  const MetricDef def{.name = "x", .help = "a \"b\" \\ c\nd", .type = MetricType::kGauge};
  const uint32_t s = w->AddSeries(def, "", {{"v", "q\"b\\s\nn"}, {"u", "ü"}});
  w->Append(s, kT0, 1);
  ASSERT_TRUE(w->Finish().ok());
  EXPECT_EQ(ReadWholeFile(dir.Path("out.om")),
            "# TYPE x gauge\n"
            "# HELP x a \\\"b\\\" \\\\ c\\nd\n"
            "x{v=\"q\\\"b\\\\s\\nn\",u=\"ü\"} 1 1795651200\n"
            "# EOF\n");
}

TEST(BackfillWriter, SpellsSpecialValues) {
  ScratchDir dir;
  auto w = Make(dir.Path("out.om"));
  const MetricDef def{.name = "x", .type = MetricType::kGauge};
  const uint32_t s = w->AddSeries(def, "", {});
  const double values[] = {std::nan(""),
                           std::numeric_limits<double>::infinity(),
                           -std::numeric_limits<double>::infinity(),
                           0.1,
                           1e20,
                           -3};
  int64_t t = kT0;
  for (double v : values) w->Append(s, t += 1000, v);
  ASSERT_TRUE(w->Finish().ok());
  EXPECT_EQ(ReadWholeFile(dir.Path("out.om")),
            "# TYPE x gauge\n"
            "x NaN 1795651201\n"
            "x +Inf 1795651202\n"
            "x -Inf 1795651203\n"
            "x 0.1 1795651204\n"
            "x 1e+20 1795651205\n"
            "x -3 1795651206\n"
            "# EOF\n");
}

// promtool turns "S" into int64(S * 1000); every millisecond must survive
// that: 1.001 * 1000 is 1000.9999999999999, so 1001 ms is written as the
// next double up.
TEST(BackfillWriter, TimestampsTruncateBackToTheirMillisecond) {
  ScratchDir dir;
  auto w = Make(dir.Path("out.om"), {.chunk_samples = 64});
  const MetricDef def{.name = "x", .type = MetricType::kGauge};
  const uint32_t small = w->AddSeries(def, "", {{"r", "small"}});
  const uint32_t large = w->AddSeries(def, "", {{"r", "large"}});
  constexpr int64_t kN = 5000;
  for (int64_t ms = 1; ms <= kN; ++ms) {
    w->Append(small, ms, 0);
    w->Append(large, kT0 + ms, 0);
  }
  ASSERT_TRUE(w->Finish().ok());
  const std::string text = ReadWholeFile(dir.Path("out.om"));
  EXPECT_THAT(text, HasSubstr("x{r=\"small\"} 0 0.029\n"));
  EXPECT_THAT(text, HasSubstr("x{r=\"small\"} 0 1.0010000000000001\n"));
  EXPECT_THAT(text, HasSubstr("x{r=\"large\"} 0 1795651200.015\n"));
  int64_t lines = 0;
  for (absl::string_view piece : absl::StrSplit(text, '\n')) {
    const std::string_view line(piece.data(), piece.size());
    if (line.empty() || line.starts_with("#")) continue;
    const std::string ts(line.substr(line.rfind(' ') + 1));
    const int64_t want = line.starts_with("x{r=\"small\"}") ? lines + 1 : kT0 + lines - kN + 1;
    EXPECT_EQ(static_cast<int64_t>(std::strtod(ts.c_str(), nullptr) * 1000), want) << line;
    ++lines;
  }
  EXPECT_EQ(lines, 2 * kN);
}

// Families and series interleaved over time, with chunks small enough that
// most samples go through the spill file.
TEST(BackfillWriter, TransposesInterleavedSeriesThroughTheSpillFile) {
  ScratchDir dir;
  auto w = Make(dir.Path("out.om"), {.chunk_samples = 3});
  const MetricDef counter = Counter();
  const MetricDef gauge = Gauge();
  const uint32_t g = w->AddSeries(gauge, "", {});
  const uint32_t c1 = w->AddSeries(counter, "_total", {{"mode", "solo"}});
  const uint32_t c2 = w->AddSeries(counter, "_total", {{"mode", "group"}});
  EXPECT_EQ(w->AddSeries(counter, "_total", {{"mode", "solo"}}), c1);
  constexpr int64_t kSteps = 11;
  for (int64_t k = 0; k < kSteps; ++k) {
    const int64_t t = kT0 + k * kStep;
    w->Append(c1, t, static_cast<double>(k));
    w->Append(g, t, static_cast<double>(100 + k));
    w->Append(c2, t, static_cast<double>(2 * k));
  }
  EXPECT_EQ(w->samples(), 3 * kSteps);
  ASSERT_TRUE(w->Finish().ok());
  std::string want =
      "# TYPE outbox_queued_total gauge\n# HELP outbox_queued_total Messages waiting.\n";
  for (int64_t k = 0; k < kSteps; ++k) {
    absl::StrAppend(&want, "outbox_queued_total ", 100 + k, " ", (kT0 + k * kStep) / 1000, "\n");
  }
  absl::StrAppend(&want, "# TYPE gifts_created counter\n# HELP gifts_created Gifts created.\n");
  for (const auto& [mode, f] : {std::pair{"solo", 1}, std::pair{"group", 2}}) {
    for (int64_t k = 0; k < kSteps; ++k) {
      absl::StrAppend(&want, "gifts_created_total{mode=\"", mode, "\"} ", f * k, " ",
                      (kT0 + k * kStep) / 1000, "\n");
    }
  }
  want += "# EOF\n";
  EXPECT_EQ(ReadWholeFile(dir.Path("out.om")), want);
  EXPECT_EQ(w->bytes_written(), want.size());
  EXPECT_EQ(w->series(), 3u);
  EXPECT_EQ(Files(dir.path()), std::vector<std::string>{"out.om"});
}

TEST(BackfillWriter, RefusesASampleNotAfterThePreviousAndLeavesNoFiles) {
  ScratchDir dir;
  auto w = Make(dir.Path("out.om"));
  const uint32_t s = w->AddSeries(Gauge(), "", {});
  w->Append(s, kT0 + kStep, 1);
  w->Append(s, kT0 + kStep, 2);
  const absl::Status st = w->Finish();
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  EXPECT_THAT(st.message(), HasSubstr("outbox_queued_total"));
  EXPECT_TRUE(Files(dir.path()).empty());
}

TEST(BackfillWriter, RefusesASuffixThatDoesNotFitTheType) {
  ScratchDir dir;
  auto w = Make(dir.Path("out.om"));
  EXPECT_EQ(w->AddSeries(Gauge(), "_total", {}), BackfillWriter::kInvalidSeries);
  w->Append(BackfillWriter::kInvalidSeries, kT0, 1);
  const absl::Status st = w->Finish();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
  EXPECT_TRUE(Files(dir.path()).empty());
}

TEST(BackfillWriter, RefusesABucketWithoutANumericLe) {
  for (const BackfillWriter::Labels& labels :
       {BackfillWriter::Labels{{"type", "a"}}, BackfillWriter::Labels{{"le", "x"}}}) {
    ScratchDir dir;
    auto w = Make(dir.Path("out.om"));
    EXPECT_EQ(w->AddSeries(Histogram(), "_bucket", labels), BackfillWriter::kInvalidSeries);
    EXPECT_EQ(w->Finish().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(BackfillWriter, DestroyedUnfinishedLeavesNoFiles) {
  ScratchDir dir;
  {
    auto w = Make(dir.Path("out.om"), {.chunk_samples = 2});
    const uint32_t s = w->AddSeries(Gauge(), "", {});
    for (int64_t k = 0; k < 10; ++k) w->Append(s, kT0 + k * kStep, 1);
  }
  EXPECT_TRUE(Files(dir.path()).empty());
}

TEST(BackfillWriter, CreateFailsInAMissingDirectory) {
  ScratchDir dir;
  EXPECT_FALSE(BackfillWriter::Create(dir.Path("no/such/out.om")).ok());
}

// --- Against the real promtool and Prometheus -------------------------------

constexpr char kPromtool[] = "/usr/bin/promtool";

// Two hours of three families at 15 s steps, imported by promtool and read
// back through a real Prometheus.
TEST(BackfillWriterPrometheus, PromtoolImportsAndPrometheusAnswersQueries) {
  if (access(kPromtool, X_OK) != 0 || access(testing::kPrometheus, X_OK) != 0) {
    GTEST_SKIP() << "promtool or prometheus not installed";
  }
  ScratchDir dir;
  const std::string file = dir.Path("backfill.om");
  constexpr int64_t kSteps = 2 * 3600 * 1000 / kStep;  // 480 steps, 481 points
  {
    auto w = Make(file, {.chunk_samples = 64});
    const MetricDef counter{.name = "bf_requests_total", .help = "Requests.", .labels = {"route"}};
    const MetricDef gauge{
        .name = "bf_queued_total", .help = "Waiting, \"now\".", .type = MetricType::kGauge};
    const MetricDef hist{.name = "bf_latency_seconds",
                         .help = "Latency.",
                         .type = MetricType::kHistogram,
                         .buckets = {0.1, 1}};
    const MetricDef offset{.name = "bf_offset", .type = MetricType::kGauge};
    const uint32_t a = w->AddSeries(counter, "_total", {{"route", "/api/gifts/:id"}});
    const uint32_t b = w->AddSeries(counter, "_total", {{"route", "say \"hi\"\\"}});
    const uint32_t q = w->AddSeries(gauge, "", {});
    const uint32_t h01 = w->AddSeries(hist, "_bucket", {{"le", "0.1"}});
    const uint32_t h1 = w->AddSeries(hist, "_bucket", {{"le", "1"}});
    const uint32_t hinf = w->AddSeries(hist, "_bucket", {{"le", "+Inf"}});
    const uint32_t hcount = w->AddSeries(hist, "_count", {});
    const uint32_t hsum = w->AddSeries(hist, "_sum", {});
    const uint32_t o = w->AddSeries(offset, "", {});
    for (int64_t k = 0; k <= kSteps; ++k) {
      const int64_t t = kT0 + k * kStep;
      const auto kd = static_cast<double>(k);
      w->Append(a, t, kd);
      w->Append(b, t, 2 * kd);
      w->Append(q, t, static_cast<double>(k % 10));
      // Per step one observation of 0.05 s and one of 3 s.
      w->Append(h01, t, kd);
      w->Append(h1, t, kd);
      w->Append(hinf, t, 2 * kd);
      w->Append(hcount, t, 2 * kd);
      w->Append(hsum, t, 3.05 * kd);
      w->Append(o, t + 15, kd);  // 15 ms past the step
    }
    ASSERT_TRUE(w->Finish().ok());
  }

  const std::string tsdb = dir.Path("tsdb");
  const auto imported =
      RunProcess({kPromtool, "tsdb", "create-blocks-from", "openmetrics", file, tsdb}, "/dev/null",
                 std::chrono::seconds(40));
  ASSERT_EQ(imported.exit_code, 0) << imported.out << imported.err;

  const std::string config = dir.Path("prometheus.yml");
  novapulse::testing::WriteWholeFile(config, "scrape_configs: []\n");
  testing::PrometheusProcess prometheus(tsdb, config, dir.Path("prometheus.log"));
  ASSERT_TRUE(prometheus.WaitReady(std::chrono::seconds(20)))
      << ReadWholeFile(dir.Path("prometheus.log"));

  const int64_t at = kT0 + 3600 * 1000;  // step 240
  EXPECT_EQ(prometheus.Instant("bf_requests_total{route=\"/api/gifts/:id\"}", at), 240);
  EXPECT_EQ(prometheus.Instant("bf_requests_total{route=\"say \\\"hi\\\"\\\\\"}", at), 480);
  EXPECT_NEAR(prometheus.Instant("rate(bf_requests_total{route=\"/api/gifts/:id\"}[5m])", at),
              1.0 / 15, 1e-12);
  EXPECT_NEAR(prometheus.Instant("increase(bf_requests_total{route=\"say \\\"hi\\\"\\\\\"}[1h])",
                                 kT0 + 2 * 3600 * 1000),
              480, 1e-9);
  EXPECT_EQ(prometheus.Instant("bf_queued_total", at + 7 * kStep), 7);
  // Buckets keep their canonical le spelling; the sum its fraction.
  EXPECT_EQ(prometheus.Instant("bf_latency_seconds_bucket{le=\"1.0\"}", at), 240);
  EXPECT_NEAR(prometheus.Instant("bf_latency_seconds_sum", at), 3.05 * 240, 1e-9);
  EXPECT_NEAR(
      prometheus.Instant("histogram_quantile(0.25, rate(bf_latency_seconds_bucket[5m]))", at), 0.05,
      1e-12);
  EXPECT_NEAR(prometheus.Instant("timestamp(bf_offset)", at + 1000),
              static_cast<double>(at + 15) / 1000, 1e-9);
  // The first and the last points made it into the blocks.
  EXPECT_EQ(prometheus.Instant("bf_requests_total{route=\"/api/gifts/:id\"}", kT0), 0);
  EXPECT_EQ(prometheus.Instant("bf_requests_total{route=\"/api/gifts/:id\"}", kT0 + kSteps * kStep),
            static_cast<double>(kSteps));

  const auto points = prometheus.Range("bf_queued_total", kT0, kT0 + 20 * kStep, kStep);
  ASSERT_EQ(points.size(), 21u);
  for (size_t k = 0; k < points.size(); ++k) {
    EXPECT_EQ(points[k].first, kT0 + static_cast<int64_t>(k) * kStep);
    EXPECT_EQ(points[k].second, static_cast<double>(k % 10)) << k;
  }
  EXPECT_TRUE(std::filesystem::exists(file));
  EXPECT_THAT(ReadWholeFile(file), StartsWith("# TYPE bf_requests counter\n"));
}

}  // namespace
}  // namespace novapulse
