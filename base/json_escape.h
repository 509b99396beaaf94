// The inside of a JSON string: the one escaper of novapulse's JSON output
// (log lines, dead letters, the HTTP API, Alertmanager notifications).
//
// Quote and backslash become \" and \\; newline, carriage return and tab
// \n \r \t; the other bytes below 0x20 \u00XX (lowercase hex). Valid UTF-8
// passes through (DEL too); each byte that does not belong to a valid UTF-8
// sequence (a stray continuation byte, an overlong form, a surrogate, beyond
// U+10FFFF, cut short) becomes \ufffd, as Go's encoding/json writes it, so
// the output is valid UTF-8 and valid JSON whatever the input.
// JsonEscaping::kGo also escapes what Go's json.Marshal escapes besides: <, >
// and & as \u003c \u003e \u0026, and U+2028 and U+2029 as \u2028 \u2029.
// (Go 1.22 and later write \b and \f short; the Go this matches, that of
// Prometheus 2.42, writes \u0008 and \u000c as here.)
//
// Fast on long strings: runs of bytes that need no escape are found eight
// bytes at a time and copied whole, and text that is valid UTF-8 from its
// first non-ASCII byte on (nearly all) is checked once, by simdjson's SIMD
// validator, not character by character. Pure; safe from any thread.
//   std::string out = "\"";  AppendJsonEscaped("a\"b", &out);  out += '"';  // "a\"b"
#ifndef NOVAPULSE_BASE_JSON_ESCAPE_H_
#define NOVAPULSE_BASE_JSON_ESCAPE_H_

#include <string>
#include <string_view>

namespace novapulse {

enum class JsonEscaping {
  kPlain,  // what JSON needs, and U+FFFD for bytes that are not UTF-8
  kGo,     // kPlain, and <, >, &, U+2028, U+2029 as Go's json.Marshal escapes them
};

// Appends `s` escaped, without the quotes around it.
void AppendJsonEscaped(std::string_view s, std::string* out,
                       JsonEscaping escaping = JsonEscaping::kPlain);

}  // namespace novapulse

#endif  // NOVAPULSE_BASE_JSON_ESCAPE_H_
