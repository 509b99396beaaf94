// The reference the spec's block path is held to: each non-blank line of a
// block (CR trimmed) decoded alone, from a copy without padding, through
// ProcessSpecRecord. For tests and fuzz targets.
#ifndef NOVAPULSE_TESTS_SPEC_SPEC_REFERENCE_H_
#define NOVAPULSE_TESTS_SPEC_SPEC_REFERENCE_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "aggregators/spec_metrics.h"
#include "pipeline/record_worker.h"
#include "spec/plan.h"

namespace novapulse::testing {

// Returns the number of non-blank lines.
inline uint64_t SpecLineByLine(int input, std::string_view block, spec::SpecDecoder& decoder,
                               SpecMetrics::Writer& writer) {
  uint64_t lines = 0;
  size_t pos = 0;
  while (pos < block.size()) {
    size_t end = block.find('\n', pos);
    if (end == std::string_view::npos) end = block.size();
    std::string_view line = block.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.find_first_not_of(" \t") != std::string_view::npos) {
      ++lines;
      const std::string alone(line);  // no padding: the decoder copies it
      ProcessSpecRecord(input, alone.data(), alone.size(), alone.size(), decoder, writer);
    }
    pos = end + 1;
  }
  return lines;
}

}  // namespace novapulse::testing

#endif  // NOVAPULSE_TESTS_SPEC_SPEC_REFERENCE_H_
