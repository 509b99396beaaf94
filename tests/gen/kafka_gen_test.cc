// Integration test of `novapulse gen --kafka` against a real single-node
// Kafka broker (scripts/kafka-broker), read back with kcat: the topics hold
// exactly the lines `gen --out` writes for the same flags, and every outbox
// message's lifecycle sits in one partition, in order.
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gen/kafka_sink.h"
#include "gtest/gtest.h"
#include "tests/pipeline/kafka_broker.h"
#include "tests/pipeline/test_process.h"

namespace novapulse {
namespace {

using ::novapulse::testing::ProcessResult;
using ::novapulse::testing::ReadWholeFile;
using ::novapulse::testing::RunNovapulse;
using ::novapulse::testing::ScratchDir;
using Clock = std::chrono::steady_clock;

constexpr char kAccessTopic[] = "novagift.access-log";
constexpr char kOutboxTopic[] = "novagift.outbox";

using testing::Broker;
using testing::Script;
using testing::Shell;
using testing::ShellResult;

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    lines.emplace_back(line);
  }
  return lines;
}

// A message read back by kcat -f '%p %s\n'.
struct Consumed {
  int partition = -1;
  std::string line;
};

// Everything in `topic`, in partition order per partition.
std::vector<Consumed> Consume(const std::string& address, const char* topic) {
  const ShellResult r =
      Shell(absl::StrCat("kcat -C -e -q -b ", address, " -t ", topic, " -f '%p %s\\n'"),
            /*merge_stderr=*/false);
  EXPECT_EQ(r.status, 0) << "kcat -C -t " << topic;
  std::vector<Consumed> out;
  for (const std::string& raw : Lines(r.output)) {
    const size_t space = raw.find(' ');
    if (space == std::string::npos) {
      ADD_FAILURE() << "kcat line without a partition: " << raw;
      continue;
    }
    out.push_back({std::stoi(raw.substr(0, space)), raw.substr(space + 1)});
  }
  return out;
}

std::vector<std::string> Sorted(std::vector<std::string> lines) {
  std::sort(lines.begin(), lines.end());
  return lines;
}

// Compares multisets without printing thousands of lines on failure.
void ExpectSameMultiset(const std::vector<std::string>& want, const std::vector<std::string>& got,
                        const char* topic) {
  EXPECT_EQ(want.size(), got.size()) << topic;
  const std::vector<std::string> a = Sorted(want);
  const std::vector<std::string> b = Sorted(got);
  const auto [ia, ib] = std::mismatch(a.begin(), a.end(), b.begin(), b.end());
  EXPECT_TRUE(ia == a.end() && ib == b.end())
      << topic << ": first difference: expected " << (ia == a.end() ? "<end>" : *ia) << ", got "
      << (ib == b.end() ? "<end>" : *ib);
}

