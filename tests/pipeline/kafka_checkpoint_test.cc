// Checkpoints against a real broker: `novapulse run` killed with SIGKILL at
// random moments, again and again while a generated stream is produced, then
// run to the end. Its final counters must equal the lines produced exactly
// (nothing lost, nothing counted twice), and its metrics and alert states must
// equal those of an instance that consumed the same topics without a single
// interruption: an alert that was pending or firing across a kill keeps its
// active-since time instead of starting over.
#include <chrono>
#include <cstdint>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/pipeline/kafka_broker.h"
#include "tests/pipeline/run_service.h"
#include "tests/pipeline/test_process.h"
#include "tests/sinks/prometheus_text.h"

namespace novapulse {
namespace {

using testing::Broker;
using testing::HttpGet;
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
constexpr int kKills = 20;

// 40 minutes of access-log traffic at 200 requests/s: a latency spike from
// minute 5 to 17 (its alert fires and resolves) and an error spike from
// minute 18 to the end (its alert is firing when the stream ends).
std::string GenFlags() {
  return "--duration 40m --rate 200 --gifts-per-minute 0 --wallet-per-minute 0 --seed 7 "
         "--start 2026-11-26T12:00:00Z --incident latency_spike@5m+12m "
         "--incident error_spike@18m+22m";
}

// The HTTP port is the kernel's pick (Service::port reads it back).
std::string Config(const std::string& address, const std::string& group,
                   const std::string& checkpoint_dir, const std::string& instance = "") {
  std::string config = absl::StrCat(R"(kafka:
  brokers: ")",
                                    address, R"("
  group_id: )",
                                    group, R"(
  properties:
    auto.offset.reset: earliest
    # Static membership: a restarted instance takes its partitions back at
    # once instead of waiting for the killed one's session to time out.
    group.instance.id: )",
                                    instance.empty() ? group + "-0" : instance, R"(
    session.timeout.ms: "10000"
  batch_size: 500
  batch_timeout: 50ms
  commit_interval: 1h
http:
  listen: "127.0.0.1:0"
pipeline:
  threads: 2
  allowed_lateness: 5m
rules:
  files: [")",
                                    NOVAPULSE_SOURCE_DIR, R"(/configs/alerts/novagift.yml"]
alertmanager:
  urls: []
)");
  if (!checkpoint_dir.empty()) {
    absl::StrAppend(&config, "checkpoint:\n  dir: ", checkpoint_dir, "\n  interval: 300ms\n");
  }
  return config;
}

// The access-log lines `novapulse gen` makes with these flags, counted from
// its file (written to `dir`); -1 when it failed.
double GeneratedAccessLines(const std::string& dir, const std::string& flags) {
  const ShellResult files = Shell(absl::StrCat(NOVAPULSE_BINARY, " gen --out ", dir, " ", flags));
  EXPECT_EQ(files.status, 0) << files.output;
  if (files.status != 0) return -1;
  double lines = 0;
  std::ifstream in(dir + "/access-log.ndjson");
  for (std::string line; std::getline(in, line);) lines += line.empty() ? 0 : 1;
  return lines;
}

double Accepted(const PromText& t) {
  return t.Value("novapulse_events_total", {{"topic", kAccessTopic}, {"result", "accepted"}});
}

// alertname/state -> activeAt of every alert /api/v1/alerts lists.
std::map<std::string, std::string> Alerts(const std::string& json) {
  std::map<std::string, std::string> out;
  static const std::regex kAlert(
      R"re("alertname":"([^"]+)".*?"state":"([a-z]+)","activeAt":"([^"]+)")re");
  for (std::sregex_iterator it(json.begin(), json.end(), kAlert), end; it != end; ++it) {
    out[absl::StrCat((*it)[1].str(), "/", (*it)[2].str())] = (*it)[3].str();
  }
  return out;
}

struct FinalState {
  PromText metrics;
  std::string alerts_json;
};

// Runs an instance until it has counted `expected` records and event time
// has settled, then stops it with SIGTERM.
FinalState RunToEnd(const std::string& config, const std::string& log, double expected) {
  Service service(config, log);
  const int port = service.port();
  FinalState out;
  out.metrics = WaitForScrape(
      port, [&](const PromText& t) { return Accepted(t) >= expected; }, std::chrono::seconds(120));
  EXPECT_EQ(Accepted(out.metrics), expected) << service.log();
  // The last batches' slots close; both instances wait alike.
  std::this_thread::sleep_for(std::chrono::seconds(2));
  out.metrics = testing::ParsePromText(HttpGet(port, "/metrics"));
  out.alerts_json = HttpGet(port, "/api/v1/alerts");
  // Not the 10 s of the lifecycle tests: once, right after the kills, the
  // consumer's close waited on the group (static membership had just
  // changed hands twenty times).
  EXPECT_EQ(service.Terminate(std::chrono::seconds(30)), 0) << service.log();
  return out;
}

