#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "rules/promql.h"
#include "rules/promql_ast.h"

namespace novapulse::promql {
namespace {

// Renders a parsed expression fully parenthesised, to check the tree shape.
std::string Show(const Expr& e) {
  static const char* kOps[] = {
      "+", "-", "*", "/", "%", "^", "==", "!=", ">", "<", ">=", "<=", "and", "or", "unless"};
  switch (e.kind) {
    case Expr::Kind::kNumber: {
      char buf[64];
      snprintf(buf, sizeof(buf), "%g", e.number);
      return buf;
    }
    case Expr::Kind::kVectorSelector:
    case Expr::Kind::kMatrixSelector: {
      std::string s = e.metric;
      if (!e.matchers.empty()) {
        s += "{";
        static const char* kM[] = {"=", "!=", "=~", "!~"};
        for (size_t i = 0; i < e.matchers.size(); ++i) {
          if (i > 0) s += ",";
          s += e.matchers[i].name + kM[static_cast<int>(e.matchers[i].op)] + "\"" +
               e.matchers[i].value + "\"";
        }
        s += "}";
      }
      if (e.kind == Expr::Kind::kMatrixSelector) s += "[" + std::to_string(e.range_ms) + "ms]";
      if (e.offset_ms != 0) s += " offset " + std::to_string(e.offset_ms) + "ms";
      return s;
    }
    case Expr::Kind::kCall:
    case Expr::Kind::kAggregate: {
      std::string s = e.kind == Expr::Kind::kCall ? "f" + std::to_string(static_cast<int>(e.func))
                                                  : "agg" + std::to_string(static_cast<int>(e.agg));
      if (e.kind == Expr::Kind::kAggregate) {
        s += e.without ? " without(" : " by(";
        for (const std::string& g : e.grouping) s += g + ",";
        s += ")";
      }
      s += "(";
      for (size_t i = 0; i < e.args.size(); ++i) {
        if (i > 0) s += ", ";
        s += Show(*e.args[i]);
      }
      return s + ")";
    }
    case Expr::Kind::kBinary: {
      std::string op = kOps[static_cast<int>(e.op)];
      if (e.return_bool) op += " bool";
      if (e.matching_on || !e.match_labels.empty()) {
        op += e.matching_on ? " on(" : " ignoring(";
        for (const std::string& l : e.match_labels) op += l + ",";
        op += ")";
      }
      return "(" + Show(*e.lhs) + " " + op + " " + Show(*e.rhs) + ")";
    }
    case Expr::Kind::kNeg:
      return "(-" + Show(*e.lhs) + ")";
    case Expr::Kind::kParen:
      return "[" + Show(*e.lhs) + "]";
  }
  return "?";
}

std::string P(const std::string& text) {
  absl::StatusOr<ExprPtr> e = Parse(text);
  if (!e.ok()) return "ERR " + std::string(e.status().message());
  return Show(**e);
}

std::string Err(const std::string& text) {
  absl::StatusOr<ExprPtr> e = Parse(text);
  if (e.ok()) return "OK " + Show(**e);
  return std::string(e.status().message());
}

TEST(PromqlParser, Precedence) {
  EXPECT_EQ(P("a + b * c"), "(a + (b * c))");
  EXPECT_EQ(P("a * b + c"), "((a * b) + c)");
  EXPECT_EQ(P("a - b - c"), "((a - b) - c)");
  EXPECT_EQ(P("a ^ b ^ c"), "(a ^ (b ^ c))");
  EXPECT_EQ(P("a * b ^ c"), "(a * (b ^ c))");
  EXPECT_EQ(P("a or b and c"), "(a or (b and c))");
  EXPECT_EQ(P("a and b unless c"), "((a and b) unless c)");
  EXPECT_EQ(P("a > b + c"), "(a > (b + c))");
  EXPECT_EQ(P("a or b > c"), "(a or (b > c))");
  EXPECT_EQ(P("a / b % c"), "((a / b) % c)");
}

TEST(PromqlParser, UnaryMinus) {
  EXPECT_EQ(P("-a"), "(-a)");
  EXPECT_EQ(P("-a * b"), "((-a) * b)");
  EXPECT_EQ(P("-a ^ b"), "(-(a ^ b))");
  EXPECT_EQ(P("-2 ^ 2"), "(-(2 ^ 2))");
  EXPECT_EQ(P("a * -b"), "(a * (-b))");
  EXPECT_EQ(P("-1"), "-1");
  EXPECT_EQ(P("+a"), "a");
  EXPECT_EQ(P("- - a"), "(-(-a))");
}

TEST(PromqlParser, Numbers) {
  EXPECT_EQ(P("1e3"), "1000");
  EXPECT_EQ(P("0x1F"), "31");
  EXPECT_EQ(P(".5"), "0.5");
  EXPECT_EQ(P("Inf"), "inf");
  EXPECT_EQ(P("-inf"), "-inf");
  EXPECT_EQ(P("NaN"), "nan");
  EXPECT_EQ(P("010"), "8");  // Go's ParseInt with base 0, as Prometheus parses
  EXPECT_EQ(P("1.5e-1"), "0.15");
}

TEST(PromqlParser, SelectorsAndMatchers) {
  EXPECT_EQ(P("foo"), "foo");
  EXPECT_EQ(P("foo:bar_total{a=\"1\", b!='2', c=~\"x.*\", d!~`y|z`,}"),
            "foo:bar_total{a=\"1\",b!=\"2\",c=~\"x.*\",d!~\"y|z\"}");
  EXPECT_EQ(P("foo{}"), "foo");
  EXPECT_EQ(P("foo{a=\"\\x41\\u00e9\\n\\\"\"}"), "foo{a=\"A\xc3\xa9\n\"\"}");
  EXPECT_EQ(P("foo{a='it\\'s'}"), "foo{a=\"it's\"}");
  EXPECT_EQ(P("foo{a=`\\n`}"), "foo{a=\"\\n\"}");
  EXPECT_EQ(P("foo{by=\"x\", on=\"y\"}"), "foo{by=\"x\",on=\"y\"}");
}

TEST(PromqlParser, RegexMatchersAreFullyAnchored) {
  absl::StatusOr<ExprPtr> e = Parse("foo{a=~\"b|c\", d!~\"x.\"}");
  ASSERT_TRUE(e.ok());
  const Matcher& re = (*e)->matchers[0];
  EXPECT_TRUE(re.Matches("b"));
  EXPECT_TRUE(re.Matches("c"));
  EXPECT_FALSE(re.Matches("bc"));
  EXPECT_FALSE(re.Matches("ab"));
  const Matcher& nre = (*e)->matchers[1];
  EXPECT_FALSE(nre.Matches("xy"));
  EXPECT_TRUE(nre.Matches("xyz"));
  EXPECT_TRUE(nre.Matches(""));
}

TEST(PromqlParser, RangesAndOffsets) {
  EXPECT_EQ(P("foo[5m]"), "foo[300000ms]");
  EXPECT_EQ(P("foo[1h30m]"), "foo[5400000ms]");
  EXPECT_EQ(P("foo[1d]"), "foo[86400000ms]");
  EXPECT_EQ(P("foo[1w]"), "foo[604800000ms]");
  EXPECT_EQ(P("foo[1y]"), "foo[31536000000ms]");
  EXPECT_EQ(P("foo[100ms]"), "foo[100ms]");
  EXPECT_EQ(P("foo[15s] offset 1m"), "foo[15000ms] offset 60000ms");
  EXPECT_EQ(P("foo offset -5m"), "foo offset -300000ms");
  EXPECT_EQ(P("foo OFFSET 5m"), "foo offset 300000ms");
}

TEST(PromqlParser, FunctionsAndAggregations) {
  EXPECT_EQ(P("rate(foo[5m])"), "f0(foo[300000ms])");
  EXPECT_EQ(P("sum by (b, a) (foo)"), "agg0 by(a,b,)(foo)");
  EXPECT_EQ(P("sum(foo) by (a)"), "agg0 by(a,)(foo)");
  EXPECT_EQ(P("avg without (a) (foo)"), "agg1 without(a,)(foo)");
  EXPECT_EQ(P("COUNT(foo)"), "agg4 by()(foo)");
  EXPECT_EQ(P("round(foo)"), "f21(foo)");
  EXPECT_EQ(P("round(foo, 0.5)"), "f21(foo, 0.5)");
  EXPECT_EQ(P("histogram_quantile(0.9, sum by (le) (rate(h_bucket[5m])))"),
            "f15(0.9, agg0 by(le,)(f0(h_bucket[300000ms])))");
  EXPECT_EQ(P("time()"), "f27()");
  EXPECT_EQ(P("vector(1)"), "f26(1)");
  EXPECT_EQ(P("clamp(foo, 0, 1)"), "f22(foo, 0, 1)");
}

TEST(PromqlParser, BinaryModifiers) {
  EXPECT_EQ(P("a > bool b"), "(a > bool b)");
  EXPECT_EQ(P("1 > bool 2"), "(1 > bool 2)");
  EXPECT_EQ(P("a + on(x, y) b"), "(a + on(x,y,) b)");
  EXPECT_EQ(P("a + ignoring(x) b"), "(a + ignoring(x,) b)");
  EXPECT_EQ(P("a and on() b"), "(a and on() b)");
  EXPECT_EQ(P("a == bool on(x) b"), "(a == bool on(x,) b)");
}

TEST(PromqlParser, Comments) { EXPECT_EQ(P("foo # the metric\n + 1"), "(foo + 1)"); }

TEST(PromqlParser, TypeOfAndReach) {
  EXPECT_EQ(TypeOf(**Parse("1 + 2")), ValueType::kScalar);
  EXPECT_EQ(TypeOf(**Parse("foo + 2")), ValueType::kVector);
  EXPECT_EQ(TypeOf(**Parse("foo[5m]")), ValueType::kMatrix);
  EXPECT_EQ(TypeOf(**Parse("scalar(foo)")), ValueType::kScalar);
  std::vector<Reach> r =
      MetricReach(**Parse("rate(a[5m]) + rate(a[1h] offset 1h) + b offset 1m + b"));
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].metric, "a");
  EXPECT_EQ(r[0].ms, 2 * 3600 * 1000);
  EXPECT_EQ(r[1].metric, "b");
  EXPECT_EQ(r[1].ms, kLookbackDeltaMs + 60 * 1000);
}

