// Fault tolerance of `novapulse run` against a real single-node Kafka broker
// (scripts/kafka-broker): the broker stopped and started again on the same
// port and data, novapulse killed (SIGKILL) or stopped (SIGTERM) mid-stream
// and replaced by a new instance of the same group, and two instances
// splitting the partitions (cooperative-sticky) until one leaves. Counts are
// exact: with at-least-once, the only duplicates allowed are records whose
// offsets were stored but not yet committed when an instance was killed,
// which is at most what it consumed in its last commit interval.
#include <librdkafka/rdkafka.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/pipeline/kafka_broker.h"
#include "tests/pipeline/run_service.h"
#include "tests/pipeline/test_process.h"
#include "tests/sinks/prometheus_text.h"

namespace novapulse {
namespace {

using testing::Broker;
using testing::HttpGetReply;
using testing::HttpReply;
using testing::ParsePromText;
using testing::PromText;
using testing::ScratchDir;
using testing::Script;
using testing::Service;
using testing::Shell;
using testing::ShellResult;
using testing::WaitForScrape;
using testing::WriteWholeFile;
using Clock = std::chrono::steady_clock;

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string AccessLine(int64_t ts_ms, int64_t n) {
  return absl::StrCat(R"({"ts":)", ts_ms, R"(,"method":"GET","route":"/api/gifts/:id","status":)",
                      200 + n % 3, R"(,"duration_ms":12.5,"instance":"api-1"})", "\n");
}

std::string OutboxLine(int64_t ts_ms, int64_t id) {
  return absl::StrCat(R"({"ts":)", ts_ms, R"(,"id":"evt-)", id,
                      R"(","type":"gift.created","status":"queued","attempt":1,)",
                      R"("data":{"gift_id":"g)", id,
                      R"(","mode":"single","theme":"birthday","value_usd":25}})", "\n");
}

double Sum(const PromText& text, const char* name) {
  double sum = 0;
  for (const auto& [key, value] : text.Samples(name)) sum += value;
  return sum;
}

// Every access-log line produced here counts once in each of these.
double Events(const PromText& text) { return Sum(text, "novapulse_events_total"); }
double Requests(const PromText& text) { return Sum(text, "http_requests_total"); }

PromText Scrape(int port) { return ParsePromText(testing::HttpGet(port, "/metrics")); }

// The partitions named by novapulse_kafka_consumer_lag ("topic/partition"):
// the assigned ones whose position is known.
std::set<std::string> LagPartitions(const PromText& text) {
  std::set<std::string> out;
  const testing::PromFamily* family = text.Family("novapulse_kafka_consumer_lag");
  if (family == nullptr) return out;
  for (const testing::PromSample& s : family->samples) {
    std::string topic, partition;
    for (const auto& [k, v] : s.labels) (k == "topic" ? topic : partition) = v;
    out.insert(absl::StrCat(topic, "/", partition));
  }
  return out;
}

// The record count novapulse logs once its batches are finished on SIGTERM,
// or -1.
int64_t LoggedRecords(const std::string& log) {
  const std::string key = "msg=\"stopping: batches finished\" records=";
  const size_t at = log.find(key);
  if (at == std::string::npos) return -1;
  const size_t begin = at + key.size();
  int64_t n = -1;
  if (!absl::SimpleAtoi(log.substr(begin, log.find('\n', begin) - begin), &n)) return -1;
  return n;
}

