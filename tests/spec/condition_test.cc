#include "spec/condition.h"

#include <re2/re2.h>

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace novapulse::spec {
namespace {

using ::testing::HasSubstr;

int Resolve(std::string_view name) {
  static const std::vector<std::string> kFields = {"status", "type", "code", "route", "ok"};
  for (size_t i = 0; i < kFields.size(); ++i) {
    if (kFields[i] == name) return static_cast<int>(i);
  }
  return -1;
}

Condition Parsed(std::string_view text) {
  absl::StatusOr<Condition> c = ParseCondition(text, Resolve);
  EXPECT_TRUE(c.ok()) << text << ": " << c.status();
  return c.ok() ? *c : Condition{};
}

std::string ErrorOf(std::string_view text) {
  absl::StatusOr<Condition> c = ParseCondition(text, Resolve);
  EXPECT_FALSE(c.ok()) << text;
  return c.ok() ? "" : std::string(c.status().message());
}

TEST(Condition, ComparisonIsALeafOnItsField) {
  const Condition c = Parsed(R"(status == "queued")");
  EXPECT_EQ(c.op, Condition::Op::kEq);
  EXPECT_EQ(c.field, 0);
  ASSERT_EQ(c.literals.size(), 1u);
  EXPECT_EQ(c.literals[0].kind, Literal::Kind::kString);
  EXPECT_EQ(c.literals[0].text, "queued");
}

TEST(Condition, AndBindsTighterThanOr) {
  const Condition c = Parsed(R"(code >= 500 or status == "a" and type == "b")");
  ASSERT_EQ(c.op, Condition::Op::kOr);
  ASSERT_EQ(c.children.size(), 2u);
  EXPECT_EQ(c.children[0].op, Condition::Op::kGe);
  EXPECT_EQ(c.children[0].literals[0].number, 500);
  EXPECT_EQ(c.children[1].op, Condition::Op::kAnd);
  EXPECT_EQ(c.children[1].children.size(), 2u);
}

TEST(Condition, ParenthesesNotAndLists) {
  const Condition c = Parsed(R"(not (type in ["x", "y\"z"] or code exists) and ok == true)");
  ASSERT_EQ(c.op, Condition::Op::kAnd);
  const Condition& n = c.children[0];
  ASSERT_EQ(n.op, Condition::Op::kNot);
  ASSERT_EQ(n.children[0].op, Condition::Op::kOr);
  const Condition& in = n.children[0].children[0];
  EXPECT_EQ(in.op, Condition::Op::kIn);
  ASSERT_EQ(in.literals.size(), 2u);
  EXPECT_EQ(in.literals[1].text, "y\"z");
  EXPECT_EQ(n.children[0].children[1].op, Condition::Op::kExists);
  EXPECT_EQ(c.children[1].literals[0].kind, Literal::Kind::kBool);
  std::vector<int> fields;
  c.Fields(&fields);
  EXPECT_EQ(fields, (std::vector<int>{1, 2, 4}));
}

TEST(Condition, NotInIsOneOperator) {
  const Condition c = Parsed(R"(type not in ["a"])");
  EXPECT_EQ(c.op, Condition::Op::kNotIn);
  EXPECT_EQ(c.field, 1);
}

TEST(Condition, RegexIsAnchoredAtBothEnds) {
  const Condition c = Parsed(R"(route =~ "/api/.*")");
  ASSERT_EQ(c.op, Condition::Op::kMatch);
  ASSERT_NE(c.regex, nullptr);
  EXPECT_TRUE(re2::RE2::FullMatch("/api/gifts", *c.regex));
  EXPECT_FALSE(re2::RE2::PartialMatch("/x/api/gifts", *c.regex));
}

TEST(Condition, ErrorsNameTheColumn) {
  EXPECT_EQ(ErrorOf(R"(stauts == "a")"), "1: unknown field 'stauts'");
  EXPECT_EQ(ErrorOf(R"(status == queued)"),
            "11: expected a value (a quoted string, a number, true or false), got 'queued'; "
            "strings need double quotes");
  EXPECT_EQ(ErrorOf(R"(status == "a" and)"),
            "18: expected a field name, 'not' or '(', got end of condition");
  EXPECT_THAT(ErrorOf(R"((status == "a")"), HasSubstr("expected ')' to close the '(' at column 1"));
  EXPECT_THAT(ErrorOf(R"(route =~ "(")"), HasSubstr("10: bad regular expression"));
  EXPECT_THAT(ErrorOf(R"(type in ["a" "b"])"), HasSubstr("14: expected ',' or ']'"));
  EXPECT_THAT(ErrorOf(R"(status = "a")"), HasSubstr("8: unexpected character '='"));
  EXPECT_THAT(ErrorOf(R"(status == "a)"), HasSubstr("11: unterminated string"));
  EXPECT_THAT(ErrorOf(R"(status == "a" "b")"), HasSubstr("15: unexpected string \"b\""));
  EXPECT_EQ(ErrorOf("   "), "4: empty condition");
  EXPECT_THAT(ErrorOf("code > 1e999"), HasSubstr("bad number"));
}

TEST(Condition, DeepNestingIsRefusedNotACrash) {
  std::string text(10000, '(');
  EXPECT_THAT(ErrorOf(text), HasSubstr("nested too deeply"));
  std::string nots;
  for (int i = 0; i < 5000; ++i) nots += "not ";
  EXPECT_THAT(ErrorOf(nots + "code exists"), HasSubstr("nested too deeply"));
}

}  // namespace
}  // namespace novapulse::spec
