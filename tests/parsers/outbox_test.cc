#include <gtest/gtest.h>
#include <simdjson.h>

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "parsers/event.h"
#include "parsers/record_parser.h"

namespace novapulse {
namespace {

int64_t EpochUs(int year, int month, int day, int hour, int minute, int second,
                int64_t micros = 0) {
  std::tm tm{};
  tm.tm_year = year - 1900;
  tm.tm_mon = month - 1;
  tm.tm_mday = day;
  tm.tm_hour = hour;
  tm.tm_min = minute;
  tm.tm_sec = second;
  return static_cast<int64_t>(timegm(&tm)) * 1'000'000 + micros;
}

constexpr std::string_view kCreatedData =
    R"({"gift_id":"g-1","mode":"link","theme":"birthday","value_usd":25.5})";
constexpr std::string_view kClaimedData =
    R"({"gift_id":"g-1","mode":"link","theme":"birthday","value_usd":25.5,)"
    R"("created_at":"2026-11-27T05:21:53Z"})";
constexpr std::string_view kExpiredData =
    R"({"gift_id":"g-2","mode":"email","theme":"thanks","created_at":1795651200})";
constexpr std::string_view kWalletData = R"({"kind":"top_up","amount_usd":100,"status":"ok"})";

// An envelope from its parts; an empty part leaves the field out.
std::string Envelope(std::string_view type, std::string_view status,
                     std::string_view data = kCreatedData, std::string_view extra = "",
                     std::string_view ts = R"("2026-11-27T06:21:53.5Z")",
                     std::string_view id = R"("evt-123")") {
  std::string line = "{";
  auto add = [&line](std::string_view key, std::string_view value) {
    if (value.empty()) return;
    if (line.size() > 1) line += ",";
    line += "\"";
    line += key;
    line += "\":";
    line += value;
  };
  add("ts", ts);
  add("id", id);
  add("type", type);
  add("status", status);
  if (!extra.empty()) {
    if (line.size() > 1) line += ",";
    line += extra;
  }
  add("data", data);
  line += "}";
  return line;
}

std::string Quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

enum class Call { kStringView, kPadded, kUnderPadded };

std::string CallName(const ::testing::TestParamInfo<Call>& info) {
  switch (info.param) {
    case Call::kStringView:
      return "StringView";
    case Call::kPadded:
      return "Padded";
    case Call::kUnderPadded:
      return "UnderPadded";
  }
  return "Unknown";
}

class OutboxParser : public ::testing::TestWithParam<Call> {
 protected:
  std::optional<RejectReason> Parse(std::string_view line, OutboxEvent* event) {
    switch (GetParam()) {
      case Call::kStringView:
        return parser_.ParseOutbox(line, event);
      case Call::kPadded:
        buffer_.assign(line.begin(), line.end());
        buffer_.resize(line.size() + simdjson::SIMDJSON_PADDING, '\0');
        return parser_.ParseOutbox(buffer_.data(), line.size(), buffer_.size(), event);
      case Call::kUnderPadded:
        buffer_.assign(line.begin(), line.end());
        return parser_.ParseOutbox(buffer_.data(), line.size(), line.size(), event);
    }
    return RejectReason::kUnknownTopic;
  }

  std::string Result(std::string_view line) {
    OutboxEvent event;
    const std::optional<RejectReason> reason = Parse(line, &event);
    return reason ? std::string(RejectReasonName(*reason)) : "ok";
  }

  OutboxEvent ParseOk(std::string_view line) {
    OutboxEvent event;
    const std::optional<RejectReason> reason = Parse(line, &event);
    EXPECT_FALSE(reason.has_value()) << RejectReasonName(*reason) << " for " << line;
    return event;
  }

