// A cheap look at a block of NDJSON lines' event times, for the pipeline's
// scheduling (which chunk goes next, where the rules start): the "ts" member
// of the first or last non-blank line that has one, found by scanning the
// text, without parsing the line. A line whose "ts" is nested, or a string
// containing "ts": is not told apart; the parsers decide what is counted.
//
// Pure functions; safe from any thread.
//   int64_t ms;  if (FirstLineEventTime(chunk_text, &ms)) runner.Start(ms);
#ifndef NOVAPULSE_PARSERS_EVENT_TIME_SNIFF_H_
#define NOVAPULSE_PARSERS_EVENT_TIME_SNIFF_H_

#include <cstdint>
#include <string_view>

namespace novapulse {

// Event time (ms since the epoch) of the first / last non-blank line of
// `text` whose "ts" reads as a time (RFC 3339 or epoch seconds, ms or µs);
// false when none does.
bool FirstLineEventTime(std::string_view text, int64_t* ms);
bool LastLineEventTime(std::string_view text, int64_t* ms);

}  // namespace novapulse

#endif  // NOVAPULSE_PARSERS_EVENT_TIME_SNIFF_H_
