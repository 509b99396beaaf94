#include "gen/traffic_gen.h"

#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gen/gen_command.h"
#include "gen/ndjson_writer.h"
#include "gtest/gtest.h"
#include "simdjson.h"
#include "tests/pipeline/test_process.h"

namespace novapulse {
namespace {

using ::novapulse::testing::ScratchDir;

constexpr int64_t kSec = 1'000'000;
constexpr int64_t kMin = 60 * kSec;
constexpr int64_t kHour = 60 * kMin;
constexpr int64_t kDay = 24 * kHour;
constexpr int64_t kDefaultStart = 1795651200LL * kSec;  // 2026-11-26T00:00:00Z

class MemorySink : public TrafficSink {
 public:
  absl::Status Write(Topic topic, std::string_view line) override {
    lines_[static_cast<int>(topic)].emplace_back(line);
    return absl::OkStatus();
  }
  const std::vector<std::string>& access() const { return lines_[0]; }
  const std::vector<std::string>& outbox() const { return lines_[1]; }

  std::string Joined(Topic topic) const {
    std::string out;
    for (const std::string& l : lines_[static_cast<int>(topic)]) {
      out += l;
      out += '\n';
    }
    return out;
  }

 private:
  std::array<std::vector<std::string>, kTopicCount> lines_;
};

// Counts without storing, for day-long runs.
class CountingSink : public TrafficSink {
 public:
  absl::Status Write(Topic topic, std::string_view line) override {
    if (topic == Topic::kAccessLog) {
      ++access_per_hour[HourOf(line)];
      ++access;
    } else {
      if (line.find("\"type\":\"gift.created\",\"status\":\"queued\"") != line.npos) ++created;
      if (line.find("\"type\":\"gift.claimed\",\"status\":\"queued\"") != line.npos) ++claimed;
      if (line.find("\"type\":\"gift.expired\",\"status\":\"queued\"") != line.npos) ++expired;
      if (line.find("\"type\":\"wallet.transaction\",\"status\":\"queued\"") != line.npos) ++wallet;
    }
    return absl::OkStatus();
  }
  static int HourOf(std::string_view line) {
    // {"ts":"YYYY-MM-DDTHH
    return (line[18] - '0') * 10 + (line[19] - '0');
  }
  uint64_t access = 0, created = 0, claimed = 0, expired = 0, wallet = 0;
  std::array<uint64_t, 24> access_per_hour = {};
};

class FailingSink : public TrafficSink {
 public:
  absl::Status Write(Topic, std::string_view) override {
    if (++writes_ == 10) return absl::ResourceExhaustedError("disk full");
    return absl::OkStatus();
  }

