// libFuzzer target: one access-log record through RecordParser with the
// topic set. Checks that an accepted event keeps the schema's promises
// (status 100-599, duration >= 0, label values valid UTF-8 and at most
// kMaxLabelValueBytes, no raw id left in a normalised route) and that the
// in-place and copying entry points agree.
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
constexpr int64_t kMaxTsUs = 253402300799LL * novapulse::kMicrosPerSecond;  // 9999-12-31

void CheckLabel(std::string_view v) {
  FUZZ_CHECK(v.size() <= novapulse::kMaxLabelValueBytes);
  FUZZ_CHECK(novapulse::fuzz::IsValidUtf8(v));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using novapulse::AccessLogEvent;
  using novapulse::RejectReason;
  static novapulse::RecordParser parser(kMaxRecordBytes);
  static novapulse::RecordParser copying(kMaxRecordBytes);

  const novapulse::fuzz::PaddedInput input(data, size);
  AccessLogEvent event;
  const std::optional<RejectReason> reject =
      parser.ParseAccessLog(input.data(), input.size(), input.capacity(), &event);
  AccessLogEvent copied;
  const std::optional<RejectReason> reject_copied = copying.ParseAccessLog(input.view(), &copied);
  FUZZ_CHECK(reject == reject_copied);
  if (reject) {
    FUZZ_CHECK(static_cast<int>(*reject) < novapulse::kRejectReasonCount);
    return 0;
  }
  FUZZ_CHECK(event.status >= 100 && event.status <= 599);
  FUZZ_CHECK(std::isfinite(event.duration_ms) && event.duration_ms >= 0);
  FUZZ_CHECK(event.ts_us >= 0 && event.ts_us <= kMaxTsUs + novapulse::kMicrosPerSecond);
  CheckLabel(event.method);
  CheckLabel(event.route);
  CheckLabel(event.error_code);
  FUZZ_CHECK(!event.route.empty());
  FUZZ_CHECK(event.method == copied.method && event.route == copied.route &&
             event.status == copied.status && event.ts_us == copied.ts_us &&
             event.error_code == copied.error_code);
  return 0;
}
