#include "pipeline/process_metrics.h"

#include <dirent.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "base/log.h"

namespace novapulse {
namespace {

// Space-separated fields of `text`.
std::vector<std::string_view> Fields(std::string_view text) {
  std::vector<std::string_view> fields;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t begin = text.find_first_not_of(" \n", pos);
    if (begin == std::string_view::npos) break;
    size_t end = text.find_first_of(" \n", begin);
    if (end == std::string_view::npos) end = text.size();
    fields.push_back(text.substr(begin, end - begin));
    pos = end;
  }
  return fields;
}

bool ParseUint(std::string_view text, uint64_t* value) {
  const char* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, *value);
  return ec == std::errc() && ptr == end;
}

absl::StatusOr<std::string> ReadProcFile(const char* path) {
  std::ifstream in(path);
  if (!in) return absl::UnavailableError(absl::StrCat("reading ", path));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// The fields of /proc/self/stat after the command name, which is in
// parentheses and may itself hold spaces and parentheses: fields[0] is the
// state (field 3 in proc(5)).
absl::StatusOr<std::vector<std::string_view>> StatFields(std::string_view stat) {
  const size_t close = stat.rfind(')');
  if (close == std::string_view::npos) return absl::DataLossError("parsing /proc/self/stat");
  return Fields(stat.substr(close + 1));
}

// Field `n` (1-based, as proc(5) numbers them) of /proc/self/stat.
bool StatField(const std::vector<std::string_view>& fields, size_t n, uint64_t* value) {
  return n >= 3 && n - 3 < fields.size() && ParseUint(fields[n - 3], value);
}

absl::StatusOr<uint64_t> BootTimeSeconds() {
  absl::StatusOr<std::string> stat = ReadProcFile("/proc/stat");
  if (!stat.ok()) return stat.status();
  constexpr std::string_view kBtime = "\nbtime ";
  const size_t at = stat->find(kBtime);
  if (at != std::string::npos) {
    const std::string_view rest = std::string_view(*stat).substr(at + kBtime.size());
    uint64_t btime = 0;
    if (ParseUint(rest.substr(0, rest.find('\n')), &btime)) return btime;
  }
  return absl::DataLossError("no btime in /proc/stat");
}

absl::StatusOr<int> OpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return absl::UnavailableError("reading /proc/self/fd");
  int n = 0;
  while (const dirent* entry = readdir(dir)) {
    if (entry->d_name[0] != '.') ++n;
  }
  closedir(dir);
  return n - 1;  // the descriptor opendir holds
}

}  // namespace

int AvailableCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return CPU_COUNT(&set);
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

absl::StatusOr<ProcessStats> ReadProcessStats() {
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  absl::StatusOr<std::string> stat = ReadProcFile("/proc/self/stat");
  if (!stat.ok()) return stat.status();
  absl::StatusOr<std::vector<std::string_view>> fields = StatFields(*stat);
  if (!fields.ok()) return fields.status();
  uint64_t utime = 0;
  uint64_t stime = 0;
  uint64_t start_ticks = 0;
  if (!StatField(*fields, 14, &utime) || !StatField(*fields, 15, &stime) ||
      !StatField(*fields, 22, &start_ticks)) {
    return absl::DataLossError("parsing /proc/self/stat");
  }
  absl::StatusOr<std::string> statm = ReadProcFile("/proc/self/statm");
  if (!statm.ok()) return statm.status();
  const std::vector<std::string_view> pages = Fields(*statm);
  uint64_t resident_pages = 0;
  if (pages.size() < 2 || !ParseUint(pages[1], &resident_pages)) {
    return absl::DataLossError("parsing /proc/self/statm");
  }
  absl::StatusOr<uint64_t> boot = BootTimeSeconds();
  if (!boot.ok()) return boot.status();
  absl::StatusOr<int> fds = OpenFds();
  if (!fds.ok()) return fds.status();

  ProcessStats stats;
  stats.cpu_seconds = static_cast<double>(utime + stime) / ticks;
  stats.resident_bytes = static_cast<double>(resident_pages) * page;
  stats.start_time_seconds = static_cast<double>(*boot) + static_cast<double>(start_ticks) / ticks;
  stats.open_fds = *fds;
  return stats;
}

const std::vector<MetricDef>& ProcessMetricDefs() {
  static const std::vector<MetricDef> kDefs = {NOVAPULSE_PROCESS_METRICS(NOVAPULSE_METRIC_DEF)};
  return kDefs;
}

void AppendProcessFamilies(const ProcessStats& stats, MetricFamilies* out) {
  const double values[kProcessMetricCount] = {stats.cpu_seconds, stats.resident_bytes,
                                              stats.start_time_seconds, stats.open_fds};
  for (size_t m = 0; m < kProcessMetricCount; ++m) {
    out->AddSingle(ProcessMetricDefs()[m], values[m]);
  }
}

void ProcessMetrics::CollectMetrics(MetricFamilies* out) {
  if (absl::StatusOr<ProcessStats> process = ReadProcessStats(); process.ok()) {
    AppendProcessFamilies(*process, out);
  } else {
    Log(LogLevel::kDebug, "process metrics unavailable",
        {{"error", std::string(process.status().message())}});
  }
}

}  // namespace novapulse