// Produces access-log lines at a steady pace from its own thread, while the
// test scrapes and kills services. A librdkafka producer in the test process,
// not kcat: kcat holds lines read from a pipe back until its input ends.
// Each tick is flushed, so once Pause() returns, delivered() is final until
// Resume().
class PacedProducer {
 public:
  PacedProducer(const std::string& address, std::string topic, int lines_per_tick)
      : topic_(std::move(topic)), lines_per_tick_(lines_per_tick) {
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    char err[512];
    rd_kafka_conf_set(conf, "bootstrap.servers", address.c_str(), err, sizeof(err));
    rd_kafka_conf_set(conf, "linger.ms", "5", err, sizeof(err));
    // Retries across a broker restart must not write a line twice: the
    // topics' offsets are the ground truth.
    rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof(err));
    rd_kafka_conf_set_dr_msg_cb(conf, OnDelivery);
    rd_kafka_conf_set_opaque(conf, this);
    rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (rk_ == nullptr) {
      ADD_FAILURE() << "producer: " << err;
      rd_kafka_conf_destroy(conf);
      return;
    }
    thread_ = std::thread([this] { Loop(); });
  }
  ~PacedProducer() {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    if (thread_.joinable()) thread_.join();
    if (rk_ != nullptr) {
      rd_kafka_flush(rk_, 10'000);
      rd_kafka_destroy(rk_);
    }
  }
  PacedProducer(const PacedProducer&) = delete;
  PacedProducer& operator=(const PacedProducer&) = delete;

  void Resume() {
    std::lock_guard lock(mu_);
    paused_ = false;
  }
  void Pause() {
    std::lock_guard lock(mu_);
    paused_ = true;
  }
  // Waits until every line produced so far is acknowledged (or failed).
  bool Flush(std::chrono::seconds timeout) {
    std::lock_guard lock(mu_);
    return rd_kafka_flush(rk_, static_cast<int>(timeout.count() * 1000)) ==
           RD_KAFKA_RESP_ERR_NO_ERROR;
  }
  // Lines the broker acknowledged.
  int64_t delivered() const { return delivered_.load(); }
  int64_t failed() const { return failed_.load(); }

 private:
  static constexpr std::chrono::milliseconds kTick{50};

  static void OnDelivery(rd_kafka_t* /*rk*/, const rd_kafka_message_t* message, void* opaque) {
    auto* self = static_cast<PacedProducer*>(opaque);
    (message->err == RD_KAFKA_RESP_ERR_NO_ERROR ? self->delivered_ : self->failed_).fetch_add(1);
  }

  void Loop() {
    int64_t n = 0;
    while (true) {
      {
        std::lock_guard lock(mu_);
        if (done_) return;
        if (!paused_) {
          const int64_t now = NowMs();
          for (int i = 0; i < lines_per_tick_; ++i, ++n) {
            std::string line = AccessLine(now, n);
            line.pop_back();  // one message per line, without its newline
            rd_kafka_producev(rk_, RD_KAFKA_V_TOPIC(topic_.c_str()),
                              RD_KAFKA_V_VALUE(line.data(), line.size()),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
          }
          rd_kafka_flush(rk_, 10'000);
        }
      }
      std::this_thread::sleep_for(kTick);
    }
  }

  const std::string topic_;
  const int lines_per_tick_;
  rd_kafka_t* rk_ = nullptr;
  std::thread thread_;
  std::mutex mu_;
  bool paused_ = true;
  bool done_ = false;
  std::atomic<int64_t> delivered_{0};
  std::atomic<int64_t> failed_{0};
};

// The partitions of KafkaFault::CreateTopics(prefix), as LagPartitions names them.
std::set<std::string> Partitions(const std::string& prefix) {
  std::set<std::string> out = {prefix + ".outbox/0"};
  for (int p = 0; p < 4; ++p) out.insert(absl::StrCat(prefix, ".access-log/", p));
  return out;
}

// One broker for the whole suite; each test has its own topics and group.
class KafkaFault : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ScratchDir;
    broker_ = new Broker(dir_->Path("broker"));
    start_error_ = broker_->Start();
  }
  static void TearDownTestSuite() {
    delete broker_;
    delete dir_;
  }
  void SetUp() override { ASSERT_EQ(start_error_, "") << "scripts/kafka-broker start failed"; }

  static const std::string& address() { return broker_->address(); }

  // Creates `<prefix>.access-log` with 4 partitions and `<prefix>.outbox`
  // with 1.
  static std::string CreateTopics(const std::string& prefix) {
    for (const auto& [suffix, partitions] : {std::pair{".access-log", 4}, {".outbox", 1}}) {
      const ShellResult r =
          Shell(absl::StrCat(Script("kafka-topic"), " --bootstrap ", address(), " create ", prefix,
                             suffix, " --partitions ", partitions));
      if (r.status != 0) return absl::StrCat("creating ", prefix, suffix, ": ", r.output);
    }
    return "";
  }

  // A service config: a short session timeout so a dead member or broker is
  // noticed in seconds, not 45.
  // `properties` replace the auto.offset.reset line; `more` is appended.
  // The HTTP port is the kernel's pick (Service::port reads it back).
  std::string WriteConfig(const std::string& name, const std::string& prefix,
                          const char* commit_interval,
                          const std::string& properties = "    auto.offset.reset: earliest\n",
                          const std::string& more = "") {
    const std::string path = scratch_.Path(name);
    WriteWholeFile(path, absl::StrCat(R"(kafka:
  brokers: ")",
                                      address(), R"("
  group_id: )",
                                      prefix, R"(-group
  topics:
    access_log: )",
                                      prefix, R"(.access-log
    outbox: )",
                                      prefix, R"(.outbox
  properties:
)",
                                      properties, R"(    session.timeout.ms: "6000"
    heartbeat.interval.ms: "500"
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

  std::string Produce(const std::string& topic, int partition, const std::string& lines) {
    const std::string file = scratch_.Path(absl::StrCat("lines-", files_++, ".ndjson"));
    WriteWholeFile(file, lines);
    const ShellResult r = Shell(
        absl::StrCat("kcat -P -b ", address(), " -t ", topic, " -p ", partition, " -l ", file));
    return r.status == 0 ? "" : absl::StrCat("kcat -P -t ", topic, " failed: ", r.output);
  }

  static ScratchDir* dir_;
  static Broker* broker_;
  static std::string start_error_;
  ScratchDir scratch_;
  int files_ = 0;
};

