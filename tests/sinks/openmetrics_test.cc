#include "sinks/openmetrics.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "aggregators/novagift_metrics.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sinks/exposition.h"
#include "tests/sinks/prometheus_text.h"

namespace novapulse {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr int64_t kT0 = 1795651200LL * 1'000'000;  // 2026-11-26T00:00:00Z

AccessLogEvent Access(std::string_view route, uint16_t status, double duration_ms) {
  AccessLogEvent e;
  e.ts_us = kT0;
  e.method = "GET";
  e.route = route;
  e.status = status;
  e.duration_ms = duration_ms;
  return e;
}

struct Sample {
  std::string name;
  std::string labels;  // as written, without braces
  std::string le;      // the le value, "" when absent
  double value = 0;
};

// A strict check of the OpenMetrics 1.0 text structure, for what novapulse
// writes (no units, exemplars, timestamps or _created): returns every
// violation, and the samples by family.
struct OpenMetricsCheck {
  std::vector<std::string> errors;
  std::map<std::string, std::string> types;            // family -> type
  std::map<std::string, std::vector<Sample>> samples;  // family -> samples
  std::map<std::string, double> values;                // "name{labels}" -> value
};

bool SplitSample(std::string_view line, Sample* s) {
  const size_t space = line.rfind(' ');
  if (space == std::string_view::npos) return false;
  std::string_view series = line.substr(0, space);
  const std::string value(line.substr(space + 1));
  if (value == "+Inf") {
    s->value = INFINITY;
  } else if (value == "NaN") {
    s->value = NAN;
  } else if (!absl::SimpleAtod(value, &s->value)) {
    return false;
  }
  const size_t brace = series.find('{');
  if (brace == std::string_view::npos) {
    s->name = std::string(series);
    return s->name.find_first_of("\"=,} ") == std::string::npos;
  }
  if (!series.ends_with('}')) return false;
  s->name = std::string(series.substr(0, brace));
  s->labels = std::string(series.substr(brace + 1, series.size() - brace - 2));
  const size_t le = s->labels.find("le=\"");
  if (le != std::string::npos && (le == 0 || s->labels[le - 1] == ',')) {
    const size_t end = s->labels.find('"', le + 4);
    s->le = s->labels.substr(le + 4, end - le - 4);
  }
  return true;
}

OpenMetricsCheck CheckOpenMetrics(const std::string& text) {
  OpenMetricsCheck check;
  auto fail = [&](int line, const std::string& what) {
    check.errors.push_back(absl::StrCat("line ", line, ": ", what));
  };
  if (!text.ends_with("# EOF\n")) fail(0, "does not end with # EOF");
  const std::vector<std::string> lines = absl::StrSplit(text, '\n');
  std::string family;
  std::set<std::string> seen;
  bool eof = false;
  for (size_t i = 0; i < lines.size(); ++i) {
    const int n = static_cast<int>(i) + 1;
    const std::string& line = lines[i];
    if (eof) {
      if (!(line.empty() && i + 1 == lines.size())) fail(n, "text after # EOF");
      continue;
    }
    if (line == "# EOF") {
      eof = true;
      continue;
    }
    if (line.starts_with("# HELP ") || line.starts_with("# TYPE ")) {
      const std::vector<std::string> parts = absl::StrSplit(line, absl::MaxSplits(' ', 3));
      if (parts.size() < 4) {
        fail(n, "short metadata line");
        continue;
      }
      if (parts[2] != family) {
        if (seen.contains(parts[2])) fail(n, absl::StrCat("family ", parts[2], " split"));
        family = parts[2];
        seen.insert(family);
      }
      if (parts[1] == "TYPE") {
        if (check.types.contains(family)) fail(n, "second TYPE");
        if (!check.samples[family].empty()) fail(n, "TYPE after samples");
        check.types[family] = parts[3];
        if (parts[3] == "counter" && family.ends_with("_total")) {
          fail(n, "counter family name ends in _total");
        }
      } else if (check.types.contains(family)) {
        fail(n, "HELP after TYPE");
      }
      continue;
    }
    if (line.starts_with("#") || line.empty()) {
      fail(n, "unexpected line");
      continue;
    }
    Sample s;
    if (!SplitSample(line, &s)) {
      fail(n, "unparseable sample");
      continue;
    }
    const std::string& type = check.types[family];
    if (type == "counter") {
      if (s.name != family + "_total") fail(n, "counter sample not named family_total");
    } else if (type == "gauge") {
      if (s.name != family) fail(n, "gauge sample not named family");
    } else if (type == "histogram") {
      if (s.name == family + "_bucket") {
        if (s.le.empty()) fail(n, "bucket without le");
        if (s.le != "+Inf" && s.le.find_first_of(".e") == std::string::npos) {
          fail(n, "le not in canonical float form");
        }
      } else if (s.name != family + "_count" && s.name != family + "_sum") {
        fail(n, "histogram sample not _bucket/_count/_sum");
      }
    } else {
      fail(n, "sample outside a typed family");
    }
    check.values[absl::StrCat(s.name, "{", s.labels, "}")] = s.value;
    check.samples[family].push_back(std::move(s));
  }
  if (!eof) fail(0, "no # EOF line");
  // Histograms: per series buckets ascending up to +Inf, cumulative, then
  // _count equal to the +Inf bucket.
  for (const auto& [name, samples] : check.samples) {
    if (check.types[name] != "histogram") continue;
    double last_le = -INFINITY;
    double last_count = 0;
    for (const Sample& s : samples) {
      if (s.name == name + "_bucket") {
        const double le = s.le == "+Inf" ? INFINITY : std::strtod(s.le.c_str(), nullptr);
        if (!(le > last_le)) check.errors.push_back(name + ": le not ascending");
        if (s.value < last_count) check.errors.push_back(name + ": buckets not cumulative");
        last_le = le;
        last_count = s.value;
      } else if (s.name == name + "_count") {
        if (last_le != INFINITY) check.errors.push_back(name + ": no +Inf bucket before _count");
        if (s.value != last_count) check.errors.push_back(name + ": _count != +Inf bucket");
        last_le = -INFINITY;
        last_count = 0;
      }
    }
  }
  return check;
}

class OpenMetrics : public ::testing::Test {
 protected:
  OpenMetrics() : metrics_(2) {
    metrics_.writer(0).Record(Access("/api/gifts/:id/claim", 201, 5));
    metrics_.writer(1).Record(Access("/api/gifts/:id/claim", 201, 12.5));
    metrics_.writer(1).Record(Access("/api/gifts", 500, 20000));
    OutboxEvent created;
    created.ts_us = kT0;
    created.id = "evt-1";
    created.type = OutboxType::kGiftCreated;
    created.status = OutboxStatus::kQueued;
    created.mode = "direct";
    created.theme = "birthday \"quoted\" \\ back";
    created.value_usd = 25;
    metrics_.writer(0).Record(created);
  }

