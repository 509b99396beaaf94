// Integration test of `novapulse run` against a real single-node Kafka broker
// (scripts/kafka-broker), with kcat as the independent producer: exact counts
// after consuming, a clean SIGTERM shutdown, and no message read twice by the
// next instance of the same consumer group (offsets committed on shutdown),
// the self metrics: consumer lag, commits, process metrics, and stale-series
// expiry (metrics.expire_after).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"
#include "tests/pipeline/kafka_broker.h"
#include "tests/pipeline/run_service.h"
#include "tests/pipeline/test_process.h"
#include "tests/sinks/prometheus_process.h"
#include "tests/sinks/prometheus_text.h"

namespace novapulse {
namespace {

using ::novapulse::testing::Labels;
using ::novapulse::testing::ParsePromText;
using ::novapulse::testing::PromText;
using ::novapulse::testing::ReadWholeFile;
using ::novapulse::testing::ScratchDir;
using ::novapulse::testing::WriteWholeFile;
using Clock = std::chrono::steady_clock;

constexpr char kAccessTopic[] = "novagift.access-log";
constexpr char kOutboxTopic[] = "novagift.outbox";

using testing::Broker;
using testing::HttpGet;
using testing::Script;
using testing::Service;
using testing::Shell;
using testing::ShellResult;
using testing::WaitForScrape;

double EventsTotal(const PromText& text) {
  double sum = 0;
  for (const auto& [key, value] : text.Samples("novapulse_events_total")) sum += value;
  return sum;
}

// Scrapes until novapulse_events_total sums to at least `expected` (or the
// timeout passes), then once more after a pause, so that records counted
// twice would show; returns the last scrape.
PromText WaitForEvents(int port, double expected, const Service& service) {
  PromText text;
  const Clock::time_point deadline = Clock::now() + std::chrono::seconds(60);
  while (Clock::now() < deadline && service.running()) {
    text = ParsePromText(HttpGet(port, "/metrics"));
    if (EventsTotal(text) >= expected) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  std::this_thread::sleep_for(std::chrono::seconds(1));
  return ParsePromText(HttpGet(port, "/metrics"));
}

std::string AccessLine(int64_t ts_ms, const char* method, const char* route, int status) {
  return absl::StrCat(R"({"ts":)", ts_ms, R"(,"method":")", method, R"(","route":")", route,
                      R"(","status":)", status, R"(,"duration_ms":12.5,"instance":"api-1"})", "\n");
}

std::string OutboxLine(int64_t ts_ms, int id) {
  return absl::StrCat(R"({"ts":)", ts_ms, R"(,"id":"evt-)", id,
                      R"(","type":"gift.created","status":"queued","attempt":1,)",
                      R"("data":{"gift_id":"g)", id,
                      R"(","mode":"single","theme":"birthday","value_usd":25}})", "\n");
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string Produce(const std::string& address, const char* topic, const std::string& file) {
  const ShellResult r = Shell(absl::StrCat("kcat -P -b ", address, " -t ", topic, " -l ", file));
  return r.status == 0 ? "" : absl::StrCat("kcat -P -t ", topic, " failed: ", r.output);
}

// The HTTP port is the kernel's pick (Service::port reads it back).
std::string WriteConfig(const ScratchDir& dir, const std::string& name, const std::string& address,
                        const char* commit_interval = "10m", const std::string& more = "") {
  std::string path = dir.Path(name);
  WriteWholeFile(path, absl::StrCat(R"(kafka:
  brokers: ")",
                                    address, R"("
  group_id: novapulse-kafka-run-test
  properties:
    client.id: novapulse-test
    auto.offset.reset: earliest
  batch_size: 100
  batch_timeout: 50ms
  commit_interval: )",
                                    commit_interval, R"(
http:
  listen: "127.0.0.1:0"
pipeline:
  threads: 2
)",
                                    more));
  return path;
}

Labels Partition(const char* topic, int partition) {
  return {{"topic", topic}, {"partition", absl::StrCat(partition)}};
}

// True when every partition of both topics (4 each) reports a lag of 0.
bool CaughtUp(const PromText& text) {
  for (const char* topic : {kAccessTopic, kOutboxTopic}) {
    for (int p = 0; p < 4; ++p) {
      if (text.Value("novapulse_kafka_consumer_lag", Partition(topic, p)) != 0) return false;
    }
  }
  return true;
}

const Labels kGet = {{"method", "GET"}, {"route", "/api/gifts/:id"}, {"status", "200"}};
const Labels kClaim = {{"method", "POST"}, {"route", "/api/gifts/:id/claim"}, {"status", "201"}};
const Labels kNotFound = {{"method", "GET"}, {"route", "/api/gifts/:id"}, {"status", "404"}};
const Labels kDelete = {{"method", "DELETE"}, {"route", "/api/gifts/:id"}, {"status", "204"}};

Labels Events(const char* topic, const char* result) {
  return {{"topic", topic}, {"result", result}};
}

