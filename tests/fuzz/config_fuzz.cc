// libFuzzer target: the service config loader. The bytes are a YAML config
// text; ParseConfig must return a Config or an error naming "fuzz.yaml" with
// a line and column, never crash, and never print a secret it was given.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "pipeline/config.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const absl::StatusOr<novapulse::Config> config = novapulse::ParseConfig(text, "fuzz.yaml");
  if (!config.ok()) {
    const std::string message(config.status().message());
    FUZZ_CHECK(message.starts_with("fuzz.yaml:"));
    return 0;
  }
  FUZZ_CHECK(!config->kafka.brokers.empty());
  const std::string summary = novapulse::RedactedSummary(*config);
  FUZZ_CHECK(!summary.empty());
  for (const auto& [user, hash] : config->http.web.basic_auth_users) {
    FUZZ_CHECK(summary.find(hash) == std::string::npos);
  }
  return 0;
}