 private:
  int writes_ = 0;
};

// Parses the generator's exact timestamp form "YYYY-MM-DDTHH:MM:SS.mmmZ".
std::optional<int64_t> ParseTs(std::string_view s) {
  if (s.size() != 24 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
      s[16] != ':' || s[19] != '.' || s[23] != 'Z') {
    return std::nullopt;
  }
  bool ok = true;
  const auto num = [&](int pos, int n) {
    int v = 0;
    for (int i = pos; i < pos + n; ++i) {
      if (s[i] < '0' || s[i] > '9') ok = false;
      v = v * 10 + (s[i] - '0');
    }
    return v;
  };
  using namespace std::chrono;
  const year_month_day ymd{year{num(0, 4)}, month{static_cast<unsigned>(num(5, 2))},
                           day{static_cast<unsigned>(num(8, 2))}};
  const int h = num(11, 2), mi = num(14, 2), se = num(17, 2), ms = num(20, 3);
  if (!ok || !ymd.ok() || h > 23 || mi > 59 || se > 59) return std::nullopt;
  const int64_t days = sys_days(ymd).time_since_epoch().count();
  return ((days * 86400 + h * 3600 + mi * 60 + se) * 1000 + ms) * 1000;
}

struct AccessRecord {
  int64_t ts = 0;
  std::string method, route, path, request_id, instance, error_code, client_ip, user_agent;
  bool has_route = false;
  uint64_t status = 0;
  double duration_ms = 0;
  uint64_t bytes_out = 0;
};

struct OutboxRecord {
  int64_t ts = 0;
  std::string id, type, status, error;
  uint64_t attempt = 0;
  double processing_ms = -1;
  bool has_data = false;
  std::set<std::string> data_keys;
  std::string gift_id, mode, theme, wallet_kind, wallet_status;
  double value_usd = -1, amount_usd = -1;
  std::optional<int64_t> created_at;
};

using simdjson::ondemand::object;
using simdjson::ondemand::value;

// Parses one access line strictly: valid JSON, only known keys, the right
// types. Returns an error description, empty on success.
std::string ParseAccess(std::string_view line, AccessRecord& rec) {
  static simdjson::ondemand::parser parser;
  const simdjson::padded_string padded(line);
  simdjson::ondemand::document doc;
  object obj;
  if (parser.iterate(padded).get(doc) || doc.get_object().get(obj)) return "not a JSON object";
  std::set<std::string> seen;
  for (auto field_result : obj) {
    simdjson::ondemand::field field;
    std::string_view key;
    if (std::move(field_result).get(field) || field.unescaped_key().get(key)) return "bad field";
    if (!seen.insert(std::string(key)).second) return "duplicate key " + std::string(key);
    value v = field.value();
    std::string_view str;
    const auto get_str = [&](std::string& out) {
      if (v.get_string().get(str)) return false;
      out = std::string(str);
      return true;
    };
    bool ok = true;
    if (key == "ts") {
      ok = !v.get_string().get(str);
      if (ok) {
        std::optional<int64_t> ts = ParseTs(str);
        if (!ts) return "bad ts " + std::string(str);
        rec.ts = *ts;
      }
    } else if (key == "method") {
      ok = get_str(rec.method);
    } else if (key == "route") {
      ok = get_str(rec.route);
      rec.has_route = true;
    } else if (key == "path") {
      ok = get_str(rec.path);
    } else if (key == "status") {
      ok = !v.get_uint64().get(rec.status);
    } else if (key == "duration_ms") {
      ok = !v.get_double().get(rec.duration_ms);
    } else if (key == "bytes_out") {
      ok = !v.get_uint64().get(rec.bytes_out);
    } else if (key == "request_id") {
      ok = get_str(rec.request_id);
    } else if (key == "instance") {
      ok = get_str(rec.instance);
    } else if (key == "error_code") {
      ok = get_str(rec.error_code);
    } else if (key == "client_ip") {
      ok = get_str(rec.client_ip);
    } else if (key == "user_agent") {
      ok = get_str(rec.user_agent);
    } else {
      return "unknown key " + std::string(key);
    }
    if (!ok) return "wrong type for " + std::string(key);
  }
  // current_location() fails once the whole input has been consumed.
  const char* rest = nullptr;
  if (!doc.current_location().get(rest)) return "trailing content";
  for (const char* required : {"ts", "method", "path", "status", "duration_ms", "bytes_out",
                               "request_id", "instance", "client_ip", "user_agent"}) {
    if (!seen.contains(required)) return std::string("missing ") + required;
  }
  return "";
}

std::string ParseOutboxData(object data, OutboxRecord& rec) {
  for (auto field_result : data) {
    simdjson::ondemand::field field;
    std::string_view key;
    if (std::move(field_result).get(field) || field.unescaped_key().get(key))
      return "bad data field";
    rec.data_keys.insert(std::string(key));
    value v = field.value();
    std::string_view str;
    bool ok = true;
    if (key == "value_usd") {
      ok = !v.get_double().get(rec.value_usd);
    } else if (key == "amount_usd") {
      ok = !v.get_double().get(rec.amount_usd);
    } else {
      ok = !v.get_string().get(str);
      if (key == "gift_id") rec.gift_id = std::string(str);
      if (key == "mode") rec.mode = std::string(str);
      if (key == "theme") rec.theme = std::string(str);
      if (key == "kind") rec.wallet_kind = std::string(str);
      if (key == "status") rec.wallet_status = std::string(str);
      if (key == "created_at") {
        rec.created_at = ParseTs(str);
        if (!rec.created_at) return "bad created_at";
      }
    }
    if (!ok) return "wrong type for data." + std::string(key);
  }
  return "";
}

std::string ParseOutbox(std::string_view line, OutboxRecord& rec) {
  static simdjson::ondemand::parser parser;
  const simdjson::padded_string padded(line);
  simdjson::ondemand::document doc;
  object obj;
  if (parser.iterate(padded).get(doc) || doc.get_object().get(obj)) return "not a JSON object";
  std::set<std::string> seen;
  for (auto field_result : obj) {
    simdjson::ondemand::field field;
    std::string_view key;
    if (std::move(field_result).get(field) || field.unescaped_key().get(key)) return "bad field";
    if (!seen.insert(std::string(key)).second) return "duplicate key " + std::string(key);
    value v = field.value();
    std::string_view str;
    bool ok = true;
    if (key == "ts") {
      ok = !v.get_string().get(str);
      if (ok) {
        std::optional<int64_t> ts = ParseTs(str);
        if (!ts) return "bad ts " + std::string(str);
        rec.ts = *ts;
      }
    } else if (key == "id" || key == "type" || key == "status" || key == "error") {
      ok = !v.get_string().get(str);
      std::string& out = key == "id"       ? rec.id
                         : key == "type"   ? rec.type
                         : key == "status" ? rec.status
                                           : rec.error;
      out = std::string(str);
    } else if (key == "attempt") {
      ok = !v.get_uint64().get(rec.attempt);
    } else if (key == "processing_ms") {
      ok = !v.get_double().get(rec.processing_ms);
    } else if (key == "data") {
      object data;
      ok = !v.get_object().get(data);
      if (ok) {
        rec.has_data = true;
        if (std::string e = ParseOutboxData(data, rec); !e.empty()) return e;
      }
    } else {
      return "unknown key " + std::string(key);
    }
    if (!ok) return "wrong type for " + std::string(key);
  }
  // current_location() fails once the whole input has been consumed.
  const char* rest = nullptr;
  if (!doc.current_location().get(rest)) return "trailing content";
  for (const char* required : {"ts", "id", "type", "status", "attempt"}) {
    if (!seen.contains(required)) return std::string("missing ") + required;
  }
  return "";
}

std::vector<AccessRecord> ParseAllAccess(const std::vector<std::string>& lines) {
  std::vector<AccessRecord> out(lines.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string error = ParseAccess(lines[i], out[i]);
    EXPECT_EQ(error, "") << lines[i];
    if (!error.empty()) return {};
  }
  return out;
}

std::vector<OutboxRecord> ParseAllOutbox(const std::vector<std::string>& lines) {
  std::vector<OutboxRecord> out(lines.size());
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string error = ParseOutbox(lines[i], out[i]);
    EXPECT_EQ(error, "") << lines[i];
    if (!error.empty()) return {};
  }
  return out;
}

GenConfig Config(int64_t start_offset, int64_t duration, double access_rate) {
  GenConfig c;
  c.start_us = kDefaultStart + start_offset;
  c.duration_us = duration;
  c.access_rate = access_rate;
  return c;
}

IncidentSpan Span(IncidentKind kind, const GenConfig& c, int64_t offset, int64_t duration) {
  return IncidentSpan{kind, c.start_us + offset, c.start_us + offset + duration};
}

MemorySink Generate(const GenConfig& config) {
  MemorySink sink;
  absl::StatusOr<GenStats> stats = GenerateTraffic(config, sink);
  EXPECT_TRUE(stats.ok()) << stats.status();
  if (stats.ok()) {
    EXPECT_EQ(stats->access_lines, sink.access().size());
    EXPECT_EQ(stats->outbox_lines, sink.outbox().size());
  }
  return sink;
}

bool In(int64_t t, int64_t from, int64_t to) { return from <= t && t < to; }

double Share(uint64_t part, uint64_t whole) {
  return whole == 0 ? 0.0 : static_cast<double>(part) / static_cast<double>(whole);
}

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<size_t>(q * static_cast<double>(v.size() - 1))];
}