TEST(KafkaRun, ConsumesExactlyAndCommitsOnShutdown) {
  const Clock::time_point test_start = Clock::now();
  ScratchDir dir;
  Broker broker(dir.Path("broker"));
  const std::string broker_error = broker.Start();
  ASSERT_EQ(broker_error, "") << "scripts/kafka-broker start failed";
  const std::string& address = broker.address();
  ASSERT_EQ(broker.CreateTopics({kAccessTopic, kOutboxTopic}, 4), "");

  // First round: 20 + 7 + 3 access-log lines, one malformed, 6 outbox lines.
  const int64_t now = NowMs();
  std::string access;
  for (int i = 0; i < 20; ++i) access += AccessLine(now, "GET", "/api/gifts/:id", 200);
  for (int i = 0; i < 7; ++i) access += AccessLine(now, "POST", "/api/gifts/:id/claim", 201);
  for (int i = 0; i < 3; ++i) access += AccessLine(now, "GET", "/api/gifts/:id", 404);
  access += "{\"ts\":\n";
  std::string outbox;
  for (int i = 0; i < 6; ++i) outbox += OutboxLine(now, i);
  WriteWholeFile(dir.Path("access1.ndjson"), access);
  WriteWholeFile(dir.Path("outbox1.ndjson"), outbox);
  ASSERT_EQ(Produce(address, kAccessTopic, dir.Path("access1.ndjson")), "");
  ASSERT_EQ(Produce(address, kOutboxTopic, dir.Path("outbox1.ndjson")), "");

  {
    Service service(WriteConfig(dir, "run1.yaml", address), dir.Path("run1.log"));
    const int port = service.port();
    ASSERT_GT(port, 0) << service.log();
    const PromText text = WaitForEvents(port, 37, service);
    EXPECT_EQ(EventsTotal(text), 37) << service.log();
    EXPECT_EQ(text.Value("novapulse_events_total", Events(kAccessTopic, "accepted")), 30);
    EXPECT_EQ(text.Value("novapulse_events_total", Events(kAccessTopic, "rejected")), 1);
    EXPECT_EQ(text.Value("novapulse_events_total", Events(kOutboxTopic, "accepted")), 6);
    EXPECT_EQ(text.Value("novapulse_parse_errors_total",
                         {{"topic", kAccessTopic}, {"reason", "malformed_json"}}),
              1);
    EXPECT_EQ(text.Value("http_requests_total", kGet), 20);
    EXPECT_EQ(text.Value("http_requests_total", kClaim), 7);
    EXPECT_EQ(text.Value("http_requests_total", kNotFound), 3);
    EXPECT_EQ(text.Value("gifts_created_total", {{"mode", "single"}, {"theme", "birthday"}}), 6);

    // Lag is refreshed at most once a second, so it may trail the counts.
    const PromText self = WaitForScrape(port, CaughtUp);
    for (const char* topic : {kAccessTopic, kOutboxTopic}) {
      for (int p = 0; p < 4; ++p) {
        EXPECT_EQ(self.Value("novapulse_kafka_consumer_lag", Partition(topic, p)), 0)
            << topic << "/" << p;
      }
    }
    EXPECT_EQ(self.Samples("novapulse_kafka_consumer_lag").size(), 8u);
    EXPECT_EQ(self.Value("novapulse_kafka_commits_total", {{"result", "failure"}}), 0);
    EXPECT_GT(self.Value("process_resident_memory_bytes"), 0);
    EXPECT_GT(self.Value("process_open_fds"), 3);
    ASSERT_NE(self.Family("process_cpu_seconds_total"), nullptr);
    EXPECT_EQ(self.Family("process_cpu_seconds_total")->type, "counter");
    EXPECT_GE(self.Value("process_cpu_seconds_total"), 0);
    EXPECT_EQ(HttpGet(port, "/readyz"), "ready\n");

    const Clock::time_point stop_start = Clock::now();
    EXPECT_EQ(service.Terminate(std::chrono::seconds(10)), 0) << service.log();
    EXPECT_LT(Clock::now() - stop_start, std::chrono::seconds(10));
    const std::string log = service.log();
    EXPECT_NE(log.find("level=info msg=\"kafka consumer closed\""), std::string::npos) << log;
  }

  // Second round, new instance in the same group: only the new lines. The
  // commit interval (10m) is far away, so only the shutdown commit saved
  // the first round's offsets.
  const int64_t later = NowMs();
  std::string access2;
  for (int i = 0; i < 12; ++i) access2 += AccessLine(later, "DELETE", "/api/gifts/:id", 204);
  std::string outbox2;
  for (int i = 100; i < 103; ++i) outbox2 += OutboxLine(later, i);
  WriteWholeFile(dir.Path("access2.ndjson"), access2);
  WriteWholeFile(dir.Path("outbox2.ndjson"), outbox2);
  ASSERT_EQ(Produce(address, kAccessTopic, dir.Path("access2.ndjson")), "");
  ASSERT_EQ(Produce(address, kOutboxTopic, dir.Path("outbox2.ndjson")), "");
  {
    // A short commit interval, so an automatic commit shows before shutdown.
    Service service(WriteConfig(dir, "run2.yaml", address, "1s"), dir.Path("run2.log"));
    const int port = service.port();
    ASSERT_GT(port, 0) << service.log();
    const PromText text = WaitForEvents(port, 15, service);
    EXPECT_EQ(EventsTotal(text), 15) << service.log();
    EXPECT_EQ(text.Value("novapulse_events_total", Events(kAccessTopic, "accepted")), 12);
    EXPECT_EQ(text.Value("novapulse_events_total", Events(kAccessTopic, "rejected")), 0);
    EXPECT_EQ(text.Value("novapulse_events_total", Events(kOutboxTopic, "accepted")), 3);
    EXPECT_EQ(text.Value("http_requests_total", kDelete), 12);
    EXPECT_FALSE(text.Has("http_requests_total", kGet));
    // Lag is refreshed once a second, independently of commits: wait for both.
    const PromText committed = WaitForScrape(port, [](const PromText& t) {
      return t.Value("novapulse_kafka_commits_total", {{"result", "success"}}) >= 1 && CaughtUp(t);
    });
    EXPECT_GE(committed.Value("novapulse_kafka_commits_total", {{"result", "success"}}), 1)
        << service.log();
    EXPECT_TRUE(CaughtUp(committed));
    EXPECT_EQ(service.Terminate(std::chrono::seconds(10)), 0) << service.log();
  }
  EXPECT_LT(Clock::now() - test_start, std::chrono::seconds(120));
}

