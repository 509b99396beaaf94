// Structured log lines on stderr for the long-running service (`run`):
// logfmt (`ts=... level=info msg="..." key=value`) or one JSON object per
// line, as the config's log section asks. Field values are quoted and escaped
// when they need it (base/json_escape.h: a line is always valid UTF-8);
// callers never pass secrets (Kafka property values are not logged at all).
//
// Threads: Log may be called from any thread; each line is written with one
// fwrite, so lines from different threads never interleave. SetLogConfig
// belongs to start-up, before other threads log.
//   Log(LogLevel::kInfo, "partitions assigned", {{"count", "4"}});
#ifndef NOVAPULSE_BASE_LOG_H_
#define NOVAPULSE_BASE_LOG_H_

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace novapulse {

enum class LogLevel { kDebug, kInfo, kWarn, kError };
enum class LogFormat { kLogfmt, kJson };

// The config's log section.
struct LogConfig {
  LogLevel level = LogLevel::kInfo;
  LogFormat format = LogFormat::kLogfmt;
};

using LogField = std::pair<std::string_view, std::string>;

void SetLogConfig(const LogConfig& config);
bool LogEnabled(LogLevel level);
void Log(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields = {});

// The line Log would write (without checking the level); for tests.
std::string FormatLogLine(LogFormat format, std::string_view ts, LogLevel level,
                          std::string_view msg, std::initializer_list<LogField> fields);

}  // namespace novapulse

#endif  // NOVAPULSE_BASE_LOG_H_