GenConfig AllIncidentsConfig(uint64_t seed) {
  GenConfig c = Config(12 * kHour, 40 * kMin, 30);
  c.seed = seed;
  for (int k = 0; k < kIncidentKindCount; ++k) {
    c.incidents.push_back(Span(static_cast<IncidentKind>(k), c, k * 5 * kMin, 10 * kMin));
  }
  return c;
}

TEST(TrafficGen, SameConfigGivesIdenticalBytes) {
  const MemorySink a = Generate(AllIncidentsConfig(7));
  const MemorySink b = Generate(AllIncidentsConfig(7));
  ASSERT_GT(a.access().size(), 10000u);
  ASSERT_GT(a.outbox().size(), 1000u);
  EXPECT_EQ(a.Joined(Topic::kAccessLog), b.Joined(Topic::kAccessLog));
  EXPECT_EQ(a.Joined(Topic::kOutbox), b.Joined(Topic::kOutbox));
}

TEST(TrafficGen, DifferentSeedGivesDifferentBytes) {
  const MemorySink a = Generate(AllIncidentsConfig(7));
  const MemorySink b = Generate(AllIncidentsConfig(8));
  EXPECT_NE(a.Joined(Topic::kAccessLog), b.Joined(Topic::kAccessLog));
  EXPECT_NE(a.Joined(Topic::kOutbox), b.Joined(Topic::kOutbox));
}

TEST(TrafficGen, EventTimeNeverDecreasesWithinEachTopic) {
  GenConfig c = Config(11 * kHour, 3 * kHour, 20);
  c.incidents = {Span(IncidentKind::kOutboxBacklog, c, 30 * kMin, 40 * kMin),
                 Span(IncidentKind::kOutboxFailures, c, 60 * kMin, 40 * kMin),
                 Span(IncidentKind::kExpirySpike, c, 90 * kMin, 30 * kMin)};
  const MemorySink sink = Generate(c);
  for (const auto* lines : {&sink.access(), &sink.outbox()}) {
    int64_t last = c.start_us;
    for (const std::string& line : *lines) {
      const std::optional<int64_t> ts = ParseTs(line.substr(7, 24));
      ASSERT_TRUE(ts.has_value()) << line;
      ASSERT_GE(*ts, last) << line;
      ASSERT_LT(*ts, c.start_us + c.duration_us) << line;
      last = *ts;
    }
  }
}

TEST(TrafficGen, AccessLinesAreValidJsonWithTheDocumentedFields) {
  const GenConfig c = Config(9 * kHour, 10 * kMin, 100);
  const MemorySink sink = Generate(c);
  const std::vector<AccessRecord> recs = ParseAllAccess(sink.access());
  ASSERT_GT(recs.size(), 50000u);
  const std::set<std::string> methods = {"GET", "POST", "DELETE"};
  const std::set<std::string> instances = {"api-1", "api-2", "api-3", "api-4"};
  std::set<std::string> routes;
  uint64_t without_route = 0, client_errors = 0, server_errors = 0;
  for (const AccessRecord& r : recs) {
    EXPECT_TRUE(In(r.ts, c.start_us, c.start_us + c.duration_us));
    EXPECT_TRUE(methods.contains(r.method)) << r.method;
    EXPECT_TRUE(instances.contains(r.instance)) << r.instance;
    EXPECT_GE(r.duration_ms, 0.1);
    EXPECT_EQ(r.path.find(':'), std::string::npos) << r.path;
    EXPECT_TRUE(r.path.starts_with("/")) << r.path;
    EXPECT_EQ(r.request_id.size(), 16u) << r.request_id;
    EXPECT_EQ(!r.error_code.empty(), r.status >= 400) << r.status << " " << r.error_code;
    if (r.has_route) {
      routes.insert(r.method + " " + r.route);
    } else {
      ++without_route;
    }
    if (r.status >= 400 && r.status < 500) ++client_errors;
    if (r.status >= 500) ++server_errors;
  }
  EXPECT_EQ(routes.size(), 12u);
  EXPECT_NEAR(Share(without_route, recs.size()), 0.05, 0.01);
  EXPECT_NEAR(Share(client_errors, recs.size()), 0.03, 0.005);
  EXPECT_NEAR(Share(server_errors, recs.size()), 0.005, 0.002);
}