TEST(PromqlParser, RejectsUnsupportedConstructsWithPosition) {
  EXPECT_EQ(Err("topk(3, foo)"), "1:1: unsupported: function topk");
  EXPECT_EQ(Err("1 + label_replace(foo, \"a\", \"b\", \"c\", \"d\")"),
            "1:5: unsupported: function label_replace");
  EXPECT_EQ(Err("quantile(0.9, foo)"), "1:1: unsupported: aggregation quantile");
  EXPECT_EQ(Err("stddev(foo)"), "1:1: unsupported: aggregation stddev");
  EXPECT_EQ(Err("count_values(\"v\", foo)"), "1:1: unsupported: aggregation count_values");
  EXPECT_EQ(Err("group(foo)"), "1:1: unsupported: aggregation group");
  EXPECT_EQ(Err("rate(foo[5m:1m])"), "1:9: unsupported: subquery");
  EXPECT_EQ(Err("(foo)[5m:]"), "1:6: unsupported: subquery");
  EXPECT_EQ(Err("foo @ 100"), "1:5: unsupported: @ modifier");
  EXPECT_EQ(Err("a * on(x) group_left b"), "1:11: unsupported: group_left");
  EXPECT_EQ(Err("a * on(x) group_right(y) b"), "1:11: unsupported: group_right");
  EXPECT_EQ(Err("{job=\"x\"}"), "1:1: unsupported: selector without a metric name");
  EXPECT_EQ(Err("sum(\n  {a=\"b\"})"), "2:3: unsupported: selector without a metric name");
  EXPECT_EQ(Err("foo{__name__=\"x\"}"), "1:5: unsupported: matcher on __name__");
  EXPECT_EQ(Err("a atan2 b"), "1:3: unsupported: operator atan2");
  EXPECT_EQ(Err("\"str\""), "1:1: unsupported: string literal");
  EXPECT_EQ(Err("deriv(foo[5m])"), "1:1: unsupported: function deriv");
}