  NovaGiftMetrics metrics_;
};

TEST_F(OpenMetrics, FollowsTheOpenMetricsStructure) {
  const std::string text = RenderOpenMetricsText(metrics_.Snapshot());
  const OpenMetricsCheck check = CheckOpenMetrics(text);
  EXPECT_THAT(check.errors, IsEmpty()) << text;
  EXPECT_EQ(check.types.size(), NovaGiftMetricDefs().size());
}

TEST_F(OpenMetrics, EndsWithEofExactlyOnce) {
  const std::string text = RenderOpenMetricsText(metrics_.Snapshot());
  EXPECT_THAT(text, EndsWith("\n# EOF\n"));
  EXPECT_EQ(text.find("# EOF"), text.size() - 6);
  EXPECT_EQ(RenderOpenMetricsText({}), "# EOF\n");
}

TEST_F(OpenMetrics, CounterFamiliesDropTotalAndSamplesKeepIt) {
  const std::string text = RenderOpenMetricsText(metrics_.Snapshot());
  EXPECT_THAT(text, HasSubstr("# HELP http_requests "));
  EXPECT_THAT(text, HasSubstr("# TYPE http_requests counter\n"));
  EXPECT_THAT(text, Not(HasSubstr("# TYPE http_requests_total")));
  EXPECT_THAT(text, HasSubstr("http_requests_total{method=\"GET\",route=\"/api/gifts/:id/claim\","
                              "status=\"201\"} 2\n"));
  // A gauge whose name ends in _total keeps it.
  EXPECT_THAT(text, HasSubstr("# TYPE outbox_queued_total gauge\n"));
}

TEST_F(OpenMetrics, HistogramsListBucketsThenCountAndSum) {
  const std::string text = RenderOpenMetricsText(metrics_.Snapshot());
  const std::string series = "{method=\"GET\",route=\"/api/gifts/:id/claim\"}";
  const size_t first_bucket = text.find(
      "http_request_duration_seconds_bucket{method=\"GET\","
      "route=\"/api/gifts/:id/claim\",le=");
  const size_t inf = text.find(
      "http_request_duration_seconds_bucket{method=\"GET\",route=\"/api/"
      "gifts/:id/claim\",le=\"+Inf\"} 2\n");
  const size_t count = text.find("http_request_duration_seconds_count" + series + " 2\n");
  const std::string sum_head = "http_request_duration_seconds_sum" + series + " ";
  const size_t sum = text.find(sum_head);
  ASSERT_NE(first_bucket, std::string::npos);
  ASSERT_NE(inf, std::string::npos);
  ASSERT_NE(count, std::string::npos);
  ASSERT_NE(sum, std::string::npos) << text;
  EXPECT_LT(first_bucket, inf);
  EXPECT_LT(inf, count);
  EXPECT_LT(count, sum);
  double sum_value = 0;
  const size_t from = sum + sum_head.size();
  ASSERT_TRUE(absl::SimpleAtod(text.substr(from, text.find('\n', from) - from), &sum_value));
  EXPECT_NEAR(sum_value, 0.0175, 1e-12);
  // le values in canonical float form: 1 is "1.0".
  EXPECT_THAT(text, HasSubstr(",le=\"1.0\"} "));
  EXPECT_THAT(text, HasSubstr(",le=\"0.005\"} 1\n"));
}

TEST_F(OpenMetrics, EscapesQuotesAndBackslashesInLabelValues) {
  const std::string text = RenderOpenMetricsText(metrics_.Snapshot());
  EXPECT_THAT(text, HasSubstr("gifts_created_total{mode=\"direct\",theme=\"birthday \\\"quoted\\\" "
                              "\\\\ back\"} 1\n"));
}

// Same values as the Prometheus text writer, sample for sample.
TEST_F(OpenMetrics, CarriesTheSameValuesAsThePrometheusText) {
  const std::vector<FamilySnapshot> snapshot = metrics_.Snapshot();
  const OpenMetricsCheck om = CheckOpenMetrics(RenderOpenMetricsText(snapshot));
  const testing::PromText prom = testing::ParsePromText(RenderPrometheusText(snapshot));
  ASSERT_THAT(prom.errors, IsEmpty());
  size_t compared = 0;
  for (const testing::PromFamily& family : prom.families) {
    for (const testing::PromSample& s : family.samples) {
      std::string name = s.name;
      if (family.type == "counter" && !name.ends_with("_total")) name += "_total";
      std::string labels;
      for (const auto& [label, value] : s.labels) {
        std::string escaped;
        for (char c : value) {
          if (c == '\\' || c == '"') escaped.push_back('\\');
          escaped.push_back(c == '\n' ? 'n' : c);
        }
        std::string written = value;
        if (label == "le" && written != "+Inf" &&
            written.find_first_of(".e") == std::string::npos) {
          written += ".0";
          escaped = written;
        }
        absl::StrAppend(&labels, labels.empty() ? "" : ",", label, "=\"", escaped, "\"");
      }
      const std::string key = absl::StrCat(name, "{", labels, "}");
      auto it = om.values.find(key);
      ASSERT_NE(it, om.values.end()) << key;
      if (std::isnan(s.value)) {
        EXPECT_TRUE(std::isnan(it->second)) << key;
      } else {
        EXPECT_EQ(it->second, s.value) << key;
      }
      ++compared;
    }
  }
  EXPECT_EQ(compared, om.values.size());
  EXPECT_GT(compared, 20u);
}

}  // namespace
}  // namespace novapulse