TEST(TrafficGen, DurationsKeepAtMostThreeDecimals) {
  const MemorySink sink = Generate(Config(0, 2 * kMin, 50));
  for (const std::string& line : sink.access()) {
    const size_t at = line.find("\"duration_ms\":") + 14;
    const size_t end = line.find(',', at);
    const std::string number = line.substr(at, end - at);
    const size_t dot = number.find('.');
    if (dot != std::string::npos) {
      EXPECT_LE(number.size() - dot - 1, 3u) << number;
      EXPECT_NE(number.back(), '0') << number;
    }
  }
}

TEST(TrafficGen, OutboxLinesFollowTheLifecycleWithDataOnlyOnQueued) {
  GenConfig c = Config(12 * kHour, 4 * kHour, 0);
  c.incidents = {Span(IncidentKind::kOutboxFailures, c, kHour, kHour)};
  const MemorySink sink = Generate(c);
  const std::vector<OutboxRecord> recs = ParseAllOutbox(sink.outbox());
  ASSERT_GT(recs.size(), 10000u);

  const std::map<std::string, std::set<std::string>> data_keys = {
      {"gift.created", {"gift_id", "mode", "theme", "value_usd"}},
      {"gift.claimed", {"gift_id", "mode", "theme", "value_usd", "created_at"}},
      {"gift.expired", {"gift_id", "mode", "theme", "created_at"}},
      {"wallet.transaction", {"kind", "amount_usd", "status"}}};
  const std::set<std::string> modes = {"instant", "scheduled", "group", "anonymous"};
  const std::set<std::string> themes = {"birthday", "thank_you",   "holiday",
                                        "congrats", "anniversary", "just_because"};
  struct State {
    std::string type, last_status;
    uint64_t attempt = 0;
  };
  std::map<std::string, State> messages;
  uint64_t dead = 0;
  for (const OutboxRecord& r : recs) {
    ASSERT_TRUE(data_keys.contains(r.type)) << r.type;
    EXPECT_EQ(r.has_data, r.status == "queued") << r.id << " " << r.status;
    EXPECT_EQ(r.processing_ms >= 0, r.status == "processed" || r.status == "failed") << r.id;
    EXPECT_EQ(!r.error.empty(), r.status == "failed" || r.status == "dead") << r.id;
    EXPECT_GE(r.attempt, 1u);
    EXPECT_LE(r.attempt, 5u);
    if (r.has_data) {
      EXPECT_EQ(r.data_keys, data_keys.at(r.type)) << r.id;
      if (r.type != "wallet.transaction") {
        EXPECT_TRUE(modes.contains(r.mode)) << r.mode;
        EXPECT_TRUE(themes.contains(r.theme)) << r.theme;
        EXPECT_TRUE(r.gift_id.starts_with("g-")) << r.gift_id;
      }
      if (r.value_usd >= 0) {
        EXPECT_GE(r.value_usd, 1.0);
        EXPECT_LE(r.value_usd, 1000.0);
      }
    }

    // Allowed transitions: queued -> in_flight -> processed | failed;
    // failed -> in_flight (attempt + 1) | dead (after attempt 5).
    State& m = messages[r.id];
    const std::string& prev = m.last_status;
    if (r.status == "queued") {
      EXPECT_TRUE(prev.empty()) << r.id;
      EXPECT_EQ(r.attempt, 1u);
      m.type = r.type;
    } else {
      ASSERT_FALSE(prev.empty()) << "step before queued: " << r.id;
      EXPECT_EQ(r.type, m.type) << r.id;
      if (r.status == "in_flight") {
        EXPECT_TRUE(prev == "queued" || prev == "failed") << r.id << " after " << prev;
        EXPECT_EQ(r.attempt, prev == "queued" ? 1u : m.attempt + 1) << r.id;
      } else if (r.status == "processed" || r.status == "failed") {
        EXPECT_EQ(prev, "in_flight") << r.id;
        EXPECT_EQ(r.attempt, m.attempt) << r.id;
      } else {
        ASSERT_EQ(r.status, "dead") << r.id;
        EXPECT_EQ(prev, "failed") << r.id;
        EXPECT_EQ(r.attempt, 5u) << r.id;
        ++dead;
      }
    }
    m.last_status = r.status;
    m.attempt = r.attempt;
  }
  EXPECT_GT(dead, 0u);
}

TEST(TrafficGen, ClaimsAndExpiriesCarryAnEarlierCreatedAt) {
  GenConfig c = Config(0, 6 * kHour, 0);
  c.incidents = {Span(IncidentKind::kExpirySpike, c, 2 * kHour, kHour)};
  const MemorySink sink = Generate(c);
  uint64_t claims = 0, expiries = 0;
  for (const OutboxRecord& r : ParseAllOutbox(sink.outbox())) {
    if (r.status != "queued" || (r.type != "gift.claimed" && r.type != "gift.expired")) continue;
    ASSERT_TRUE(r.created_at.has_value()) << r.id;
    EXPECT_LT(*r.created_at, r.ts) << r.id;
    if (r.type == "gift.claimed") {
      ++claims;
      EXPECT_GE(r.ts - *r.created_at, kMin - 1000) << r.id;
      EXPECT_LT(r.ts - *r.created_at, 7 * kDay) << r.id;
    } else {
      ++expiries;
      EXPECT_EQ(r.ts - *r.created_at, 7 * kDay) << r.id;
    }
  }
  EXPECT_GT(claims, 1000u);
  EXPECT_GT(expiries, 100u);
}

