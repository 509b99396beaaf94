#include "sinks/alertmanager_client.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "sinks/http_post.h"
#include "sinks/json_text.h"

namespace novapulse {
namespace {

absl::Status BadUrl(const std::string& url, std::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("alertmanager: bad url \"", url, "\": ", std::string(why)));
}

}  // namespace

std::string AlertmanagerAlertJson(const Alert& alert, const promql::Labels& external_labels,
                                  std::string_view generator_url) {
  promql::Labels labels;
  labels.reserve(alert.labels.size() + external_labels.size());
  for (const promql::Label& l : alert.labels) {
    if (!l.value.empty()) labels.push_back(l);
  }
  for (const promql::Label& l : external_labels) {
    const bool present = std::any_of(labels.begin(), labels.end(),
                                     [&](const promql::Label& x) { return x.name == l.name; });
    if (!present && !l.value.empty()) labels.push_back(l);
  }
  std::string out = "{\"labels\":";
  AppendJsonObject(&out, labels);
  out.append(",\"annotations\":");
  AppendJsonObject(&out, alert.annotations);
  out.append(",\"startsAt\":");
  AppendJsonTime(&out, alert.fired_at_ms != 0 ? alert.fired_at_ms : alert.active_at_ms);
  const int64_t ends_ms = alert.resolved_at_ms != 0 ? alert.resolved_at_ms : alert.valid_until_ms;
  if (ends_ms != 0) {
    out.append(",\"endsAt\":");
    AppendJsonTime(&out, ends_ms);
  }
  if (!generator_url.empty()) {
    out.append(",\"generatorURL\":");
    AppendJsonString(&out, generator_url);
  }
  out.push_back('}');
  return out;
}

AlertmanagerClient::AlertmanagerClient(AlertmanagerClientOptions options)
    : options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<AlertmanagerClient>> AlertmanagerClient::Start(
    AlertmanagerClientOptions options) {
  if (options.queue_capacity == 0) {
    return absl::InvalidArgumentError("alertmanager: queue capacity must be at least 1");
  }
  if (options.max_batch == 0) {
    return absl::InvalidArgumentError("alertmanager: batch size must be at least 1");
  }
  if (options.timeout <= absl::ZeroDuration() || options.backoff_min <= absl::ZeroDuration() ||
      options.backoff_min > options.backoff_max) {
    return absl::InvalidArgumentError(
        "alertmanager: timeout and backoff must be positive, backoff min <= max");
  }
  std::vector<HttpEndpoint> endpoints;
  for (const std::string& url : options.urls) {
    absl::StatusOr<HttpEndpoint> e = ParseHttpUrl(url);
    if (!e.ok()) return BadUrl(url, std::string(e.status().message()));
    absl::string_view prefix = e->path;
    while (absl::ConsumeSuffix(&prefix, "/")) {
    }
    e->path = absl::StrCat(prefix, "/api/v2/alerts");
    endpoints.push_back(*std::move(e));
  }

  std::unique_ptr<AlertmanagerClient> client(new AlertmanagerClient(std::move(options)));
  for (HttpEndpoint& e : endpoints) {
    auto target = std::make_unique<Target>();
    target->endpoint = std::move(e);
    client->targets_.push_back(std::move(target));
  }
  for (const auto& target : client->targets_) {
    target->thread = std::thread([c = client.get(), t = target.get()] { c->Run(t); });
  }
  return client;
}

AlertmanagerClient::~AlertmanagerClient() { Shutdown(options_.shutdown_flush); }

void AlertmanagerClient::Enqueue(const std::vector<Alert>& alerts) {
  if (alerts.empty() || targets_.empty()) return;
  std::vector<std::shared_ptr<const std::string>> rendered;
  rendered.reserve(alerts.size());
  for (const Alert& a : alerts) {
    rendered.push_back(std::make_shared<const std::string>(
        AlertmanagerAlertJson(a, options_.external_labels, options_.generator_url)));
  }
  absl::MutexLock lock(&mu_);
  for (const auto& target : targets_) {
    if (stop_.stopping()) {
      target->dropped += rendered.size();
      continue;
    }
    target->queue.insert(target->queue.end(), rendered.begin(), rendered.end());
    TrimLocked(target.get());
  }
  wake_.SignalAll();
}

void AlertmanagerClient::TrimLocked(Target* target) {
  if (target->queue.size() > options_.queue_capacity) {
    const size_t excess = target->queue.size() - options_.queue_capacity;
    target->queue.erase(target->queue.begin(),
                        target->queue.begin() + static_cast<std::ptrdiff_t>(excess));
    target->dropped += excess;
  }
}

void AlertmanagerClient::Shutdown(absl::Duration flush) {
  {
    absl::MutexLock lock(&mu_);
    stop_.Begin(flush);
    wake_.SignalAll();
  }
  if (joined_) return;
  for (const auto& target : targets_) target->thread.join();
  joined_ = true;
}