TEST(KafkaGen, TopicsHoldExactlyTheFileLinesWithEachLifecycleInOnePartition) {
  const Clock::time_point test_start = Clock::now();
  ScratchDir dir;
  Broker broker(dir.Path("broker"));
  const std::string broker_error = broker.Start();
  ASSERT_EQ(broker_error, "") << "scripts/kafka-broker start failed";
  const std::string& address = broker.address();
  for (const char* topic : {kAccessTopic, kOutboxTopic}) {
    const ShellResult r = Shell(absl::StrCat(Script("kafka-topic"), " --bootstrap ", address,
                                             " create ", topic, " --partitions 4"));
    ASSERT_EQ(r.status, 0) << "creating " << topic << ": " << r.output;
  }

  const std::vector<std::string> flags = {"--duration", "2m", "--rate", "200", "--seed", "3"};
  // Without sticky partitioning every unkeyed line picks a random partition:
  // with it, a fast run may fill a single batch and land in one partition.
  std::vector<std::string> to_kafka = {"gen",
                                       "--kafka",
                                       address,
                                       "--speed",
                                       "max",
                                       "--kafka-property",
                                       "sticky.partitioning.linger.ms=0"};
  to_kafka.insert(to_kafka.end(), flags.begin(), flags.end());
  const ProcessResult produced = RunNovapulse(to_kafka);
  ASSERT_EQ(produced.exit_code, 0) << produced.err;
  EXPECT_NE(produced.err.find("0 delivery failures"), std::string::npos) << produced.err;
  EXPECT_NE(produced.err.find("access-log events/s"), std::string::npos) << produced.err;

  std::vector<std::string> to_files = {"gen", "--out", dir.Path("files")};
  to_files.insert(to_files.end(), flags.begin(), flags.end());
  const ProcessResult written = RunNovapulse(to_files);
  ASSERT_EQ(written.exit_code, 0) << written.err;
  const std::vector<std::string> access = Lines(ReadWholeFile(dir.Path("files/access-log.ndjson")));
  const std::vector<std::string> outbox = Lines(ReadWholeFile(dir.Path("files/outbox.ndjson")));
  ASSERT_GT(access.size(), 10000u);  // ~0.5x of --rate at midnight UTC
  ASSERT_GT(outbox.size(), 50u);
  EXPECT_NE(produced.err.find(absl::StrCat(kAccessTopic, ": ", access.size(), " lines produced, ",
                                           access.size(), " delivered")),
            std::string::npos)
      << produced.err;

  std::vector<std::string> got_access;
  std::set<int> access_partitions;
  for (Consumed& c : Consume(address, kAccessTopic)) {
    access_partitions.insert(c.partition);
    got_access.push_back(std::move(c.line));
  }
  ExpectSameMultiset(access, got_access, kAccessTopic);
  EXPECT_GT(access_partitions.size(), 1u) << "unkeyed access lines should spread";

  const std::vector<Consumed> got_outbox_messages = Consume(address, kOutboxTopic);
  std::vector<std::string> got_outbox;
  for (const Consumed& c : got_outbox_messages) got_outbox.push_back(c.line);
  ExpectSameMultiset(outbox, got_outbox, kOutboxTopic);

  // Per message id: the lines in file order (the lifecycle) and, read back,
  // the partitions seen and the lines in the order kcat printed them, which
  // within one partition is offset order.
  std::map<std::string, std::vector<std::string>> want_lifecycle;
  for (const std::string& line : outbox) {
    const std::string_view id = OutboxMessageKey(line);
    ASSERT_FALSE(id.empty()) << line;
    want_lifecycle[std::string(id)].push_back(line);
  }
  std::map<std::string, std::set<int>> partitions_of;
  std::map<std::string, std::vector<std::string>> got_lifecycle;
  for (const Consumed& c : got_outbox_messages) {
    const std::string id(OutboxMessageKey(c.line));
    partitions_of[id].insert(c.partition);
    got_lifecycle[id].push_back(c.line);
  }
  std::set<int> outbox_partitions;
  for (const auto& [id, partitions] : partitions_of) {
    EXPECT_EQ(partitions.size(), 1u) << id << " is spread over partitions";
    outbox_partitions.insert(partitions.begin(), partitions.end());
  }
  EXPECT_GT(outbox_partitions.size(), 1u) << "message ids should spread over partitions";
  size_t multi_step = 0;
  for (const auto& [id, lines] : want_lifecycle) {
    if (lines.size() > 1) ++multi_step;
    EXPECT_EQ(got_lifecycle[id], lines) << id << " out of lifecycle order";
  }
  EXPECT_GT(multi_step, 10u);
  EXPECT_LT(Clock::now() - test_start, std::chrono::seconds(60));
}

TEST(KafkaGen, UnreachableBrokerIsReportedAsDeliveryFailures) {
  // Nothing listens on port 1; messages time out after 2 s.
  const ProcessResult r = RunNovapulse(
      {"gen", "--kafka", "127.0.0.1:1", "--speed", "max", "--duration", "10s", "--rate", "20",
       "--kafka-property", "message.timeout.ms=2000", "--kafka-property", "log_level=0"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(r.err.find("0 delivery failures"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("messages failed delivery"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(absl::StrCat(kAccessTopic, ": ")), std::string::npos) << r.err;
}

TEST(KafkaGen, RefusedPropertyIsNamed) {
  const ProcessResult r =
      RunNovapulse({"gen", "--kafka", "127.0.0.1:1", "--kafka-property", "no.such.property=1"});
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("no.such.property"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace novapulse
