#include "parsers/record_parser.h"

#include <gtest/gtest.h>

#include <string_view>

#include "parsers/event.h"

namespace novapulse {
namespace {

Topic Detect(std::string_view record) {
  RecordParser parser;
  return parser.DetectTopic(record);
}

TEST(DetectTopic, AccessLogLineIsAccessLog) {
  EXPECT_EQ(Detect(R"({"ts":"2026-11-27T06:21:53.123Z","method":"POST","route":"/r",)"
                   R"("status":201,"duration_ms":12.5})"),
            Topic::kAccessLog);
}

TEST(DetectTopic, EitherAccessLogKeyIsEnough) {
  EXPECT_EQ(Detect(R"({"duration_ms":1})"), Topic::kAccessLog);
  EXPECT_EQ(Detect(R"({"method":"GET"})"), Topic::kAccessLog);
}

TEST(DetectTopic, OutboxEnvelopeIsOutbox) {
  EXPECT_EQ(Detect(R"({"ts":"2026-11-27T06:21:53Z","id":"evt-1","type":"gift.claimed",)"
                   R"("status":"processed","attempt":2,"data":{}})"),
            Topic::kOutbox);
}

TEST(DetectTopic, EitherOutboxKeyIsEnough) {
  EXPECT_EQ(Detect(R"({"type":"gift.created"})"), Topic::kOutbox);
  EXPECT_EQ(Detect(R"({"attempt":1})"), Topic::kOutbox);
}

TEST(DetectTopic, AccessLogKeysWinOverOutboxKeys) {
  // An access line may carry an unknown "type" field; it stays an access line.
  EXPECT_EQ(Detect(R"({"type":"x","method":"GET","duration_ms":1})"), Topic::kAccessLog);
}

TEST(DetectTopic, OutboxWithAnAccessLogKeyNestedInDataIsOutbox) {
  // The outbox parser ignores unknown keys inside data, so this record is a
  // valid outbox envelope; only top-level keys say which schema it follows.
  EXPECT_EQ(Detect(R"({"ts":1795651200,"id":"e","type":"wallet.transaction",)"
                   R"("status":"queued","data":{"kind":"top_up","method":"card",)"
                   R"("amount_usd":5,"status":"ok"}})"),
            Topic::kOutbox);
}

TEST(DetectTopic, NeitherSchemaIsAuto) {
  EXPECT_EQ(Detect(R"({"ts":1,"status":200})"), Topic::kAuto);
  EXPECT_EQ(Detect(""), Topic::kAuto);
  EXPECT_EQ(Detect("not json"), Topic::kAuto);
}

TEST(DetectTopic, MatchesWholeQuotedKeysOnly) {
  EXPECT_EQ(Detect(R"({"http_method":"GET","types":[1]})"), Topic::kAuto);
  EXPECT_EQ(Detect(R"({"methods":"GET","attempts":2})"), Topic::kAuto);
}

TEST(DetectTopic, DoesNotNeedValidJson) {
  // A record that does not parse falls back to a scan of its key names, so a
  // truncated access line is still counted as malformed under its topic.
  EXPECT_EQ(Detect(R"({"ts":1,"method":"GE)"), Topic::kAccessLog);
  EXPECT_EQ(Detect(R"({"ts":1,"type":"gift.cre)"), Topic::kOutbox);
}

TEST(TopicName, NamesBothTopics) {
  EXPECT_EQ(TopicName(Topic::kAccessLog), "novagift.access-log");
  EXPECT_EQ(TopicName(Topic::kOutbox), "novagift.outbox");
}

TEST(RejectReasonName, NamesAreStableLabelValues) {
  EXPECT_EQ(RejectReasonName(RejectReason::kMalformedJson), "malformed_json");
  EXPECT_EQ(RejectReasonName(RejectReason::kNotObject), "not_object");
  EXPECT_EQ(RejectReasonName(RejectReason::kMissingField), "missing_field");
  EXPECT_EQ(RejectReasonName(RejectReason::kWrongType), "wrong_type");
  EXPECT_EQ(RejectReasonName(RejectReason::kOutOfRange), "out_of_range");
  EXPECT_EQ(RejectReasonName(RejectReason::kBadTimestamp), "bad_timestamp");
  EXPECT_EQ(RejectReasonName(RejectReason::kOversize), "oversize");
  EXPECT_EQ(RejectReasonName(RejectReason::kUnknownType), "unknown_type");
  EXPECT_EQ(RejectReasonName(RejectReason::kUnknownStatus), "unknown_status");
  EXPECT_EQ(RejectReasonName(RejectReason::kTooDeep), "too_deep");
  EXPECT_EQ(RejectReasonName(RejectReason::kUnknownTopic), "unknown_topic");
  EXPECT_EQ(RejectReasonName(RejectReason::kDuplicateField), "duplicate_field");
}

}  // namespace
}  // namespace novapulse