// remote_write pushes what /metrics serves to a real Prometheus receiver:
// the series of a family, queried back, equal the scrape's.
TEST(KafkaRun, RemoteWritePushesWhatMetricsServesToPrometheus) {
  if (access(testing::kPrometheus, X_OK) != 0) GTEST_SKIP() << "prometheus not installed";
  ScratchDir dir;
  Broker broker(dir.Path("broker"));
  ASSERT_EQ(broker.Start(), "") << "scripts/kafka-broker start failed";
  ASSERT_EQ(broker.CreateTopics({kAccessTopic, kOutboxTopic}, 4), "");
  const int64_t now = NowMs();
  std::string access;
  for (int i = 0; i < 9; ++i) access += AccessLine(now, "GET", "/api/gifts/:id", 200);
  for (int i = 0; i < 4; ++i) access += AccessLine(now, "POST", "/api/gifts/:id/claim", 201);
  WriteWholeFile(dir.Path("access.ndjson"), access);
  ASSERT_EQ(Produce(broker.address(), kAccessTopic, dir.Path("access.ndjson")), "");

  const std::unique_ptr<testing::PrometheusProcess> prometheus = testing::RemoteWriteReceiver(dir);
  ASSERT_TRUE(prometheus->WaitReady(std::chrono::seconds(60)))
      << ReadWholeFile(dir.Path("prometheus.log"));

  Service service(WriteConfig(dir, "run.yaml", broker.address(), "10m",
                              absl::StrCat("remote_write:\n  url: http://127.0.0.1:",
                                           prometheus->port(), "/api/v1/write\n  interval: 1s\n")),
                  dir.Path("run.log"));
  const int port = service.port();
  ASSERT_GT(port, 0) << service.log();
  const PromText text = WaitForEvents(port, 13, service);
  ASSERT_EQ(text.Value("http_requests_total", kGet), 9) << service.log();

  // The scrape's series as Prometheus keys them (empty labels are absent).
  std::map<std::string, double> want;
  for (const auto& sample : text.Family("http_requests_total")->samples) {
    Labels labels;
    for (const auto& l : sample.labels) {
      if (!l.second.empty()) labels.push_back(l);
    }
    want[testing::SeriesKey(sample.name, labels)] = sample.value;
  }
  EXPECT_EQ(prometheus->SeriesOnceEqual("http_requests_total", want, std::chrono::seconds(60)),
            want)
      << service.log();
  EXPECT_EQ(want.size(), 2u);
  const PromText self = WaitForScrape(port, [](const PromText& t) {
    return t.Value("novapulse_remote_write_samples_total", {{"result", "sent"}}) > 0;
  });
  EXPECT_GT(self.Value("novapulse_remote_write_samples_total", {{"result", "sent"}}), 0);
  EXPECT_EQ(self.Value("novapulse_remote_write_samples_total", {{"result", "dropped"}}), 0);
  EXPECT_EQ(service.Terminate(std::chrono::seconds(15)), 0) << service.log();
}

