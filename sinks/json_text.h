// JSON text as Go's encoding/json writes it, for the HTTP API and the
// Alertmanager client, whose readers (Grafana, Alertmanager, Prometheus
// tooling) were written against Go's output: strings escaped as Go escapes
// them, label sets as objects sorted by name, float64 numbers and times in
// Go's shortest forms.
//
// Pure functions; safe from any thread.
//   std::string out;  AppendJsonString(&out, "a\"b");  // "a\"b"
#ifndef NOVAPULSE_SINKS_JSON_TEXT_H_
#define NOVAPULSE_SINKS_JSON_TEXT_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rules/promql.h"

namespace novapulse {

// A quoted JSON string, escaped as Go's json.Marshal escapes it
// (base/json_escape.h, JsonEscaping::kGo): quote, backslash and control
// characters (\n \r \t, others \u00XX), <, > and & (\u003c \u003e \u0026)
// and U+2028/U+2029; other UTF-8 passes through; each byte that is not valid
// UTF-8 becomes \ufffd (the output is always valid UTF-8, hence valid JSON).
void AppendJsonString(std::string* out, std::string_view s);

// {"name":"value",...} sorted by name; pairs with an empty value are kept.
void AppendJsonObject(std::string* out, const promql::Labels& labels);
void AppendJsonObject(std::string* out,
                      const std::vector<std::pair<std::string, std::string>>& pairs);

// A float64 as Go's JSON encoder writes it: shortest round-trip text, fixed
// notation for 1e-6 <= |v| < 1e21, else exponent form ("1e-07" -> "1e-7").
// JSON has no NaN or infinities: those are written as 0.
void AppendJsonNumber(std::string* out, double v);

// strconv.FormatFloat(v, 'e', -1, 64): "1e+00", "4.2e-01", "NaN", "+Inf".
std::string GoExponentFloat(double v);

// A quoted RFC 3339 UTC time with the fraction Go's RFC3339Nano keeps
// (trailing zeros dropped): "2026-11-26T00:00:15Z", "...15.25Z".
void AppendJsonTime(std::string* out, int64_t ms);
// The same, or Go's zero time "0001-01-01T00:00:00Z" when ms is 0 (never).
void AppendJsonTimeOrZero(std::string* out, int64_t ms);

}  // namespace novapulse

#endif  // NOVAPULSE_SINKS_JSON_TEXT_H_