  RecordParser parser_;
  std::vector<char> buffer_;
};

INSTANTIATE_TEST_SUITE_P(Calls, OutboxParser,
                         ::testing::Values(Call::kStringView, Call::kPadded, Call::kUnderPadded),
                         CallName);

TEST_P(OutboxParser, DecodesGiftCreated) {
  const OutboxEvent e = ParseOk(Envelope(R"("gift.created")", R"("queued")"));
  EXPECT_EQ(e.ts_us, EpochUs(2026, 11, 27, 6, 21, 53, 500'000));
  EXPECT_EQ(e.id, "evt-123");
  EXPECT_EQ(e.type, OutboxType::kGiftCreated);
  EXPECT_EQ(e.status, OutboxStatus::kQueued);
  EXPECT_EQ(e.attempt, 1);
  EXPECT_LT(e.processing_ms, 0);
  EXPECT_EQ(e.error, "");
  EXPECT_EQ(e.gift_id, "g-1");
  EXPECT_EQ(e.mode, "link");
  EXPECT_EQ(e.theme, "birthday");
  EXPECT_DOUBLE_EQ(e.value_usd, 25.5);
  EXPECT_FALSE(e.has_created_at);
}

TEST_P(OutboxParser, DecodesGiftClaimedWithCreatedAt) {
  const OutboxEvent e = ParseOk(Envelope(R"("gift.claimed")", R"("queued")", kClaimedData));
  EXPECT_EQ(e.type, OutboxType::kGiftClaimed);
  EXPECT_EQ(e.mode, "link");
  EXPECT_EQ(e.theme, "birthday");
  EXPECT_TRUE(e.has_created_at);
  EXPECT_EQ(e.created_at_us, EpochUs(2026, 11, 27, 5, 21, 53));
}

TEST_P(OutboxParser, DecodesGiftExpiredWithEpochCreatedAt) {
  const OutboxEvent e = ParseOk(Envelope(R"("gift.expired")", R"("queued")", kExpiredData));
  EXPECT_EQ(e.type, OutboxType::kGiftExpired);
  EXPECT_EQ(e.gift_id, "g-2");
  EXPECT_EQ(e.mode, "email");
  EXPECT_EQ(e.theme, "thanks");
  EXPECT_TRUE(e.has_created_at);
  EXPECT_EQ(e.created_at_us, int64_t{1795651200} * 1'000'000);
}

TEST_P(OutboxParser, DecodesWalletTransaction) {
  const OutboxEvent e = ParseOk(Envelope(R"("wallet.transaction")", R"("queued")", kWalletData));
  EXPECT_EQ(e.type, OutboxType::kWalletTransaction);
  EXPECT_EQ(e.wallet_kind, "top_up");
  EXPECT_EQ(e.wallet_status, "ok");
  EXPECT_DOUBLE_EQ(e.amount_usd, 100);
}

TEST_P(OutboxParser, DecodesEveryStatus) {
  const std::pair<std::string_view, OutboxStatus> cases[] = {
      {R"("queued")", OutboxStatus::kQueued},       {R"("in_flight")", OutboxStatus::kInFlight},
      {R"("processed")", OutboxStatus::kProcessed}, {R"("failed")", OutboxStatus::kFailed},
      {R"("dead")", OutboxStatus::kDead},
  };
  for (const auto& [text, status] : cases) {
    EXPECT_EQ(ParseOk(Envelope(R"("gift.created")", text)).status, status) << text;
  }
}

TEST_P(OutboxParser, DecodesAttemptProcessingTimeAndError) {
  const OutboxEvent e = ParseOk(Envelope(R"("gift.claimed")", R"("failed")", "",
                                         R"("attempt":3,"processing_ms":35.2,"error":"timeout")"));
  EXPECT_EQ(e.status, OutboxStatus::kFailed);
  EXPECT_EQ(e.attempt, 3);
  EXPECT_DOUBLE_EQ(e.processing_ms, 35.2);
  EXPECT_EQ(e.error, "timeout");
}

TEST_P(OutboxParser, AttemptDefaultsToOne) {
  EXPECT_EQ(ParseOk(Envelope(R"("gift.created")", R"("processed")", "")).attempt, 1);
}

TEST_P(OutboxParser, AcceptsZeroProcessingTime) {
  EXPECT_DOUBLE_EQ(
      ParseOk(Envelope(R"("gift.created")", R"("processed")", "", R"("processing_ms":0)"))
          .processing_ms,
      0);
}

TEST_P(OutboxParser, NullErrorAndDataAreTreatedAsAbsent) {
  const OutboxEvent e =
      ParseOk(Envelope(R"("gift.created")", R"("processed")", "null", R"("error":null)"));
  EXPECT_EQ(e.error, "");
}

TEST_P(OutboxParser, NullProcessingTimeIsTreatedAsAbsent) {
  const OutboxEvent e =
      ParseOk(Envelope(R"("gift.created")", R"("processed")", "", R"("processing_ms":null)"));
  EXPECT_LT(e.processing_ms, 0);
}

TEST_P(OutboxParser, DataIsNotRequiredUnlessQueued) {
  for (std::string_view status : {R"("in_flight")", R"("processed")", R"("failed")", R"("dead")"}) {
    EXPECT_EQ(Result(Envelope(R"("gift.created")", status, "")), "ok") << status;
    EXPECT_EQ(Result(Envelope(R"("wallet.transaction")", status, "{}")), "ok") << status;
  }
}

TEST_P(OutboxParser, RejectsQueuedWithoutData) {
  EXPECT_EQ(Result(Envelope(R"("gift.created")", R"("queued")", "")), "missing_field");
  EXPECT_EQ(Result(Envelope(R"("gift.created")", R"("queued")", "null")), "missing_field");
  EXPECT_EQ(Result(Envelope(R"("gift.created")", R"("queued")", "{}")), "missing_field");
}

TEST_P(OutboxParser, RejectsQueuedGiftCreatedMissingABusinessField) {
  for (std::string_view data :
       {R"({"theme":"t","value_usd":1})", R"({"mode":"m","value_usd":1})",
        R"({"mode":"m","theme":"t"})", R"({"mode":null,"theme":"t","value_usd":1})"}) {
    EXPECT_EQ(Result(Envelope(R"("gift.created")", R"("queued")", data)), "missing_field") << data;
  }
}

TEST_P(OutboxParser, RejectsQueuedGiftClaimedWithoutCreatedAt) {
  EXPECT_EQ(Result(Envelope(R"("gift.claimed")", R"("queued")", kCreatedData)), "missing_field");
  EXPECT_EQ(Result(Envelope(R"("gift.claimed")", R"("queued")",
                            R"({"mode":"m","theme":"t","created_at":null})")),
            "missing_field");
}

TEST_P(OutboxParser, RejectsQueuedGiftExpiredMissingModeOrTheme) {
  EXPECT_EQ(Result(Envelope(R"("gift.expired")", R"("queued")", R"({"theme":"t"})")),
            "missing_field");
  EXPECT_EQ(Result(Envelope(R"("gift.expired")", R"("queued")", R"({"mode":"m"})")),
            "missing_field");
}

TEST_P(OutboxParser, RejectsQueuedWalletTransactionMissingABusinessField) {
  for (std::string_view data :
       {R"({"amount_usd":1,"status":"ok"})", R"({"kind":"k","status":"ok"})",
        R"({"kind":"k","amount_usd":1})"}) {
    EXPECT_EQ(Result(Envelope(R"("wallet.transaction")", R"("queued")", data)), "missing_field")
        << data;
  }
}

TEST_P(OutboxParser, DataFieldOrderIsIrrelevant) {
  const OutboxEvent e = ParseOk(
      Envelope(R"("gift.claimed")", R"("queued")",
               R"({"created_at":"2026-11-27T05:21:53Z","value_usd":25.5,"theme":"birthday",)"
               R"("mode":"link","gift_id":"g-1"})"));
  EXPECT_EQ(e.mode, "link");
  EXPECT_EQ(e.theme, "birthday");
  EXPECT_DOUBLE_EQ(e.value_usd, 25.5);
  EXPECT_EQ(e.created_at_us, EpochUs(2026, 11, 27, 5, 21, 53));
}

TEST_P(OutboxParser, TypeAndStatusAfterDataStillValidateData) {
  const std::string data_first =
      R"({"data":{"kind":"refund","amount_usd":5,"status":"ok"},"attempt":1,)"
      R"("status":"queued","type":"wallet.transaction","id":"e","ts":1795651200})";
  const OutboxEvent e = ParseOk(data_first);
  EXPECT_EQ(e.type, OutboxType::kWalletTransaction);
  EXPECT_EQ(e.wallet_kind, "refund");
  const std::string incomplete =
      R"({"data":{"kind":"refund","status":"ok"},"status":"queued","type":"wallet.transaction",)"
      R"("id":"e","ts":1795651200})";
  EXPECT_EQ(Result(incomplete), "missing_field");
}

TEST_P(OutboxParser, IgnoresUnknownFieldsAtBothLevels) {
  const OutboxEvent e =
      ParseOk(Envelope(R"("gift.created")", R"("queued")",
                       R"({"sender":{"id":7,"tags":["a",{"mode":"x"}]},"mode":"link","theme":"t",)"
                       R"("value_usd":2,"extra":[]})",
                       R"("trace":{"type":"nope","status":[1,2]},"partition":3)"));
  EXPECT_EQ(e.mode, "link");
  EXPECT_EQ(e.type, OutboxType::kGiftCreated);
}

TEST_P(OutboxParser, UnescapesKeysAndValues) {
  const OutboxEvent e =
      ParseOk(R"({"t\u0073":1795651200,"id":"e\u002D1","\u0074ype":"gift\u002ecreated",)"
              R"("status":"queued","data":{"\u006dode":"li\u006ek","theme":"t","value_usd":1}})");
  EXPECT_EQ(e.id, "e-1");
  EXPECT_EQ(e.type, OutboxType::kGiftCreated);
  EXPECT_EQ(e.mode, "link");
}

TEST_P(OutboxParser, ReusedParserDoesNotLeakFieldsFromThePreviousRecord) {
  ParseOk(Envelope(R"("gift.claimed")", R"("failed")", kClaimedData,
                   R"("attempt":4,"processing_ms":3,"error":"timeout")"));
  const OutboxEvent e = ParseOk(Envelope(R"("gift.created")", R"("in_flight")", ""));
  EXPECT_EQ(e.attempt, 1);
  EXPECT_LT(e.processing_ms, 0);
  EXPECT_EQ(e.error, "");
  EXPECT_EQ(e.mode, "");
  EXPECT_FALSE(e.has_created_at);
}

TEST_P(OutboxParser, RejectsUnknownType) {
  EXPECT_EQ(Result(Envelope(R"("gift.exploded")", R"("queued")")), "unknown_type");
  EXPECT_EQ(Result(Envelope(R"("Gift.Created")", R"("queued")")), "unknown_type");
  EXPECT_EQ(Result(Envelope(R"("")", R"("queued")")), "unknown_type");
}

TEST_P(OutboxParser, RejectsUnknownStatus) {
  EXPECT_EQ(Result(Envelope(R"("gift.created")", R"("pending")")), "unknown_status");
  EXPECT_EQ(Result(Envelope(R"("gift.created")", R"("QUEUED")")), "unknown_status");
  EXPECT_EQ(Result(Envelope(R"("gift.created")", R"("in-flight")")), "unknown_status");
}

TEST_P(OutboxParser, RejectsMissingEnvelopeFields) {
  EXPECT_EQ(Result(Envelope(R"("gift.created")", R"("queued")", kCreatedData, "", "")),
            "missing_field");
  EXPECT_EQ(Result(Envelope(R"("gift.created")", R"("queued")", kCreatedData, "",
                            R"("2026-11-27T06:21:53Z")", "")),
            "missing_field");
  EXPECT_EQ(Result(Envelope("", R"("queued")")), "missing_field");
  EXPECT_EQ(Result(Envelope(R"("gift.created")", "")), "missing_field");
  EXPECT_EQ(Result("{}"), "missing_field");
}

TEST_P(OutboxParser, RejectsWrongTypeEnvelopeFields) {
  EXPECT_EQ(Result(Envelope("5", R"("queued")")), "wrong_type");
  EXPECT_EQ(Result(Envelope(R"("gift.created")", "true")), "wrong_type");
  EXPECT_EQ(Result(Envelope(R"("gift.created")", R"("queued")", kCreatedData, "",
                            R"("2026-11-27T06:21:53Z")", "123")),
            "wrong_type");
  EXPECT_EQ(Result(Envelope(R"("gift.created")", R"("queued")", kCreatedData, "", "true")),
            "wrong_type");
}

TEST_P(OutboxParser, RejectsNonObjectData) {
  EXPECT_EQ(Result(Envelope(R"("gift.created")", R"("queued")", R"("data")")), "wrong_type");
  EXPECT_EQ(Result(Envelope(R"("gift.created")", R"("queued")", "[]")), "wrong_type");
}

TEST_P(OutboxParser, RejectsBadAttempt) {
  EXPECT_EQ(Result(Envelope(R"("gift.created")", R"("failed")", "", R"("attempt":0)")),
            "out_of_range");
  EXPECT_EQ(Result(Envelope(R"("gift.created")", R"("failed")", "", R"("attempt":-2)")),
            "out_of_range");
  EXPECT_EQ(Result(Envelope(R"("gift.created")", R"("failed")", "", R"("attempt":1.5)")),
            "wrong_type");
  EXPECT_EQ(Result(Envelope(R"("gift.created")", R"("failed")", "", R"("attempt":"2")")),
            "wrong_type");
  EXPECT_EQ(Result(Envelope(R"("gift.created")", R"("failed")", "", R"("attempt":null)")),
            "wrong_type");
}

TEST_P(OutboxParser, RejectsBadProcessingTime) {
  EXPECT_EQ(Result(Envelope(R"("gift.created")", R"("failed")", "", R"("processing_ms":-1)")),
            "out_of_range");
  EXPECT_EQ(Result(Envelope(R"("gift.created")", R"("failed")", "", R"("processing_ms":"3")")),
            "wrong_type");
  EXPECT_EQ(Result(Envelope(R"("gift.created")", R"("failed")", "", R"("processing_ms":1e400)")),
            "out_of_range");
}

TEST_P(OutboxParser, RejectsBadError) {
  EXPECT_EQ(Result(Envelope(R"("gift.created")", R"("failed")", "", R"("error":500)")),
            "wrong_type");
  EXPECT_EQ(Result(Envelope(R"("gift.created")", R"("failed")", "",
                            R"("error":)" + Quoted(std::string(kMaxLabelValueBytes + 1, 'e')))),
            "oversize");
}

TEST_P(OutboxParser, RejectsBadBusinessValues) {
  EXPECT_EQ(Result(Envelope(R"("gift.created")", R"("queued")",
                            R"({"mode":"m","theme":"t","value_usd":-1})")),
            "out_of_range");
  EXPECT_EQ(Result(Envelope(R"("gift.created")", R"("queued")",
                            R"({"mode":"m","theme":"t","value_usd":"1"})")),
            "wrong_type");
  EXPECT_EQ(Result(Envelope(R"("gift.created")", R"("queued")",
                            R"({"mode":7,"theme":"t","value_usd":1})")),
            "wrong_type");
  EXPECT_EQ(Result(Envelope(R"("wallet.transaction")", R"("queued")",
                            R"({"kind":"k","amount_usd":-0.01,"status":"ok"})")),
            "out_of_range");
  EXPECT_EQ(Result(Envelope(R"("gift.claimed")", R"("queued")",
                            R"({"mode":"m","theme":"t","created_at":"2026-02-30T00:00:00Z"})")),
            "bad_timestamp");
}

TEST_P(OutboxParser, RejectsOversizeBusinessLabel) {
  const std::string long_mode = Quoted(std::string(kMaxLabelValueBytes + 1, 'm'));
  EXPECT_EQ(Result(Envelope(R"("gift.created")", R"("queued")",
                            R"({"mode":)" + long_mode + R"(,"theme":"t","value_usd":1})")),
            "oversize");
}

TEST_P(OutboxParser, RejectsBadTimestamp) {
  EXPECT_EQ(Result(Envelope(R"("gift.created")", R"("queued")", kCreatedData, "", R"("soon")")),
            "bad_timestamp");
  EXPECT_EQ(Result(Envelope(R"("gift.created")", R"("queued")", kCreatedData, "", "-5")),
            "bad_timestamp");
}

TEST_P(OutboxParser, RejectsDuplicateEnvelopeField) {
  EXPECT_EQ(
      Result(Envelope(R"("gift.created")", R"("queued")", kCreatedData, R"("status":"processed")")),
      "duplicate_field");
  EXPECT_EQ(Result(Envelope(R"("gift.created")", R"("queued")", kCreatedData,
                            R"("data":{"mode":"m","theme":"t","value_usd":1})")),
            "duplicate_field");
}

TEST_P(OutboxParser, RejectsDuplicateDataField) {
  EXPECT_EQ(Result(Envelope(R"("gift.created")", R"("queued")",
                            R"({"mode":"a","theme":"t","value_usd":1,"mode":"b"})")),
            "duplicate_field");
  EXPECT_EQ(Result(Envelope(R"("gift.created")", R"("queued")",
                            R"({"mode":"a","theme":"t","value_usd":1,"m\u006fde":"b"})")),
            "duplicate_field");
}

TEST_P(OutboxParser, DataStatusIsIndependentOfEnvelopeStatus) {
  const OutboxEvent e = ParseOk(Envelope(R"("wallet.transaction")", R"("queued")", kWalletData));
  EXPECT_EQ(e.status, OutboxStatus::kQueued);
  EXPECT_EQ(e.wallet_status, "ok");
}

TEST_P(OutboxParser, RejectsMalformedJson) {
  const std::string full = Envelope(R"("gift.created")", R"("queued")");
  EXPECT_EQ(Result(full.substr(0, full.size() - 2)), "malformed_json");
  EXPECT_EQ(Result(full + "x"), "malformed_json");
  EXPECT_EQ(Result(Envelope(R"("gift.created")", R"("queued")", kCreatedData, "\"note\":\"\xff\"")),
            "malformed_json");
}

TEST_P(OutboxParser, RejectsNonObjectRoot) {
  EXPECT_EQ(Result("[]"), "not_object");
  EXPECT_EQ(Result("\"gift.created\""), "not_object");
}

}  // namespace
}  // namespace novapulse