// SIGHUP reloads the config: a broken file is refused while the service
// goes on; a good one (here: rules added) restarts the service in the
// process through its checkpoint, so counts go on exactly.
TEST(KafkaRun, SighupReloadsACheckedConfigAndCountsGoOnExactly) {
  ScratchDir dir;
  Broker broker(dir.Path("broker"));
  ASSERT_EQ(broker.Start(), "") << "scripts/kafka-broker start failed";
  const std::string& address = broker.address();
  ASSERT_EQ(broker.CreateTopics({kAccessTopic, kOutboxTopic}, 4), "");
  const int64_t now = NowMs();
  std::string access;
  for (int i = 0; i < 40; ++i) access += AccessLine(now, "GET", "/api/gifts/:id", 200);
  WriteWholeFile(dir.Path("access1.ndjson"), access);
  ASSERT_EQ(Produce(address, kAccessTopic, dir.Path("access1.ndjson")), "");

  const std::string checkpoint =
      absl::StrCat("checkpoint:\n  dir: ", dir.Path("ckpt"), "\n  interval: 10m\n");
  const std::string config = WriteConfig(dir, "run.yaml", address, "10m", checkpoint);
  Service service(config, dir.Path("run.log"));
  const int port = service.port();
  ASSERT_GT(port, 0) << service.log();
  EXPECT_EQ(EventsTotal(WaitForEvents(port, 40, service)), 40) << service.log();

  // A broken file: logged, counted, and the service goes on as it was.
  WriteWholeFile(config, "kafka: [\n");
  service.Signal(SIGHUP);
  ASSERT_TRUE(service.WaitForLog("reload failed: the running config stays")) << service.log();
  EXPECT_TRUE(service.running());
  const PromText refused = ParsePromText(HttpGet(port, "/metrics"));
  EXPECT_EQ(EventsTotal(refused), 40);
  EXPECT_EQ(refused.Value("novapulse_config_reloads_total", {{"result", "failure"}}), 1);
  EXPECT_EQ(refused.Value("novapulse_config_last_reload_successful"), 0);
  EXPECT_EQ(HttpGet(port, "/api/v1/rules").find("job:http_requests:count"), std::string::npos);

  // Rules added: the service restarts with them and the checkpoint.
  WriteWholeFile(dir.Path("rules.yml"), R"(groups:
  - name: reload
    rules:
      - record: job:http_requests:count
        expr: sum(http_requests_total)
)");
  WriteConfig(dir, "run.yaml", address, "10m",
              absl::StrCat(checkpoint, "rules:\n  files: [", dir.Path("rules.yml"), "]\n"));
  service.Signal(SIGHUP);
  ASSERT_TRUE(service.WaitForLog("msg=\"config reloaded\"")) << service.log();
  const int reloaded = service.LastPort();
  ASSERT_GT(reloaded, 0) << service.log();
  const std::string rules = HttpGet(reloaded, "/api/v1/rules");
  EXPECT_NE(rules.find("job:http_requests:count"), std::string::npos) << rules;
  EXPECT_NE(service.log().find("state restored from the checkpoint"), std::string::npos)
      << service.log();

  std::string access2;
  for (int i = 0; i < 25; ++i) access2 += AccessLine(NowMs(), "DELETE", "/api/gifts/:id", 204);
  WriteWholeFile(dir.Path("access2.ndjson"), access2);
  ASSERT_EQ(Produce(address, kAccessTopic, dir.Path("access2.ndjson")), "");
  const PromText text = WaitForEvents(reloaded, 65, service);
  EXPECT_EQ(EventsTotal(text), 65) << service.log();
  EXPECT_EQ(text.Value("http_requests_total", kGet), 40);
  EXPECT_EQ(text.Value("http_requests_total", kDelete), 25);
  EXPECT_EQ(text.Value("novapulse_config_reloads_total", {{"result", "success"}}), 1);
  EXPECT_EQ(text.Value("novapulse_config_reloads_total", {{"result", "failure"}}), 1);
  EXPECT_EQ(text.Value("novapulse_config_last_reload_successful"), 1);
  EXPECT_EQ(service.Terminate(std::chrono::seconds(20)), 0) << service.log();
}

// Rejected messages go to the dead-letter file in consumption order, with
// their topic, partition and offset; an oversize one with its length only.
// Rejected messages become dead letters, to a file or to a Kafka topic: the
// same JSON lines either way.
void CheckRejectedMessagesAreDeadLetters(bool to_topic) {
  ScratchDir dir;
  Broker broker(dir.Path("broker"));
  ASSERT_EQ(broker.Start(), "") << "scripts/kafka-broker start failed";
  const std::string& address = broker.address();
  constexpr char kDeadLetterTopic[] = "novagift.dead-letters";
  ASSERT_EQ(broker.CreateTopics({kAccessTopic, kOutboxTopic, kDeadLetterTopic}, 1), "");
  const int64_t now = NowMs();
  std::string access;
  for (int i = 0; i < 10; ++i) {
    if (i == 3)
      access += R"({"ts":1,"method":"GET","route":"/r","status":"200","duration_ms":1})"
                "\n";
    else if (i == 5)
      access += "{\"ts\":\"" + std::string(1500, 'x') + "\"}\n";  // oversize
    else if (i == 8)
      access += "\x01\xff not json\n";
    else
      access += AccessLine(now, "GET", "/api/gifts/:id", 200);
  }
  std::string outbox = OutboxLine(now, 1) +
                       R"({"ts":1,"id":"e","type":"gift.exploded","status":"queued"})"
                       "\n";
  WriteWholeFile(dir.Path("access.ndjson"), access);
  WriteWholeFile(dir.Path("outbox.ndjson"), outbox);
  ASSERT_EQ(Produce(address, kAccessTopic, dir.Path("access.ndjson")), "");
  ASSERT_EQ(Produce(address, kOutboxTopic, dir.Path("outbox.ndjson")), "");

  const std::string dead_letters = dir.Path("dead-letters.ndjson");
  std::string config =
      WriteConfig(dir, "run.yaml", address, "10m",
                  to_topic ? absl::StrCat("dead_letter:\n  topic: ", kDeadLetterTopic, "\n")
                           : absl::StrCat("dead_letter:\n  path: ", dead_letters, "\n"));
  // Messages above 1000 bytes are oversize.
  std::string text = ReadWholeFile(config);
  text.replace(text.find("  batch_size:"), 0, "  max_message_bytes: 1000\n");
  WriteWholeFile(config, text);
  Service service(config, dir.Path("run.log"));
  const int port = service.port();
  ASSERT_GT(port, 0) << service.log();
  EXPECT_EQ(EventsTotal(WaitForEvents(port, 12, service)), 12) << service.log();
  // Written: in the file, or acknowledged by the broker.
  const PromText metrics = WaitForScrape(port, [](const PromText& t) {
    return t.Value("novapulse_dead_letters_total", {{"result", "written"}}) >= 4;
  });
  EXPECT_EQ(metrics.Value("novapulse_dead_letters_total", {{"result", "written"}}), 4)
      << service.log();
  EXPECT_EQ(metrics.Value("novapulse_dead_letters_total", {{"result", "dropped"}}), 0);
  EXPECT_EQ(service.Terminate(std::chrono::seconds(10)), 0) << service.log();

  // Each topic's dead letters in offset order; the topics may interleave.
  std::vector<std::string> access_letters, outbox_letters;
  std::string written = ReadWholeFile(dead_letters);
  if (to_topic) {
    const ShellResult consumed =
        Shell(absl::StrCat("kcat -C -b ", address, " -t ", kDeadLetterTopic, " -o beginning -e -q"),
              /*merge_stderr=*/false);
    ASSERT_EQ(consumed.status, 0) << consumed.output;
    written = consumed.output;
  }
  const std::vector<std::string> lines = absl::StrSplit(written, '\n');
  for (const std::string& line : lines) {
    if (line.empty()) continue;
    (line.find(kOutboxTopic) != std::string::npos ? outbox_letters : access_letters)
        .push_back(line);
  }
  ASSERT_EQ(access_letters.size(), 3u) << written;
  EXPECT_EQ(access_letters[0],
            R"({"reason":"wrong_type","topic":"novagift.access-log","partition":0,"offset":3,)"
            R"("length":67,"bytes":"{\"ts\":1,\"method\":\"GET\",\"route\":\"/r\",)"
            R"(\"status\":\"200\",\"duration_ms\":1}"})");
  EXPECT_EQ(access_letters[1],
            R"({"reason":"oversize","topic":"novagift.access-log","partition":0,"offset":5,)"
            R"("length":1509,"truncated":true,"bytes":""})");
  EXPECT_EQ(access_letters[2],
            R"({"reason":"malformed_json","topic":"novagift.access-log","partition":0,)"
            R"("offset":8,"length":11,"bytes_base64":"Af8gbm90IGpzb24="})");
  ASSERT_EQ(outbox_letters.size(), 1u);
  EXPECT_EQ(outbox_letters[0],
            R"({"reason":"unknown_type","topic":"novagift.outbox","partition":0,"offset":1,)"
            R"("length":58,"bytes":"{\"ts\":1,\"id\":\"e\",\"type\":\"gift.exploded\",)"
            R"(\"status\":\"queued\"}"})");
}