TEST(TrafficGen, DayOfTrafficMatchesConfiguredRatesAndDiurnalShape) {
  GenConfig c = Config(0, kDay, 20);
  CountingSink sink;
  ASSERT_TRUE(GenerateTraffic(c, sink).ok());
  EXPECT_NEAR(static_cast<double>(sink.access), 20.0 * 86400, 0.02 * 20 * 86400);
  EXPECT_NEAR(static_cast<double>(sink.created), 20.0 * 1440, 0.03 * 20 * 1440);
  EXPECT_NEAR(static_cast<double>(sink.wallet), 10.0 * 1440, 0.04 * 10 * 1440);
  const double per_hour = 20.0 * 3600;
  EXPECT_LT(sink.access_per_hour[3], 0.4 * per_hour);   // night trough ~0.3x
  EXPECT_GT(sink.access_per_hour[15], 1.6 * per_hour);  // afternoon peak ~1.7x
}

TEST(TrafficGen, NormalExpiredShareStaysNearTwelvePercentFromTheFirstHour) {
  GenConfig c = Config(0, kDay, 0);
  CountingSink day;
  ASSERT_TRUE(GenerateTraffic(c, day).ok());
  EXPECT_NEAR(Share(day.expired, day.claimed + day.expired), 0.12, 0.03);

  c.duration_us = kHour;
  CountingSink first_hour;
  ASSERT_TRUE(GenerateTraffic(c, first_hour).ok());
  EXPECT_GT(first_hour.claimed, 300u);
  EXPECT_GT(first_hour.expired, 20u);
  EXPECT_LT(Share(first_hour.expired, first_hour.claimed + first_hour.expired), 0.2);
}

TEST(TrafficGen, ErrorSpikeRaisesServerErrorShareOnlyInsideItsSpan) {
  GenConfig c = Config(12 * kHour, 3 * kHour, 20);
  const IncidentSpan span = Span(IncidentKind::kErrorSpike, c, kHour, kHour);
  c.incidents = {span};
  const MemorySink sink = Generate(c);
  uint64_t in_total = 0, in_5xx = 0, out_total = 0, out_5xx = 0;
  for (const AccessRecord& r : ParseAllAccess(sink.access())) {
    const bool inside = In(r.ts, span.start_us, span.end_us);
    (inside ? in_total : out_total)++;
    if (r.status >= 500) (inside ? in_5xx : out_5xx)++;
  }
  EXPECT_GT(Share(in_5xx, in_total), 0.10);
  EXPECT_LT(Share(in_5xx, in_total), 0.20);
  EXPECT_LT(Share(out_5xx, out_total), 0.02);
}

TEST(TrafficGen, LatencySpikePushesP95AboveOneSecondOnlyInsideItsSpan) {
  GenConfig c = Config(12 * kHour, 3 * kHour, 20);
  const IncidentSpan span = Span(IncidentKind::kLatencySpike, c, kHour, kHour);
  c.incidents = {span};
  const MemorySink sink = Generate(c);
  std::vector<double> inside, outside;
  for (const AccessRecord& r : ParseAllAccess(sink.access())) {
    (In(r.ts, span.start_us, span.end_us) ? inside : outside).push_back(r.duration_ms);
  }
  EXPECT_GT(Percentile(inside, 0.95), 1000.0);
  EXPECT_LT(Percentile(outside, 0.95), 500.0);
  EXPECT_NEAR(Percentile(inside, 0.5) / Percentile(outside, 0.5), 10.0, 1.0);
}

TEST(TrafficGen, OutboxFailuresFailMostAttemptsAndSendMessagesToDead) {
  GenConfig c = Config(12 * kHour, 3 * kHour, 0);
  const IncidentSpan span = Span(IncidentKind::kOutboxFailures, c, kHour, kHour);
  c.incidents = {span};
  const MemorySink sink = Generate(c);
  uint64_t in_done = 0, in_failed = 0, out_done = 0, out_failed = 0, dead_in = 0, dead_out = 0;
  for (const OutboxRecord& r : ParseAllOutbox(sink.outbox())) {
    // An attempt's outcome belongs to the span its in_flight started in; a
    // 5 s timeout may end just past the span, hence the margin.
    const bool inside = In(r.ts, span.start_us, span.end_us + 10 * kSec);
    if (r.status == "processed" || r.status == "failed") {
      (inside ? in_done : out_done)++;
      if (r.status == "failed") (inside ? in_failed : out_failed)++;
    }
    if (r.status == "dead")
      (In(r.ts, span.start_us, span.end_us + 30 * kSec) ? dead_in : dead_out)++;
  }
  EXPECT_GT(Share(in_failed, in_done), 0.6);
  EXPECT_LT(Share(out_failed, out_done), 0.03);
  EXPECT_GT(dead_in, 100u);
  EXPECT_EQ(dead_out, 0u);
}

TEST(TrafficGen, OutboxBacklogPilesUpPastAThousandThenDrains) {
  GenConfig c = Config(12 * kHour, 3 * kHour, 0);
  const IncidentSpan span = Span(IncidentKind::kOutboxBacklog, c, kHour, kHour);
  c.incidents = {span};
  const MemorySink sink = Generate(c);
  std::set<std::string> waiting;
  size_t max_before = 0, max_inside = 0, in_flight_inside = 0;
  std::optional<size_t> at_drain_check;
  for (const OutboxRecord& r : ParseAllOutbox(sink.outbox())) {
    if (!at_drain_check && r.ts >= span.end_us + 10 * kMin) at_drain_check = waiting.size();
    if (r.status == "queued" || r.status == "failed") waiting.insert(r.id);
    if (r.status == "in_flight" || r.status == "dead") waiting.erase(r.id);
    if (r.ts < span.start_us) max_before = std::max(max_before, waiting.size());
    if (In(r.ts, span.start_us, span.end_us)) {
      max_inside = std::max(max_inside, waiting.size());
      if (r.status == "in_flight") ++in_flight_inside;
    }
  }
  EXPECT_LT(max_before, 50u);
  EXPECT_GT(max_inside, 1000u);
  EXPECT_EQ(in_flight_inside, 0u);
  ASSERT_TRUE(at_drain_check.has_value());
  EXPECT_LT(*at_drain_check, 50u);
}