TEST(PromqlParser, RejectsSyntaxErrorsWithPosition) {
  EXPECT_EQ(Err("foo +"), "1:6: unexpected end of input");
  EXPECT_EQ(Err("sum(foo"), "1:8: unexpected end of input, expected \")\"");
  EXPECT_EQ(Err("foo{a=1}"), "1:7: unexpected number in label matching, expected string");
  EXPECT_EQ(Err("foo{a}"), "1:6: unexpected } in label matching, expected label matching operator");
  EXPECT_EQ(Err("foo[5]"), "1:5: missing unit character in duration");
  EXPECT_EQ(Err("foo[5x]"), "1:5: bad number or duration syntax: \"5x\"");
  EXPECT_EQ(Err("foo[30m1h]"), "1:5: bad number or duration syntax: \"30m1h\"");
  EXPECT_EQ(Err("foo{a=\"b}"), "1:7: unterminated quoted string");
  EXPECT_EQ(Err("foo{a=~\"(\"}"), "1:8: invalid regular expression: missing ): (");
  EXPECT_EQ(Err("foo bar"), "1:5: unexpected identifier");
  EXPECT_EQ(Err("foo + 5m"), "1:7: unexpected duration");
  EXPECT_EQ(Err("sum by (a (foo)"), "1:11: unexpected ( in grouping opts, expected \")\" or \",\"");
  EXPECT_EQ(Err("foo offset 5m offset 1m"), "1:15: offset may not be set multiple times");
  EXPECT_EQ(Err("foo offset 1m [5m]"), "1:15: no offset modifiers allowed before range");
  EXPECT_EQ(Err("(foo)[5m]"), "1:6: ranges only allowed for vector selectors");
  EXPECT_EQ(Err("rate(foo[5m]"), "1:13: unexpected end of input in call, expected \",\" or \")\"");
  EXPECT_EQ(Err("foo !x"), "1:5: unexpected character after '!'");
  EXPECT_EQ(Err("a\n  $"), "2:3: unexpected character: '$'");
}

