#include "base/log.h"

#include <simdjson.h>

#include <atomic>
#include <cstdio>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/json_escape.h"

namespace novapulse {
namespace {

// Set once at start-up; relaxed atomics only so that a late reader on
// another thread is well defined.
std::atomic<LogLevel> g_level{LogLevel::kInfo};
std::atomic<LogFormat> g_format{LogFormat::kLogfmt};

std::string_view LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "info";
}

// A double-quoted string: JSON's escapes suit logfmt too.
void AppendQuoted(std::string_view s, std::string* out) {
  out->push_back('"');
  AppendJsonEscaped(s, out);
  out->push_back('"');
}

bool NeedsQuotes(std::string_view s) {
  if (s.empty()) return true;
  bool ascii = true;
  for (const char c : s) {
    if (c == ' ' || c == '"' || c == '=' || c == '\\' || static_cast<unsigned char>(c) < 0x21) {
      return true;
    }
    ascii &= static_cast<unsigned char>(c) < 0x80;
  }
  // Quoted, bytes that are not UTF-8 are written as \ufffd (as go-logfmt does).
  return !ascii && !simdjson::validate_utf8(s.data(), s.size());
}

void AppendLogfmt(std::string_view key, std::string_view value, std::string* out) {
  if (!out->empty()) out->push_back(' ');
  out->append(key);
  out->push_back('=');
  if (NeedsQuotes(value)) {
    AppendQuoted(value, out);
  } else {
    out->append(value);
  }
}

void AppendJson(std::string_view key, std::string_view value, std::string* out) {
  if (out->size() > 1) out->push_back(',');
  AppendQuoted(key, out);
  out->push_back(':');
  AppendQuoted(value, out);
}

}  // namespace

void SetLogConfig(const LogConfig& config) {
  g_level.store(config.level, std::memory_order_relaxed);
  g_format.store(config.format, std::memory_order_relaxed);
}

bool LogEnabled(LogLevel level) { return level >= g_level.load(std::memory_order_relaxed); }

std::string FormatLogLine(LogFormat format, std::string_view ts, LogLevel level,
                          std::string_view msg, std::initializer_list<LogField> fields) {
  std::string line;
  if (format == LogFormat::kJson) {
    line.push_back('{');
    AppendJson("ts", ts, &line);
    AppendJson("level", LevelName(level), &line);
    AppendJson("msg", msg, &line);
    for (const LogField& field : fields) AppendJson(field.first, field.second, &line);
    line.append("}\n");
    return line;
  }
  AppendLogfmt("ts", ts, &line);
  AppendLogfmt("level", LevelName(level), &line);
  line.append(" msg=");
  AppendQuoted(msg, &line);
  for (const LogField& field : fields) AppendLogfmt(field.first, field.second, &line);
  line.push_back('\n');
  return line;
}

void Log(LogLevel level, std::string_view msg, std::initializer_list<LogField> fields) {
  if (!LogEnabled(level)) return;
  const std::string ts = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
  const std::string line =
      FormatLogLine(g_format.load(std::memory_order_relaxed), ts, level, msg, fields);
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace novapulse
