// ExpositionText: a Prometheus text exposition of `series` lines of the
// shape of http_requests_total (about 100 bytes each), for benchmarks of
// the HTTP server. Header-only.
#ifndef NOVAPULSE_BENCH_EXPOSITION_TEXT_H_
#define NOVAPULSE_BENCH_EXPOSITION_TEXT_H_

#include <cstdint>
#include <string>

#include "absl/strings/str_cat.h"

namespace novapulse::bench {

inline std::string ExpositionText(int64_t series) {
  std::string text =
      "# HELP http_requests_total HTTP requests by method, route and status.\n"
      "# TYPE http_requests_total counter\n";
  static constexpr const char* kStatus[] = {"200", "201", "404", "500"};
  for (int64_t i = 0; i < series; ++i) {
    absl::StrAppend(&text, "http_requests_total{method=\"GET\",route=\"/api/gifts/route", i / 4,
                    "/:id/claim\",status=\"", kStatus[i % 4], "\"} ", 1000 + i * 7, "\n");
  }
  return text;
}

}  // namespace novapulse::bench

#endif  // NOVAPULSE_BENCH_EXPOSITION_TEXT_H_
