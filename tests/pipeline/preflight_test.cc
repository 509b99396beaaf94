// CheckStartupResources on Config values: what passes (port 0, a checkpoint
// directory still to be made), what fails, one line per failure naming the
// key, and that nothing is created. `novapulse check-config` on files is in
// config_test.cc.
#include "pipeline/preflight.h"

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/pipeline/run_service.h"
#include "tests/pipeline/test_process.h"

namespace novapulse {
namespace {

using ::novapulse::testing::HeldPort;
using ::novapulse::testing::ScratchDir;
using ::novapulse::testing::WriteWholeFile;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

Config Listening(const std::string& listen) {
  Config config;
  config.kafka.brokers = "k:1";
  config.http.listen = listen;
  return config;
}

std::vector<std::string> Lines(const absl::Status& status) {
  return absl::StrSplit(status.message(), '\n');
}

TEST(Preflight, PortZeroAndNothingElseToCheckIsOk) {
  EXPECT_TRUE(CheckStartupResources(Listening("127.0.0.1:0")).ok());
  EXPECT_TRUE(CheckStartupResources(Listening(":0")).ok());
}

TEST(Preflight, AHeldPortFailsOnEveryInterfaceToo) {
  HeldPort held;
  ASSERT_GT(held.port(), 0);
  for (const std::string& listen :
       {absl::StrCat("127.0.0.1:", held.port()), absl::StrCat(":", held.port())}) {
    const absl::Status status = CheckStartupResources(Listening(listen));
    EXPECT_EQ(status.message(), absl::StrCat("http.listen: cannot bind ", listen, ": port in use"));
  }
}

// A reload: the port the running service holds (here: `held`) is free once
// it stops, in whatever form the new config writes the address; another
// held port is still refused, and the address must still parse.
TEST(Preflight, AReloadDoesNotBindThePortTheRunningServiceHolds) {
  HeldPort held;
  HeldPort other;
  ASSERT_GT(held.port(), 0);
  const Config running = Listening(absl::StrCat(":", held.port()));
  for (const std::string& listen :
       {absl::StrCat(":", held.port()), absl::StrCat("127.0.0.1:", held.port())}) {
    EXPECT_TRUE(CheckStartupResources(Listening(listen), &running).ok()) << listen;
  }
  const std::string elsewhere = absl::StrCat("127.0.0.1:", other.port());
  EXPECT_EQ(CheckStartupResources(Listening(elsewhere), &running).message(),
            absl::StrCat("http.listen: cannot bind ", elsewhere, ": port in use"));
  EXPECT_THAT(std::string(CheckStartupResources(Listening("nowhere"), &running).message()),
              HasSubstr("bad listen address"));
}

TEST(Preflight, ACheckpointDirToBeCreatedIsOkAndNotCreated) {
  ScratchDir dir;
  Config config = Listening("127.0.0.1:0");
  config.checkpoint.dir = dir.Path("a/b/c");
  EXPECT_TRUE(CheckStartupResources(config).ok());
  EXPECT_FALSE(std::filesystem::exists(dir.Path("a")));
  config.checkpoint.dir = dir.path();
  EXPECT_TRUE(CheckStartupResources(config).ok());
}

TEST(Preflight, EveryFailureIsALineNamingItsKey) {
  ScratchDir dir;
  HeldPort held;
  ASSERT_GT(held.port(), 0);
  WriteWholeFile(dir.Path("file"), "x");
  Config config = Listening(absl::StrCat("127.0.0.1:", held.port()));
  config.rules.files = {dir.Path("missing.yml")};
  config.http.web.tls.cert_file = dir.Path("file");
  config.checkpoint.dir = dir.Path("file/state");
  config.dead_letter.path = dir.Path("file/dead.ndjson");
  const absl::Status status = CheckStartupResources(config);
  ASSERT_FALSE(status.ok());
  const std::vector<std::string> lines = Lines(status);
  // The TLS line names the key_file not set; the pair is not loaded then.
  ASSERT_EQ(lines.size(), 5u) << status;
  EXPECT_THAT(lines[0], StartsWith("rules.files: " + dir.Path("missing.yml") + ": cannot open"));
  EXPECT_THAT(lines[1], StartsWith("http.listen: cannot bind 127.0.0.1:"));
  EXPECT_EQ(lines[2], "http.tls.key_file: not set (tls needs both cert_file and key_file)");
  EXPECT_EQ(lines[lines.size() - 2], "checkpoint.dir: cannot create " + dir.Path("file/state") +
                                         ": " + dir.Path("file") + " is not a directory");
  EXPECT_EQ(lines.back(),
            "dead_letter.path: " + dir.Path("file/dead.ndjson") + ": Not a directory");
}

TEST(Preflight, TlsFilesThatDoNotLoadAreNamed) {
  ScratchDir dir;
  WriteWholeFile(dir.Path("cert.pem"), "not a certificate\n");
  WriteWholeFile(dir.Path("key.pem"), "not a key\n");
  Config config = Listening("127.0.0.1:0");
  config.http.web.tls.cert_file = dir.Path("cert.pem");
  config.http.web.tls.key_file = dir.Path("key.pem");
  const std::vector<std::string> lines = Lines(CheckStartupResources(config));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_THAT(lines[0], StartsWith("http.tls: tls cert_file " + dir.Path("cert.pem") + ": "));
}

TEST(Preflight, RulesAreBuiltAsRunBuildsThem) {
  ScratchDir dir;
  Config config = Listening("127.0.0.1:0");
  config.rules.files = {std::string(NOVAPULSE_SOURCE_DIR) + "/configs/alerts/novagift.yml"};
  EXPECT_TRUE(CheckStartupResources(config).ok());
  WriteWholeFile(dir.Path("empty.yml"), "");
  config.rules.files = {dir.Path("empty.yml")};
  EXPECT_TRUE(CheckStartupResources(config).ok());
  config.rules.files.push_back(dir.path());
  EXPECT_THAT(Lines(CheckStartupResources(config)),
              ElementsAre("rules.files: " + dir.path() + ": is a directory"));
}

TEST(Preflight, AnExistingDeadLetterFileIsOkAndKept) {
  ScratchDir dir;
  WriteWholeFile(dir.Path("dead.ndjson"), "{}\n");
  Config config = Listening("127.0.0.1:0");
  config.dead_letter.path = dir.Path("dead.ndjson");
  EXPECT_TRUE(CheckStartupResources(config).ok());
  EXPECT_EQ(testing::ReadWholeFile(dir.Path("dead.ndjson")), "{}\n");
  config.dead_letter.path = "relative-dead.ndjson";  // in the working directory
  EXPECT_TRUE(CheckStartupResources(config).ok());
  EXPECT_FALSE(std::filesystem::exists("relative-dead.ndjson"));
}

}  // namespace
}  // namespace novapulse
