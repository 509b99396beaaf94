// libFuzzer target: one outbox envelope through RecordParser with the topic
// set. Checks that an accepted event keeps the schema's promises (attempt
// >= 1, known type and status, non-negative amounts, label values valid
// UTF-8 and at most kMaxLabelValueBytes) and that the in-place and copying
// entry points agree.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "parsers/event.h"
#include "parsers/record_parser.h"
#include "parsers/timestamp.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

constexpr size_t kMaxRecordBytes = 64 * 1024;

void CheckLabel(std::string_view v) {
  FUZZ_CHECK(v.size() <= novapulse::kMaxLabelValueBytes);
  FUZZ_CHECK(novapulse::fuzz::IsValidUtf8(v));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using novapulse::OutboxEvent;
  using novapulse::RejectReason;
  static novapulse::RecordParser parser(kMaxRecordBytes);
  static novapulse::RecordParser copying(kMaxRecordBytes);

  const novapulse::fuzz::PaddedInput input(data, size);
  OutboxEvent event;
  const std::optional<RejectReason> reject =
      parser.ParseOutbox(input.data(), input.size(), input.capacity(), &event);
  OutboxEvent copied;
  const std::optional<RejectReason> reject_copied = copying.ParseOutbox(input.view(), &copied);
  FUZZ_CHECK(reject == reject_copied);
  if (reject) {
    FUZZ_CHECK(static_cast<int>(*reject) < novapulse::kRejectReasonCount);
    return 0;
  }
  FUZZ_CHECK(static_cast<int>(event.type) < novapulse::kOutboxTypeCount);
  FUZZ_CHECK(static_cast<int>(event.status) < novapulse::kOutboxStatusCount);
  FUZZ_CHECK(event.attempt >= 1);
  FUZZ_CHECK(event.ts_us >= 0);
  FUZZ_CHECK(std::isfinite(event.processing_ms));
  for (const std::string_view label : {event.id, event.error, event.gift_id, event.mode,
                                       event.theme, event.wallet_kind, event.wallet_status}) {
    CheckLabel(label);
  }
  if (event.status == novapulse::OutboxStatus::kQueued) {
    switch (event.type) {
      case novapulse::OutboxType::kGiftCreated:
        FUZZ_CHECK(std::isfinite(event.value_usd) && event.value_usd >= 0);
        break;
      case novapulse::OutboxType::kWalletTransaction:
        FUZZ_CHECK(std::isfinite(event.amount_usd) && event.amount_usd >= 0);
        break;
      default:
        break;
    }
  }
  FUZZ_CHECK(event.id == copied.id && event.type == copied.type && event.status == copied.status &&
             event.attempt == copied.attempt && event.ts_us == copied.ts_us &&
             event.mode == copied.mode && event.theme == copied.theme);
  return 0;
}
