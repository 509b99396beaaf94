// The YAML walker loaders share: each kind of error with its exact
// FILE:LINE:COL, the typed scalars and their ranges, ${VAR} expansion without
// echoing the environment's values, the error cap, and loading one document.
#include "base/yaml_reader.h"

#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace novapulse {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

enum class Mode { kSlow, kFast };

struct Spec {
  std::string name;
  int64_t port = 0;
  double ratio = 0;
  bool enabled = false;
  absl::Duration every = absl::ZeroDuration();
  Mode mode = Mode::kSlow;
  std::vector<std::string> tags;
};

// Reads `yaml` as "spec.yaml" with one small schema that uses every helper;
// returns the errors, or "" when there are none.
std::string Read(std::string_view yaml, Spec* spec) {
  YamlReader reader("spec.yaml");
  LoadYamlDocument(yaml, &reader, [&](const YAML::Node& root) {
    reader.Fields(root, "",
                  {{"metric", true, [&](const YAML::Node& n, const std::string& p) {
                      reader.Fields(
                          n, p,
                          {{"name", true,
                            [&](const YAML::Node& m, const std::string& q) {
                              reader.String(m, q, &spec->name);
                            }},
                           {"port", false,
                            [&](const YAML::Node& m, const std::string& q) {
                              reader.Int(m, q, 1, 65535, &spec->port);
                            }},
                           {"ratio", false,
                            [&](const YAML::Node& m, const std::string& q) {
                              reader.Double(m, q, 0, 1, &spec->ratio);
                            }},
                           {"enabled", false,
                            [&](const YAML::Node& m, const std::string& q) {
                              reader.Bool(m, q, &spec->enabled);
                            }},
                           {"every", false,
                            [&](const YAML::Node& m, const std::string& q) {
                              reader.Duration(m, q, absl::Seconds(1), absl::Hours(1), &spec->every);
                            }},
                           {"mode", false,
                            [&](const YAML::Node& m, const std::string& q) {
                              reader.Enum<Mode>(m, q,
                                                {{"slow", Mode::kSlow}, {"fast", Mode::kFast}},
                                                &spec->mode);
                            }},
                           {"tags", false, [&](const YAML::Node& m, const std::string& q) {
                              reader.StringList(
                                  m, q, [](const std::string& s) { return !s.empty(); },
                                  "must not be empty", &spec->tags);
                            }}});
                    }}});
  });
  EXPECT_EQ(reader.ok(), reader.status().ok());
  return reader.ok() ? "" : std::string(reader.status().message());
}

std::string Read(std::string_view yaml) {
  Spec spec;
  return Read(yaml, &spec);
}

TEST(YamlReader, ReadsEveryTypedValue) {
  Spec spec;
  EXPECT_EQ(Read("metric:\n"
                 "  name: requests\n"
                 "  port: 9464\n"
                 "  ratio: 0.25\n"
                 "  enabled: true\n"
                 "  every: 1m30s\n"
                 "  mode: fast\n"
                 "  tags: [a, b]\n",
                 &spec),
            "");
  EXPECT_EQ(spec.name, "requests");
  EXPECT_EQ(spec.port, 9464);
  EXPECT_EQ(spec.ratio, 0.25);
  EXPECT_TRUE(spec.enabled);
  EXPECT_EQ(spec.every, absl::Seconds(90));
  EXPECT_EQ(spec.mode, Mode::kFast);
  EXPECT_THAT(spec.tags, ElementsAre("a", "b"));
}

TEST(YamlReader, UnknownKeyNamesTheAllowedOnesAtItsPosition) {
  EXPECT_EQ(Read("metric:\n  name: x\n  colour: red\n"),
            "spec.yaml:3:3: metric: unknown key 'colour' (allowed: name, port, ratio, enabled, "
            "every, mode, tags)");
}

TEST(YamlReader, UnknownTopLevelKeyIsAnUnknownSection) {
  EXPECT_EQ(Read("metric: {name: x}\nmetrics: {}\n"),
            "spec.yaml:2:1: 'metrics': unknown section (allowed: metric)");
}

TEST(YamlReader, MissingRequiredKeyPointsAtItsMapping) {
  EXPECT_EQ(Read("metric:\n  port: 80\n"), "spec.yaml:2:3: metric: missing required key 'name'");
  EXPECT_EQ(Read("other: 1\n"),
            "spec.yaml:1:1: 'other': unknown section (allowed: metric)\n"
            "spec.yaml:1:1: missing required section 'metric'");
}

