#include "sinks/exposition.h"

#include <prometheus/text_serializer.h>

#include <bit>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "aggregators/novagift_metrics.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/sinks/prometheus_text.h"

namespace novapulse {
namespace {

using ::novapulse::testing::Labels;
using ::novapulse::testing::ParsePromText;
using ::novapulse::testing::PromHistogram;
using ::novapulse::testing::PromText;
using ::novapulse::testing::ValidateExposition;
using ::testing::HasSubstr;

constexpr int64_t kT0 = 1795651200LL * 1'000'000;  // 2026-11-26T00:00:00Z

AccessLogEvent Access(std::string_view method, std::string_view route, uint16_t status,
                      double duration_ms, std::string_view error_code = "") {
  AccessLogEvent e;
  e.ts_us = kT0 + 1'000'000;
  e.method = method;
  e.route = route;
  e.status = status;
  e.duration_ms = duration_ms;
  e.error_code = error_code;
  return e;
}

OutboxEvent Outbox(OutboxType type, OutboxStatus status, int64_t attempt = 1) {
  OutboxEvent e;
  e.ts_us = kT0 + 2'000'000;
  e.id = "evt-1";
  e.type = type;
  e.status = status;
  e.attempt = attempt;
  return e;
}

OutboxEvent Created(std::string_view mode, std::string_view theme, double value) {
  OutboxEvent e = Outbox(OutboxType::kGiftCreated, OutboxStatus::kQueued);
  e.mode = mode;
  e.theme = theme;
  e.value_usd = value;
  return e;
}

std::string_view TypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
    case MetricType::kComputedCounter:
      return "counter";
    case MetricType::kHistogram:
      return "histogram";
    case MetricType::kGauge:
    case MetricType::kComputed:
      return "gauge";
  }
  return "?";
}

