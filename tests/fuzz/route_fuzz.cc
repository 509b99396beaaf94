// libFuzzer target: route normalisation. Checks that the result has no
// query string or fragment, that no segment of it would still be taken for
// an id, that it is never longer than the path, and that normalising is
// idempotent.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "parsers/route.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view path(reinterpret_cast<const char*>(data), size);
  std::string route;
  novapulse::NormaliseRoute(path, &route);
  FUZZ_CHECK(route.find_first_of("?#") == std::string::npos);
  // ":id" (3 bytes) can replace a 1- or 2-digit segment.
  FUZZ_CHECK(route.size() <= path.size() + 2 * (path.size() / 2 + 1));
  size_t pos = 0;
  while (pos <= route.size()) {
    size_t slash = route.find('/', pos);
    if (slash == std::string::npos) slash = route.size();
    const std::string_view segment = std::string_view(route).substr(pos, slash - pos);
    FUZZ_CHECK(segment == ":id" || !novapulse::IsIdSegment(segment));
    pos = slash + 1;
  }
  std::string again;
  novapulse::NormaliseRoute(route, &again);
  FUZZ_CHECK(again == route);
  return 0;
}