TEST(YamlReader, DuplicateKeyIsAnErrorAndTheFirstValueStands) {
  Spec spec;
  EXPECT_EQ(Read("metric:\n  name: a\n  name: b\n", &spec),
            "spec.yaml:3:3: metric.name: duplicate key");
  EXPECT_EQ(spec.name, "a");
}

TEST(YamlReader, MappingsAndKeysHaveTheirShape) {
  EXPECT_EQ(Read("metric: 3\n"), "spec.yaml:1:9: metric: expected a mapping, got a scalar");
  EXPECT_EQ(Read("- metric\n"), "spec.yaml:1:1: expected a mapping, got a list");
  EXPECT_EQ(Read("metric:\n  name: x\n  ? [a]\n  : 1\n"),
            "spec.yaml:3:5: metric: keys must be strings");
  // No value is an empty mapping: only the required key is missing.
  EXPECT_EQ(Read("metric:\n"), "spec.yaml:2:1: metric: missing required key 'name'");
}

TEST(YamlReader, StringMustBeANonEmptyScalar) {
  EXPECT_EQ(Read("metric: {name: \"\"}\n"), "spec.yaml:1:16: metric.name: must not be empty");
  EXPECT_EQ(Read("metric: {name: [a]}\n"),
            "spec.yaml:1:16: metric.name: expected a string, got a list");
  EXPECT_EQ(Read("metric: {name: }\n"),
            "spec.yaml:1:16: metric.name: expected a string, got no value");
}

TEST(YamlReader, IntIsRangeChecked) {
  Spec spec;
  EXPECT_EQ(Read("metric:\n  name: x\n  port: 0\n", &spec),
            "spec.yaml:3:9: metric.port: value out of range: '0' is not in [1, 65535]");
  EXPECT_EQ(spec.port, 0);
  EXPECT_EQ(Read("metric:\n  name: x\n  port: 65536\n"),
            "spec.yaml:3:9: metric.port: value out of range: '65536' is not in [1, 65535]");
  EXPECT_EQ(Read("metric:\n  name: x\n  port: 80.5\n"),
            "spec.yaml:3:9: metric.port: expected an integer, got '80.5'");
  EXPECT_EQ(Read("metric:\n  name: x\n  port: 65535\n", &spec), "");
  EXPECT_EQ(spec.port, 65535);
}

TEST(YamlReader, DoubleIsFiniteAndRangeChecked) {
  Spec spec;
  EXPECT_EQ(Read("metric: {name: x, ratio: 1.5}\n", &spec),
            "spec.yaml:1:26: metric.ratio: value out of range: '1.5' is not in [0, 1]");
  EXPECT_EQ(Read("metric: {name: x, ratio: -0.1}\n"),
            "spec.yaml:1:26: metric.ratio: value out of range: '-0.1' is not in [0, 1]");
  EXPECT_EQ(Read("metric: {name: x, ratio: half}\n"),
            "spec.yaml:1:26: metric.ratio: expected a finite number, got 'half'");
  EXPECT_EQ(Read("metric: {name: x, ratio: nan}\n"),
            "spec.yaml:1:26: metric.ratio: expected a finite number, got 'nan'");
  EXPECT_EQ(Read("metric: {name: x, ratio: 1e999}\n"),
            "spec.yaml:1:26: metric.ratio: expected a finite number, got '1e999'");
  EXPECT_EQ(Read("metric: {name: x, ratio: {}}\n"),
            "spec.yaml:1:26: metric.ratio: expected a number, got a mapping");
  EXPECT_EQ(spec.ratio, 0);
  EXPECT_EQ(Read("metric: {name: x, ratio: 1}\n", &spec), "");
  EXPECT_EQ(spec.ratio, 1);
  EXPECT_EQ(Read("metric: {name: x, ratio: 5e-1}\n", &spec), "");
  EXPECT_EQ(spec.ratio, 0.5);
}

TEST(YamlReader, BoolIsTrueOrFalseOnly) {
  Spec spec;
  EXPECT_EQ(Read("metric: {name: x, enabled: true}\n", &spec), "");
  EXPECT_TRUE(spec.enabled);
  EXPECT_EQ(Read("metric: {name: x, enabled: false}\n", &spec), "");
  EXPECT_FALSE(spec.enabled);
  EXPECT_EQ(Read("metric: {name: x, enabled: yes}\n"),
            "spec.yaml:1:28: metric.enabled: expected true or false, got 'yes'");
  EXPECT_EQ(Read("metric: {name: x, enabled: 1}\n"),
            "spec.yaml:1:28: metric.enabled: expected true or false, got '1'");
  EXPECT_EQ(Read("metric: {name: x, enabled: [true]}\n"),
            "spec.yaml:1:28: metric.enabled: expected true or false, got a list");
}

