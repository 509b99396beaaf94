#include "parsers/route.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace novapulse {
namespace {

std::string Normalise(std::string_view path) {
  std::string out = "stale contents that must be replaced";
  NormaliseRoute(path, &out);
  return out;
}

TEST(NormaliseRoute, ReplacesNumericSegment) {
  EXPECT_EQ(Normalise("/api/gifts/8812/claim"), "/api/gifts/:id/claim");
  EXPECT_EQ(Normalise("/api/gifts/0"), "/api/gifts/:id");
}

TEST(NormaliseRoute, ReplacesUuidSegment) {
  EXPECT_EQ(Normalise("/api/gifts/123e4567-e89b-12d3-a456-426614174000/claim"),
            "/api/gifts/:id/claim");
  EXPECT_EQ(Normalise("/api/gifts/123E4567-E89B-12D3-A456-426614174000"), "/api/gifts/:id");
}

TEST(NormaliseRoute, ReplacesLongHexSegment) {
  EXPECT_EQ(Normalise("/api/tx/0123456789abcdef"), "/api/tx/:id");
  EXPECT_EQ(Normalise("/api/tx/DEADBEEFDEADBEEFDEADBEEF"), "/api/tx/:id");
}

TEST(NormaliseRoute, ReplacesOpaqueTokenSegment) {
  EXPECT_EQ(Normalise("/api/share/aB3dE5gH7jK9mN1p"), "/api/share/:id");
  EXPECT_EQ(Normalise("/api/share/tok_9f8e7d6c5b4a3x2w/open"), "/api/share/:id/open");
}

TEST(NormaliseRoute, ReplacesAnySegmentOf48BytesOrMore) {
  const std::string long_word(48, 'z');
  EXPECT_EQ(Normalise("/api/" + long_word + "/x"), "/api/:id/x");
}

TEST(NormaliseRoute, KeepsShortWordsAndVersions) {
  EXPECT_EQ(Normalise("/api/v1/gifts/claim"), "/api/v1/gifts/claim");
  EXPECT_EQ(Normalise("/api/deadbeef"), "/api/deadbeef");
  EXPECT_EQ(Normalise("/api/gift-card-settings"), "/api/gift-card-settings");
}

TEST(NormaliseRoute, DropsQueryString) {
  EXPECT_EQ(Normalise("/api/gifts/8812/claim?x=1&user=42"), "/api/gifts/:id/claim");
}

TEST(NormaliseRoute, DropsFragment) {
  EXPECT_EQ(Normalise("/api/gifts/8812#section-2"), "/api/gifts/:id");
  EXPECT_EQ(Normalise("/api/gifts#frag?notquery"), "/api/gifts");
}

TEST(NormaliseRoute, PreservesTrailingSlash) {
  EXPECT_EQ(Normalise("/api/gifts/"), "/api/gifts/");
  EXPECT_EQ(Normalise("/api/gifts/8812/"), "/api/gifts/:id/");
  EXPECT_EQ(Normalise("/api/gifts/?page=2"), "/api/gifts/");
}

TEST(NormaliseRoute, PreservesRoot) {
  EXPECT_EQ(Normalise("/"), "/");
  EXPECT_EQ(Normalise("/?q=1"), "/");
}

TEST(NormaliseRoute, ReplacesConsecutiveIdSegments) {
  EXPECT_EQ(Normalise("/api/users/42/gifts/8812"), "/api/users/:id/gifts/:id");
}

TEST(NormaliseRoute, ReusedOutputIsReplacedNotAppended) {
  std::string out;
  NormaliseRoute("/api/a/1", &out);
  NormaliseRoute("/b", &out);
  EXPECT_EQ(out, "/b");
}

TEST(IsIdSegment, NumericIsId) {
  EXPECT_TRUE(IsIdSegment("1"));
  EXPECT_TRUE(IsIdSegment("8812"));
  EXPECT_TRUE(IsIdSegment("00000000000000000000000000"));
}

TEST(IsIdSegment, EmptyIsNotId) { EXPECT_FALSE(IsIdSegment("")); }

TEST(IsIdSegment, UuidIsId) {
  EXPECT_TRUE(IsIdSegment("123e4567-e89b-12d3-a456-426614174000"));
  // Dashes in the wrong places: 36 characters, no digit-free token, still an
  // opaque token because it has digits and only token characters.
  EXPECT_TRUE(IsIdSegment("123e4567e-89b-12d3-a456-426614174000"));
}

TEST(IsIdSegment, HexNeedsSixteenCharacters) {
  EXPECT_FALSE(IsIdSegment("abcdefabcdefabc"));  // 15, no digit
  EXPECT_TRUE(IsIdSegment("abcdefabcdefabcd"));  // 16, all hex, no digit
  EXPECT_FALSE(IsIdSegment("cafe"));
}

TEST(IsIdSegment, OpaqueTokenNeedsSixteenCharactersAndADigit) {
  EXPECT_TRUE(IsIdSegment("gift_token_12345"));    // 16 with digits
  EXPECT_FALSE(IsIdSegment("gift_token_1234"));    // 15
  EXPECT_FALSE(IsIdSegment("gift_token_abcdef"));  // 17, no digit, not hex
  EXPECT_FALSE(IsIdSegment("gift.token.123456"));  // '.' is not a token character
}

TEST(IsIdSegment, FortyEightBytesOfAnythingIsId) {
  EXPECT_FALSE(IsIdSegment(std::string(47, '.')));
  EXPECT_TRUE(IsIdSegment(std::string(48, '.')));
}

TEST(IsIdSegment, ShortWordsAreNotIds) {
  EXPECT_FALSE(IsIdSegment("api"));
  EXPECT_FALSE(IsIdSegment("v1"));
  EXPECT_FALSE(IsIdSegment("claim"));
  EXPECT_FALSE(IsIdSegment("12abc"));
  EXPECT_FALSE(IsIdSegment("-1"));
}

}  // namespace
}  // namespace novapulse