ScratchDir* KafkaFault::dir_ = nullptr;
Broker* KafkaFault::broker_ = nullptr;
std::string KafkaFault::start_error_;

// Scrapes until the events of all `ports` sum to at least `expected` (60 s at
// most), then again after 1.5 s, so records counted twice would show.
// Returns that sum, and checks http_requests_total agrees unless the
// instances also read outbox events.
double SettledEvents(const std::vector<int>& ports, double expected, double outbox_events = 0) {
  const auto total = [&ports](double (*of)(const PromText&)) {
    double sum = 0;
    for (const int port : ports) sum += of(Scrape(port));
    return sum;
  };
  const Clock::time_point deadline = Clock::now() + std::chrono::seconds(60);
  while (Clock::now() < deadline && total(Events) < expected) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  const double events = total(Events);
  EXPECT_EQ(total(Requests) + outbox_events, events)
      << "http_requests_total and novapulse_events_total differ";
  return events;
}

// Waits until the instance on `port` has all of `partitions` with a lag of 0
// (30 s at most), then returns its settled event count.
double CaughtUpEvents(int port, const std::set<std::string>& partitions) {
  WaitForScrape(
      port,
      [&partitions](const PromText& t) {
        if (LagPartitions(t) != partitions) return false;
        for (const auto& [key, lag] : t.Samples("novapulse_kafka_consumer_lag")) {
          if (lag != 0) return false;
        }
        return true;
      },
      std::chrono::seconds(30));
  return SettledEvents({port}, 0);
}

bool Ready(int port) { return HttpGetReply(port, "/readyz").status == 200; }

bool WaitFor(const std::function<bool()>& done, std::chrono::seconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return done();
}