TEST(PromqlParser, RejectsTypeErrorsWithPosition) {
  EXPECT_EQ(Err("rate(foo)"),
            "1:6: expected type range vector in call to function \"rate\", got instant vector");
  EXPECT_EQ(Err("abs(foo[5m])"),
            "1:5: expected type instant vector in call to function \"abs\", got range vector");
  EXPECT_EQ(Err("rate(foo[5m], 1)"), "1:1: expected 1 argument(s) in call to \"rate\", got 2");
  EXPECT_EQ(Err("round()"), "1:1: expected 1 to 2 argument(s) in call to \"round\", got 0");
  EXPECT_EQ(Err("histogram_quantile(foo, bar)"),
            "1:20: expected type scalar in call to function \"histogram_quantile\", got instant "
            "vector");
  EXPECT_EQ(Err("1 > 2"), "1:3: comparisons between scalars must use BOOL modifier");
  EXPECT_EQ(Err("a + bool b"), "1:3: bool modifier can only be used on comparison operators");
  EXPECT_EQ(Err("a and 1"), "1:1: set operator \"and\" not allowed in binary scalar expression");
  EXPECT_EQ(Err("1 or a"), "1:1: set operator \"or\" not allowed in binary scalar expression");
  EXPECT_EQ(Err("1 + on(a) foo"), "1:1: vector matching only allowed between instant vectors");
  EXPECT_EQ(Err("foo[5m] + 1"),
            "1:1: binary expression must contain only scalar and instant vector types");
  EXPECT_EQ(Err("sum(foo[5m])"),
            "1:5: expected type instant vector in aggregation expression, got range vector");
  EXPECT_EQ(Err("sum(1)"),
            "1:5: expected type instant vector in aggregation expression, got scalar");
  EXPECT_EQ(Err("-foo[5m]"),
            "1:2: unary expression only allowed on expressions of type scalar or instant vector, "
            "got \"range vector\"");
  EXPECT_EQ(P("rate((foo[5m]))"), "f0(foo[300000ms])");
}

TEST(PromqlParser, RejectsNestingDeeperThanTheEvaluatorShouldRecurse) {
  // Found by the promql fuzz target: a long run of unary minus overflowed the
  // stack; a long chain of binary operators builds a tree as deep.
  const std::string minus(5000, '-');
  absl::StatusOr<ExprPtr> e = Parse(minus + "x");
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("expression nested too deeply"), std::string::npos);
  std::string chain = "x";
  for (int i = 0; i < 3000; ++i) chain += " + x";
  e = Parse(chain);
  ASSERT_FALSE(e.ok());
  EXPECT_NE(e.status().message().find("expression nested too deeply"), std::string::npos);
  std::string parens = std::string(300, '(') + "x" + std::string(300, ')');
  EXPECT_FALSE(Parse(parens).ok());
  std::string fine = "x";
  for (int i = 0; i < 100; ++i) fine += " + x";
  EXPECT_TRUE(Parse(fine).ok());
}

}  // namespace
}  // namespace novapulse::promql
