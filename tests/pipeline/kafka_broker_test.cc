// scripts/kafka-broker itself: a port taken between its pick and the
// broker's bind makes a new broker start again on other ports, not fail.
#include "tests/pipeline/kafka_broker.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/pipeline/run_service.h"
#include "tests/pipeline/test_process.h"

namespace novapulse {
namespace {

using ::novapulse::testing::Broker;
using ::novapulse::testing::FreePort;
using ::novapulse::testing::HeldPort;
using ::novapulse::testing::ScratchDir;
using ::testing::HasSubstr;

TEST(KafkaBroker, StartsAgainOnOtherPortsWhenAPortIsTaken) {
  ScratchDir dir;
  const HeldPort taken;  // listening for the whole test
  Broker broker(dir.Path("broker"));
  const std::string ports = absl::StrCat(taken.port(), " ", FreePort());
  ASSERT_EQ(broker.Start(absl::StrCat("NOVAPULSE_KAFKA_PORTS='", ports, "'")), "");
  EXPECT_THAT(broker.output(), HasSubstr("was taken before the broker bound it"));
  EXPECT_NE(broker.address(), absl::StrCat("127.0.0.1:", taken.port()));
  // It answers on the address it printed.
  const testing::ShellResult listed =
      testing::Shell(absl::StrCat("kcat -L -b ", broker.address(), " -m 10"));
  EXPECT_EQ(listed.status, 0) << listed.output;
  EXPECT_THAT(listed.output, HasSubstr(absl::StrCat("broker 1 at ", broker.address())));
}

}  // namespace
}  // namespace novapulse
