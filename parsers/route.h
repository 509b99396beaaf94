// Route normalisation: turns a concrete request path into a route template so
// raw ids never become label values.
//
// Pure function, safe from any thread. The query string and fragment are
// dropped; each path segment that is numeric, a UUID, long hex (>= 16) or an
// opaque token (>= 16 characters of letters, digits, '-' or '_' with at least
// one digit, or any segment of 48+ bytes) becomes ":id".
//   NormaliseRoute("/api/gifts/8812/claim?x=1", &out);  // out == "/api/gifts/:id/claim"
#ifndef NOVAPULSE_PARSERS_ROUTE_H_
#define NOVAPULSE_PARSERS_ROUTE_H_

#include <string>
#include <string_view>

namespace novapulse {

// Replaces the contents of `out`. Reuse `out` across calls to avoid allocation.
void NormaliseRoute(std::string_view path, std::string* out);

// True when one path segment would be replaced by ":id".
[[nodiscard]] bool IsIdSegment(std::string_view segment) noexcept;

}  // namespace novapulse

#endif  // NOVAPULSE_PARSERS_ROUTE_H_
