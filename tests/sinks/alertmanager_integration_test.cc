// AlertmanagerClient against a real Alertmanager (Debian's
// prometheus-alertmanager), started for each test on a free local port with
// clustering off. Find these with `ctest -L sinks -R AlertmanagerIntegration`.
// Alertmanager judges endsAt against its own clock, so these alerts carry
// wall-clock times (novapulse's engine sends event times).
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <simdjson.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "sinks/alertmanager_client.h"
#include "tests/pipeline/test_process.h"
#include "tests/sinks/alertmanager_process.h"

namespace novapulse {
namespace {

using testing::Alertmanager;
using testing::kAlertmanager;

// Polls `done` every 100 ms for up to 30 s.
template <typename F>
bool Eventually(F done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return true;
}

int64_t NowMs() { return absl::ToUnixMillis(absl::Now()); }

Alert FiringNow(const std::string& name) {
  const int64_t now = NowMs();
  Alert a;
  a.labels = {{"alertname", name}, {"severity", "page"}};
  a.annotations = {{"summary", "claims fail on /api/gifts/:id/claim"}};
  a.state = AlertState::kFiring;
  a.value = 0.12;
  a.active_at_ms = now - 120'000;
  a.fired_at_ms = now - 60'000;
  a.last_sent_ms = now;
  a.valid_until_ms = now + 300'000;
  return a;
}

class AlertmanagerIntegration : public ::testing::Test {
 protected:
  void SetUp() override {
    if (access(kAlertmanager, X_OK) != 0) {
      GTEST_SKIP() << kAlertmanager << " is not installed (Debian package prometheus-alertmanager)";
    }
  }
  AlertmanagerClientOptions Options(const Alertmanager& am) {
    AlertmanagerClientOptions options;
    options.urls = {am.url()};
    options.backoff_min = absl::Milliseconds(50);
    options.backoff_max = absl::Milliseconds(400);
    options.external_labels = {{"cluster", "test"}};
    options.generator_url = "http://novapulse.test:9464/graph";
    return options;
  }
  testing::ScratchDir dir_;
};

TEST_F(AlertmanagerIntegration, FiringAlertBecomesActiveAndResolvedAlertLeaves) {
  Alertmanager am(dir_);
  ASSERT_EQ(am.Start(), "");
  absl::StatusOr<std::unique_ptr<AlertmanagerClient>> client =
      AlertmanagerClient::Start(Options(am));
  ASSERT_TRUE(client.ok()) << client.status();

  Alert alert = FiringNow("ClaimErrorsHigh");
  (*client)->Enqueue({alert, FiringNow("OutboxBacklog")});
  ASSERT_TRUE(Eventually([&] {
    const auto alerts = am.Alerts();
    return alerts.size() == 2 && alerts.at("ClaimErrorsHigh") == "active";
  })) << "alerts seen: "
      << am.Alerts().size();
  EXPECT_TRUE(Eventually([&] { return (*client)->stats().urls[0].sent == 2; }));

  // Labels and annotations arrive as sent, external labels added.
  const auto [status, body] =
      testing::Get(am.port(), "/api/v2/alerts?filter=alertname%3D%22ClaimErrorsHigh%22");
  ASSERT_EQ(status, 200);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(simdjson::padded_string(body)).get(doc), simdjson::SUCCESS) << body;
  std::string_view value;
  ASSERT_EQ(doc.at_pointer("/0/labels/cluster").get(value), simdjson::SUCCESS) << body;
  EXPECT_EQ(value, "test");
  ASSERT_EQ(doc.at_pointer("/0/annotations/summary").get(value), simdjson::SUCCESS);
  EXPECT_EQ(value, "claims fail on /api/gifts/:id/claim");
  ASSERT_EQ(doc.at_pointer("/0/generatorURL").get(value), simdjson::SUCCESS);
  EXPECT_EQ(value, "http://novapulse.test:9464/graph");

  alert.state = AlertState::kInactive;
  alert.resolved_at_ms = NowMs();
  (*client)->Enqueue({alert});
  ASSERT_TRUE(Eventually([&] {
    const auto alerts = am.Alerts();
    return alerts.size() == 1 && alerts.contains("OutboxBacklog");
  }));
  EXPECT_EQ((*client)->stats().urls[0].errors, 0u);
}

TEST_F(AlertmanagerIntegration, AlertsQueuedWhileDownAreDeliveredAfterRestart) {
  Alertmanager am(dir_);
  ASSERT_EQ(am.Start(), "");
  absl::StatusOr<std::unique_ptr<AlertmanagerClient>> client =
      AlertmanagerClient::Start(Options(am));
  ASSERT_TRUE(client.ok()) << client.status();
  (*client)->Enqueue({FiringNow("BeforeOutage")});
  ASSERT_TRUE(Eventually([&] { return am.Alerts().contains("BeforeOutage"); }));

  am.Stop();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 50; ++i) (*client)->Enqueue({FiringNow(absl::StrCat("DuringOutage", i))});
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(200));
  ASSERT_TRUE(Eventually([&] { return (*client)->stats().urls[0].errors >= 50 * 2; }))
      << "errors: " << (*client)->stats().urls[0].errors;
  const AlertmanagerUrlStats down = (*client)->stats().urls[0];
  EXPECT_EQ(down.sent, 1u);
  EXPECT_EQ(down.queued, 50u);
  EXPECT_EQ(down.dropped, 0u);
  EXPECT_NE(down.last_error, "");

  ASSERT_EQ(am.Start(), "");  // same port; its alerts were in memory only
  ASSERT_TRUE(Eventually([&] { return am.Alerts().size() == 50; }))
      << "alerts seen: " << am.Alerts().size();
  EXPECT_TRUE(am.Alerts().contains("DuringOutage49"));
  ASSERT_TRUE(Eventually([&] { return (*client)->stats().urls[0].sent == 51; }));
  const AlertmanagerUrlStats up = (*client)->stats().urls[0];
  EXPECT_EQ(up.sent, 51u);
  EXPECT_EQ(up.queued, 0u);
  EXPECT_EQ(up.dropped, 0u);
}

}  // namespace
}  // namespace novapulse