TEST_F(KafkaFault, SigkillLosesOnlyTheUncommittedTailAndSigtermNothing) {
  const Clock::time_point test_start = Clock::now();
  const std::string prefix = "kill";
  ASSERT_EQ(CreateTopics(prefix), "");
  constexpr auto kCommitInterval = std::chrono::seconds(2);
  PacedProducer producer(address(), prefix + ".access-log", /*lines_per_tick=*/20);

  // A consumes a stream for a while, catches up, and is killed: its offsets
  // stored since the last automatic commit are lost.
  auto a = std::make_unique<Service>(WriteConfig("a.yaml", prefix, "2s"), scratch_.Path("a.log"));
  const int port_a = a->port();
  ASSERT_TRUE(WaitFor([&] { return Ready(port_a); }, std::chrono::seconds(30))) << a->log();
  std::vector<std::pair<Clock::time_point, double>> seen;  // A's count over time
  producer.Resume();
  const Clock::time_point stream_end = Clock::now() + std::chrono::milliseconds(5000);
  while (Clock::now() < stream_end) {
    seen.emplace_back(Clock::now(), Events(Scrape(port_a)));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  producer.Pause();
  const int64_t n1 = producer.delivered();
  double a_final = 0;
  ASSERT_TRUE(WaitFor(
      [&] {
        a_final = Events(Scrape(port_a));
        seen.emplace_back(Clock::now(), a_final);
        return a_final >= n1;
      },
      std::chrono::seconds(30)))
      << a->log();
  EXPECT_EQ(a_final, n1);
  const PromText a_text = Scrape(port_a);
  EXPECT_EQ(Requests(a_text), a_final);
  EXPECT_GE(a_text.Value("novapulse_kafka_commits_total", {{"result", "success"}}), 1);
  const Clock::time_point kill_time = Clock::now();
  a->Kill();
  // What A counted up to one commit interval (and half a second of slack for
  // the timer and the commit's round trip) before the kill was committed.
  double committed_floor = 0;
  for (const auto& [t, count] : seen) {
    if (t <= kill_time - kCommitInterval - std::chrono::milliseconds(500)) committed_floor = count;
  }
  const double duplicate_bound = a_final - committed_floor;

  // B, in the same group, gets the partitions once A's session expires and
  // re-reads from the last commit.
  auto b = std::make_unique<Service>(WriteConfig("b.yaml", prefix, "2s"), scratch_.Path("b.log"));
  const int port_b = b->port();
  ASSERT_TRUE(WaitFor([&] { return Ready(port_b); }, std::chrono::seconds(40))) << b->log();
  const double b_catchup = CaughtUpEvents(port_b, Partitions(prefix));
  const double duplicates = a_final + b_catchup - static_cast<double>(n1);
  std::printf(
      "[ SIGKILL  ] produced %lld, A counted %.0f, B re-read %.0f: %.0f duplicates "
      "(bound: %.0f counted in A's last commit interval)\n",
      static_cast<long long>(n1), a_final, b_catchup, duplicates, duplicate_bound);
  EXPECT_GE(duplicates, 0) << "records lost: counted by neither instance";
  EXPECT_LE(duplicates, duplicate_bound);

  // B consumes a stream and is stopped with SIGTERM in its middle; C takes
  // over. B's shutdown commit means nothing is read twice.
  producer.Resume();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  ASSERT_EQ(b->Terminate(std::chrono::seconds(20)), 0) << b->log();
  const int64_t b_total = LoggedRecords(b->log());
  ASSERT_GE(b_total, 0) << b->log();
  EXPECT_GT(static_cast<double>(b_total), b_catchup)
      << "B was stopped before the stream reached it";
  Service c(WriteConfig("c.yaml", prefix, "2s"), scratch_.Path("c.log"));
  const int port_c = c.port();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  producer.Pause();
  const int64_t n2 = producer.delivered() - n1;
  const double c_expected = static_cast<double>(n2) - (static_cast<double>(b_total) - b_catchup);
  const double c_final = SettledEvents({port_c}, c_expected);
  std::printf("[ SIGTERM  ] produced %lld more, B counted %.0f of them, C %.0f: %.0f duplicates\n",
              static_cast<long long>(n2), static_cast<double>(b_total) - b_catchup, c_final,
              c_final - c_expected);
  EXPECT_EQ(c_final, c_expected) << c.log();
  EXPECT_GT(c_final, 0);
  EXPECT_EQ(c.Terminate(std::chrono::seconds(20)), 0) << c.log();
  EXPECT_EQ(producer.failed(), 0);
  std::printf("[ runtime  ] %.1f s\n",
              std::chrono::duration<double>(Clock::now() - test_start).count());
}

TEST_F(KafkaFault, TwoInstancesSplitThePartitionsAndOneTakesOverWhenTheOtherLeaves) {
  const std::string prefix = "split";
  ASSERT_EQ(CreateTopics(prefix), "");
  const std::string access = prefix + ".access-log";
  const std::string outbox = prefix + ".outbox";
  const std::set<std::string> all = Partitions(prefix);
  auto a = std::make_unique<Service>(WriteConfig("a.yaml", prefix, "1s"), scratch_.Path("a.log"));
  const int port_a = a->port();
  ASSERT_TRUE(WaitFor([&] { return Ready(port_a); }, std::chrono::seconds(30))) << a->log();
  Service b(WriteConfig("b.yaml", prefix, "1s"), scratch_.Path("b.log"));
  const int port_b = b.port();

  // Cooperative-sticky: A gives up some partitions to B; each lists only its own.
  std::set<std::string> of_a, of_b;
  const bool split = WaitFor(
      [&] {
        of_a = LagPartitions(Scrape(port_a));
        of_b = LagPartitions(Scrape(port_b));
        std::set<std::string> both = of_a;
        both.insert(of_b.begin(), of_b.end());
        return !of_a.empty() && !of_b.empty() && both == all &&
               of_a.size() + of_b.size() == all.size();
      },
      std::chrono::seconds(40));
  ASSERT_TRUE(split) << "A: " << of_a.size() << " partitions, B: " << of_b.size() << "\n"
                     << a->log() << b.log();

  // 100 lines per access-log partition, 10 outbox events: each instance
  // counts exactly the lines of its partitions.
  const int64_t now = NowMs();
  std::map<std::string, int> lines;
  for (int p = 0; p < 4; ++p) {
    std::string text;
    for (int i = 0; i < 100; ++i) text += AccessLine(now, i);
    ASSERT_EQ(Produce(access, p, text), "");
    lines[absl::StrCat(access, "/", p)] = 100;
  }
  std::string events;
  for (int i = 0; i < 10; ++i) events += OutboxLine(now, i);
  ASSERT_EQ(Produce(outbox, 0, events), "");
  lines[outbox + "/0"] = 10;
  const auto expected_of = [&lines](const std::set<std::string>& partitions) {
    double n = 0;
    for (const std::string& p : partitions) n += lines[p];
    return n;
  };
  EXPECT_EQ(SettledEvents({port_a, port_b}, 410, /*outbox_events=*/10), 410);
  EXPECT_EQ(Events(Scrape(port_a)), expected_of(of_a));
  EXPECT_EQ(Events(Scrape(port_b)), expected_of(of_b));
  // http_requests_total counts access-log lines only.
  EXPECT_EQ(Requests(Scrape(port_a)) + Requests(Scrape(port_b)), 400);

  // A stream runs while A is stopped with SIGTERM: B takes over A's
  // partitions from A's last commit (on revocation), so nothing is read twice.
  PacedProducer producer(address(), access, /*lines_per_tick=*/20);
  producer.Resume();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  ASSERT_EQ(a->Terminate(std::chrono::seconds(20)), 0) << a->log();
  const int64_t a_total = LoggedRecords(a->log());
  ASSERT_GE(a_total, 0) << a->log();
  std::set<std::string> of_b_after;
  EXPECT_TRUE(WaitFor(
      [&] {
        of_b_after = LagPartitions(Scrape(port_b));
        return of_b_after == all;
      },
      std::chrono::seconds(30)))
      << b.log();
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  producer.Pause();
  const double produced = 410 + static_cast<double>(producer.delivered());
  const double b_expected = produced - static_cast<double>(a_total);
  const double b_final = SettledEvents({port_b}, b_expected, of_b.contains(outbox + "/0") ? 10 : 0);
  std::printf(
      "[ SPLIT    ] produced %.0f, A counted %lld (%zu partitions), B %.0f: %.0f "
      "duplicates\n",
      produced, static_cast<long long>(a_total), of_a.size(), b_final, b_final - b_expected);
  EXPECT_EQ(b_final, b_expected) << b.log();
  EXPECT_EQ(Scrape(port_b).Value("novapulse_kafka_commits_total", {{"result", "failure"}}), 0);
  EXPECT_EQ(b.Terminate(std::chrono::seconds(20)), 0) << b.log();
  EXPECT_EQ(producer.failed(), 0);
}

// The shipped defaults (no auto.offset.reset in the properties): a new
// group reads what was produced before it started, and a partition that had
// nothing committed or checkpointed when the service stopped is read from its
// start when it comes back, not from the next message produced.
TEST_F(KafkaFault, ShippedDefaultsReadPartitionsWithoutAnOffsetFromTheirStart) {
  const std::string prefix = "defaults";
  ASSERT_EQ(CreateTopics(prefix), "");
  const std::string access = prefix + ".access-log";
  const int64_t now = NowMs();
  std::string lines;
  for (int i = 0; i < 100; ++i) lines += AccessLine(now, i);
  ASSERT_EQ(Produce(access, 0, lines), "");

  const std::string checkpoints =
      absl::StrCat("checkpoint:\n  dir: ", scratch_.Path("state"), "\n  interval: 1s\n");
  const std::string config = WriteConfig("run.yaml", prefix, "1s", /*properties=*/"", checkpoints);
  {
    Service first(config, scratch_.Path("first.log"));
    EXPECT_EQ(SettledEvents({first.port()}, 100), 100) << first.log();
    ASSERT_EQ(first.Terminate(std::chrono::seconds(20)), 0) << first.log();
  }
  ASSERT_EQ(Produce(access, 0, lines), "");
  ASSERT_EQ(Produce(access, 1, lines), "");
  Service second(config, scratch_.Path("second.log"));
  EXPECT_EQ(SettledEvents({second.port()}, 300), 300) << second.log();
  EXPECT_EQ(second.Terminate(std::chrono::seconds(20)), 0) << second.log();
}

// Checkpoints on, static membership, a stream of 2,000 lines/s, and the
// broker down longer than the session timeout, so the partitions are lost
// and assigned again: /readyz turns 503 within seconds, checkpoints go on
// while the broker is away (no wait on a commit that cannot be answered),
// and after the outage every line is counted exactly once (the partitions
// resume where the state ends, not at the older committed offsets).
//
// The consumer asks for metadata every 10 ms, so that it often asks while
// the broker is in controlled shutdown and answers with its topics but no
// brokers. An unpatched librdkafka 2.12.1 then drops its only broker and
// never reconnects (scripts/patches/librdkafka-metadata-without-brokers.patch).
TEST_F(KafkaFault, BrokerOutageWithCheckpointsCountsEveryLineOnce) {
  const std::string prefix = "outage";
  ASSERT_EQ(CreateTopics(prefix), "");
  const std::string checkpoints =
      absl::StrCat("checkpoint:\n  dir: ", scratch_.Path("state"), "\n  interval: 1s\n");
  Service service(WriteConfig("run.yaml", prefix, "1s",
                              "    auto.offset.reset: earliest\n"
                              "    group.instance.id: outage-1\n"
                              "    topic.metadata.refresh.interval.ms: \"10\"\n",
                              checkpoints),
                  scratch_.Path("run.log"));
  const int port = service.port();
  ASSERT_TRUE(WaitFor([&] { return Ready(port); }, std::chrono::seconds(30))) << service.log();
  PacedProducer producer(address(), prefix + ".access-log", /*lines_per_tick=*/100);
  producer.Resume();
  ASSERT_TRUE(WaitFor([&] { return Events(Scrape(port)) >= 4000; }, std::chrono::seconds(30)))
      << service.log();

  ASSERT_EQ(broker_->StopKeepingData(), "");
  const Clock::time_point down = Clock::now();
  HttpReply ready;
  EXPECT_TRUE(WaitFor(
      [&] {
        // The broker's reason, not merely any 503: librdkafka may report the
        // partitions' lag as unknown a moment before it reports the broker down.
        ready = HttpGetReply(port, "/readyz");
        return ready.status == 503 && ready.body == "no kafka broker reachable\n";
      },
      std::chrono::seconds(30)));
  const double unready_after = std::chrono::duration<double>(Clock::now() - down).count();
  std::printf("[ OUTAGE   ] /readyz 503 %.1f s after the broker stopped: %s", unready_after,
              ready.body.c_str());
  EXPECT_LE(unready_after, 5.0) << ready.body;
  EXPECT_EQ(ready.body, "no kafka broker reachable\n");

  // The session times out: the partitions are lost. Checkpoints still go on.
  ASSERT_TRUE(WaitFor([&] { return service.log().find("partitions lost") != std::string::npos; },
                      std::chrono::seconds(40)))
      << service.log();
  const auto checkpoints_written = [&] {
    return Scrape(port).Value("novapulse_checkpoints_total", {{"result", "success"}});
  };
  const double before = checkpoints_written();
  EXPECT_TRUE(WaitFor([&] { return checkpoints_written() >= before + 2; }, std::chrono::seconds(8)))
      << "checkpoints stopped while the broker was down\n"
      << service.log();

  ASSERT_EQ(broker_->Start(), "") << "the broker did not start again";
  const Clock::time_point up = Clock::now();
  EXPECT_TRUE(WaitFor([&] { return Ready(port); }, std::chrono::seconds(60))) << service.log();
  std::printf("[ OUTAGE   ] /readyz 200 again %.1f s after the broker answered\n",
              std::chrono::duration<double>(Clock::now() - up).count());
  // Some more of the stream after the outage, then the ground truth.
  const double at_ready = Events(Scrape(port));
  EXPECT_TRUE(
      WaitFor([&] { return Events(Scrape(port)) >= at_ready + 2000; }, std::chrono::seconds(30)));
  producer.Pause();
  ASSERT_TRUE(producer.Flush(std::chrono::seconds(60)));
  const int64_t produced = producer.delivered();
  EXPECT_EQ(producer.failed(), 0);
  const double counted = SettledEvents({port}, static_cast<double>(produced));
  std::printf("[ OUTAGE   ] produced %lld, counted %.0f\n", static_cast<long long>(produced),
              counted);
  EXPECT_EQ(counted, static_cast<double>(produced)) << service.log();
  EXPECT_NE(service.log().find("partition resumes where the state ends"), std::string::npos);
  EXPECT_EQ(service.Terminate(std::chrono::seconds(20)), 0) << service.log();
}

// Last in the suite: it stops the shared broker (and starts it again).
TEST_F(KafkaFault, BrokerRestartMakesThemUnreadyThenCountsResumeExactly) {
  const std::string prefix = "restart";
  ASSERT_EQ(CreateTopics(prefix), "");
  const std::string access = prefix + ".access-log";
  const int64_t now = NowMs();
  std::string first;
  for (int i = 0; i < 200; ++i) first += AccessLine(now, i);
  ASSERT_EQ(Produce(access, 0, first.substr(0, first.size() / 2)), "");
  ASSERT_EQ(Produce(access, 3, first.substr(first.size() / 2)), "");

  Service service(WriteConfig("run.yaml", prefix, "1s"), scratch_.Path("run.log"));
  const int port = service.port();
  EXPECT_EQ(SettledEvents({port}, 200), 200) << service.log();
  // Everything consumed is committed before the broker goes away, so no
  // record may be read twice after it comes back.
  const PromText committed = WaitForScrape(port, [](const PromText& t) {
    return t.Value("novapulse_kafka_commits_total", {{"result", "success"}}) >= 1;
  });
  std::this_thread::sleep_for(std::chrono::seconds(2));
  ASSERT_EQ(HttpGetReply(port, "/readyz").body, "ready\n");

  ASSERT_EQ(broker_->StopKeepingData(), "");
  const Clock::time_point down = Clock::now();
  HttpReply ready;
  EXPECT_TRUE(WaitFor(
      [&] {
        // The broker's reason, not merely any 503: librdkafka may report the
        // partitions' lag as unknown a moment before it reports the broker down.
        ready = HttpGetReply(port, "/readyz");
        return ready.status == 503 && ready.body == "no kafka broker reachable\n";
      },
      std::chrono::seconds(30)))
      << service.log();
  std::printf("[ RESTART  ] /readyz 503 %.1f s after the broker stopped: %s",
              std::chrono::duration<double>(Clock::now() - down).count(), ready.body.c_str());
  EXPECT_EQ(ready.body, "no kafka broker reachable\n");
  // The session times out: the assignment is lost, and found again later.
  EXPECT_TRUE(WaitFor([&] { return service.log().find("partitions lost") != std::string::npos; },
                      std::chrono::seconds(40)))
      << service.log();
  // Nothing is ingested while the broker is down; the service still serves.
  const double while_down = Events(Scrape(port));
  std::this_thread::sleep_for(std::chrono::seconds(2));
  EXPECT_EQ(while_down, 200);
  EXPECT_EQ(Events(Scrape(port)), 200);
  EXPECT_TRUE(service.running());

  ASSERT_EQ(broker_->Start(), "") << "the broker did not start again";
  std::string second;
  for (int i = 0; i < 150; ++i) second += AccessLine(NowMs(), i);
  ASSERT_EQ(Produce(access, 1, second), "");
  const Clock::time_point up = Clock::now();
  EXPECT_TRUE(WaitFor([&] { return Ready(port); }, std::chrono::seconds(60))) << service.log();
  std::printf("[ RESTART  ] /readyz 200 again %.1f s after the broker answered\n",
              std::chrono::duration<double>(Clock::now() - up).count());
  EXPECT_EQ(SettledEvents({port}, 350), 350) << service.log();
  const PromText text = Scrape(port);
  // A lost assignment is not committed (the group has given it away), and
  // everything was committed before the broker stopped: no commit failed.
  EXPECT_EQ(text.Value("novapulse_kafka_commits_total", {{"result", "failure"}}), 0);
  EXPECT_GT(text.Value("novapulse_kafka_commits_total", {{"result", "success"}}),
            committed.Value("novapulse_kafka_commits_total", {{"result", "success"}}));
  EXPECT_EQ(service.Terminate(std::chrono::seconds(20)), 0) << service.log();
}

}  // namespace
}  // namespace novapulse
