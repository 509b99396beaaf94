#include "base/file.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/pipeline/test_process.h"

namespace novapulse {
namespace {

using ::novapulse::testing::ScratchDir;
using ::novapulse::testing::WriteWholeFile;

TEST(ReadRegularFile, ReadsTheWholeFile) {
  ScratchDir dir;
  std::string text(200'000, 'x');
  text += "end";
  WriteWholeFile(dir.Path("f"), text);
  const absl::StatusOr<std::string> read = ReadRegularFile(dir.Path("f"));
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, text);
}

TEST(ReadRegularFile, AnEmptyFileIsEmptyNotAnError) {
  ScratchDir dir;
  WriteWholeFile(dir.Path("empty"), "");
  const absl::StatusOr<std::string> read = ReadRegularFile(dir.Path("empty"));
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, "");
}

TEST(ReadRegularFile, ADirectoryADeviceAndAMissingFileAreErrorsNamingThePath) {
  ScratchDir dir;
  EXPECT_EQ(ReadRegularFile(dir.path()).status().message(), dir.path() + ": is a directory");
  EXPECT_EQ(ReadRegularFile("/dev/null").status().message(), "/dev/null: not a regular file");
  EXPECT_EQ(ReadRegularFile(dir.Path("missing")).status().message(),
            dir.Path("missing") + ": cannot open: No such file or directory");
}

}  // namespace
}  // namespace novapulse