struct GiftCounts {
  uint64_t created = 0, claimed = 0, expired = 0;
};

GiftCounts CountGifts(const std::vector<OutboxRecord>& recs, int64_t from, int64_t to) {
  GiftCounts n;
  for (const OutboxRecord& r : recs) {
    if (r.status != "queued" || !In(r.ts, from, to)) continue;
    if (r.type == "gift.created") ++n.created;
    if (r.type == "gift.claimed") ++n.claimed;
    if (r.type == "gift.expired") ++n.expired;
  }
  return n;
}

TEST(TrafficGen, ClaimDropSuppressesMostClaimsOnlyInsideItsSpan) {
  GenConfig c = Config(8 * kHour, 4 * kHour, 0);
  const IncidentSpan span = Span(IncidentKind::kClaimDrop, c, kHour, kHour);
  c.incidents = {span};
  const std::vector<OutboxRecord> recs = ParseAllOutbox(Generate(c).outbox());
  const GiftCounts before = CountGifts(recs, span.start_us - kHour, span.start_us);
  const GiftCounts inside = CountGifts(recs, span.start_us, span.end_us);
  const GiftCounts after = CountGifts(recs, span.end_us, span.end_us + kHour);
  ASSERT_GT(before.claimed, 500u);
  EXPECT_LT(Share(inside.claimed, before.claimed), 0.25);
  EXPECT_GT(Share(after.claimed, before.claimed), 0.8);
}

TEST(TrafficGen, ExpirySpikePushesExpiredShareWellAboveTwentyPercent) {
  GenConfig c = Config(8 * kHour, 4 * kHour, 0);
  const IncidentSpan span = Span(IncidentKind::kExpirySpike, c, kHour, kHour);
  c.incidents = {span};
  const std::vector<OutboxRecord> recs = ParseAllOutbox(Generate(c).outbox());
  const GiftCounts before = CountGifts(recs, span.start_us - kHour, span.start_us);
  const GiftCounts inside = CountGifts(recs, span.start_us, span.end_us);
  const GiftCounts after = CountGifts(recs, span.end_us, span.end_us + kHour);
  EXPECT_LT(Share(before.expired, before.claimed + before.expired), 0.2);
  EXPECT_GT(Share(inside.expired, inside.claimed + inside.expired), 0.5);
  EXPECT_LT(Share(after.expired, after.claimed + after.expired), 0.2);
}

TEST(TrafficGen, CreationDroughtDropsCreationsBelowTenPerHour) {
  GenConfig c = Config(12 * kHour, 5 * kHour, 0);
  const IncidentSpan span = Span(IncidentKind::kCreationDrought, c, kHour, 3 * kHour);
  c.incidents = {span};
  const std::vector<OutboxRecord> recs = ParseAllOutbox(Generate(c).outbox());
  EXPECT_LT(CountGifts(recs, span.start_us, span.end_us).created, 30u);
  EXPECT_GT(CountGifts(recs, c.start_us, span.start_us).created, 600u);
  EXPECT_GT(CountGifts(recs, span.end_us, span.end_us + kHour).created, 600u);
}

TEST(TrafficGen, PropagatesSinkErrors) {
  FailingSink sink;
  const absl::StatusOr<GenStats> stats = GenerateTraffic(Config(0, kHour, 10), sink);
  EXPECT_EQ(stats.status().code(), absl::StatusCode::kResourceExhausted);
}

TEST(TrafficGen, RejectsInvalidConfig) {
  MemorySink sink;
  GenConfig negative_rate = Config(0, kHour, -1);
  EXPECT_EQ(GenerateTraffic(negative_rate, sink).status().code(),
            absl::StatusCode::kInvalidArgument);
  GenConfig empty_span = Config(0, kHour, 1);
  empty_span.incidents = {{IncidentKind::kErrorSpike, kDefaultStart, kDefaultStart}};
  EXPECT_EQ(GenerateTraffic(empty_span, sink).status().code(), absl::StatusCode::kInvalidArgument);
  GenConfig before_1970 = Config(0, kHour, 1);
  before_1970.start_us = 0;
  EXPECT_EQ(GenerateTraffic(before_1970, sink).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(IncidentSpec, ParsesNameOffsetAndDuration) {
  const absl::StatusOr<IncidentSpan> a = ParseIncidentSpec("error_spike@10h+30m", kDefaultStart);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->kind, IncidentKind::kErrorSpike);
  EXPECT_EQ(a->start_us, kDefaultStart + 10 * kHour);
  EXPECT_EQ(a->end_us, kDefaultStart + 10 * kHour + 30 * kMin);

  const absl::StatusOr<IncidentSpan> b =
      ParseIncidentSpec("outbox_backlog@1h30m+45s", kDefaultStart);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->start_us, kDefaultStart + 90 * kMin);
  EXPECT_EQ(b->end_us - b->start_us, 45 * kSec);

  const absl::StatusOr<IncidentSpan> c = ParseIncidentSpec("creation_drought@0+2d", kDefaultStart);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->start_us, kDefaultStart);
  EXPECT_EQ(c->end_us - c->start_us, 2 * kDay);

  const absl::StatusOr<IncidentSpan> d = ParseIncidentSpec("claim_drop@90m+500ms", kDefaultStart);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->start_us, kDefaultStart + 90 * kMin);
  EXPECT_EQ(d->end_us - d->start_us, 500'000);
}

