// The novapulse command line, run as a process: help and usage errors (exit
// 2, naming the problem), input errors (exit 1, naming the path).
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/pipeline/test_process.h"
#include "tests/sinks/prometheus_text.h"

namespace novapulse {
namespace {

using ::novapulse::testing::ParsePromText;
using ::novapulse::testing::ProcessResult;
using ::novapulse::testing::ReadWholeFile;
using ::novapulse::testing::RunNovapulse;
using ::novapulse::testing::ScratchDir;
using ::novapulse::testing::WriteWholeFile;
using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr char kAccessLine[] =
    R"({"ts":"2026-11-26T00:00:01.000Z","method":"GET","route":"/api/gifts","status":200,"duration_ms":12.5})";

class Cli : public ::testing::Test {
 protected:
  Cli() { WriteWholeFile(Good(), std::string(kAccessLine) + "\n"); }
  std::string Good() const { return dir_.Path("good.ndjson"); }

  ScratchDir dir_;
};

TEST_F(Cli, TopLevelHelpPrintsUsageAndExitsZero) {
  for (const char* flag : {"--help", "-h", "help"}) {
    SCOPED_TRACE(flag);
    const ProcessResult r = RunNovapulse({flag});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_THAT(r.out, HasSubstr("Usage: novapulse COMMAND"));
    EXPECT_THAT(r.out, HasSubstr("replay"));
    EXPECT_THAT(r.out, HasSubstr("gen"));
    EXPECT_THAT(r.err, IsEmpty());
  }
}

TEST_F(Cli, NoCommandPrintsUsageOnStderrAndExitsTwo) {
  const ProcessResult r = RunNovapulse({});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("Usage: novapulse COMMAND"));
  EXPECT_THAT(r.out, IsEmpty());
}

TEST_F(Cli, ReplayHelpPrintsItsOptionsAndExitsZero) {
  const ProcessResult r = RunNovapulse({"replay", "--help"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Usage: novapulse replay"));
  for (const char* flag : {"--threads", "--output", "--topic", "--max-record-bytes",
                           "--series-limit", "--chunk-bytes", "--quiet"}) {
    EXPECT_THAT(r.out, HasSubstr(flag));
  }
  EXPECT_THAT(r.err, IsEmpty());
}

TEST_F(Cli, ReplayHelpWinsOverOtherArgumentsAndReadsNothing) {
  const ProcessResult r = RunNovapulse({"replay", dir_.Path("missing.ndjson"), "-h"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Usage: novapulse replay"));
  EXPECT_THAT(r.err, IsEmpty());
}

TEST_F(Cli, GenHelpPrintsItsOptionsAndExitsZero) {
  const ProcessResult r = RunNovapulse({"gen", "--help"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("Usage: novapulse gen"));
  for (const char* flag : {"--out", "--duration", "--rate", "--incident", "--compress"}) {
    EXPECT_THAT(r.out, HasSubstr(flag));
  }
}

TEST_F(Cli, UnknownCommandExitsTwoNamingIt) {
  const ProcessResult r = RunNovapulse({"frobnicate", "x"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("unknown command 'frobnicate'"));
  EXPECT_THAT(r.out, IsEmpty());
}

TEST_F(Cli, UnknownFlagExitsTwoNamingIt) {
  const ProcessResult replay = RunNovapulse({"replay", "--frobnicate", Good()});
  EXPECT_EQ(replay.exit_code, 2);
  EXPECT_THAT(replay.err, HasSubstr("--frobnicate"));
  EXPECT_THAT(replay.err, HasSubstr("novapulse replay --help"));
  EXPECT_THAT(replay.out, IsEmpty()) << "no metrics after a usage error";

  const ProcessResult gen = RunNovapulse({"gen", "--out", dir_.Path("g"), "--frobnicate", "1"});
  EXPECT_EQ(gen.exit_code, 2);
  EXPECT_THAT(gen.err, HasSubstr("--frobnicate"));
}

TEST_F(Cli, MissingFlagValueExitsTwoNamingTheFlag) {
  for (const char* flag : {"--threads", "--output", "--topic", "--max-record-bytes",
                           "--series-limit", "--chunk-bytes"}) {
    SCOPED_TRACE(flag);
    const ProcessResult r = RunNovapulse({"replay", Good(), flag});
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_THAT(r.err, HasSubstr(std::string(flag) + " needs a value"));
    EXPECT_THAT(r.out, IsEmpty());
  }
  const ProcessResult gen = RunNovapulse({"gen", "--out"});
  EXPECT_EQ(gen.exit_code, 2);
  EXPECT_THAT(gen.err, HasSubstr("--out"));
}

TEST_F(Cli, BadFlagValueExitsTwoNamingTheFlagAndValue) {
  const std::vector<std::vector<std::string>> cases = {
      {"--threads", "0"},           {"--threads", "abc"},    {"--threads", "2000"},
      {"--max-record-bytes", "10"}, {"--chunk-bytes", "-1"}, {"--series-limit", "0"},
  };
  for (const std::vector<std::string>& c : cases) {
    SCOPED_TRACE(c[0] + " " + c[1]);
    const ProcessResult r = RunNovapulse({"replay", c[0], c[1], Good()});
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_THAT(r.err, HasSubstr(c[0]));
    EXPECT_THAT(r.err, HasSubstr("'" + c[1] + "'"));
  }
  const ProcessResult topic = RunNovapulse({"replay", "--topic", "kafka", Good()});
  EXPECT_EQ(topic.exit_code, 2);
  EXPECT_THAT(topic.err, HasSubstr("unknown topic 'kafka'"));
}

TEST_F(Cli, BooleanFlagWithAValueIsAUsageError) {
  // "--quiet=no" silently meaning "quiet" (or "--progress=false" meaning
  // progress) would do the opposite of what was asked.
  for (const char* arg : {"--quiet=no", "--progress=false", "--report=0"}) {
    SCOPED_TRACE(arg);
    const ProcessResult r = RunNovapulse({"replay", arg, Good()});
    EXPECT_EQ(r.exit_code, 2) << r.err;
  }
}

TEST_F(Cli, NoInputFilesExitsTwo) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"replay"}, {"replay", "--threads", "2", "--topic", "outbox"}}) {
    const ProcessResult r = RunNovapulse(args);
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_THAT(r.err, HasSubstr("no input files"));
    EXPECT_THAT(r.out, IsEmpty());
  }
}

TEST_F(Cli, MissingFileExitsOneNamingThePath) {
  const std::string missing = dir_.Path("no-such.ndjson");
  for (const std::vector<std::string>& args : {std::vector<std::string>{"replay", missing},
                                               {"replay", Good(), missing},
                                               {"replay", "--threads", "2", missing, Good()}}) {
    const ProcessResult r = RunNovapulse(args);
    EXPECT_EQ(r.exit_code, 1);
    EXPECT_THAT(r.err, HasSubstr(missing));
    EXPECT_THAT(r.err, HasSubstr("No such file"));
    EXPECT_THAT(r.out, IsEmpty()) << "no metrics from a failed replay";
  }
}

TEST_F(Cli, DoubleDashEndsFlags) {
  // After "--", a name that looks like a flag is a file.
  const ProcessResult r = RunNovapulse({"replay", "--", "--threads"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("--threads: cannot open"));
}

TEST_F(Cli, UnwritableOutputExitsOneNamingItAndTheReason) {
  const std::string out = dir_.Path("no-such-dir/metrics.txt");
  const ProcessResult r = RunNovapulse({"replay", "--output", out, Good()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr(out + ": cannot open for writing: No such file or directory"));
}

// Every command's help has one shape: "Usage: novapulse ..." first, an
// "Options:" section listing --help, on stdout, exit 0; the top level lists
// --version too.
TEST_F(Cli, EveryCommandsHelpHasOneFormat) {
  for (const char* command :
       {"run", "replay", "gen", "check-config", "check-metrics", "check-rules"}) {
    SCOPED_TRACE(command);
    const ProcessResult r = RunNovapulse({command, "--help"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(r.out.starts_with(std::string("Usage: novapulse ") + command)) << r.out;
    EXPECT_THAT(r.out, HasSubstr("\nOptions:\n"));
    EXPECT_THAT(r.out, ContainsRegex("\n  (-h, )?--help "));
    EXPECT_THAT(r.out, Not(HasSubstr("usage:")));
    EXPECT_THAT(r.err, IsEmpty());
  }
  const ProcessResult top = RunNovapulse({"--help"});
  EXPECT_THAT(top.out, HasSubstr("\nOptions:\n"));
  EXPECT_THAT(top.out, HasSubstr("--version"));
}

TEST_F(Cli, RenderAlertmanagerConfigHelpExitsZero) {
  const ProcessResult r = testing::RunProcess(
      {std::string(NOVAPULSE_SOURCE_DIR) + "/scripts/render-alertmanager-config", "--help"},
      "/dev/null");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(r.out.starts_with("Usage: render-alertmanager-config TEMPLATE OUTPUT")) << r.out;
}

TEST_F(Cli, AnInputWithoutRecordsIsReadButWarnedAbout) {
  const std::string empty = dir_.Path("empty.ndjson");
  WriteWholeFile(empty, "");
  const ProcessResult r = RunNovapulse({"replay", "--output", dir_.Path("m.prom"), empty});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("warning: no records read"));
  const ProcessResult stdin_run =
      RunNovapulse({"replay", "-q", "--output", dir_.Path("m.prom"), "-"});
  EXPECT_EQ(stdin_run.exit_code, 0) << stdin_run.err;
  EXPECT_THAT(stdin_run.err, HasSubstr("warning: no records read"));
  const ProcessResult good = RunNovapulse({"replay", "--output", dir_.Path("m.prom"), Good()});
  EXPECT_THAT(good.err, Not(HasSubstr("warning")));
}

// Progress asked for on a stderr that is not a terminal: no carriage return
// or terminal escape, not even the clearing one at the end. (A run this short
// prints no report; FormatProgress's test covers the lines themselves.)
TEST_F(Cli, ProgressOnAPipeWritesNoTerminalControls) {
  const ProcessResult r =
      RunNovapulse({"replay", "--progress", "--output", dir_.Path("m.prom"), Good()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, Not(HasSubstr("\r")));
  EXPECT_THAT(r.err, Not(HasSubstr("\033[")));
}

TEST_F(Cli, FlagsTakeInlineValuesToo) {
  const std::string out = dir_.Path("m.txt");
  const ProcessResult r =
      RunNovapulse({"replay", "--threads=2", "--topic=access-log", "--output=" + out, Good()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, IsEmpty());
  const testing::PromText text = ParsePromText(ReadWholeFile(out));
  EXPECT_EQ(text.Value("http_requests_total",
                       {{"method", "GET"}, {"route", "/api/gifts"}, {"status", "200"}}),
            1);
}

TEST_F(Cli, MetricsGoToStdoutAndTheSummaryToStderr) {
  const ProcessResult r = RunNovapulse({"replay", Good()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("# TYPE http_requests_total counter"));
  EXPECT_THAT(r.err, HasSubstr("replayed 1 records (1 accepted, 0 rejected)"));
  EXPECT_THAT(r.err,
              ContainsRegex("\ncpu: [0-9]+\\.[0-9]{2} s reading the input, [0-9]+\\.[0-9]{2} s "
                            "parsing and aggregating\n"));
  EXPECT_THAT(r.err, Not(HasSubstr("\033[K"))) << "no progress line when stderr is a file";
}

TEST_F(Cli, QuietSilencesTheSummaryAndReportAddsKeyFigures) {
  const ProcessResult quiet = RunNovapulse({"replay", "-q", Good()});
  ASSERT_EQ(quiet.exit_code, 0);
  EXPECT_THAT(quiet.err, IsEmpty());
  EXPECT_THAT(quiet.out, HasSubstr("http_requests_total"));

  const ProcessResult report = RunNovapulse({"replay", "--quiet", "--report", Good()});
  ASSERT_EQ(report.exit_code, 0);
  EXPECT_THAT(report.err, HasSubstr("requests            1"));
  EXPECT_THAT(report.err, Not(HasSubstr("replayed")));
}

TEST_F(Cli, StdinIsReadForDash) {
  const ProcessResult r = RunNovapulse({"replay", "-q", "-"}, Good());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const testing::PromText text = ParsePromText(r.out);
  EXPECT_EQ(text.Value("novapulse_events_total",
                       {{"topic", "novagift.access-log"}, {"result", "accepted"}}),
            1);
}

TEST_F(Cli, GenWithoutOutExitsTwoNamingTheFlag) {
  const ProcessResult r = RunNovapulse({"gen", "--duration", "1m"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--out"));
}

TEST_F(Cli, VersionPrintsTheVersion) {
  const ProcessResult r = RunNovapulse({"--version"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_THAT(r.out, HasSubstr("novapulse 0.1.0"));
}

}  // namespace
}  // namespace novapulse

namespace novapulse {
namespace {

using ::novapulse::testing::ProcessResult;
using ::novapulse::testing::RunNovapulse;
using ::novapulse::testing::ScratchDir;
using ::novapulse::testing::WriteWholeFile;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(CheckRules, ValidFilesReportWhatTheRulesReadAndExitZero) {
  const std::string rules = std::string(NOVAPULSE_SOURCE_DIR) + "/configs/alerts/novagift.yml";
  const ProcessResult r = RunNovapulse({"check-rules", rules});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(rules + ": ok, 4 group(s), 8 alerting and 7 recording rule(s)"));
  EXPECT_THAT(r.out, HasSubstr("gifts_claimed_total"));
  EXPECT_THAT(r.out, HasSubstr("bytes per series"));
}

TEST(CheckRules, UnsupportedPromQLExitsOneWithFileLineAndColumn) {
  ScratchDir dir;
  const std::string path = dir.Path("bad.yml");
  WriteWholeFile(path,
                 "groups:\n  - name: g\n    rules:\n      - alert: A\n"
                 "        expr: sum(rate(x[5m])) > 1\n      - alert: B\n"
                 "        expr: label_replace(x, \"a\", \"b\", \"c\", \"d\")\n");
  const ProcessResult r = RunNovapulse({"check-rules", path});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr(path + ":7:15: unsupported: function label_replace"));
}

TEST(CheckRules, ADirectoryExitsOneNamingIt) {
  ScratchDir dir;
  const ProcessResult r = RunNovapulse({"check-rules", dir.path()});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr(dir.path() + ": is a directory"));
  EXPECT_THAT(r.out, Not(HasSubstr("ok")));
}

TEST(CheckRules, AnEmptyFileIsOkWithZeroGroups) {
  ScratchDir dir;
  const std::string path = dir.Path("empty.yml");
  WriteWholeFile(path, "");
  const ProcessResult r = RunNovapulse({"check-rules", path});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr(path + ": ok, 0 group(s), 0 alerting and 0 recording rule(s)"));
}

TEST(CheckRules, ReplayRefusesABadRuleFileBeforeReading) {
  ScratchDir dir;
  WriteWholeFile(dir.Path("bad.yml"), "groups:\n  - name: g\n    rules:\n      - alert: A\n");
  const ProcessResult r =
      RunNovapulse({"replay", "--rules", dir.Path("bad.yml"), dir.Path("missing.ndjson")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr(dir.Path("bad.yml") + ":4:9: rule 'A' has no expr"));
}

}  // namespace
}  // namespace novapulse
