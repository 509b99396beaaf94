// The example specs of configs/metrics/examples, each replayed over its
// sample log: every series of every family the spec declares is held equal
// to a count made here, independently of the engine. Each line is read with
// simdjson's DOM parser (not the On-Demand decoder under test), and its
// labels and values are worked out by plain code that follows the spec's
// fields (paths, transforms, value lists, defaults) and metrics (labels,
// conditions, values, buckets).

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_join.h"
#include "aggregators/spec_metrics.h"
#include "base/file.h"
#include "gtest/gtest.h"
#include "pipeline/record_worker.h"
#include "simdjson.h"
#include "spec/metric_spec.h"
#include "spec/plan.h"

namespace novapulse {
namespace {

const std::string kExamples = std::string(NOVAPULSE_SOURCE_DIR) + "/configs/metrics/examples/";

struct ExpectedSeries {
  std::vector<uint64_t> counts;  // a counter's value; a histogram's buckets, then +Inf
  double sum = 0;                // histograms: the sum of the observed values
  uint64_t observations = 0;
};

struct ExpectedFamily {
  bool histogram = false;
  std::vector<double> bounds;
  double sum_unit = 1e-6;
  std::map<std::string, ExpectedSeries> series;  // by label values joined by '\xff'

  ExpectedSeries& At(const std::vector<std::string>& labels) {
    ExpectedSeries& s = series[absl::StrJoin(labels, std::string(1, kLabelSeparator))];
    if (s.counts.empty()) s.counts.assign(histogram ? bounds.size() + 1 : 1, 0);
    return s;
  }
  // A record that meets `when` makes its series even when it adds 0, as a
  // Prometheus client's Add(0) does (traefik.yaml's `when: retries > 0` is
  // there to avoid exactly that).
  void Add(const std::vector<std::string>& labels, uint64_t n) { At(labels).counts[0] += n; }
  void Observe(const std::vector<std::string>& labels, double v) {
    ExpectedSeries& s = At(labels);
    size_t bucket = 0;
    while (bucket < bounds.size() && v > bounds[bucket]) ++bucket;
    ++s.counts[bucket];
    s.sum += v;
    ++s.observations;
  }
  // A family whose labels all come from `values` lists has each of their
  // combinations from the start, as zeros.
  void AllCombinations(const std::vector<std::vector<std::string>>& lists,
                       std::vector<std::string> prefix = {}) {
    if (prefix.size() == lists.size()) {
      At(prefix);
      return;
    }
    for (const std::string& v : lists[prefix.size()]) {
      std::vector<std::string> next = prefix;
      next.push_back(v);
      AllCombinations(lists, next);
    }
  }
};

ExpectedFamily Counter() { return ExpectedFamily{}; }
ExpectedFamily Histogram(std::vector<double> bounds, double sum_unit = 1e-6) {
  ExpectedFamily f;
  f.histogram = true;
  f.bounds = std::move(bounds);
  f.sum_unit = sum_unit;
  return f;
}

using ExpectedFamilies = std::map<std::string, ExpectedFamily>;

// A line's value at a JSON pointer; a string is absent when it is missing,
// null or "" (README, "A field").

std::optional<std::string> String(simdjson::dom::element line, std::string_view pointer) {
  std::string_view s;
  if (line.at_pointer(pointer).get_string().get(s) != simdjson::SUCCESS || s.empty()) {
    return std::nullopt;
  }
  return std::string(s);
}

std::optional<int64_t> Int(simdjson::dom::element line, std::string_view pointer) {
  int64_t n;
  if (line.at_pointer(pointer).get_int64().get(n) != simdjson::SUCCESS) return std::nullopt;
  return n;
}

std::optional<double> Number(simdjson::dom::element line, std::string_view pointer) {
  double x;
  if (line.at_pointer(pointer).get_double().get(x) != simdjson::SUCCESS) return std::nullopt;
  return x;
}

// A string field's `values` and `other`: a value not listed becomes
// `other`, so the label takes one of values + other, and a family labelled
// by such fields alone has each combination from the start.
struct Closed {
  std::vector<std::string> values;
  std::string other;