TEST(KafkaRun, RejectedMessagesAreDeadLettersWithPartitionAndOffset) {
  CheckRejectedMessagesAreDeadLetters(/*to_topic=*/false);
}

TEST(KafkaRun, DeadLettersCanGoToAKafkaTopic) {
  CheckRejectedMessagesAreDeadLetters(/*to_topic=*/true);
}

// metrics.expire_after: the series of routes no request came for in 2
// minutes of event time leave /metrics once newer events move the watermark
// past them (with the self metrics counting them), and a route seen again
// starts a new series from zero.
TEST(KafkaRun, IdleRoutesExpireFromMetrics) {
  ScratchDir dir;
  Broker broker(dir.Path("broker"));
  ASSERT_EQ(broker.Start(), "") << "scripts/kafka-broker start failed";
  const std::string& address = broker.address();
  ASSERT_EQ(broker.CreateTopics({kAccessTopic, kOutboxTopic}, 4), "");

  // Event times well before the wall clock, so that T0 + 10 min is not in
  // the future (pipeline.max_future) either.
  const int64_t t0 = NowMs() - 30 * 60 * 1000;
  const int64_t t10 = t0 + 10 * 60 * 1000;
  const Labels old_a = {{"method", "GET"}, {"route", "/old/a"}, {"status", "200"}};
  const Labels old_b = {{"method", "GET"}, {"route", "/old/b"}, {"status", "200"}};
  const Labels fresh = {{"method", "GET"}, {"route", "/new"}, {"status", "200"}};
  auto duration_count = [](const PromText& t, const char* route) {
    return t.Value("http_request_duration_seconds_count", {{"method", "GET"}, {"route", route}});
  };
  const Labels requests_series = {{"metric", "http_requests_total"}};
  const Labels durations_series = {{"metric", "http_request_duration_seconds"}};

  std::string old;
  for (int i = 0; i < 5; ++i) old += AccessLine(t0, "GET", "/old/a", 200);
  for (int i = 0; i < 3; ++i) old += AccessLine(t0, "GET", "/old/b", 200);
  WriteWholeFile(dir.Path("old.ndjson"), old);
  ASSERT_EQ(Produce(address, kAccessTopic, dir.Path("old.ndjson")), "");

  // Where Prometheus is installed, remote write pushes to it: an expired
  // series gets a stale marker and leaves Prometheus's answers at once.
  std::unique_ptr<testing::PrometheusProcess> prometheus;
  std::string remote_write;
  if (access(testing::kPrometheus, X_OK) == 0) {
    prometheus = testing::RemoteWriteReceiver(dir);
    ASSERT_TRUE(prometheus->WaitReady(std::chrono::seconds(60)))
        << ReadWholeFile(dir.Path("prometheus.log"));
    remote_write = absl::StrCat("remote_write:\n  url: http://127.0.0.1:", prometheus->port(),
                                "/api/v1/write\n  interval: 1s\n");
  }
  // Rules that read the expiring series: the windows drop them too.
  auto old_route_alert = [](const PromText& t) {
    for (const auto& [key, v] : t.Samples("ALERTS")) {
      if (key.find("alertname=\"OldRouteSeen\"") != std::string::npos) return true;
    }
    return false;
  };
  WriteWholeFile(dir.Path("rules.yml"),
                 absl::StrCat(testing::kRouteCountRules,
                              "      - alert: OldRouteSeen\n"
                              "        expr: http_requests_total{route=\"/old/a\"} > 0\n"));
  Service service(
      WriteConfig(dir, "run.yaml", address, "10m",
                  absl::StrCat("  allowed_lateness: 1s\nmetrics:\n  expire_after: 2m\n",
                               remote_write, "rules:\n  files: [", dir.Path("rules.yml"), "]\n")),
      dir.Path("run.log"));
  const int port = service.port();
  ASSERT_GT(port, 0) << service.log();
  // The rules' first evaluation with both routes counted.
  const PromText before = WaitForScrape(
      port,
      [&](const PromText& t) {
        return EventsTotal(t) == 8 && t.Value("routes:http_requests:count") == 2 &&
               old_route_alert(t);
      },
      std::chrono::seconds(60));
  ASSERT_EQ(EventsTotal(before), 8) << service.log();
  EXPECT_EQ(before.Value("routes:http_requests:count"), 2) << service.log();
  EXPECT_EQ(before.Value("http_requests_total", old_a), 5);
  EXPECT_EQ(before.Value("http_requests_total", old_b), 3);
  EXPECT_EQ(before.Value("novapulse_series", requests_series), 2);
  // Nothing is 2 minutes older than the watermark yet.
  EXPECT_EQ(before.Value("novapulse_series_expired_total"), 0);
  ASSERT_NE(before.Family("novapulse_series_expired_total"), nullptr);
  EXPECT_EQ(before.Family("novapulse_series_expired_total")->type, "counter");
  ASSERT_NE(before.Family("novapulse_series_expiry_sweeps_total"), nullptr);
  EXPECT_EQ(before.Family("novapulse_series_expiry_sweeps_total")->type, "counter");
  ASSERT_NE(before.Family("novapulse_series_expiry_sweep_duration_seconds"), nullptr);
  const std::map<std::string, double> both_old = {
      {testing::SeriesKey("http_requests_total", old_a), 5},
      {testing::SeriesKey("http_requests_total", old_b), 3}};
  if (prometheus) {
    EXPECT_EQ(
        prometheus->SeriesOnceEqual("http_requests_total", both_old, std::chrono::seconds(30)),
        both_old)
        << service.log();
  }

  // 10 minutes of event time later: the watermark passes T0 + 2 min.
  std::string later;
  for (int i = 0; i < 4; ++i) later += AccessLine(t10, "GET", "/new", 200);
  WriteWholeFile(dir.Path("new.ndjson"), later);
  ASSERT_EQ(Produce(address, kAccessTopic, dir.Path("new.ndjson")), "");
  // A sweep runs every 12 s (a tenth of 2 min); the counter moves right after
  // the series go.
  const PromText expired = WaitForScrape(
      port,
      [&](const PromText& t) {
        return t.Has("http_requests_total", fresh) && !t.Has("http_requests_total", old_a) &&
               !t.Has("http_requests_total", old_b) &&
               t.Value("novapulse_series_expired_total") >= 4 &&
               t.Value("routes:http_requests:count") == 1 && !old_route_alert(t);
      },
      std::chrono::seconds(90));
  EXPECT_EQ(EventsTotal(expired), 12) << service.log();
  EXPECT_EQ(expired.Value("http_requests_total", fresh), 4) << service.log();
  EXPECT_FALSE(expired.Has("http_requests_total", old_a)) << service.log();
  EXPECT_FALSE(expired.Has("http_requests_total", old_b));
  EXPECT_EQ(duration_count(expired, "/new"), 4);
  EXPECT_FALSE(
      expired.Has("http_request_duration_seconds_count", {{"method", "GET"}, {"route", "/old/a"}}));
  EXPECT_FALSE(
      expired.Has("http_request_duration_seconds_count", {{"method", "GET"}, {"route", "/old/b"}}));
  EXPECT_EQ(expired.Histograms("http_request_duration_seconds").size(), 1u);
  // Both routes' request and duration series: exactly those four.
  EXPECT_EQ(expired.Value("novapulse_series_expired_total"), 4);
  EXPECT_EQ(expired.Value("novapulse_series", requests_series), 1);
  EXPECT_EQ(expired.Value("novapulse_series", durations_series), 1);
  EXPECT_GE(expired.Value("novapulse_series_expiry_sweeps_total"), 1);
  EXPECT_GE(expired.Value("novapulse_series_expiry_sweep_duration_seconds"), 0);
  EXPECT_TRUE(expired.errors.empty()) << (expired.errors.empty() ? "" : expired.errors.front());
  // The windows the rules read: the expired routes' streams ended with a
  // staleness marker, so count() and the alert see only /new.
  EXPECT_EQ(expired.Value("routes:http_requests:count"), 1) << service.log();
  EXPECT_FALSE(old_route_alert(expired)) << service.log();
  const std::map<std::string, double> only_fresh = {
      {testing::SeriesKey("http_requests_total", fresh), 4}};
  if (prometheus) {
    EXPECT_EQ(
        prometheus->SeriesOnceEqual("http_requests_total", only_fresh, std::chrono::seconds(30)),
        only_fresh)
        << service.log();
  }

  // /old/a again: a new series, counting from 0.
  WriteWholeFile(dir.Path("again.ndjson"), AccessLine(t10, "GET", "/old/a", 200));
  ASSERT_EQ(Produce(address, kAccessTopic, dir.Path("again.ndjson")), "");
  const PromText again = WaitForEvents(port, 13, service);
  EXPECT_EQ(EventsTotal(again), 13) << service.log();
  EXPECT_EQ(again.Value("http_requests_total", old_a), 1) << service.log();
  EXPECT_EQ(duration_count(again, "/old/a"), 1);
  EXPECT_FALSE(again.Has("http_requests_total", old_b));
  EXPECT_EQ(again.Value("http_requests_total", fresh), 4);
  EXPECT_EQ(duration_count(again, "/new"), 4);
  EXPECT_EQ(again.Value("novapulse_series", requests_series), 2);
  EXPECT_EQ(again.Value("novapulse_series", durations_series), 2);
  EXPECT_EQ(again.Value("novapulse_series_expired_total"), 4);
  EXPECT_EQ(service.Terminate(std::chrono::seconds(10)), 0) << service.log();
  // A stopped novapulse ends the series it pushed, as Prometheus ends a
  // target's that goes away.
  if (prometheus) {
    EXPECT_EQ(prometheus->Series("http_requests_total"), (std::map<std::string, double>{}))
        << service.log();
  }
}

