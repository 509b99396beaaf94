// KafkaSource against librdkafka's mock cluster (rdkafka_mock.h), in process,
// so that broker errors can be injected: failed fetches, failed offset
// commits, failed group joins and brokers going down and up. The test drives
// Fill and StoreOffsets as `novapulse run` does (the pipeline itself is not
// reachable as a function) and counts every message by its payload, so a
// message lost or read twice shows.
//
// A separate `novapulse run` process could use a mock cluster too (setting
// test.mock.num.brokers in kafka.properties replaces the brokers, and
// librdkafka logs the mock address), but errors can only be injected from
// the process that owns the cluster.
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "pipeline/config.h"
#include "pipeline/kafka_source.h"
#include "tests/pipeline/run_service.h"
#include "tests/pipeline/test_process.h"
#include "tests/sinks/prometheus_text.h"

namespace novapulse {
namespace {

using Clock = std::chrono::steady_clock;

// Kafka protocol request types (ApiKey), for the error stacks.
constexpr int16_t kFetch = 1;
constexpr int16_t kOffsetCommit = 8;
constexpr int16_t kJoinGroup = 11;
constexpr int16_t kHeartbeat = 12;
constexpr int16_t kSyncGroup = 14;

constexpr char kAccessTopic[] = "mock.access-log";
constexpr char kOutboxTopic[] = "mock.outbox";

bool WaitFor(const std::function<bool()>& done, std::chrono::seconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return done();
}

// A mock cluster of three brokers with both topics (4 partitions each,
// spread over the brokers) and a producer connected to it.
class MockCluster {
 public:
  MockCluster() {
    char err[512];
    // The cluster needs a handle for its bookkeeping only.
    owner_ = rd_kafka_new(RD_KAFKA_PRODUCER, rd_kafka_conf_new(), err, sizeof(err));
    cluster_ = rd_kafka_mock_cluster_new(owner_, 3);
    rd_kafka_mock_topic_create(cluster_, kAccessTopic, 4, 1);
    rd_kafka_mock_topic_create(cluster_, kOutboxTopic, 4, 1);
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstraps(), err, sizeof(err));
    rd_kafka_conf_set(conf, "linger.ms", "5", err, sizeof(err));
    rd_kafka_conf_set_dr_msg_cb(conf, [](rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
      if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        static_cast<std::atomic<int>*>(opaque)->fetch_add(1);
      }
    });
    rd_kafka_conf_set_opaque(conf, &failed_);
    producer_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  }
  ~MockCluster() {
    rd_kafka_destroy(producer_);
    rd_kafka_mock_cluster_destroy(cluster_);
    rd_kafka_destroy(owner_);
  }
  MockCluster(const MockCluster&) = delete;
  MockCluster& operator=(const MockCluster&) = delete;

  rd_kafka_mock_cluster_t* get() { return cluster_; }
  const char* bootstraps() const { return rd_kafka_mock_cluster_bootstraps(cluster_); }

