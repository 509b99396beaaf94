#include "base/json_escape.h"

#include <simdjson.h>

#include <string>
#include <string_view>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace novapulse {
namespace {

std::string Plain(std::string_view s) {
  std::string out;
  AppendJsonEscaped(s, &out);
  return out;
}

std::string Go(std::string_view s) {
  std::string out;
  AppendJsonEscaped(s, &out, JsonEscaping::kGo);
  return out;
}

// What the JSON string literal "`escaped`" decodes to, or "<invalid>".
std::string Decode(const std::string& escaped) {
  simdjson::dom::parser parser;
  std::string_view s;
  if (parser.parse(simdjson::padded_string("\"" + escaped + "\"")).get(s) != simdjson::SUCCESS) {
    return "<invalid>";
  }
  return std::string(s);
}

TEST(JsonEscape, EscapesQuoteAndBackslash) {
  EXPECT_EQ(Plain(R"(a"b\c)"), R"(a\"b\\c)");
  EXPECT_EQ(Plain(R"("\")"), R"(\"\\\")");
}

TEST(JsonEscape, EscapesControlCharactersShortWhereJsonHasAShortForm) {
  EXPECT_EQ(Plain("l1\nl2\r\t."), R"(l1\nl2\r\t.)");
  EXPECT_EQ(Plain(std::string("\x00\x01\x08\x0c\x1b\x1f", 6)),
            R"(\u0000\u0001\u0008\u000c\u001b\u001f)");
  EXPECT_EQ(Plain("\x7f"), "\x7f");  // DEL is not a JSON control character
}

TEST(JsonEscape, LeavesPlainTextAndAppends) {
  std::string out = "[";
  AppendJsonEscaped("", &out);
  AppendJsonEscaped("route=/api/gifts/:id <ok> & fine", &out);
  EXPECT_EQ(out, "[route=/api/gifts/:id <ok> & fine");
}

TEST(JsonEscape, PassesValidUtf8Through) {
  const std::string text =
      "caf\u00e9 \u20ac \u4e2d\u6587 \U0001F600 \u2028\u2029 \uffff \U0010FFFF";
  EXPECT_EQ(Plain(text), text);
}

TEST(JsonEscape, ReplacesEachByteThatIsNotUtf8) {
  EXPECT_EQ(Plain("a\xff"
                  "b"),
            R"(a\ufffdb)");
  EXPECT_EQ(Plain("\x80"), R"(\ufffd)");                                // stray continuation
  EXPECT_EQ(Plain("\xc3"), R"(\ufffd)");                                // cut short at the end
  EXPECT_EQ(Plain("\xe2\x82x"), R"(\ufffd\ufffdx)");                    // cut short before 'x'
  EXPECT_EQ(Plain("\xc0\xaf"), R"(\ufffd\ufffd)");                      // overlong '/'
  EXPECT_EQ(Plain("\xe0\x80\xaf"), R"(\ufffd\ufffd\ufffd)");            // overlong, 3 bytes
  EXPECT_EQ(Plain("\xed\xa0\x80"), R"(\ufffd\ufffd\ufffd)");            // a surrogate
  EXPECT_EQ(Plain("\xf4\x90\x80\x80"), R"(\ufffd\ufffd\ufffd\ufffd)");  // beyond U+10FFFF
  EXPECT_EQ(Plain("caf\xc3\xa9\xff"), "caf\u00e9\\ufffd");  // valid kept, invalid replaced
}

TEST(JsonEscape, GoFormAlsoEscapesHtmlCharactersAndLineSeparators) {
  EXPECT_EQ(Go("<a>&"), R"(\u003ca\u003e\u0026)");
  EXPECT_EQ(Go("x\u2028y\u2029"), R"(x\u2028y\u2029)");
  EXPECT_EQ(Go("\u2027\u202a"), "\u2027\u202a");  // the neighbours pass
  EXPECT_EQ(Go("a\"\n\xff\u00e9"), "a\\\"\\n\\ufffd\u00e9");
  EXPECT_EQ(Plain("<a>&\u2028"), "<a>&\u2028");
}

// Text that is UTF-8 from its first non-ASCII byte on is checked at once and
// then escaped in runs; other text byte by byte. Both give the same escapes.
TEST(JsonEscape, EscapesTheSameAfterValidAndInvalidUtf8) {
  EXPECT_EQ(Go("\u00e9\"\n<\u2028\u00e9\u2029&"),
            "\u00e9\\\"\\n\\u003c\\u2028\u00e9\\u2029\\u0026");
  EXPECT_EQ(Go("\xff\u00e9\"\n<\u2028\u00e9\u2029&"),
            "\\ufffd\u00e9\\\"\\n\\u003c\\u2028\u00e9\\u2029\\u0026");
  EXPECT_EQ(Go("\u2028\u00e9\"\xff"), "\\u2028\u00e9\\\"\\ufffd");
  EXPECT_EQ(Plain("\u00e9\"\x01\u2028"), "\u00e9\\\"\\u0001\u2028");
  EXPECT_EQ(Plain("\u00e9\"\x01\u2028\xc3"), "\u00e9\\\"\\u0001\u2028\\ufffd");
}

// A special byte at every position of an 8-byte word, and in the tail after
// the last whole word: the word-at-a-time scan must find each one.
TEST(JsonEscape, FindsASpecialByteAtEveryPositionAndLength) {
  struct Case {
    std::string_view in, plain, go;
  };
  for (const Case& c : {Case{"\"", R"(\")", R"(\")"}, Case{"\\", R"(\\)", R"(\\)"},
                        Case{"\n", R"(\n)", R"(\n)"}, Case{"\x01", R"(\u0001)", R"(\u0001)"},
                        Case{"\xff", R"(\ufffd)", R"(\ufffd)"}, Case{"\u00e9", "\u00e9", "\u00e9"},
                        Case{"<", "<", R"(\u003c)"}, Case{"\u2028", "\u2028", R"(\u2028)"}}) {
    for (size_t len = 0; len < 24; ++len) {
      for (size_t at = 0; at <= len; ++at) {
        const std::string before(at, 'x');
        const std::string after(len - at, 'y');
        const std::string in = before + std::string(c.in) + after;
        EXPECT_EQ(Plain(in), before + std::string(c.plain) + after) << in;
        EXPECT_EQ(Go(in), before + std::string(c.go) + after) << in;
      }
    }
  }
}

TEST(JsonEscape, AnyBytesGiveJsonThatDecodesToTheirUtf8) {
  std::string all;
  for (int c = 0; c < 256; ++c) all.push_back(static_cast<char>(c));
  const std::string decoded = Decode(Plain(all));
  ASSERT_NE(decoded, "<invalid>");
  EXPECT_EQ(decoded.substr(0, 128), all.substr(0, 128));
  std::string replaced;
  for (int c = 128; c < 256; ++c) replaced += "\ufffd";
  EXPECT_EQ(decoded.substr(128), replaced);
  EXPECT_EQ(Decode(Go(all)), decoded);
  const std::string mixed = "tab\t quote\" backslash\\ nl\n \u00e9\u4e2d\U0001F600 <&> \u2028";
  EXPECT_EQ(Decode(Plain(mixed)), mixed);
  EXPECT_EQ(Decode(Go(mixed)), mixed);
}

}  // namespace
}  // namespace novapulse