// The Caddy example's sample, stamped from `now_ms` on (a millisecond
// apart, so the whole sample is well inside the allowed lateness): lines
// [from, to).
std::string CaddyLines(int64_t now_ms, size_t from, size_t to) {
  const std::string sample = ReadWholeFile(std::string(NOVAPULSE_SOURCE_DIR) +
                                           "/configs/metrics/examples/caddy-access.log");
  std::string out;
  size_t i = 0;
  for (absl::string_view line : absl::StrSplit(sample, '\n', absl::SkipEmpty())) {
    if (i >= from && i < to) {
      const size_t at = line.find("\"ts\":");
      const size_t end = line.find(',', at);
      const int64_t ms = now_ms + static_cast<int64_t>(i);
      out += absl::StrCat(line.substr(0, at + 5), ms / 1000, ".",
                          absl::Dec(ms % 1000, absl::kZeroPad3), line.substr(end), "\n");
    }
    ++i;
  }
  return out;
}

// The caddy_* samples of `text`, but for gauges (the concurrency gauge is
// an average over the last seconds of wall-clock-stamped events).
std::map<std::string, double> CaddyCounts(const PromText& text) {
  std::map<std::string, double> out;
  for (const auto& family : text.families) {
    if (!family.name.starts_with("caddy_") || family.type == "gauge") continue;
    for (const auto& [key, value] : text.Samples(family.name)) out[key] = value;
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      for (const auto& [key, value] : text.Samples(family.name + suffix)) out[key] = value;
    }
  }
  return out;
}

