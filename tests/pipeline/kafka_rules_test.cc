// `novapulse run` with rules against a real Kafka broker: alerts and
// recording rules evaluated in event time while consuming, event time moving
// on with the wall clock once the input is idle (so a condition clears with
// no new data), late events counted, and events too far in the future
// rejected.
#include <chrono>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/pipeline/kafka_broker.h"
#include "tests/pipeline/run_service.h"
#include "tests/pipeline/test_process.h"
#include "tests/sinks/alertmanager_process.h"
#include "tests/sinks/prometheus_text.h"

namespace novapulse {
namespace {

using testing::Alertmanager;
using testing::Broker;
using testing::HttpGet;
using testing::Labels;
using testing::ParsePromText;
using testing::PromText;
using testing::ScratchDir;
using testing::Script;
using testing::Service;
using testing::Shell;
using testing::ShellResult;
using testing::WaitForScrape;
using testing::WriteWholeFile;

constexpr char kAccessTopic[] = "novagift.access-log";
constexpr char kOutboxTopic[] = "novagift.outbox";

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string AccessLine(int64_t ts_ms, int status) {
  return absl::StrCat(R"({"ts":)", ts_ms, R"(,"method":"GET","route":"/api/gifts/:id","status":)",
                      status, R"(,"duration_ms":12.5})", "\n");
}

const Labels kErrorsFiring = {
    {"alertname", "ErrorsSeen"}, {"alertstate", "firing"}, {"severity", "critical"}};

TEST(KafkaRules, AlertsFollowEventTimeAndIdleInputLetsTimeMoveOn) {
  ScratchDir dir;
  Broker broker(dir.Path("broker"));
  ASSERT_EQ(broker.Start(), "") << "scripts/kafka-broker start failed";
  const std::string& address = broker.address();
  ASSERT_EQ(broker.CreateTopics({kAccessTopic, kOutboxTopic}, 1), "");
  WriteWholeFile(dir.Path("rules.yml"), R"(groups:
  - name: test
    interval: 5s
    rules:
      - record: test:requests:rate30s
        expr: sum(rate(http_requests_total[30s]))
      - alert: ErrorsSeen
        expr: sum(increase(http_requests_total{status="500"}[30s])) > 0
        labels: {severity: critical}
        annotations: {summary: "{{ $value }} errors in 30s"}
)");
  Alertmanager alertmanager(dir);
  ASSERT_EQ(alertmanager.Start(), "");
  WriteWholeFile(dir.Path("run.yaml"), absl::StrCat(R"(kafka:
  brokers: ")",
                                                    address, R"("
  group_id: novapulse-kafka-rules-test
  properties: {auto.offset.reset: earliest}
  batch_size: 50
  batch_timeout: 50ms
http:
  listen: "127.0.0.1:0"
pipeline:
  threads: 2
  allowed_lateness: 5s
  max_future: 1m
rules:
  files: [")",
                                                    dir.Path("rules.yml"), R"("]
alertmanager:
  urls: [")",
                                                    alertmanager.url(), R"("]
)"));

  // One request a second over the last 60 s; the last 20 s answered 500;
  // plus one line stamped an hour ahead.
  const int64_t t0 = NowMs() - 60'000;
  std::string lines;
  for (int s = 0; s < 60; ++s) lines += AccessLine(t0 + s * 1000, s >= 40 ? 500 : 200);
  lines += AccessLine(NowMs() + 3'600'000, 200);
  WriteWholeFile(dir.Path("access.ndjson"), lines);
  const ShellResult produced = Shell(absl::StrCat("kcat -P -b ", address, " -t ", kAccessTopic,
                                                  " -l ", dir.Path("access.ndjson")));
  ASSERT_EQ(produced.status, 0) << produced.output;

  Service service(dir.Path("run.yaml"), dir.Path("run.log"));
  const int port = service.port();
  ASSERT_GT(port, 0) << service.log();
  // The errors are seen once the watermark passes their slots.
  const PromText firing = WaitForScrape(
      port, [](const PromText& t) { return t.Value("ALERTS", kErrorsFiring) == 1; },
      std::chrono::seconds(60));
  ASSERT_EQ(firing.Value("ALERTS", kErrorsFiring), 1) << service.log();
  EXPECT_EQ(firing.Value("http_requests_total",
                         {{"method", "GET"}, {"route", "/api/gifts/:id"}, {"status", "500"}}),
            20);
  EXPECT_EQ(firing.Value("novapulse_parse_errors_total",
                         {{"topic", kAccessTopic}, {"reason", "future_timestamp"}}),
            1);
  EXPECT_TRUE(firing.Has("test:requests:rate30s"));
  EXPECT_GT(firing.Value("novapulse_rule_evaluations_total"), 0);
  EXPECT_GT(firing.Value("novapulse_window_memory_bytes"), 0);
  const std::string api = HttpGet(port, "/api/v1/alerts");
  EXPECT_NE(api.find(R"("alertname":"ErrorsSeen")"), std::string::npos) << api;
  EXPECT_NE(api.find(R"("state":"firing")"), std::string::npos) << api;
  EXPECT_NE(HttpGet(port, "/api/v1/rules").find(R"("name":"test:requests:rate30s")"),
            std::string::npos);
  // The firing alert reaches a real Alertmanager (event times here are close
  // to the wall clock, so Alertmanager takes it as active).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline &&
         alertmanager.Alerts()["ErrorsSeen"] != "active") {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  EXPECT_EQ(alertmanager.Alerts()["ErrorsSeen"], "active") << service.log();
  EXPECT_GE(ParsePromText(HttpGet(port, "/metrics"))
                .Value("novapulse_alertmanager_alerts_sent_total", {{"url", alertmanager.url()}}),
            1);

  // No new data: event time moves on with the wall clock, the 500s leave the
  // 30 s range and the alert resolves.
  const PromText resolved = WaitForScrape(
      port, [](const PromText& t) { return !t.Has("ALERTS", kErrorsFiring); },
      std::chrono::seconds(90));
  EXPECT_FALSE(resolved.Has("ALERTS", kErrorsFiring)) << service.log();
  EXPECT_GT(resolved.Value("novapulse_watermark_seconds"), (t0 + 60'000) / 1000.0);

  // A line older than the watermark is late: counted, but not in the windows.
  WriteWholeFile(dir.Path("late.ndjson"), AccessLine(t0, 500));
  ASSERT_EQ(Shell(absl::StrCat("kcat -P -b ", address, " -t ", kAccessTopic, " -l ",
                               dir.Path("late.ndjson")))
                .status,
            0);
  const PromText late = WaitForScrape(port, [](const PromText& t) {
    return t.Value("novapulse_late_events_total", {{"topic", kAccessTopic}}) == 1;
  });
  EXPECT_EQ(late.Value("novapulse_late_events_total", {{"topic", kAccessTopic}}), 1)
      << service.log();
  EXPECT_FALSE(late.Has("ALERTS", kErrorsFiring));
  EXPECT_EQ(service.Terminate(std::chrono::seconds(10)), 0) << service.log();
}

}  // namespace
}  // namespace novapulse