void AlertmanagerClient::Run(Target* target) {
  const HttpEndpoint& e = target->endpoint;
  Backoff backoff(options_.backoff_min, options_.backoff_max);
  std::vector<std::shared_ptr<const std::string>> batch;
  while (true) {
    absl::Time deadline;
    {
      absl::MutexLock lock(&mu_);
      while (true) {
        const absl::Time now = absl::Now();
        if (stop_.Finished(target->queue.empty(), now)) {
          target->dropped += target->queue.size();
          target->queue.clear();
          return;
        }
        if (!target->queue.empty() && backoff.Due(now)) break;
        wake_.WaitWithDeadline(
            &mu_, stop_.Until(target->queue.empty() ? absl::InfiniteFuture() : backoff.at()));
      }
      const size_t n = std::min(options_.max_batch, target->queue.size());
      batch.assign(target->queue.begin(), target->queue.begin() + static_cast<std::ptrdiff_t>(n));
      target->queue.erase(target->queue.begin(),
                          target->queue.begin() + static_cast<std::ptrdiff_t>(n));
      target->inflight = n;
      deadline = absl::Now() + options_.timeout;
    }

    std::string body = "[";
    for (size_t i = 0; i < batch.size(); ++i) {
      if (i > 0) body.push_back(',');
      body.append(*batch[i]);
    }
    body.push_back(']');
    std::string request = PostHead(e, "application/json", body.size(), {});
    request.append(body);
    const PostResult result = HttpPost(e, request, deadline, stop_.cut());

    absl::MutexLock lock(&mu_);
    target->inflight = 0;
    const bool ok = result.status >= 200 && result.status < 300;
    if (!ok) {
      target->last_error =
          result.status != 0 ? absl::StrCat("HTTP status ", result.status) : result.error;
    }
    if (ok) {
      target->sent += batch.size();
      backoff.Succeeded();
    } else {
      target->errors += batch.size();
      if (Retryable(result)) {
        target->queue.insert(target->queue.begin(), batch.begin(), batch.end());
        TrimLocked(target);
        backoff.Failed(absl::Now());
      } else {
        target->dropped += batch.size();
      }
    }
    batch.clear();
  }
}

AlertmanagerStats AlertmanagerClient::stats() const {
  AlertmanagerStats stats;
  absl::MutexLock lock(&mu_);
  for (const auto& target : targets_) {
    AlertmanagerUrlStats s;
    s.url = target->endpoint.url;
    s.sent = target->sent;
    s.errors = target->errors;
    s.dropped = target->dropped;
    s.queued = target->queue.size() + target->inflight;
    s.last_error = target->last_error;
    stats.dropped += s.dropped;
    stats.urls.push_back(std::move(s));
  }
  return stats;
}

namespace {

#define NOVAPULSE_ALERTMANAGER_METRICS(M)                                                        \
  M(kAlertsSent, "novapulse_alertmanager_alerts_sent_total", "Alerts an Alertmanager accepted.", \
    MetricType::kComputedCounter, {"url"}, {})                                                   \
  M(kAlertErrors, "novapulse_alertmanager_errors_total",                                         \
    "Alerts in POSTs to an Alertmanager that failed, at each attempt.",                          \
    MetricType::kComputedCounter, {"url"}, {})                                                   \
  M(kAlertsDropped, "novapulse_alertmanager_dropped_total",                                      \
    "Alerts never delivered to an Alertmanager: queue full, rejected, or left at shutdown.",     \
    MetricType::kComputedCounter, {"url"}, {})                                                   \
  M(kAlertQueueLength, "novapulse_alertmanager_queue_length",                                    \
    "Alerts waiting to be sent to an Alertmanager.", MetricType::kComputed, {"url"}, {})

enum AlertmanagerMetric : size_t {
  NOVAPULSE_ALERTMANAGER_METRICS(NOVAPULSE_METRIC_ID) kAlertmanagerMetricCount
};

const std::vector<MetricDef>& AlertmanagerMetricDefs() {
  static const std::vector<MetricDef> kDefs = {
      NOVAPULSE_ALERTMANAGER_METRICS(NOVAPULSE_METRIC_DEF)};
  return kDefs;
}

}  // namespace

void AlertmanagerClient::CollectMetrics(MetricFamilies* out) {
  const std::vector<MetricDef>& defs = AlertmanagerMetricDefs();
  const AlertmanagerStats s = stats();
  for (size_t m = 0; m < kAlertmanagerMetricCount; ++m) {
    FamilySnapshot& family = out->Start(defs[m]);
    for (const AlertmanagerUrlStats& u : s.urls) {
      const uint64_t values[kAlertmanagerMetricCount] = {u.sent, u.errors, u.dropped, u.queued};
      out->Add(family, {u.url}, static_cast<double>(values[m]));
    }
  }
}

}  // namespace novapulse