TEST(KafkaCheckpoint, KilledRepeatedlyEndsExactlyAsAnUninterruptedRun) {
  ScratchDir dir;
  Broker broker(dir.Path("broker"));
  ASSERT_EQ(broker.Start(), "") << "scripts/kafka-broker start failed";
  const std::string& address = broker.address();
  ASSERT_EQ(broker.CreateTopics({kAccessTopic, kOutboxTopic}, 3), "");
  // The lines the stream holds, counted from the same generator's file.
  const double expected = GeneratedAccessLines(dir.Path("gen"), GenFlags());
  ASSERT_GT(expected, 400'000);

  // Produced at 60x real time: the stream takes about 40 s to arrive, and
  // the kills fall while it does.
  ShellResult produced;
  std::thread producer([&] {
    produced =
        Shell(absl::StrCat(NOVAPULSE_BINARY, " gen --kafka ", address, " --speed 60 ", GenFlags()));
  });

  const std::string killed_config = dir.Path("killed.yaml");
  WriteWholeFile(killed_config, Config(address, "ckpt-killed", dir.Path("checkpoints")));
  const unsigned seed = std::random_device{}();
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> uptime_ms(300, 1800);
  int mid_stream = 0;
  int restored = 0;
  double last_seen = 0;
  std::string unscraped_log;  // of the first run that did not answer a scrape
  std::string last_log;
  for (int i = 0; i < kKills; ++i) {
    const std::string log = dir.Path(absl::StrCat("killed-", i, ".log"));
    {
      Service service(killed_config, log);
      std::this_thread::sleep_for(std::chrono::milliseconds(uptime_ms(rng)));
      const int port = service.port(std::chrono::milliseconds(0));  // 0: not serving yet
      const double seen = Accepted(testing::ParsePromText(HttpGet(port, "/metrics")));
      if (seen == seen && seen > last_seen && seen < expected) ++mid_stream;
      if (seen == seen) last_seen = std::max(last_seen, seen);
      service.Kill();
      if (service.log().find("state restored from the checkpoint") != std::string::npos) {
        ++restored;
      }
      last_log = absl::StrCat("the last run's log:\n", service.log());
      if (seen != seen && unscraped_log.empty()) {
        unscraped_log =
            absl::StrCat("run ", i, " did not answer a scrape; its log:\n", service.log());
      }
    }
  }
  producer.join();
  ASSERT_EQ(produced.status, 0) << produced.output;
  RecordProperty("kill_seed", static_cast<int>(seed));
  std::printf(
      "[ KILLS    ] %d kills (seed %u): %d while the count was still growing, %d runs "
      "restored from a checkpoint\n",
      kKills, seed, mid_stream, restored);
  // Most runs had something to count and a checkpoint to start from.
  EXPECT_GE(mid_stream, kKills / 2) << unscraped_log << last_log;
  EXPECT_GE(restored, kKills / 2) << unscraped_log << last_log;

  const FinalState killed = RunToEnd(killed_config, dir.Path("killed-final.log"), expected);
  const std::string reference_config = dir.Path("reference.yaml");
  WriteWholeFile(reference_config, Config(address, "ckpt-reference", ""));
  const FinalState reference = RunToEnd(reference_config, dir.Path("reference.log"), expected);

  // Exact counts: every line once.
  EXPECT_EQ(Accepted(killed.metrics), expected);
  double requests = 0;
  for (const auto& [key, v] : killed.metrics.Samples("http_requests_total")) requests += v;
  EXPECT_EQ(requests, expected);
  EXPECT_EQ(killed.metrics.Value("novapulse_events_total",
                                 {{"topic", kAccessTopic}, {"result", "rejected"}}),
            0);
  // The same metrics as the uninterrupted instance, series by series.
  for (const char* family : {"http_requests_total", "http_request_duration_seconds_bucket",
                             "http_request_duration_seconds_sum", "http_errors_total"}) {
    EXPECT_EQ(killed.metrics.Samples(family), reference.metrics.Samples(family)) << family;
    EXPECT_FALSE(reference.metrics.Samples(family).empty()) << family;
  }
  // The same alerts, active since the same instants.
  const std::map<std::string, std::string> alerts = Alerts(killed.alerts_json);
  EXPECT_EQ(alerts, Alerts(reference.alerts_json)) << killed.alerts_json << "\n"
                                                   << reference.alerts_json;
  EXPECT_TRUE(alerts.contains("HighErrorRate/firing")) << killed.alerts_json;
}

// Two checkpointing instances in one group while partitions move: B joins
// (A gives some partitions up: drain, checkpoint, commit), B stops and A
// takes them back from B's commit, B starts again from its checkpoint and
// takes some back (each partition from the checkpoint or the commit, whichever
// is further). Their counts always sum to the lines produced, exactly.
TEST(KafkaCheckpoint, PartitionsMovingBetweenInstancesAreCountedOnce) {
  ScratchDir dir;
  Broker broker(dir.Path("broker"));
  ASSERT_EQ(broker.Start(), "") << "scripts/kafka-broker start failed";
  const std::string& address = broker.address();
  ASSERT_EQ(broker.CreateTopics({kAccessTopic, kOutboxTopic}, 4), "");
  const std::string flags =
      "--duration 20m --rate 200 --gifts-per-minute 0 --wallet-per-minute 0 --seed 11";
  ShellResult produced;
  std::thread producer([&] {
    produced =
        Shell(absl::StrCat(NOVAPULSE_BINARY, " gen --kafka ", address, " --speed 60 ", flags));
  });
  WriteWholeFile(dir.Path("a.yaml"),
                 Config(address, "ckpt-group", dir.Path("ckpt-a"), "instance-a"));
  WriteWholeFile(dir.Path("b.yaml"),
                 Config(address, "ckpt-group", dir.Path("ckpt-b"), "instance-b"));
  auto assigned = [](int port) {
    const PromText t = testing::ParsePromText(HttpGet(port, "/metrics"));
    const auto* lag = t.Family("novapulse_kafka_consumer_lag");
    return lag == nullptr ? 0 : static_cast<int>(t.Samples("novapulse_kafka_consumer_lag").size());
  };
  auto wait_for = [](auto done) {
    for (int i = 0; i < 300 && !done(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    return done();
  };
  Service a(dir.Path("a.yaml"), dir.Path("a.log"));
  const int port_a = a.port();
  ASSERT_GT(port_a, 0) << a.log();
  ASSERT_TRUE(wait_for([&] { return assigned(port_a) == 8; })) << a.log();
  std::this_thread::sleep_for(std::chrono::seconds(2));
  {
    Service b(dir.Path("b.yaml"), dir.Path("b1.log"));
    const int port_b = b.port();
    EXPECT_TRUE(wait_for([&] { return assigned(port_b) > 0 && assigned(port_a) < 8; })) << b.log();
    std::this_thread::sleep_for(std::chrono::seconds(3));
    EXPECT_EQ(b.Terminate(std::chrono::seconds(20)), 0) << b.log();
  }
  EXPECT_TRUE(wait_for([&] { return assigned(port_a) == 8; })) << a.log();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  Service b(dir.Path("b.yaml"), dir.Path("b2.log"));
  const int port_b = b.port();
  EXPECT_TRUE(wait_for([&] { return assigned(port_b) > 0; })) << b.log();
  producer.join();
  ASSERT_EQ(produced.status, 0) << produced.output;
  const double expected = GeneratedAccessLines(dir.Path("gen"), flags);
  auto total = [&] {
    return Accepted(testing::ParsePromText(HttpGet(port_a, "/metrics"))) +
           Accepted(testing::ParsePromText(HttpGet(port_b, "/metrics")));
  };
  wait_for([&] { return total() >= expected; });
  std::this_thread::sleep_for(std::chrono::seconds(2));  // duplicates would show by now
  EXPECT_EQ(total(), expected) << a.log() << b.log();
  EXPECT_NE(b.log().find("state restored from the checkpoint"), std::string::npos) << b.log();
  EXPECT_NE(a.log().find("reason=revoke"), std::string::npos) << a.log();
  EXPECT_EQ(a.Terminate(std::chrono::seconds(20)), 0) << a.log();
  EXPECT_EQ(b.Terminate(std::chrono::seconds(20)), 0) << b.log();
}

}  // namespace
}  // namespace novapulse