TEST(IncidentSpec, DurationsArePrometheusDurations) {
  const auto error = [](std::string_view spec) {
    const absl::StatusOr<IncidentSpan> s = ParseIncidentSpec(spec, kDefaultStart);
    EXPECT_FALSE(s.ok()) << spec;
    return std::string(s.status().message());
  };
  // Go's fractions, microseconds and free unit order are not Prometheus's.
  EXPECT_NE(error("claim_drop@1.5h+1h").find("no fractions"), std::string::npos);
  EXPECT_NE(error("claim_drop@1h+500us").find("unknown unit"), std::string::npos);
  EXPECT_NE(error("claim_drop@30m1h+1h").find("largest to smallest"), std::string::npos);
  const absl::StatusOr<IncidentSpan> weeks =
      ParseIncidentSpec("claim_drop@1w+1d12h", kDefaultStart);
  ASSERT_TRUE(weeks.ok()) << weeks.status();
  EXPECT_EQ(weeks->start_us, kDefaultStart + 7 * kDay);
  EXPECT_EQ(weeks->end_us - weeks->start_us, 36 * kHour);
}

TEST(IncidentSpec, ErrorsNameTheBadPart) {
  const auto error = [](std::string_view spec) {
    const absl::StatusOr<IncidentSpan> s = ParseIncidentSpec(spec, kDefaultStart);
    EXPECT_FALSE(s.ok()) << spec;
    return std::string(s.status().message());
  };
  EXPECT_NE(error("nope@1h+1h").find("unknown incident 'nope'"), std::string::npos);
  EXPECT_NE(error("nope@1h+1h").find("error_spike"), std::string::npos);
  EXPECT_NE(error("error_spike").find("NAME@OFFSET+DURATION"), std::string::npos);
  EXPECT_NE(error("error_spike@1h").find("+DURATION"), std::string::npos);
  EXPECT_NE(error("error_spike@1x+1h").find("offset"), std::string::npos);
  EXPECT_NE(error("error_spike@1x+1h").find("'1x'"), std::string::npos);
  EXPECT_NE(error("error_spike@1h+").find("duration"), std::string::npos);
  EXPECT_NE(error("error_spike@1h+30").find("missing unit"), std::string::npos);
  EXPECT_NE(error("error_spike@1h+0s").find("positive"), std::string::npos);
  EXPECT_NE(error("error_spike@-1h+1h").find("offset"), std::string::npos);
}

TEST(IncidentName, RoundTripsEveryKindAndRejectsOthers) {
  std::set<std::string_view> names;
  for (int k = 0; k < kIncidentKindCount; ++k) {
    const IncidentKind kind = static_cast<IncidentKind>(k);
    names.insert(IncidentName(kind));
    const absl::StatusOr<IncidentKind> parsed = ParseIncidentName(IncidentName(kind));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, kind);
  }
  EXPECT_EQ(names, (std::set<std::string_view>{"error_spike", "latency_spike", "outbox_failures",
                                               "outbox_backlog", "claim_drop", "expiry_spike",
                                               "creation_drought"}));
  EXPECT_FALSE(ParseIncidentName("Error_Spike").ok());
  EXPECT_FALSE(ParseIncidentName("").ok());
}

std::string ReadPlain(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string ReadGzip(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  EXPECT_NE(f, nullptr) << path;
  if (f == nullptr) return "";
  std::string out;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof(buf))) > 0) out.append(buf, static_cast<size_t>(n));
  EXPECT_EQ(n, 0);
  gzclose(f);
  return out;
}

std::string ReadZstd(const std::string& path) {
  const std::string compressed = ReadPlain(path);
  ZSTD_DCtx* ctx = ZSTD_createDCtx();
  std::string out;
  std::vector<char> buf(ZSTD_DStreamOutSize());
  ZSTD_inBuffer in = {compressed.data(), compressed.size(), 0};
  size_t rc = 1;
  while (in.pos < in.size) {
    ZSTD_outBuffer o = {buf.data(), buf.size(), 0};
    rc = ZSTD_decompressStream(ctx, &o, &in);
    EXPECT_FALSE(ZSTD_isError(rc)) << ZSTD_getErrorName(rc);
    if (ZSTD_isError(rc)) break;
    out.append(buf.data(), o.pos);
  }
  EXPECT_EQ(rc, 0u) << "truncated zstd frame";
  ZSTD_freeDCtx(ctx);
  return out;
}

TEST(NdjsonDirSink, WritesPlainGzipAndZstdFilesWithTheGeneratedLines) {
  // Long enough that the buffered writer flushes several times.
  const GenConfig c = Config(12 * kHour, 20 * kMin, 50);
  const MemorySink expected = Generate(c);
  ASSERT_GT(expected.Joined(Topic::kAccessLog).size(), 3u << 20);
  struct Case {
    Compression compression;
    std::string suffix;
    std::string (*read)(const std::string&);
  };
  for (const Case& k :
       {Case{Compression::kNone, "", ReadPlain}, Case{Compression::kGzip, ".gz", ReadGzip},
        Case{Compression::kZstd, ".zst", ReadZstd}}) {
    const ScratchDir scratch;
    const std::string dir = scratch.Path("nested");
    absl::StatusOr<std::unique_ptr<TrafficSink>> sink = MakeNdjsonDirSink(dir, k.compression);
    ASSERT_TRUE(sink.ok()) << sink.status();
    ASSERT_TRUE(GenerateTraffic(c, **sink).ok());
    ASSERT_TRUE((*sink)->Finish().ok());
    EXPECT_EQ(k.read(dir + "/access-log.ndjson" + k.suffix), expected.Joined(Topic::kAccessLog))
        << k.suffix;
    EXPECT_EQ(k.read(dir + "/outbox.ndjson" + k.suffix), expected.Joined(Topic::kOutbox))
        << k.suffix;
  }
}