// `run` with a user's metric spec (metrics.spec): the topic read is its
// input's, renamed by kafka.topics (the self metrics keep naming the spec's
// topic, as they keep NovaGift's under a rename), every family counts what `replay
// --metrics` counts from the same lines, and a restart restores the spec's
// metrics from the checkpoint and goes on exactly.
TEST(KafkaRun, RunsAUserMetricSpecAndRestoresItFromACheckpoint) {
  constexpr char kTopic[] = "web.caddy";
  ScratchDir dir;
  Broker broker(dir.Path("broker"));
  ASSERT_EQ(broker.Start(), "") << "scripts/kafka-broker start failed";
  const std::string& address = broker.address();
  ASSERT_EQ(broker.CreateTopics({kTopic}, 2), "");
  const std::string spec =
      std::string(NOVAPULSE_SOURCE_DIR) + "/configs/metrics/examples/caddy.yaml";
  const int64_t now = NowMs();
  WriteWholeFile(dir.Path("a.log"), CaddyLines(now, 0, 200));
  WriteWholeFile(dir.Path("b.log"), CaddyLines(now, 200, 320));
  WriteWholeFile(dir.Path("ab.log"), CaddyLines(now, 0, 320));
  // What replay counts from the same lines.
  auto replayed = [&](const std::string& file) {
    const std::string out = dir.Path(file + ".prom");
    const testing::ProcessResult r = testing::RunNovapulse(
        {"replay", "--metrics", spec, "--topic", "caddy-access", dir.Path(file), "--output", out});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return CaddyCounts(ParsePromText(ReadWholeFile(out)));
  };
  const std::map<std::string, double> want_a = replayed("a.log");
  const std::map<std::string, double> want_ab = replayed("ab.log");
  ASSERT_GT(want_a.size(), 20u);
  ASSERT_NE(want_a, want_ab);

  const std::string config =
      WriteConfig(dir, "run.yaml", address, "10m",
                  absl::StrCat("metrics:\n  spec: ", spec,
                               "\ncheckpoint:\n  dir: ", dir.Path("ckpt"), "\n  interval: 10m\n"));
  // kafka.topics renames the spec's input's topic.
  std::string yaml = ReadWholeFile(config);
  yaml.insert(yaml.find("  group_id:"), absl::StrCat("  topics: {caddy-access: ", kTopic, "}\n"));
  WriteWholeFile(config, yaml);

  ASSERT_EQ(Produce(address, kTopic, dir.Path("a.log")), "");
  {
    Service service(config, dir.Path("run1.log"));
    const int port = service.port();
    ASSERT_GT(port, 0) << service.log();
    const PromText text = WaitForEvents(port, 200, service);
    EXPECT_EQ(text.Value("novapulse_events_total", Events("caddy-access", "accepted")), 200)
        << service.log();
    EXPECT_EQ(CaddyCounts(text), want_a);
    EXPECT_EQ(service.Terminate(std::chrono::seconds(10)), 0) << service.log();
  }
  ASSERT_EQ(Produce(address, kTopic, dir.Path("b.log")), "");
  {
    Service service(config, dir.Path("run2.log"));
    const int port = service.port();
    ASSERT_GT(port, 0) << service.log();
    const PromText text = WaitForEvents(port, 320, service);
    EXPECT_NE(service.log().find("state restored from the checkpoint"), std::string::npos)
        << service.log();
    EXPECT_EQ(text.Value("novapulse_events_total", Events("caddy-access", "accepted")), 320)
        << service.log();
    EXPECT_EQ(CaddyCounts(text), want_ab);
    EXPECT_EQ(service.Terminate(std::chrono::seconds(10)), 0) << service.log();
  }
}