  // Produces messages "<first>" .. "<first + n - 1>" to `topic`, spread over
  // its partitions; with `wait`, until all are acknowledged.
  void Produce(const char* topic, int first, int n, bool wait = true) {
    for (int i = first; i < first + n; ++i) {
      const std::string value = absl::StrCat(i);
      rd_kafka_producev(producer_, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(i % 4),
                        RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    }
    if (wait) Flush();
  }
  // Produces each of `lines` as one message to partition `partition`.
  void ProduceLines(const char* topic, int partition, const std::vector<std::string>& lines) {
    for (const std::string& line : lines) {
      rd_kafka_producev(producer_, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                        RD_KAFKA_V_VALUE(const_cast<char*>(line.data()), line.size()),
                        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    }
    Flush();
  }
  void Flush() { ASSERT_EQ(rd_kafka_flush(producer_, 30'000), RD_KAFKA_RESP_ERR_NO_ERROR); }
  int failed() const { return failed_.load(); }

 private:
  rd_kafka_t* owner_ = nullptr;
  rd_kafka_mock_cluster_t* cluster_ = nullptr;
  rd_kafka_t* producer_ = nullptr;
  std::atomic<int> failed_{0};
};

KafkaConfig SourceConfig(const MockCluster& cluster, const char* group) {
  KafkaConfig config;
  config.brokers = cluster.bootstraps();
  config.group_id = group;
  config.topics.access_log = kAccessTopic;
  config.topics.outbox = kOutboxTopic;
  config.properties = {{"auto.offset.reset", "earliest"},
                       {"session.timeout.ms", "10000"},
                       {"heartbeat.interval.ms", "500"}};
  config.batch_size = 50;
  config.batch_timeout = absl::Milliseconds(20);
  config.commit_interval = absl::Milliseconds(200);
  return config;
}

// A KafkaSource driven on its own thread as the service drives it: Fill,
// count, StoreOffsets. Counts every message by topic and payload.
class Consumer {
 public:
  explicit Consumer(const KafkaConfig& config) {
    absl::StatusOr<std::unique_ptr<KafkaSource>> source = KafkaSource::Build(config);
    EXPECT_TRUE(source.ok()) << source.status();
    if (!source.ok()) return;
    source_ = *std::move(source);
    thread_ = std::thread([this] {
      KafkaBatch batch;
      while (source_->Fill(&batch, stop_)) {
        {
          absl::MutexLock lock(&mu_);
          for (const KafkaRecord& r : batch.records) {
            std::string key(r.input == InputOfTopic(Topic::kOutbox) ? "o" : "a");
            key.append(batch.buffer.data() + r.begin, r.size);
            ++seen_[key];
            ++records_;
          }
        }
        source_->StoreOffsets(batch);
      }
      finished_.store(true);
    });
  }
  ~Consumer() { EXPECT_TRUE(Stop().ok()); }
  Consumer(const Consumer&) = delete;
  Consumer& operator=(const Consumer&) = delete;

  // Stops consuming, then commits and leaves the group (as on SIGTERM).
  absl::Status Stop() {
    if (source_ == nullptr || stopped_) return absl::OkStatus();
    stopped_ = true;
    stop_.store(true);
    thread_.join();
    return source_->Close();
  }

  KafkaSource& source() { return *source_; }
  // Fill has returned false: stopped, or the consumer failed for good.
  bool finished() const { return finished_.load(); }
  int64_t records() {
    absl::MutexLock lock(&mu_);
    return records_;
  }
  int64_t distinct() {
    absl::MutexLock lock(&mu_);
    return static_cast<int64_t>(seen_.size());
  }
  // Waits until `n` distinct messages are seen (30 s at most), then 1 s
  // more, so messages read twice would show.
  void WaitForDistinct(int64_t n) {
    WaitFor([&] { return distinct() >= n; }, std::chrono::seconds(30));
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  // Commit results as novapulse_kafka_commits_total exports them.
  double ExportedCommits(const char* result) {
    MetricFamilies families;
    source_->CollectMetrics(&families);
    for (const FamilySnapshot& f : families.families()) {
      if (f.def->name != "novapulse_kafka_commits_total") continue;
      for (size_t i = 0; i < f.keys.size(); ++i) {
        if (f.keys[i] == result) return std::bit_cast<double>(f.words[i]);
      }
    }
    return -1;
  }

 private:
  std::unique_ptr<KafkaSource> source_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> finished_{false};
  bool stopped_ = false;
  std::thread thread_;
  absl::Mutex mu_;
  std::map<std::string, int> seen_ ABSL_GUARDED_BY(mu_);
  int64_t records_ ABSL_GUARDED_BY(mu_) = 0;
};

TEST(KafkaMock, FetchErrorsAreRetriedWithoutLossOrDuplicates) {
  MockCluster cluster;
  Consumer consumer(SourceConfig(cluster, "fetch"));
  ASSERT_TRUE(WaitFor([&] { return consumer.source().assigned_partitions() == 8; },
                      std::chrono::seconds(20)));
  cluster.Produce(kAccessTopic, 0, 200);
  consumer.WaitForDistinct(200);
  rd_kafka_mock_push_request_errors(
      cluster.get(), kFetch, 6, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
      RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
      RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT, RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
      RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT);
  cluster.Produce(kAccessTopic, 200, 300);
  cluster.Produce(kOutboxTopic, 0, 100);
  consumer.WaitForDistinct(600);
  EXPECT_EQ(consumer.distinct(), 600);
  EXPECT_EQ(consumer.records(), 600) << "messages read twice after fetch errors";
}

// What the event clock learns from the source: each partition as it is
// assigned, and each end it reaches, after that partition's last record of
// the batch and with the offset after it.
TEST(KafkaMock, BatchesCarryEachPartitionsEndAfterItsRecords) {
  MockCluster cluster;
  cluster.Produce(kAccessTopic, 0, 100);  // 25 to each partition
  absl::StatusOr<std::unique_ptr<KafkaSource>> built =
      KafkaSource::Build(SourceConfig(cluster, "ends"));
  ASSERT_TRUE(built.ok()) << built.status();
  KafkaSource& source = **built;
  std::map<std::pair<int, int32_t>, int> assigned;  // +1 assigned, -1 revoked
  source.set_on_assignment([&](int input, int32_t partition, bool yes) {
    assigned[{input, partition}] += yes ? 1 : -1;
  });
  std::map<std::pair<int, int32_t>, int64_t> ends;
  std::map<std::pair<int, int32_t>, int64_t> next;  // after the last record read
  auto read = [&](size_t want_ends, int64_t access_end) {
    const std::atomic<bool> stop{false};
    const Clock::time_point deadline = Clock::now() + std::chrono::seconds(30);
    KafkaBatch batch;
    while (Clock::now() < deadline) {
      ASSERT_TRUE(source.Fill(&batch, stop, absl::Now() + absl::Milliseconds(200)));
      for (const KafkaRecord& r : batch.records) next[{r.input, r.partition}] = r.offset + 1;
      for (const KafkaPartitionOffset& end : batch.ends) {
        // No record of the partition follows its end in the batch.
        for (const KafkaRecord& r : batch.records) {
          if (r.input == end.input && r.partition == end.partition) {
            EXPECT_LT(r.offset, end.next_offset);
          }
        }
        ends[{end.input, end.partition}] = end.next_offset;
      }
      source.StoreOffsets(batch);
      size_t done = 0;
      for (const auto& [key, end] : ends) {
        done += key.first == InputOfTopic(Topic::kOutbox) || end == access_end;
      }
      if (done >= want_ends) return;
    }
    ADD_FAILURE() << "ends seen: " << ends.size();
  };
  read(8, 25);
  EXPECT_EQ(assigned.size(), 8u);
  for (const auto& [key, count] : assigned) EXPECT_EQ(count, 1);
  for (int32_t p = 0; p < 4; ++p) {
    EXPECT_EQ((ends[{InputOfTopic(Topic::kAccessLog), p}]), 25) << "partition " << p;
    EXPECT_EQ((next[{InputOfTopic(Topic::kAccessLog), p}]), 25) << "partition " << p;
    EXPECT_EQ((ends[{InputOfTopic(Topic::kOutbox), p}]), 0) << "partition " << p;
  }
  // New records: each partition's end is reached again further on.
  cluster.Produce(kAccessTopic, 100, 4);
  read(8, 26);
  for (int32_t p = 0; p < 4; ++p) EXPECT_EQ((ends[{InputOfTopic(Topic::kAccessLog), p}]), 26);
  EXPECT_TRUE(source.Close().ok());
}

TEST(KafkaMock, FailedCommitsAreCountedAndALaterCommitSavesTheOffsets) {
  MockCluster cluster;
  {
    Consumer consumer(SourceConfig(cluster, "commit"));
    ASSERT_TRUE(WaitFor([&] { return consumer.source().assigned_partitions() == 8; },
                        std::chrono::seconds(20)));
    // librdkafka retries the first two by itself (a commit fails on them
    // only when its retries run out, which depends on timing); the last one
    // it never retries, so a commit surely fails there. Errors are pushed
    // again, with more messages to commit, until some commit has failed
    // (10 rounds at most). A lost coordinator is the next test's.
    const rd_kafka_resp_err_t errors[] = {RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                                          RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
                                          RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE};
    int produced = 0;
    for (int round = 0; round < 10 && consumer.source().commits(false) == 0; ++round) {
      rd_kafka_mock_push_request_errors_array(cluster.get(), kOffsetCommit, std::size(errors),
                                              errors);
      cluster.Produce(kAccessTopic, produced, 100);
      produced += 100;
      std::this_thread::sleep_for(std::chrono::seconds(1));
    }
    consumer.WaitForDistinct(produced);
    EXPECT_EQ(consumer.distinct(), produced);
    EXPECT_EQ(consumer.records(), produced);
    EXPECT_TRUE(
        WaitFor([&] { return consumer.source().commits(true) >= 1; }, std::chrono::seconds(10)));
    EXPECT_GE(consumer.source().commits(false), 1u);
    EXPECT_GE(consumer.ExportedCommits("failure"), 1);
    EXPECT_EQ(consumer.ExportedCommits("failure"),
              static_cast<double>(consumer.source().commits(false)));
    std::printf("[ COMMITS  ] %llu failed, %llu succeeded\n",
                static_cast<unsigned long long>(consumer.source().commits(false)),
                static_cast<unsigned long long>(consumer.source().commits(true)));
    // Errors left unused would fail the shutdown commit too.
    rd_kafka_mock_clear_request_errors(cluster.get(), kOffsetCommit);
    ASSERT_TRUE(consumer.Stop().ok());
  }
  // The next member of the group starts after the last commit: it reads
  // only the new messages.
  cluster.Produce(kAccessTopic, 100'000, 50);
  Consumer next(SourceConfig(cluster, "commit"));
  next.WaitForDistinct(50);
  EXPECT_EQ(next.distinct(), 50);
  EXPECT_EQ(next.records(), 50);
}

// The offsets a group has committed, read with a handle of its own that
// never joins the group.
class CommittedOffsets {
 public:
  CommittedOffsets(const MockCluster& cluster, const char* group) {
    char err[512];
    rd_kafka_conf_t* conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", cluster.bootstraps(), err, sizeof(err));
    rd_kafka_conf_set(conf, "group.id", group, err, sizeof(err));
    rk_ = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
  }
  ~CommittedOffsets() { rd_kafka_destroy(rk_); }
  CommittedOffsets(const CommittedOffsets&) = delete;
  CommittedOffsets& operator=(const CommittedOffsets&) = delete;

  // The committed offset of each partition of `topic` (-1 where none is,
  // or the broker did not answer).
  std::vector<int64_t> Of(const char* topic) {
    rd_kafka_topic_partition_list_t* list = rd_kafka_topic_partition_list_new(4);
    for (int32_t p = 0; p < 4; ++p) rd_kafka_topic_partition_list_add(list, topic, p);
    const rd_kafka_resp_err_t err = rd_kafka_committed(rk_, list, 5000);
    std::vector<int64_t> out;
    for (int i = 0; i < list->cnt; ++i) {
      out.push_back(err == RD_KAFKA_RESP_ERR_NO_ERROR && list->elems[i].err == 0
                        ? list->elems[i].offset
                        : -1);
    }
    rd_kafka_topic_partition_list_destroy(list);
    return out;
  }

 private:
  rd_kafka_t* rk_ = nullptr;
};

// Commits that meet a lost coordinator are held by librdkafka and sent once
// it is found again, and those that time out are sent again: no commit may
// land after a newer one and move the group's offsets back. Rounds of such
// errors, each with newer offsets to commit, while the committed offsets are
// read every 20 ms: they never go down, and end at the last message stored.
TEST(KafkaMock, CommitsRetriedAfterCoordinatorErrorsNeverMoveOffsetsBack) {
  MockCluster cluster;
  KafkaConfig config = SourceConfig(cluster, "retried");
  // The coordinator is reconnected within 0.5 s (librdkafka's backoff grows
  // to 10 s by default), well within the session timeout.
  config.properties["reconnect.backoff.max.ms"] = "500";
  Consumer consumer(config);
  ASSERT_TRUE(WaitFor([&] { return consumer.source().assigned_partitions() == 8; },
                      std::chrono::seconds(20)));

  CommittedOffsets committed(cluster, "retried");
  std::atomic<bool> sampling{true};
  std::vector<int64_t> highest(4, -1);
  std::vector<std::string> moved_back;
  std::thread sampler([&] {
    while (sampling.load()) {
      const std::vector<int64_t> now = committed.Of(kAccessTopic);
      for (size_t p = 0; p < now.size(); ++p) {
        if (now[p] < 0) continue;  // not answered
        if (now[p] < highest[p]) {
          moved_back.push_back(absl::StrCat("partition ", p, ": ", highest[p], " -> ", now[p]));
        }
        highest[p] = std::max(highest[p], now[p]);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  });

  const rd_kafka_resp_err_t errors[] = {RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE,
                                        RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                                        RD_KAFKA_RESP_ERR_NOT_COORDINATOR};
  constexpr int kRounds = 6;
  for (int round = 0; round < kRounds; ++round) {
    rd_kafka_mock_push_request_errors_array(cluster.get(), kOffsetCommit, std::size(errors),
                                            errors);
    cluster.Produce(kAccessTopic, round * 50, 50);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  consumer.WaitForDistinct(kRounds * 50);
  EXPECT_EQ(consumer.distinct(), kRounds * 50);
  EXPECT_EQ(consumer.records(), kRounds * 50);
  // Commits still held or retried are answered meanwhile.
  std::this_thread::sleep_for(std::chrono::seconds(2));
  rd_kafka_mock_clear_request_errors(cluster.get(), kOffsetCommit);
  std::printf("[ COMMITS  ] %llu failed, %llu succeeded\n",
              static_cast<unsigned long long>(consumer.source().commits(false)),
              static_cast<unsigned long long>(consumer.source().commits(true)));
  const bool stopped = consumer.Stop().ok();
  sampling.store(false);
  sampler.join();
  ASSERT_TRUE(stopped);
  EXPECT_TRUE(moved_back.empty()) << absl::StrJoin(moved_back, "; ");
  // 300 messages over 4 partitions.
  EXPECT_EQ(committed.Of(kAccessTopic), std::vector<int64_t>(4, kRounds * 50 / 4));
}

TEST(KafkaMock, JoinAndSyncGroupErrorsDelayTheAssignmentOnly) {
  MockCluster cluster;
  rd_kafka_mock_push_request_errors(cluster.get(), kJoinGroup, 2,
                                    RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS,
                                    RD_KAFKA_RESP_ERR_NOT_COORDINATOR);
  rd_kafka_mock_push_request_errors(cluster.get(), kSyncGroup, 1,
                                    RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS);
  cluster.Produce(kAccessTopic, 0, 300);
  cluster.Produce(kOutboxTopic, 0, 100);
  Consumer consumer(SourceConfig(cluster, "join"));
  consumer.WaitForDistinct(400);
  EXPECT_EQ(consumer.distinct(), 400);
  EXPECT_EQ(consumer.records(), 400);
  EXPECT_EQ(consumer.source().assigned_partitions(), 8);
}

TEST(KafkaMock, BrokersDownAndUpAgainLoseNothing) {
  MockCluster cluster;
  KafkaConfig config = SourceConfig(cluster, "down");
  // Reconnecting after the outage can take several seconds on a loaded
  // machine; a session timeout far above the outage keeps the assignment
  // (a lost one would legitimately re-read uncommitted records).
  config.properties["session.timeout.ms"] = "45000";
  Consumer consumer(config);
  ASSERT_TRUE(WaitFor([&] { return consumer.source().assigned_partitions() == 8; },
                      std::chrono::seconds(20)));
  cluster.Produce(kAccessTopic, 0, 200);
  consumer.WaitForDistinct(200);
  ASSERT_EQ(consumer.records(), 200);

  // Far shorter than the session timeout (45 s): the assignment survives, so
  // nothing is read again.
  ASSERT_EQ(rd_kafka_mock_broker_set_down(cluster.get(), 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_EQ(rd_kafka_mock_broker_set_down(cluster.get(), 2), RD_KAFKA_RESP_ERR_NO_ERROR);
  cluster.Produce(kAccessTopic, 200, 200, /*wait=*/false);
  std::this_thread::sleep_for(std::chrono::seconds(3));
  const int64_t while_down = consumer.distinct();
  EXPECT_LT(while_down, 400) << "partitions led by the brokers that are down were read";
  ASSERT_EQ(rd_kafka_mock_broker_set_up(cluster.get(), 1), RD_KAFKA_RESP_ERR_NO_ERROR);
  ASSERT_EQ(rd_kafka_mock_broker_set_up(cluster.get(), 2), RD_KAFKA_RESP_ERR_NO_ERROR);
  cluster.Flush();
  EXPECT_EQ(cluster.failed(), 0);
  consumer.WaitForDistinct(400);
  std::printf("[ DOWN     ] %lld of 400 read while two brokers were down\n",
              static_cast<long long>(while_down));
  EXPECT_EQ(consumer.distinct(), 400);
  EXPECT_EQ(consumer.records(), 400);
  EXPECT_EQ(consumer.source().assigned_partitions(), 8);
}

// A static member fenced by another with the same group.instance.id is a
// fatal error in librdkafka: the consumer never fetches again. Fill must
// end by itself and say why, so that `run` checkpoints and exits non-zero
// instead of idling for good, and Reachable() reports the brokers.
TEST(KafkaMock, FencedStaticMemberEndsFillWithTheFatalError) {
  MockCluster cluster;
  KafkaConfig config = SourceConfig(cluster, "fenced");
  config.properties["group.instance.id"] = "fenced-1";
  cluster.Produce(kAccessTopic, 0, 100);
  Consumer consumer(config);
  consumer.WaitForDistinct(100);
  std::string unreachable;
  EXPECT_TRUE(
      WaitFor([&] { return consumer.source().Reachable(&unreachable); }, std::chrono::seconds(10)))
      << unreachable;
  ASSERT_EQ(consumer.source().fatal_error(), "");
  ASSERT_FALSE(consumer.finished());

  rd_kafka_mock_push_request_errors(cluster.get(), kHeartbeat, 1,
                                    RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID);
  EXPECT_TRUE(WaitFor([&] { return consumer.finished(); }, std::chrono::seconds(20)))
      << "Fill went on after the consumer was fenced";
  EXPECT_NE(consumer.source().fatal_error().find("FENCED_INSTANCE_ID"), std::string::npos)
      << consumer.source().fatal_error();
  EXPECT_EQ(consumer.records(), 100);
  // Closing a failed consumer is bounded too.
  const Clock::time_point start = Clock::now();
  (void)consumer.Stop();
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(10));
}

// `novapulse run` against the mock cluster (its brokers listen on
// 127.0.0.1): a fenced consumer makes it write its checkpoint and exit 1 by
// itself, and the next instance resumes from that checkpoint exactly.
TEST(KafkaMock, FencedRunCheckpointsAndExitsOneAndTheNextInstanceResumesExactly) {
  MockCluster cluster;
  testing::ScratchDir dir;
  const std::string config = dir.Path("run.yaml");
  testing::WriteWholeFile(config, absl::StrCat(R"(kafka:
  brokers: ")",
                                               cluster.bootstraps(), R"("
  group_id: fenced-run
  topics:
    access_log: )",
                                               kAccessTopic, R"(
    outbox: )",
                                               kOutboxTopic, R"(
  properties:
    group.instance.id: fenced-run-1
    session.timeout.ms: "6000"
    heartbeat.interval.ms: "500"
  batch_size: 100
  batch_timeout: 20ms
http:
  listen: "127.0.0.1:0"
checkpoint:
  dir: )",
                                               dir.Path("state"), R"(
  interval: 1h
)"));
  std::vector<std::string> lines;
  for (int i = 0; i < 100; ++i) {
    lines.push_back(absl::StrCat(R"({"ts":1796000000000,"method":"GET","route":"/api/gifts/:id",)",
                                 R"("status":200,"duration_ms":12.5})"));
  }
  int port = 0;  // the running instance's
  const auto events = [&port] {
    double sum = 0;
    const testing::PromText text = testing::ParsePromText(testing::HttpGet(port, "/metrics"));
    for (const auto& [key, value] : text.Samples("novapulse_events_total")) sum += value;
    return sum;
  };
  cluster.ProduceLines(kAccessTopic, 0, lines);
  {
    testing::Service first(config, dir.Path("first.log"));
    port = first.port();
    ASSERT_TRUE(WaitFor([&] { return events() >= 100; }, std::chrono::seconds(30))) << first.log();
    rd_kafka_mock_push_request_errors(cluster.get(), kHeartbeat, 1,
                                      RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID);
    int status = -2;
    ASSERT_TRUE(WaitFor(
        [&] {
          status = first.Wait();
          return status != -2;
        },
        std::chrono::seconds(20)))
        << "still running after it was fenced\n"
        << first.log();
    EXPECT_EQ(status, 1) << first.log();
    const std::string log = first.log();
    EXPECT_NE(log.find("FENCED_INSTANCE_ID"), std::string::npos) << log;
    EXPECT_NE(log.find(R"(msg="checkpoint written" reason="consumer failed")"), std::string::npos)
        << log;
    EXPECT_NE(log.find(R"(msg="exiting: the kafka consumer failed")"), std::string::npos) << log;
  }
  // Nothing was committed after the fence; the checkpoint holds offset 100.
  cluster.ProduceLines(kAccessTopic, 1,
                       std::vector<std::string>(lines.begin(), lines.begin() + 50));
  testing::Service second(config, dir.Path("second.log"));
  port = second.port();
  EXPECT_TRUE(WaitFor([&] { return events() >= 150; }, std::chrono::seconds(60))) << second.log();
  std::this_thread::sleep_for(std::chrono::seconds(1));
  EXPECT_EQ(events(), 150) << second.log();
  EXPECT_EQ(second.Terminate(std::chrono::seconds(20)), 0) << second.log();
}

}  // namespace
}  // namespace novapulse