TEST(NdjsonDirSink, ReportsThePathWhenTheDirectoryCannotBeCreated) {
  const ScratchDir scratch;
  const std::string& base = scratch.path();
  std::ofstream(base + "/file") << "x";
  const absl::StatusOr<std::unique_ptr<TrafficSink>> sink =
      MakeNdjsonDirSink(base + "/file/sub", Compression::kNone);
  ASSERT_FALSE(sink.ok());
  EXPECT_NE(sink.status().message().find(base + "/file/sub"), absl::string_view::npos)
      << sink.status();
}

int RunGen(std::vector<std::string> args, std::string* err) {
  args.insert(args.begin(), "gen");
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  ::testing::internal::CaptureStderr();
  ::testing::internal::CaptureStdout();
  const int rc = RunGenCommand(static_cast<int>(argv.size()), argv.data());
  *err = ::testing::internal::GetCapturedStderr() + ::testing::internal::GetCapturedStdout();
  return rc;
}

TEST(RunGenCommand, WritesFilesAndASummaryWithBothFlagForms) {
  const ScratchDir scratch;
  const std::string& dir = scratch.path();
  std::string err;
  ASSERT_EQ(
      RunGen({"--out", dir, "--duration=10m", "--start", "2026-11-26T12:00:00Z", "--rate=5",
              "--gifts-per-minute", "30", "--wallet-per-minute=5", "--seed", "3",
              "--incident=error_spike@2m+3m", "--incident", "claim_drop@1m+5m", "--compress=gzip"},
             &err),
      0)
      << err;
  EXPECT_NE(err.find("access-log lines"), std::string::npos) << err;
  EXPECT_NE(err.find("lines/s"), std::string::npos) << err;
  const std::string access = ReadGzip(dir + "/access-log.ndjson.gz");
  const std::string outbox = ReadGzip(dir + "/outbox.ndjson.gz");
  EXPECT_GT(std::count(access.begin(), access.end(), '\n'), 4000);
  EXPECT_GT(std::count(outbox.begin(), outbox.end(), '\n'), 300);
  EXPECT_TRUE(access.starts_with("{\"ts\":\"2026-11-26T12:00:")) << access.substr(0, 40);
}

TEST(RunGenCommand, HelpListsFlagsAndIncidents) {
  std::string out;
  EXPECT_EQ(RunGen({"--help"}, &out), 0);
  for (const char* word :
       {"--out", "--duration", "--start", "--rate", "--gifts-per-minute", "--wallet-per-minute",
        "--seed", "--incident", "--compress", "error_spike", "creation_drought", "--kafka",
        "--speed", "--access-topic", "--outbox-topic", "--kafka-property"}) {
    EXPECT_NE(out.find(word), std::string::npos) << word;
  }
}

TEST(RunGenCommand, RejectsBadInputWithExitTwoAndNamesIt) {
  const ScratchDir scratch;
  const std::string dir = scratch.Path("out");
  struct Case {
    std::vector<std::string> args;
    std::string mentions;
  };
  const std::vector<Case> cases = {
      {{"--out", dir, "--bogus", "1"}, "--bogus"},
      {{"--out", dir, "--rate", "fast"}, "--rate"},
      {{"--out", dir, "--rate=-3"}, "--rate"},
      {{"--out", dir, "--seed", "x1"}, "--seed"},
      {{"--out", dir, "--duration", "10"}, "--duration"},
      {{"--out", dir, "--compress", "lz4"}, "--compress"},
      {{"--out", dir, "--start", "yesterday"}, "--start"},
      {{"--out", dir, "--incident", "meltdown@1h+1h"}, "meltdown"},
      {{"--out", dir, "--rate"}, "--rate"},
      {{"--duration", "1h"}, "--out"},
      {{"--duration", "1h"}, "--kafka"},
      {{"--out", dir, "--kafka", "127.0.0.1:9092"}, "mutually exclusive"},
      {{"--out", dir, "--speed", "max"}, "--speed needs --kafka"},
      {{"--out", dir, "--kafka-property", "acks=1"}, "--kafka-property needs --kafka"},
      {{"--kafka", "127.0.0.1:9092", "--speed", "0"}, "--speed"},
      {{"--kafka", "127.0.0.1:9092", "--kafka-property", "acks"}, "KEY=VALUE"},
      {{"--kafka", "127.0.0.1:9092", "--compress", "gzip"}, "--compress"},
      {{"--out", dir, "stray"}, "stray"},
  };
  for (const Case& c : cases) {
    std::string err;
    EXPECT_EQ(RunGen(c.args, &err), 2) << c.mentions;
    EXPECT_NE(err.find(c.mentions), std::string::npos) << err;
    EXPECT_NE(err.find("--help"), std::string::npos) << err;
  }
  EXPECT_FALSE(std::filesystem::exists(dir));
}

}  // namespace
}  // namespace novapulse