  std::string Fold(const std::string& value) const {
    for (const std::string& v : values) {
      if (v == value) return value;
    }
    return other;
  }
  std::vector<std::string> All() const {
    std::vector<std::string> all = values;
    all.push_back(other);
    return all;
  }
};

bool AllOf(std::string_view s, bool (*pred)(unsigned char)) {
  for (const char c : s) {
    if (!pred(static_cast<unsigned char>(c))) return false;
  }
  return true;
}
bool IsDigit(unsigned char c) { return absl::ascii_isdigit(c); }
bool IsHex(unsigned char c) { return absl::ascii_isxdigit(c); }
bool IsTokenChar(unsigned char c) { return absl::ascii_isalnum(c) || c == '-' || c == '_'; }

// Every piece of `s` between `sep`s, empty ones included.
std::vector<std::string_view> Split(std::string_view s, char sep) {
  std::vector<std::string_view> pieces;
  for (size_t at = 0;;) {
    const size_t end = s.find(sep, at);
    pieces.push_back(s.substr(at, end == std::string_view::npos ? end : end - at));
    if (end == std::string_view::npos) return pieces;
    at = end + 1;
  }
}

bool IsUuid(std::string_view s) {
  const std::vector<std::string_view> groups = Split(s, '-');
  const size_t widths[] = {8, 4, 4, 4, 12};
  if (groups.size() != 5) return false;
  for (size_t i = 0; i < 5; ++i) {
    if (groups[i].size() != widths[i] || !AllOf(groups[i], IsHex)) return false;
  }
  return true;
}

// A segment `normalize: path` replaces with ":id" (README; parsers/route.h
// spells out "opaque"): digits, a UUID, 16+ hex digits, 16+ token
// characters with a digit among them, or anything of 48+ bytes.
bool IsId(std::string_view s) {
  if (s.empty()) return false;
  if (s.size() >= 48 || AllOf(s, IsDigit) || IsUuid(s)) return true;
  if (s.size() < 16) return false;
  if (AllOf(s, IsHex)) return true;
  return AllOf(s, IsTokenChar) && s.find_first_of("0123456789") != std::string_view::npos;
}

// `normalize: path`: the query (and fragment) dropped, ids folded.
std::string NormalizePath(std::string_view uri) {
  uri = uri.substr(0, uri.find_first_of("?#"));
  std::vector<std::string> segments;
  for (const std::string_view segment : Split(uri, '/')) {
    segments.push_back(IsId(segment) ? ":id" : std::string(segment));
  }
  return absl::StrJoin(segments, "/");
}

// `replace: {regex: '^PREFIX[^STOP]*', with: TEXT}` (STOP: characters that
// end the match); `at_least_one` for `+` instead of `*`.
std::string ReplacePrefixRun(const std::string& s, std::string_view prefix, std::string_view stop,
                             std::string_view with, bool at_least_one) {
  if (!s.starts_with(prefix)) return s;
  size_t end = s.find_first_of(stop, prefix.size());
  if (end == std::string::npos) end = s.size();
  if (at_least_one && end == prefix.size()) return s;
  return std::string(with) + s.substr(end);
}

// `replace: {regex: ':[0-9]+$', with: ''}`.
std::string StripPort(const std::string& host) {
  const size_t colon = host.rfind(':');
  if (colon == std::string::npos || colon + 1 == host.size() ||
      !AllOf(std::string_view(host).substr(colon + 1), IsDigit)) {
    return host;
  }
  return host.substr(0, colon);
}

// What the engine exports, copied out of its snapshot.
struct GotFamily {
  bool histogram = false;
  std::vector<double> bounds;
  double sum_unit = 0;
  std::map<std::string, std::vector<uint64_t>> series;
};

struct Replay {
  std::vector<std::string> declared;  // the spec's families, in spec order
  std::string topic;
  std::map<std::string, GotFamily> families;  // the spec's and novapulse's own
};

Replay ReplayThroughEngine(const std::string& spec_path, const std::string& log) {
  Replay out;
  absl::StatusOr<spec::MetricSpecSet> spec = spec::LoadMetricSpec(spec_path);
  EXPECT_TRUE(spec.ok()) << spec.status();
  if (!spec.ok()) return out;
  absl::StatusOr<std::shared_ptr<const spec::SpecPlan>> plan =
      spec::SpecPlan::Compile(*std::move(spec));
  EXPECT_TRUE(plan.ok()) << plan.status();
  if (!plan.ok()) return out;
  EXPECT_EQ((*plan)->spec().inputs.size(), 1u);
  out.topic = (*plan)->spec().inputs[0].topic;
  for (const spec::MetricSpec& m : (*plan)->spec().metrics) out.declared.push_back(m.name);

  SpecMetrics metrics(*plan, 1);
  spec::SpecDecoder decoder(metrics.plan());
  std::string padded = log;
  padded.append(simdjson::SIMDJSON_PADDING, ' ');
  ProcessSpecLines(0, padded.data(), log.size(), padded.size(), decoder, metrics.writer(0));
  for (const FamilySnapshot& f : metrics.Snapshot()) {
    GotFamily& got = out.families[std::string(f.def->name)];
    got.histogram = f.def->type == MetricType::kHistogram;
    got.bounds = f.def->buckets;
    got.sum_unit = f.def->sum_unit;
    for (size_t s = 0; s < f.size(); ++s) {
      got.series[std::string(f.keys[s])].assign(f.words.begin() + s * f.width,
                                                f.words.begin() + (s + 1) * f.width);
    }
  }
  return out;
}

std::string Readable(std::string key) {
  std::replace(key.begin(), key.end(), kLabelSeparator, ',');
  return "{" + key + "}";
}

void ExpectSameSeries(const ExpectedFamilies& want, const Replay& got) {
  std::vector<std::string> modelled;
  for (const auto& [name, family] : want) modelled.push_back(name);
  std::vector<std::string> declared = got.declared;
  std::sort(declared.begin(), declared.end());
  ASSERT_EQ(declared, modelled) << "the test models every family the spec declares";

  for (const auto& [name, w] : want) {
    SCOPED_TRACE(name);
    const auto it = got.families.find(name);
    ASSERT_NE(it, got.families.end());
    const GotFamily& g = it->second;
    ASSERT_EQ(g.histogram, w.histogram);
    if (w.histogram) {
      EXPECT_EQ(g.bounds, w.bounds);
      EXPECT_EQ(g.sum_unit, w.sum_unit);
    }
    std::vector<std::string> missing, unexpected;
    for (const auto& [key, series] : w.series) {
      if (!g.series.contains(key)) missing.push_back(Readable(key));
    }
    for (const auto& [key, words] : g.series) {
      if (!w.series.contains(key)) unexpected.push_back(Readable(key));
    }
    EXPECT_TRUE(missing.empty()) << "series not exported: " << absl::StrJoin(missing, " ");
    EXPECT_TRUE(unexpected.empty()) << "series not expected: " << absl::StrJoin(unexpected, " ");

    for (const auto& [key, series] : w.series) {
      const auto found = g.series.find(key);
      if (found == g.series.end()) continue;
      const std::vector<uint64_t>& words = found->second;
      SCOPED_TRACE(Readable(key));
      if (!w.histogram) {
        ASSERT_EQ(words.size(), 1u);
        EXPECT_EQ(words[0], series.counts[0]);
        continue;
      }
      ASSERT_EQ(words.size(), w.bounds.size() + 2);
      for (size_t b = 0; b <= w.bounds.size(); ++b) {
        EXPECT_EQ(words[b], series.counts[b]) << "bucket " << b;
      }
      // The sum is kept in whole sum_units: one unit of rounding per value.
      EXPECT_NEAR(static_cast<double>(words.back()) * w.sum_unit, series.sum,
                  static_cast<double>(series.observations) * w.sum_unit);
    }
  }
}

// novapulse's own: every line accepted, none rejected for any reason.
void ExpectAllAccepted(const Replay& got, uint64_t lines) {
  ASSERT_TRUE(got.families.contains("novapulse_events_total"));
  const GotFamily& events = got.families.at("novapulse_events_total");
  const std::string sep(1, kLabelSeparator);
  ASSERT_TRUE(events.series.contains(got.topic + sep + "accepted"));
  EXPECT_EQ(events.series.at(got.topic + sep + "accepted")[0], lines);
  ASSERT_TRUE(events.series.contains(got.topic + sep + "rejected"));
  EXPECT_EQ(events.series.at(got.topic + sep + "rejected")[0], 0u);
  ASSERT_TRUE(got.families.contains("novapulse_parse_errors_total"));
  for (const auto& [key, words] : got.families.at("novapulse_parse_errors_total").series) {
    EXPECT_EQ(words[0], 0u) << Readable(key);
  }
}

// Calls `each` with the root of every line of `log`, parsed with the DOM
// API; returns the number of lines.
template <typename F>
uint64_t ForEachLine(const std::string& log, F each) {
  simdjson::dom::parser parser;
  uint64_t number = 0;
  for (const std::string_view line : Split(log, '\n')) {
    if (line.empty()) continue;
    ++number;
    SCOPED_TRACE("line " + std::to_string(number));
    simdjson::dom::element root;
    EXPECT_EQ(parser.parse(line.data(), line.size()).get(root), simdjson::SUCCESS);
    each(root);
  }
  return number;
}

std::string Load(const std::string& name) {
  absl::StatusOr<std::string> text = ReadRegularFile(kExamples + name);
  EXPECT_TRUE(text.ok()) << text.status();
  return text.ok() ? *text : "";
}

const std::vector<double> kLatencyBuckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                             0.5,   1,    2.5,   5,    10};
const Closed kMethods = {{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}, "OTHER"};

TEST(ExampleSpecs, CaddyAccessLogSeriesMatchAnIndependentCount) {
  const std::string log = Load("caddy-access.log");
  const Closed hosts = {{"shop.example.com", "api.example.com"}, "other"};
  const Closed routes = {
      {"/", "/healthz", "/favicon.ico", "/static/*", "/products", "/products/:id",
       "/admin/reports/daily", "/v1/orders", "/v1/orders/:id", "/v1/payments/:id/capture",
       "/v1/search", "/v1/users/:id/cart", "/v1/users/:id/cart/items/:id"},
      "other"};

  ExpectedFamilies want;
  ExpectedFamily& requests = want["caddy_http_requests_total"] = Counter();
  ExpectedFamily& duration = want["caddy_http_request_duration_seconds"] =
      Histogram(kLatencyBuckets);
  ExpectedFamily& size = want["caddy_http_response_size_bytes"] =
      Histogram({256, 1024, 4096, 16384, 65536, 262144, 1048576}, 1);
  ExpectedFamily& response_bytes = want["caddy_http_response_bytes_total"] = Counter();
  ExpectedFamily& body_bytes = want["caddy_http_request_body_bytes_total"] = Counter();
  ExpectedFamily& by_protocol = want["caddy_http_requests_by_protocol_total"] = Counter();
  ExpectedFamily& authenticated = want["caddy_http_authenticated_requests_total"] = Counter();
  ExpectedFamily& server_errors = want["caddy_http_server_errors_total"] = Counter();
  duration.AllCombinations({kMethods.All(), routes.All()});
  size.AllCombinations({hosts.All()});
  response_bytes.AllCombinations({hosts.All()});
  body_bytes.AllCombinations({hosts.All()});
  authenticated.AllCombinations({hosts.All(), routes.All()});
  server_errors.AllCombinations({routes.All()});

  const uint64_t lines = ForEachLine(log, [&](simdjson::dom::element line) {
    const std::optional<std::string> raw_method = String(line, "/request/method");
    const std::optional<std::string> uri = String(line, "/request/uri");
    const std::optional<int64_t> status = Int(line, "/status");
    const std::optional<double> seconds = Number(line, "/duration");
    ASSERT_TRUE(raw_method && uri && status && seconds) << "a required field is absent";

    const std::string method = kMethods.Fold(*raw_method);
    const std::optional<std::string> raw_host = String(line, "/request/host");
    const std::string host =
        raw_host ? hosts.Fold(absl::AsciiStrToLower(StripPort(*raw_host))) : "";
    const std::string route =
        routes.Fold(NormalizePath(ReplacePrefixRun(*uri, "/static/", "?", "/static/*", false)));
    const std::string proto = String(line, "/request/proto").value_or("");
    const int64_t bytes = Int(line, "/size").value_or(0);
    const int64_t bytes_read = Int(line, "/bytes_read").value_or(0);

    requests.Add({method, host, route, std::to_string(*status)}, 1);
    duration.Observe({method, route}, *seconds);
    size.Observe({host}, static_cast<double>(bytes));
    response_bytes.Add({host}, static_cast<uint64_t>(bytes));
    body_bytes.Add({host}, static_cast<uint64_t>(bytes_read));
    by_protocol.Add({proto}, 1);
    if (String(line, "/user_id")) authenticated.Add({host, route}, 1);  // exists: not ""
    if (*status >= 500) server_errors.Add({route}, 1);
  });
  ASSERT_EQ(lines, 320u);

  const Replay got = ReplayThroughEngine(kExamples + "caddy.yaml", log);
  ExpectSameSeries(want, got);
  ExpectAllAccepted(got, lines);
}

TEST(ExampleSpecs, TraefikAccessLogSeriesMatchAnIndependentCount) {
  const std::string log = Load("traefik-access.log");

  ExpectedFamilies want;
  ExpectedFamily& requests = want["traefik_requests_total"] = Counter();
  ExpectedFamily& duration = want["traefik_request_duration_seconds"] = Histogram(kLatencyBuckets);
  ExpectedFamily& response_bytes = want["traefik_response_bytes_total"] = Counter();
  ExpectedFamily& request_bytes = want["traefik_request_bytes_total"] = Counter();
  ExpectedFamily& server_errors = want["traefik_server_errors_total"] = Counter();
  ExpectedFamily& route_requests = want["traefik_route_requests_total"] = Counter();
  ExpectedFamily& unserved = want["traefik_unserved_errors_total"] = Counter();
  ExpectedFamily& overhead = want["traefik_overhead_seconds"] =
      Histogram({0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005}, 1e-9);
  ExpectedFamily& retries = want["traefik_retries_total"] = Counter();
  // Every family has a label without a `values` list: no zero series.

  const uint64_t lines = ForEachLine(log, [&](simdjson::dom::element line) {
    const std::optional<std::string> raw_method = String(line, "/RequestMethod");
    const std::optional<std::string> path = String(line, "/RequestPath");
    const std::optional<int64_t> status = Int(line, "/DownstreamStatus");
    const std::optional<double> duration_ns = Number(line, "/Duration");
    ASSERT_TRUE(raw_method && path && status && duration_ns) << "a required field is absent";

    const std::string router = String(line, "/RouterName").value_or("none");
    const std::string service = String(line, "/ServiceName").value_or("none");
    const std::string entrypoint = String(line, "/entryPointName").value_or("none");
    const std::string method = kMethods.Fold(*raw_method);
    const std::string route = NormalizePath(
        ReplacePrefixRun(*path, "/api/dashboards/uid/", "/?", "/api/dashboards/uid/:uid", true));
    const std::string code = std::to_string(*status);
    const int64_t origin_status = Int(line, "/OriginStatus").value_or(0);
    const std::optional<double> overhead_ns = Number(line, "/Overhead");
    const int64_t sent = Int(line, "/DownstreamContentSize").value_or(0);
    const int64_t received = Int(line, "/RequestContentSize").value_or(0);
    const int64_t retry_attempts = Int(line, "/RetryAttempts").value_or(0);

    requests.Add({router, service, method, code}, 1);
    duration.Observe({router}, *duration_ns * 1e-9);
    response_bytes.Add({router}, static_cast<uint64_t>(sent));
    request_bytes.Add({router}, static_cast<uint64_t>(received));
    if (*status >= 500) server_errors.Add({router}, 1);
    if (router != "none") route_requests.Add({router, method, route, code}, 1);
    if (*status >= 500 && origin_status == 0) unserved.Add({router, code}, 1);
    if (overhead_ns) overhead.Observe({entrypoint}, *overhead_ns * 1e-9);
    if (retry_attempts > 0) retries.Add({service}, static_cast<uint64_t>(retry_attempts));
  });
  ASSERT_EQ(lines, 300u);

  const Replay got = ReplayThroughEngine(kExamples + "traefik.yaml", log);
  ExpectSameSeries(want, got);
  ExpectAllAccepted(got, lines);
}

}  // namespace
}  // namespace novapulse