// A small hand-built set of events spread over two shards.
class Exposition : public ::testing::Test {
 protected:
  Exposition() : metrics_(2) {
    NovaGiftMetrics::Writer& a = metrics_.writer(0);
    NovaGiftMetrics::Writer& b = metrics_.writer(1);
    // Durations on a bucket bound (le is inclusive), just above it, and past
    // the last finite bound; split over both shards.
    a.Record(Access("GET", "/api/gifts", 200, 5));
    b.Record(Access("GET", "/api/gifts", 200, 5.1));
    a.Record(Access("GET", "/api/gifts", 200, 250));
    b.Record(Access("GET", "/api/gifts", 200, 20'000));
    a.Record(Access("GET", "/api/gifts", 500, 12, "INTERNAL"));
    // Label values that need escaping.
    b.Record(Access("GE\"T", "/a\\b", 200, 1));
    a.Record(Access("POST", "/x", 404, 1, "line1\nline2"));
    a.Record(Created("instant", "birthday", 25));
    b.Record(Created("instant", "birthday", 1000.5));
    // Entry on one shard, exit on the other; an exit with no entry at all.
    a.Record(Outbox(OutboxType::kGiftExpired, OutboxStatus::kQueued));
    b.Record(Outbox(OutboxType::kGiftExpired, OutboxStatus::kInFlight));
    b.Record(Outbox(OutboxType::kWalletTransaction, OutboxStatus::kProcessed, 3));
    a.Reject(Topic::kAccessLog, RejectReason::kMalformedJson);
    b.Reject(Topic::kAccessLog, RejectReason::kMalformedJson);
    b.Reject(Topic::kAuto, RejectReason::kUnknownTopic);
    text_ = RenderPrometheusText(metrics_.Snapshot());
    parsed_ = ParsePromText(text_);
  }

  NovaGiftMetrics metrics_;
  std::string text_;
  PromText parsed_;
};

TEST_F(Exposition, TextIsValidPrometheusExposition) {
  const std::vector<std::string> problems = ValidateExposition(parsed_);
  EXPECT_TRUE(problems.empty()) << problems.front() << "\n" << text_;
}

// Prometheus's own parser and linter (promtool, Debian package prometheus,
// installed by scripts/test) as the oracle for the text format. The one lint
// it may report is about gauge names ending in _total: outbox_queued_total
// and outbox_in_flight_total are names fixed by the NovaGift dashboards.
TEST_F(Exposition, PromtoolAcceptsTheText) {
  ASSERT_EQ(std::system("command -v promtool >/dev/null 2>&1"), 0) << "promtool is not installed";
  const std::string dir = ::testing::TempDir();
  const std::string text_path = dir + "/np_exposition.txt";
  const std::string report_path = dir + "/np_exposition_promtool.txt";
  std::ofstream(text_path) << text_;
  const int status = std::system(
      ("promtool check metrics < " + text_path + " > " + report_path + " 2>&1").c_str());
  std::ifstream report(report_path);
  std::vector<std::string> problems;
  for (std::string line; std::getline(report, line);) {
    const bool gauge_name_lint =
        line.find("non-counter metrics should not have \"_total\" suffix") != std::string::npos &&
        (line.starts_with("outbox_queued_total ") || line.starts_with("outbox_in_flight_total "));
    if (!gauge_name_lint) problems.push_back(line);
  }
  EXPECT_THAT(problems, ::testing::IsEmpty());
  // promtool exits non-zero for lint findings too; only a parse error is fatal.
  EXPECT_TRUE(status == 0 || problems.empty()) << "promtool exit status " << status;
  std::remove(text_path.c_str());
  std::remove(report_path.c_str());
}

TEST_F(Exposition, EveryFamilyHasItsHelpAndTypeInTableOrder) {
  const std::vector<MetricDef>& defs = NovaGiftMetricDefs();
  ASSERT_EQ(parsed_.families.size(), defs.size());
  for (size_t i = 0; i < defs.size(); ++i) {
    SCOPED_TRACE(defs[i].name);
    EXPECT_EQ(parsed_.families[i].name, defs[i].name);
    EXPECT_EQ(parsed_.families[i].help, defs[i].help);
    EXPECT_EQ(parsed_.families[i].type, TypeName(defs[i].type));
  }
}

TEST_F(Exposition, CountersSumBothShards) {
  EXPECT_EQ(parsed_.Value("http_requests_total",
                          {{"method", "GET"}, {"route", "/api/gifts"}, {"status", "200"}}),
            4);
  EXPECT_EQ(
      parsed_.Value("http_errors_total", {{"route", "/api/gifts"}, {"error_code", "INTERNAL"}}), 1);
  EXPECT_EQ(parsed_.Value("gifts_created_total", {{"mode", "instant"}, {"theme", "birthday"}}), 2);
  EXPECT_EQ(parsed_.Value("novapulse_parse_errors_total",
                          {{"topic", "novagift.access-log"}, {"reason", "malformed_json"}}),
            2);
  EXPECT_EQ(parsed_.Value("novapulse_parse_errors_total",
                          {{"topic", "unknown"}, {"reason", "unknown_topic"}}),
            1);
  EXPECT_EQ(parsed_.Value("novapulse_events_total",
                          {{"topic", "novagift.access-log"}, {"result", "accepted"}}),
            7);
}

TEST_F(Exposition, HistogramBucketsAreCumulativeWithInclusiveBoundsAndEndInInf) {
  const std::map<std::string, PromHistogram> h =
      parsed_.Histograms("http_request_duration_seconds");
  const std::string key = testing::SeriesKey("http_request_duration_seconds",
                                             {{"method", "GET"}, {"route", "/api/gifts"}});
  ASSERT_TRUE(h.contains(key)) << text_;
  const PromHistogram& g = h.at(key);
  const double inf = std::numeric_limits<double>::infinity();
  // 5 ms, 5.1 ms, 12 ms, 250 ms, 20 s.
  const std::map<double, double> want = {{0.005, 1}, {0.01, 2}, {0.025, 3}, {0.05, 3},
                                         {0.1, 3},   {0.25, 4}, {0.5, 4},   {1, 4},
                                         {2.5, 4},   {5, 4},    {10, 4},    {inf, 5}};
  EXPECT_EQ(g.buckets, want);
  EXPECT_EQ(g.count, 5);
  EXPECT_DOUBLE_EQ(g.sum, 0.005 + 0.0051 + 0.012 + 0.25 + 20);

  const auto values = parsed_.Histograms("gift_value_usd");
  const PromHistogram& value =
      values.at(testing::SeriesKey("gift_value_usd", {{"mode", "instant"}}));
  EXPECT_EQ(value.buckets.at(25), 1);
  EXPECT_EQ(value.buckets.at(1000), 1);
  EXPECT_EQ(value.buckets.at(inf), 2);
  EXPECT_DOUBLE_EQ(value.sum, 1025.5);
}

TEST_F(Exposition, LabelValuesAreEscaped) {
  EXPECT_THAT(text_, HasSubstr(R"(method="GE\"T",route="/a\\b",status="200")"));
  EXPECT_THAT(text_, HasSubstr(R"(error_code="line1\nline2")"));
  // And they read back as the original values.
  EXPECT_EQ(parsed_.Value("http_requests_total",
                          {{"method", "GE\"T"}, {"route", "/a\\b"}, {"status", "200"}}),
            1);
  EXPECT_EQ(parsed_.Value("http_errors_total", {{"route", "/x"}, {"error_code", "line1\nline2"}}),
            1);
}

TEST_F(Exposition, GaugesMergeShardsAndNeverGoNegative) {
  EXPECT_EQ(parsed_.Value("outbox_queued_total", {{"type", "gift.expired"}}), 0);
  EXPECT_EQ(parsed_.Value("outbox_in_flight_total", {{"type", "gift.expired"}}), 1);
  EXPECT_EQ(parsed_.Value("outbox_queued_total", {{"type", "gift.created"}}), 2);
  // processed with no in_flight seen: the exit is floored, not -1.
  EXPECT_EQ(parsed_.Value("outbox_in_flight_total", {{"type", "wallet.transaction"}}), 0);
  EXPECT_EQ(parsed_.Value("outbox_processed_total", {{"type", "wallet.transaction"}}), 1);
  EXPECT_EQ(parsed_.Histograms("outbox_retry_count")
                .at(testing::SeriesKey("outbox_retry_count", {{"type", "wallet.transaction"}}))
                .buckets.at(3),
            1);
}

TEST_F(Exposition, ComputedGaugesAreExported) {
  EXPECT_DOUBLE_EQ(parsed_.Value("novapulse_newest_event_time_seconds"), kT0 / 1e6 + 2);
  EXPECT_EQ(parsed_.Value("novapulse_series", {{"metric", "http_requests_total"}}), 4);
  EXPECT_TRUE(parsed_.Has("http_active_connections"));
}

TEST(ExpositionOfNothing, EmptyMetricsAreStillValidText) {
  NovaGiftMetrics metrics(2);
  const std::string text = RenderPrometheusText(metrics.Snapshot());
  const PromText parsed = ParsePromText(text);
  const std::vector<std::string> problems = ValidateExposition(parsed);
  EXPECT_TRUE(problems.empty()) << problems.front();
  EXPECT_EQ(parsed.families.size(), NovaGiftMetricDefs().size());
  EXPECT_EQ(parsed.Value("novapulse_events_total",
                         {{"topic", "novagift.outbox"}, {"result", "accepted"}}),
            0);
  EXPECT_EQ(parsed.Value("http_active_connections"), 0);
}

TEST(ToMetricFamilies, HistogramBucketsCarryCumulativeCountsAndInfLast) {
  NovaGiftMetrics metrics(2);
  metrics.writer(0).Record(Access("GET", "/r", 200, 0.5));
  metrics.writer(1).Record(Access("GET", "/r", 200, 60'000));
  const std::vector<prometheus::MetricFamily> families = ToMetricFamilies(metrics.Snapshot());
  const prometheus::MetricFamily* duration = nullptr;
  for (const prometheus::MetricFamily& f : families) {
    if (f.name == "http_request_duration_seconds") duration = &f;
  }
  ASSERT_NE(duration, nullptr);
  ASSERT_EQ(duration->type, prometheus::MetricType::Histogram);
  ASSERT_EQ(duration->metric.size(), 1u);
  const prometheus::ClientMetric::Histogram& h = duration->metric[0].histogram;
  ASSERT_EQ(h.bucket.size(), 12u);
  EXPECT_EQ(h.bucket.front().cumulative_count, 1u);
  EXPECT_EQ(h.bucket[10].cumulative_count, 1u);
  EXPECT_TRUE(std::isinf(h.bucket.back().upper_bound));
  EXPECT_EQ(h.bucket.back().cumulative_count, 2u);
  EXPECT_EQ(h.sample_count, 2u);
  EXPECT_DOUBLE_EQ(h.sample_sum, 60.0005);
}

// prometheus-cpp's TextSerializer, the reference the fast writer replaces.
std::string SerializeWithPrometheusCpp(const std::vector<FamilySnapshot>& families) {
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, ToMetricFamilies(families));
  return out.str();
}

std::vector<std::string_view> Lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (!text.empty()) {
    const size_t end = text.find('\n');
    lines.push_back(text.substr(0, end));
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
  }
  return lines;
}

// Byte equality is not possible for every double: prometheus-cpp 1.0 prints
// doubles as "%.16g" (0.1 + 0.2 -> "0.3", which reads back as another
// double) and NaN as "Nan", while the fast writer prints the shortest text
// that reads back exactly ("0.30000000000000004") and "NaN". So every line
// must be byte-identical up to its value, and the values must be equal, or
// (doubles) within prometheus-cpp's 16-digit rounding.
void ExpectSameExposition(std::string_view fast, std::string_view reference) {
  const std::vector<std::string_view> got = Lines(fast);
  const std::vector<std::string_view> want = Lines(reference);
  ASSERT_EQ(got.size(), want.size()) << fast << "\nvs prometheus-cpp:\n" << reference;
  for (size_t i = 0; i < got.size(); ++i) {
    SCOPED_TRACE(want[i]);
    if (want[i].starts_with('#') || got[i] == want[i]) {
      EXPECT_EQ(got[i], want[i]);
      continue;
    }
    const size_t got_space = got[i].rfind(' ');
    const size_t want_space = want[i].rfind(' ');
    ASSERT_NE(want_space, std::string_view::npos);
    ASSERT_EQ(got[i].substr(0, got_space + 1), want[i].substr(0, want_space + 1));
    const std::string got_value(got[i].substr(got_space + 1));
    const std::string want_value(want[i].substr(want_space + 1));
    const double g = std::strtod(got_value.c_str(), nullptr);
    const double w = std::strtod(want_value.c_str(), nullptr);
    if (std::isnan(w)) {
      EXPECT_EQ(got_value, "NaN");
      continue;
    }
    EXPECT_NEAR(g, w, std::fabs(w) * 1e-15) << got_value << " vs " << want_value;
  }
}

TEST_F(Exposition, FastWriterMatchesPrometheusCppSerializer) {
  const std::vector<FamilySnapshot> families = metrics_.Snapshot();
  ExpectSameExposition(text_, SerializeWithPrometheusCpp(families));
  std::ostringstream stream;
  WritePrometheusText(families, stream);
  EXPECT_EQ(stream.str(), text_);
}

// Hand-built families: values prometheus-cpp and shortest printing disagree
// on, non-finite gauges, escapes, histograms with and without labels, and an
// empty family.
class FastWriterEdgeCases : public ::testing::Test {
 protected:
  static uint64_t Bits(double v) { return std::bit_cast<uint64_t>(v); }

  FastWriterEdgeCases() {
    counter_ = {"edge_total", "Counter with escapes.", MetricType::kCounter, {"a", "b"}, {}};
    gauge_ = {"edge_gauge", "Gauge values.", MetricType::kGauge, {"v"}, {}};
    computed_ = {"edge_computed", "Computed, no labels.", MetricType::kComputed, {}, {}};
    histogram_ = {
        "edge_seconds", "Histogram.", MetricType::kHistogram, {"r"}, {0.005, 0.1, 1, 1e6}};
    bare_histogram_ = {"edge_bare", "Histogram without labels.", MetricType::kHistogram, {}, {2.5}};
    empty_ = {"edge_empty", "No series.", MetricType::kCounter, {"x"}, {}};

    FamilySnapshot c{&counter_, 1, {}, {}, nullptr};
    c.keys = {"GE\"T\xff/a\\b", "line1\nline2\xff", "\xffplain", "a b\xff{x=\"y\"}"};
    c.words = {0, 1, 1'000'000, 123'456'789'012'345};
    families_.push_back(c);

    FamilySnapshot g{&gauge_, 1, {}, {}, nullptr};
    const double inf = std::numeric_limits<double>::infinity();
    const std::vector<double> values = {0.1 + 0.2, 1e6,          1e15,  1e16,  1e20, 1.0 / 3,
                                        5e-7,      123456.789,   2.5,   0.0,   -0.0, inf,
                                        -inf,      std::nan(""), -7.25, 1e-300};
    for (size_t i = 0; i < values.size(); ++i) {
      gauge_keys_.push_back("g" + std::to_string(100 + i));
      g.words.push_back(Bits(values[i]));
    }
    for (const std::string& k : gauge_keys_) g.keys.push_back(k);
    families_.push_back(g);

    families_.push_back(FamilySnapshot{&computed_, 1, {""}, {Bits(42.125)}, nullptr});

    // Per-bucket counts (+Inf last), then the sum in micro-units.
    FamilySnapshot h{&histogram_, histogram_.Width(), {"x", "y\\\""}, {}, nullptr};
    h.words = {
        1, 0, 2, 0, 1, 1'234'567'891,  // sum 1234.567891
        0, 0, 0, 0, 0, 0,              // nothing observed
    };
    families_.push_back(h);
    families_.push_back(FamilySnapshot{
        &bare_histogram_, bare_histogram_.Width(), {""}, {3, 2, 10'100}, nullptr});  // sum 0.0101
    families_.push_back(FamilySnapshot{&empty_, 1, {}, {}, nullptr});
    WritePrometheusText(families_, &text_);
  }

  MetricDef counter_, gauge_, computed_, histogram_, bare_histogram_, empty_;
  std::vector<std::string> gauge_keys_;
  std::vector<FamilySnapshot> families_;
  std::string text_;
};

TEST_F(FastWriterEdgeCases, MatchesPrometheusCppSerializer) {
  ExpectSameExposition(text_, SerializeWithPrometheusCpp(families_));
}

TEST_F(FastWriterEdgeCases, IsValidExposition) {
  const std::vector<std::string> problems = ValidateExposition(ParsePromText(text_));
  EXPECT_TRUE(problems.empty()) << problems.front() << "\n" << text_;
}

TEST_F(FastWriterEdgeCases, DoublesReadBackExactlyAndIntegersPrintWhole) {
  EXPECT_THAT(text_, HasSubstr("edge_gauge{v=\"g100\"} 0.30000000000000004\n"));
  EXPECT_THAT(text_, HasSubstr("edge_gauge{v=\"g101\"} 1000000\n"));
  EXPECT_THAT(text_, HasSubstr("edge_gauge{v=\"g103\"} 1e+16\n"));
  EXPECT_THAT(text_, HasSubstr("edge_gauge{v=\"g105\"} 0.3333333333333333\n"));
  EXPECT_THAT(text_, HasSubstr("edge_gauge{v=\"g111\"} +Inf\n"));
  EXPECT_THAT(text_, HasSubstr("edge_gauge{v=\"g112\"} -Inf\n"));
  EXPECT_THAT(text_, HasSubstr("edge_gauge{v=\"g113\"} NaN\n"));
  EXPECT_THAT(text_, HasSubstr("edge_total{a=\"\",b=\"plain\"} 1000000\n"));
  EXPECT_THAT(text_, HasSubstr("edge_seconds_bucket{r=\"x\",le=\"1000000\"} 3\n"));
  EXPECT_THAT(text_, HasSubstr("edge_seconds_bucket{r=\"x\",le=\"+Inf\"} 4\n"));
  EXPECT_THAT(text_, HasSubstr("edge_bare_count 5\nedge_bare_sum 0.0101"));
  EXPECT_THAT(text_, HasSubstr("edge_bare_bucket{le=\"2.5\"} 3\n"));
  EXPECT_THAT(text_, HasSubstr("# HELP edge_empty No series.\n# TYPE edge_empty counter\n"));
}

TEST(FastWriter, EscapesHelpText) {
  const MetricDef def = {"h_total", "Back\\slash and\nnewline.", MetricType::kCounter, {}, {}};
  std::string text;
  WritePrometheusText({FamilySnapshot{&def, 1, {""}, {7}, nullptr}}, &text);
  EXPECT_EQ(text,
            "# HELP h_total Back\\\\slash and\\nnewline.\n# TYPE h_total counter\nh_total 7\n");
}

TEST(FastWriter, AppendsToWhatIsAlreadyThere) {
  const MetricDef def = {"c_total", "C.", MetricType::kCounter, {}, {}};
  std::string text = "prefix\n";
  WritePrometheusText({FamilySnapshot{&def, 1, {""}, {7}, nullptr}}, &text);
  EXPECT_EQ(text, "prefix\n# HELP c_total C.\n# TYPE c_total counter\nc_total 7\n");
}

// The checker the tests above rely on must itself catch what it claims to.
TEST(ValidateExposition, FlagsEachKindOfViolation) {
  const std::string good =
      "# HELP h Latency.\n# TYPE h histogram\nh_count 2\nh_sum 3\n"
      "h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\n";
  EXPECT_TRUE(ValidateExposition(ParsePromText(good)).empty());
  const std::vector<std::string> bad = {
      "# TYPE c counter\nc 1\n",                                      // no HELP
      "# HELP c C.\nc 1\n",                                           // no TYPE
      "# HELP c C.\n# TYPE c counter\nc -1\n",                        // negative counter
      "# HELP c C.\n# TYPE c counter\nc{a=\"x\\q\"} 1\n",             // bad escape
      "# HELP c C.\n# TYPE c counter\nc{a=\"x\"} 1\nc{a=\"x\"} 2\n",  // duplicate series
      "# HELP c C.\n# TYPE c counter\nd 1\n",                         // sample of another family
      "# HELP h H.\n# TYPE h histogram\nh_count 2\nh_sum 3\n"
      "h_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\n",  // not cumulative
      "# HELP h H.\n# TYPE h histogram\nh_count 3\nh_sum 3\n"
      "h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\n",  // +Inf differs from _count
      "# HELP h H.\n# TYPE h histogram\nh_count 2\nh_sum 3\nh_bucket{le=\"1\"} 2\n",  // no +Inf
      "# HELP h H.\n# TYPE h histogram\nh_count 2\nh_bucket{le=\"+Inf\"} 2\n",        // no _sum
  };
  for (const std::string& text : bad) {
    EXPECT_FALSE(ValidateExposition(ParsePromText(text)).empty()) << text;
  }
}

}  // namespace
}  // namespace novapulse