TEST(YamlReader, DurationIsParsedAndRangeChecked) {
  EXPECT_EQ(Read("metric: {name: x, every: 2h}\n"),
            "spec.yaml:1:26: metric.every: value out of range: '2h' is not in [1s, 1h]");
  EXPECT_EQ(Read("metric: {name: x, every: 0}\n"),
            "spec.yaml:1:26: metric.every: value out of range: '0' is not in [1s, 1h]");
  EXPECT_THAT(Read("metric: {name: x, every: 5x}\n"),
              HasSubstr("spec.yaml:1:26: metric.every: bad duration '5x': "));
  EXPECT_THAT(Read("metric: {name: x, every: 1m1h}\n"),
              HasSubstr("spec.yaml:1:26: metric.every: bad duration '1m1h': "));
}

TEST(YamlReader, EnumNamesTheChoices) {
  EXPECT_EQ(Read("metric: {name: x, mode: quick}\n"),
            "spec.yaml:1:25: metric.mode: expected one of slow, fast, got 'quick'");
}

TEST(YamlReader, StringListKeepsTheValidItemsAndNamesTheOthersByIndex) {
  Spec spec;
  EXPECT_EQ(Read("metric:\n  name: x\n  tags: [a, \"\", [b], c]\n", &spec),
            "spec.yaml:3:13: metric.tags[1]: must not be empty\n"
            "spec.yaml:3:17: metric.tags[2]: expected a string, got a list");
  EXPECT_THAT(spec.tags, ElementsAre("a", "c"));
  EXPECT_EQ(Read("metric: {name: x, tags: a}\n"),
            "spec.yaml:1:25: metric.tags: expected a list, got a scalar");
}

TEST(YamlReader, ExpandsEnvironmentVariablesWithoutShowingTheirValues) {
  ::setenv("NP_YAML_READER_NAME", "requests", 1);
  ::setenv("NP_YAML_READER_PORT", "70000", 1);
  ::setenv("NP_YAML_READER_EMPTY", "", 1);
  ::unsetenv("NP_YAML_READER_UNSET");
  Spec spec;
  EXPECT_EQ(
      Read("metric: {name: \"${NP_YAML_READER_NAME}-${NP_YAML_READER_UNSET:-total}\"}\n", &spec),
      "");
  EXPECT_EQ(spec.name, "requests-total");
  EXPECT_EQ(Read("metric: {name: \"${NP_YAML_READER_EMPTY:-fallback}\"}\n", &spec), "");
  EXPECT_EQ(spec.name, "fallback");
  EXPECT_EQ(Read("metric: {name: \"$${NP_YAML_READER_NAME}\"}\n", &spec), "");
  EXPECT_EQ(spec.name, "${NP_YAML_READER_NAME}");

  const std::string error = Read("metric: {name: x, port: \"${NP_YAML_READER_PORT}\"}\n");
  EXPECT_EQ(error,
            "spec.yaml:1:25: metric.port: value out of range: '${NP_YAML_READER_PORT}' (value "
            "from the environment not shown) is not in [1, 65535]");
  EXPECT_THAT(error, Not(HasSubstr("70000")));
}

TEST(YamlReader, UnsetOrMalformedVariableIsAnError) {
  ::unsetenv("NP_YAML_READER_UNSET");
  EXPECT_EQ(Read("metric:\n  name: ${NP_YAML_READER_UNSET}\n"),
            "spec.yaml:2:9: metric.name: environment variable NP_YAML_READER_UNSET is not set");
  EXPECT_EQ(Read("metric: {name: \"${NP_YAML\"}\n"),
            "spec.yaml:1:16: metric.name: unterminated '${' (want ${NAME} or ${NAME:-default})");
  EXPECT_THAT(Read("metric: {name: \"${1X}\"}\n"),
              HasSubstr("spec.yaml:1:16: metric.name: bad environment variable reference"));
}