// A reload that changes the spec, without checkpoint.dir: the state is
// handed on in the process, the families whose definition did not change
// keep their values, the changed one starts from 0, and both go on exactly.
TEST(KafkaRun, AReloadedSpecKeepsTheFamiliesItDidNotChange) {
  constexpr char kTopic[] = "caddy-access";
  ScratchDir dir;
  Broker broker(dir.Path("broker"));
  ASSERT_EQ(broker.Start(), "") << "scripts/kafka-broker start failed";
  const std::string& address = broker.address();
  ASSERT_EQ(broker.CreateTopics({kTopic}, 1), "");
  const std::string shipped =
      ReadWholeFile(std::string(NOVAPULSE_SOURCE_DIR) + "/configs/metrics/examples/caddy.yaml");
  const std::string buckets = "buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]";
  ASSERT_NE(shipped.find(buckets), std::string::npos);
  std::string changed = shipped;
  changed.replace(changed.find(buckets), buckets.size(), "buckets: [0.01, 0.1, 1]");
  const std::string spec = dir.Path("caddy.yaml");
  WriteWholeFile(spec, shipped);
  WriteWholeFile(dir.Path("changed.yaml"), changed);
  const int64_t now = NowMs();
  WriteWholeFile(dir.Path("a.log"), CaddyLines(now, 0, 200));
  WriteWholeFile(dir.Path("b.log"), CaddyLines(now, 200, 320));
  WriteWholeFile(dir.Path("ab.log"), CaddyLines(now, 0, 320));
  auto replayed = [&](const std::string& with, const std::string& file) {
    const std::string out = dir.Path(file + ".prom");
    const testing::ProcessResult r = testing::RunNovapulse(
        {"replay", "--metrics", dir.Path(with), dir.Path(file), "--output", out});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return ParsePromText(ReadWholeFile(out));
  };
  const PromText all = replayed("caddy.yaml", "ab.log");
  const PromText rest = replayed("changed.yaml", "b.log");
  constexpr char kRequests[] = "caddy_http_requests_total";
  constexpr char kDurations[] = "caddy_http_request_duration_seconds_bucket";

  const std::string config =
      WriteConfig(dir, "run.yaml", address, "10m", absl::StrCat("metrics:\n  spec: ", spec, "\n"));
  ASSERT_EQ(Produce(address, kTopic, dir.Path("a.log")), "");
  Service service(config, dir.Path("run.log"));
  const int port = service.port();
  ASSERT_GT(port, 0) << service.log();
  EXPECT_EQ(EventsTotal(WaitForEvents(port, 200, service)), 200) << service.log();

  WriteWholeFile(spec, changed);
  service.Signal(SIGHUP);
  ASSERT_TRUE(service.WaitForLog("msg=\"config reloaded\"")) << service.log();
  EXPECT_NE(service.log().find("msg=\"state carried over the reload\" part=metrics note=\"the "
                               "metric set changed; families that changed or are new start from "
                               "0: caddy_http_request_duration_seconds\""),
            std::string::npos)
      << service.log();
  const int reloaded = service.LastPort();
  ASSERT_GT(reloaded, 0) << service.log();
  ASSERT_EQ(Produce(address, kTopic, dir.Path("b.log")), "");
  const PromText text = WaitForEvents(reloaded, 320, service);
  EXPECT_EQ(EventsTotal(text), 320) << service.log();
  // Kept: as if never reloaded. Changed: only what came after, in the new buckets.
  EXPECT_EQ(text.Samples(kRequests), all.Samples(kRequests));
  EXPECT_FALSE(text.Samples(kRequests).empty());
  EXPECT_EQ(text.Samples(kDurations), rest.Samples(kDurations));
  EXPECT_NE(text.Samples(kDurations), all.Samples(kDurations));
  EXPECT_EQ(service.Terminate(std::chrono::seconds(20)), 0) << service.log();
}

}  // namespace
}  // namespace novapulse
