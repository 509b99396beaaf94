#include "sinks/dead_letter.h"

#include <simdjson.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace novapulse {
namespace {

using ::testing::HasSubstr;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

class DeadLetterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("dead_letter_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  std::unique_ptr<DeadLetterWriter> Open(DeadLetterOptions options) {
    absl::StatusOr<std::unique_ptr<DeadLetterWriter>> w =
        DeadLetterWriter::Open(std::move(options));
    EXPECT_TRUE(w.ok()) << w.status();
    return w.ok() ? *std::move(w) : nullptr;
  }

  std::filesystem::path dir_;
};

// The decoded record of one dead-letter line: its "bytes" or decoded "bytes_base64".
std::string RecordOf(const std::string& line) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  EXPECT_EQ(parser.parse(line).get(doc), simdjson::SUCCESS) << line;
  std::string_view text;
  if (doc["bytes"].get(text) == simdjson::SUCCESS) return std::string(text);
  std::string_view b64;
  EXPECT_EQ(doc["bytes_base64"].get(b64), simdjson::SUCCESS) << line;
  std::string decoded;
  EXPECT_TRUE(absl::Base64Unescape(absl::string_view(b64.data(), b64.size()), &decoded));
  return decoded;
}

TEST_F(DeadLetterTest, FileRecordHasReasonTopicSourceLineLengthAndBytes) {
  auto w = Open({.path = Path("dl")});
  DeadLetterBatch batch;
  batch.Add(RejectReason::kWrongType, Topic::kAccessLog, {.line = 3}, R"({"status":"200"})");
  w->Write(batch, "in/access.ndjson", 100);
  EXPECT_EQ(ReadFile(Path("dl")),
            R"({"reason":"wrong_type","topic":"novagift.access-log","source":"in/access.ndjson",)"
            R"("line":103,"length":16,"bytes":"{\"status\":\"200\"}"})"
            "\n");
  EXPECT_EQ(w->written(), 1u);
  EXPECT_EQ(w->dropped(), 0u);
}

TEST_F(DeadLetterTest, KafkaRecordHasPartitionAndOffsetAndTheConfiguredTopicName) {
  DeadLetterOptions options{.path = Path("dl")};
  options.topic_names[static_cast<size_t>(Topic::kOutbox)] = "prod.outbox";
  auto w = Open(std::move(options));
  DeadLetterBatch batch;
  batch.Add(RejectReason::kUnknownType, Topic::kOutbox, {.partition = 3, .offset = 812}, "{}");
  batch.Add(RejectReason::kUnknownTopic, Topic::kAuto, {.partition = 0, .offset = 0}, "[]");
  w->Write(batch);
  EXPECT_EQ(ReadFile(Path("dl")),
            R"({"reason":"unknown_type","topic":"prod.outbox","partition":3,"offset":812,)"
            R"("length":2,"bytes":"{}"})"
            "\n"
            R"({"reason":"unknown_topic","topic":"unknown","partition":0,"offset":0,)"
            R"("length":2,"bytes":"[]"})"
            "\n");
}

