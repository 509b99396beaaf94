#include "pipeline/process_metrics.h"

#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <string>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sinks/exposition.h"
#include "sinks/openmetrics.h"
#include "tests/sinks/prometheus_text.h"

namespace novapulse {
namespace {

using ::novapulse::testing::ParsePromText;
using ::novapulse::testing::PromText;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

double NowSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The CPUs of the affinity mask (taskset), not of the machine: a thread
// limited to one CPU sees one, whatever the machine has.
TEST(AvailableCpus, FollowsTheAffinityMask) {
  int all = 0;
  int limited = 0;
  std::thread([&] {
    all = AvailableCpus();
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu(), &one);
    if (pthread_setaffinity_np(pthread_self(), sizeof(one), &one) == 0) limited = AvailableCpus();
  }).join();
  EXPECT_GE(all, 1);
  EXPECT_LE(all, static_cast<int>(std::thread::hardware_concurrency()));
  EXPECT_EQ(limited, 1);
}

TEST(ProcessMetrics, ReadsPlausibleValues) {
  const absl::StatusOr<ProcessStats> stats = ReadProcessStats();
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_GT(stats->resident_bytes, 0);
  EXPECT_GE(stats->cpu_seconds, 0);
  EXPECT_GE(stats->open_fds, 3);  // stdin, stdout, stderr
  // Started by the test runner moments ago; /proc/stat's btime is rounded to
  // the second, hence the slack.
  const double now = NowSeconds();
  EXPECT_LE(stats->start_time_seconds, now + 2);
  EXPECT_GT(stats->start_time_seconds, now - 60);
}

TEST(ProcessMetrics, CountsOpenedDescriptors) {
  const absl::StatusOr<ProcessStats> before = ReadProcessStats();
  ASSERT_TRUE(before.ok()) << before.status();
  const int fd = open("/dev/null", O_RDONLY);
  ASSERT_GE(fd, 0);
  const absl::StatusOr<ProcessStats> after = ReadProcessStats();
  close(fd);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(after->open_fds, before->open_fds + 1);
}

TEST(ProcessMetrics, CpuSecondsGrowWithBusyWork) {
  const absl::StatusOr<ProcessStats> before = ReadProcessStats();
  ASSERT_TRUE(before.ok()) << before.status();
  // CPU time moves in clock ticks (10 ms at 100 Hz): spin until it does.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  volatile double sink = 0;
  double cpu = before->cpu_seconds;
  while (cpu <= before->cpu_seconds && std::chrono::steady_clock::now() < deadline) {
    for (int i = 0; i < 1'000'000; ++i) sink = sink + std::sqrt(static_cast<double>(i));
    const absl::StatusOr<ProcessStats> now = ReadProcessStats();
    ASSERT_TRUE(now.ok()) << now.status();
    cpu = now->cpu_seconds;
  }
  EXPECT_GT(cpu, before->cpu_seconds);
}

std::vector<FamilySnapshot> Families() {
  ProcessStats stats;
  stats.cpu_seconds = 1.25;
  stats.resident_bytes = 4096 * 1000;
  stats.start_time_seconds = 1795651200.5;
  stats.open_fds = 12;
  MetricFamilies families;
  AppendProcessFamilies(stats, &families);
  // The families own no label values: copying them out is safe.
  return families.families();
}

TEST(ProcessMetrics, RendersCpuSecondsAsFractionalCounter) {
  const std::string text = RenderPrometheusText(Families());
  EXPECT_THAT(text, HasSubstr("# TYPE process_cpu_seconds_total counter\n"
                              "process_cpu_seconds_total 1.25\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE process_resident_memory_bytes gauge\n"
                              "process_resident_memory_bytes 4096000\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE process_start_time_seconds gauge\n"
                              "process_start_time_seconds 1795651200.5\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE process_open_fds gauge\nprocess_open_fds 12\n"));
  const PromText parsed = ParsePromText(text);
  EXPECT_THAT(novapulse::testing::ValidateExposition(parsed), IsEmpty()) << text;
  ASSERT_NE(parsed.Family("process_cpu_seconds_total"), nullptr);
  EXPECT_EQ(parsed.Family("process_cpu_seconds_total")->type, "counter");
  EXPECT_EQ(parsed.Value("process_cpu_seconds_total"), 1.25);
}

TEST(ProcessMetrics, RendersCpuSecondsAsFractionalOpenMetricsCounter) {
  // OpenMetrics names the counter family without `_total`; its sample keeps it.
  const std::string text = RenderOpenMetricsText(Families());
  EXPECT_THAT(text, HasSubstr("# TYPE process_cpu_seconds counter\n"
                              "process_cpu_seconds_total 1.25\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE process_open_fds gauge\nprocess_open_fds 12\n"));
}

TEST(ProcessMetrics, ToMetricFamiliesKeepsFractionalCounter) {
  const std::vector<prometheus::MetricFamily> families = ToMetricFamilies(Families());
  ASSERT_EQ(families.size(), kProcessMetricCount);
  EXPECT_EQ(families[kProcessCpuSeconds].type, prometheus::MetricType::Counter);
  ASSERT_EQ(families[kProcessCpuSeconds].metric.size(), 1u);
  EXPECT_EQ(families[kProcessCpuSeconds].metric[0].counter.value, 1.25);
}

}  // namespace
}  // namespace novapulse