TEST(YamlReader, ListsAtMostMaxErrorsAndCountsTheRest) {
  std::string yaml;
  for (int i = 0; i < 25; ++i) absl::StrAppend(&yaml, "k", i, ": ", i, "\n");
  const std::string error = Read(yaml);
  // 25 unknown sections and the missing one.
  const std::vector<std::string> lines = absl::StrSplit(error, '\n');
  ASSERT_EQ(lines.size(), YamlReader::kMaxErrors + 1);
  EXPECT_EQ(lines[0], "spec.yaml:1:1: 'k0': unknown section (allowed: metric)");
  EXPECT_EQ(lines[YamlReader::kMaxErrors - 1],
            "spec.yaml:20:1: 'k19': unknown section (allowed: metric)");
  EXPECT_EQ(lines.back(), "(6 more errors)");
}

TEST(YamlReader, ErrorWithoutPathOrPosition) {
  YamlReader reader("f.yaml");
  EXPECT_TRUE(reader.ok());
  EXPECT_TRUE(reader.status().ok());
  reader.Error(YAML::Mark::null_mark(), "", "no position");
  reader.Error(YAML::Mark::null_mark(), "a.b", "with a path");
  EXPECT_FALSE(reader.ok());
  EXPECT_EQ(reader.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(reader.status().message(), "f.yaml:1:1: no position\nf.yaml:1:1: a.b: with a path");
}

TEST(YamlReader, JoinsPaths) {
  EXPECT_EQ(YamlReader::Join("", "metric"), "metric");
  EXPECT_EQ(YamlReader::Join("metric.labels", "code"), "metric.labels.code");
}

TEST(LoadYamlDocument, EmptyTextIsANullDocument) {
  for (const std::string_view text : {"", "  \n", "# a comment\n"}) {
    YamlReader reader("spec.yaml");
    bool walked = false;
    LoadYamlDocument(text, &reader, [&](const YAML::Node& root) {
      walked = true;
      EXPECT_TRUE(root.IsNull());
    });
    EXPECT_TRUE(walked) << text;
    EXPECT_TRUE(reader.ok()) << text;
  }
  EXPECT_EQ(Read(""), "spec.yaml:1:1: missing required section 'metric'");
}

TEST(LoadYamlDocument, SyntaxErrorHasLineAndColumnAndSkipsTheWalk) {
  YamlReader reader("spec.yaml");
  bool walked = false;
  LoadYamlDocument("metric: [\n", &reader, [&](const YAML::Node&) { walked = true; });
  EXPECT_FALSE(walked);
  EXPECT_EQ(reader.status().message(),
            "spec.yaml:2:1: YAML syntax error: end of sequence flow not found");
  EXPECT_EQ(Read("metric:\n\tname: x\n"), "spec.yaml:2:6: YAML syntax error: illegal map value");
}

TEST(LoadYamlDocument, StrayCommaIsASyntaxErrorNotEndlessDocuments) {
  EXPECT_EQ(Read(","), "spec.yaml:1:1: YAML syntax error: unexpected ','");
  EXPECT_EQ(Read("{metric: {name: x}},"), "spec.yaml:1:20: YAML syntax error: unexpected ','");
}

TEST(LoadYamlDocument, SeveralDocumentsAreAnError) {
  EXPECT_EQ(Read("metric: {name: a}\n---\nmetric: {name: b}\n"),
            "spec.yaml:2:1: expected one YAML document, found several");
  EXPECT_EQ(Read("---\nmetric: {name: a}\n"), "");
}

TEST(LoadYamlDocument, YamlExceptionFromTheWalkIsRecordedAtItsMark) {
  YamlReader reader("spec.yaml");
  LoadYamlDocument("metric: {name: a}\n", &reader, [&](const YAML::Node& root) {
    reader.Error(root.Mark(), "", "first");
    (void)root.as<int>();
  });
  EXPECT_EQ(reader.status().message(),
            "spec.yaml:1:1: first\nspec.yaml:1:1: YAML syntax error: bad conversion");
}

TEST(Quoted, QuotesInSingleQuotes) { EXPECT_EQ(Quoted("a b"), "'a b'"); }

TEST(Describe, NamesEachKindOfNode) {
  EXPECT_EQ(Describe(YAML::Load("")), "no value");
  EXPECT_EQ(Describe(YAML::Load("a")), "a scalar");
  EXPECT_EQ(Describe(YAML::Load("[a]")), "a list");
  EXPECT_EQ(Describe(YAML::Load("{a: 1}")), "a mapping");
}

}  // namespace
}  // namespace novapulse