TEST_F(DeadLetterTest, ControlCharactersNulAndQuotesAreEscaped) {
  auto w = Open({.path = Path("dl")});
  DeadLetterBatch batch;
  const std::string record(
      "a\"b\\c\td\x01"
      "e\0f\r",
      12);
  batch.Add(RejectReason::kMalformedJson, Topic::kAccessLog, {}, record);
  w->Write(batch);
  const std::string text = ReadFile(Path("dl"));
  EXPECT_THAT(text, HasSubstr(R"("bytes":"a\"b\\c\td\u0001e\u0000f\r")"));
  EXPECT_EQ(RecordOf(Lines(text)[0]), record);
}

TEST_F(DeadLetterTest, ASourceNameThatIsNotUtf8KeepsItsValidCharacters) {
  auto w = Open({.path = Path("dl")});
  DeadLetterBatch batch;
  batch.Add(RejectReason::kMalformedJson, Topic::kAccessLog, {.line = 1}, "x");
  w->Write(batch, "caf\xc3\xa9-\xff\"q\".ndjson");
  const std::vector<std::string> lines = Lines(ReadFile(Path("dl")));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(lines[0], HasSubstr("\"source\":\"caf\xc3\xa9-\\ufffd\\\"q\\\".ndjson\""));
  EXPECT_EQ(RecordOf(lines[0]), "x");  // the line is valid JSON
}

TEST_F(DeadLetterTest, InvalidUtf8IsWrittenAsBase64) {
  auto w = Open({.path = Path("dl")});
  DeadLetterBatch batch;
  const std::string record = "{\"method\":\"G\xC3\x28T\"}";
  batch.Add(RejectReason::kMalformedJson, Topic::kAccessLog, {.line = 1}, record);
  batch.Add(RejectReason::kMalformedJson, Topic::kAccessLog, {.line = 2},
            "\xed\xa0\x80");  // surrogate
  w->Write(batch, "x");
  const std::vector<std::string> lines = Lines(ReadFile(Path("dl")));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_THAT(lines[0], HasSubstr("\"bytes_base64\":\""));
  EXPECT_THAT(lines[0], ::testing::Not(HasSubstr("\"bytes\":")));
  EXPECT_EQ(RecordOf(lines[0]), record);
  EXPECT_EQ(RecordOf(lines[1]), "\xed\xa0\x80");
}

TEST_F(DeadLetterTest, LongRecordIsTruncatedWithItsFullLength) {
  auto w = Open({.path = Path("dl")});
  DeadLetterBatch batch;
  const std::string record(10 << 20, 'x');
  batch.Add(RejectReason::kOversize, Topic::kOutbox, {}, record);
  w->Write(batch);
  const std::string line = Lines(ReadFile(Path("dl")))[0];
  EXPECT_THAT(line, HasSubstr("\"length\":10485760,\"truncated\":true,\"bytes\":\"xxx"));
  EXPECT_EQ(RecordOf(line), record.substr(0, kMaxDeadLetterRecordBytes));
}

TEST_F(DeadLetterTest, TruncationKeepsValidUtf8Valid) {
  auto w = Open({.path = Path("dl")});
  DeadLetterBatch batch;
  // A 3-byte character straddles the cut.
  const std::string record =
      std::string(kMaxDeadLetterRecordBytes - 1, 'a') + "\xe2\x82\xac" + "tail";
  batch.Add(RejectReason::kOversize, Topic::kAccessLog, {}, record);
  w->Write(batch);
  const std::string line = Lines(ReadFile(Path("dl")))[0];
  EXPECT_THAT(line, HasSubstr("\"truncated\":true,\"bytes\":\"aaa"));
  EXPECT_EQ(RecordOf(line), std::string(kMaxDeadLetterRecordBytes - 1, 'a'));
}

TEST_F(DeadLetterTest, HeadOfALongerRecordCarriesTheGivenLength) {
  auto w = Open({.path = Path("dl")});
  DeadLetterBatch batch;
  batch.Add(RejectReason::kOversize, Topic::kAuto, {.line = 7}, "{\"pad\":\"ppp", 5000000);
  w->Write(batch, "big.ndjson");
  EXPECT_THAT(ReadFile(Path("dl")), HasSubstr(R"("line":7,"length":5000000,"truncated":true,)"));
}

TEST_F(DeadLetterTest, RotatesBySizeKeepingTheNewestFiles) {
  auto w = Open({.path = Path("dl"), .max_bytes = 400, .keep = 2});
  std::vector<std::string> written;
  for (int i = 0; i < 40; ++i) {
    DeadLetterBatch batch;
    const std::string record = "{\"n\":" + std::to_string(i) + "}";
    batch.Add(RejectReason::kMissingField, Topic::kAccessLog, {.line = 1}, record);
    w->Write(batch, "f", static_cast<uint64_t>(i));
    written.push_back(record);
  }
  EXPECT_TRUE(std::filesystem::exists(Path("dl.1")));
  EXPECT_TRUE(std::filesystem::exists(Path("dl.2")));
  EXPECT_FALSE(std::filesystem::exists(Path("dl.3")));
  std::vector<std::string> kept;
  for (const std::string name : {"dl.2", "dl.1", "dl"}) {
    const std::string text = ReadFile(Path(name));
    EXPECT_LE(text.size(), 400u) << name;
    EXPECT_FALSE(text.empty()) << name;
    for (const std::string& line : Lines(text)) kept.push_back(RecordOf(line));
  }
  // The newest records, in order, none lost between the files kept.
  ASSERT_FALSE(kept.empty());
  const std::vector<std::string> newest(written.end() - static_cast<long>(kept.size()),
                                        written.end());
  EXPECT_EQ(kept, newest);
  EXPECT_EQ(w->written(), 40u);
}

TEST_F(DeadLetterTest, KeepZeroStartsAfreshOnRotation) {
  auto w = Open({.path = Path("dl"), .max_bytes = 200, .keep = 0});
  for (int i = 0; i < 10; ++i) {
    DeadLetterBatch batch;
    batch.Add(RejectReason::kMissingField, Topic::kAccessLog, {}, "{\"n\":1}");
    w->Write(batch);
  }
  EXPECT_FALSE(std::filesystem::exists(Path("dl.1")));
  EXPECT_LE(ReadFile(Path("dl")).size(), 200u);
}

TEST_F(DeadLetterTest, AppendsToAnExistingFileUnlessTruncating) {
  { std::ofstream(Path("dl")) << "old\n"; }
  DeadLetterBatch batch;
  batch.Add(RejectReason::kNotObject, Topic::kAccessLog, {}, "1");
  Open({.path = Path("dl")})->Write(batch);
  EXPECT_EQ(Lines(ReadFile(Path("dl"))).size(), 2u);
  Open({.path = Path("dl"), .truncate = true})->Write(batch);
  EXPECT_EQ(Lines(ReadFile(Path("dl"))).size(), 1u);
}

TEST_F(DeadLetterTest, OpenErrorNamesThePath) {
  absl::StatusOr<std::unique_ptr<DeadLetterWriter>> w =
      DeadLetterWriter::Open({.path = Path("no/such/dir/dl")});
  ASSERT_FALSE(w.ok());
  EXPECT_THAT(std::string(w.status().message()), HasSubstr("no/such/dir/dl: cannot open"));
}

TEST_F(DeadLetterTest, WriteErrorsCountAsDroppedAndAreKept) {
  auto w = Open({.path = "/dev/full"});
  DeadLetterBatch batch;
  batch.Add(RejectReason::kNotObject, Topic::kAccessLog, {}, "1");
  batch.Add(RejectReason::kNotObject, Topic::kAccessLog, {}, "2");
  w->Write(batch);
  EXPECT_EQ(w->written(), 0u);
  EXPECT_EQ(w->dropped(), 2u);
  EXPECT_FALSE(w->error().ok());
  MetricFamilies collected;
  w->CollectMetrics(&collected);
  const std::vector<FamilySnapshot>& families = collected.families();
  ASSERT_EQ(families.size(), 1u);
  EXPECT_EQ(families[0].def->name, "novapulse_dead_letters_total");
  EXPECT_EQ(families[0].keys[0], "written");
  EXPECT_EQ(families[0].Gauge(0), 0);
  EXPECT_EQ(families[0].keys[1], "dropped");
  EXPECT_EQ(families[0].Gauge(1), 2);
}

TEST_F(DeadLetterTest, ConcurrentWritersNeverInterleaveLines) {
  auto w = Open({.path = Path("dl"), .max_bytes = 1 << 16, .keep = 100});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&w, t] {
      DeadLetterBatch batch;
      for (int i = 0; i < 200; ++i) {
        batch.Clear();
        batch.Add(RejectReason::kWrongType, Topic::kOutbox, {.line = 1},
                  std::string(100 + t * 37, static_cast<char>('a' + t)));
        w->Write(batch);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(w->written(), 800u);
  size_t lines = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir_)) {
    for (const std::string& line : Lines(ReadFile(entry.path().string()))) {
      const std::string record = RecordOf(line);
      ASSERT_FALSE(record.empty());
      EXPECT_EQ(record, std::string(record.size(), record[0]));
      ++lines;
    }
  }
  EXPECT_EQ(lines, 800u);
}

}  // namespace
}  // namespace novapulse
