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
#include "sinks/json_text.h"

namespace novapulse {
namespace {

struct PostResult {
  int status = 0;     // HTTP status; 0 when there was no answer
  std::string error;  // why there was no answer
};

// True when a later POST of the same batch may succeed.
bool Retryable(const PostResult& r) {
  return r.status == 0 || r.status >= 500 || r.status == 408 || r.status == 429;
}

int MillisUntil(absl::Time deadline) {
  const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
  return static_cast<int>(std::clamp<int64_t>(ms, 0, 100));  // short slices: see Post
}

// POSTs `body` and reads the status line of the answer. `deadline` bounds
// the whole exchange; so does *cut_unix_ns, re-read every 100 ms so that a
// shutdown can cut a POST already in flight.
PostResult Post(const std::string& host, int port, const std::string& request, absl::Time deadline,
                const std::atomic<int64_t>* cut_unix_ns) {
  const auto effective = [&] {
    return std::min(deadline, absl::FromUnixNanos(cut_unix_ns->load(std::memory_order_relaxed)));
  };
  PostResult result;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* addrs = nullptr;
  const std::string port_text = std::to_string(port);
  if (const int rc = getaddrinfo(host.c_str(), port_text.c_str(), &hints, &addrs); rc != 0) {
    result.error = absl::StrCat("resolve ", host, ": ", gai_strerror(rc));
    return result;
  }
  absl::Cleanup free_addrs = [addrs] { freeaddrinfo(addrs); };
  int fd = -1;
  absl::Cleanup close_fd = [&fd] {
    if (fd >= 0) close(fd);
  };
  for (addrinfo* a = addrs; a != nullptr && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    if (connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
      result.error = absl::StrCat("connect: ", std::strerror(errno));
      close(fd);
      fd = -1;
      continue;
    }
    pollfd p{fd, POLLOUT, 0};
    int ready = 0;
    while (ready == 0 && absl::Now() < effective()) {
      ready = poll(&p, 1, MillisUntil(effective()));
      if (ready < 0 && errno == EINTR) ready = 0;
    }
    int err = 0;
    socklen_t len = sizeof(err);
    if (ready <= 0) {
      err = ETIMEDOUT;
    } else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
      err = errno;
    }
    if (err != 0) {
      result.error = absl::StrCat("connect: ", std::strerror(err));
      close(fd);
      fd = -1;
    }
  }
  if (fd < 0) return result;

  for (size_t sent = 0; sent < request.size();) {
    const ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      result.error = absl::StrCat("send: ", std::strerror(errno));
      return result;
    }
    if (absl::Now() >= effective()) {
      result.error = "send: timed out";
      return result;
    }
    pollfd p{fd, POLLOUT, 0};
    poll(&p, 1, MillisUntil(effective()));
  }

  std::string head;
  char buf[4096];
  while (head.find("\r\n") == std::string::npos) {
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n > 0) {
      head.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) break;
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      result.error = absl::StrCat("receive: ", std::strerror(errno));
      return result;
    }
    if (absl::Now() >= effective()) {
      result.error = "receive: timed out";
      return result;
    }
    pollfd p{fd, POLLIN, 0};
    poll(&p, 1, MillisUntil(effective()));
  }
  // "HTTP/1.1 200 OK"
  int status = 0;
  if (head.size() >= 12 && head.starts_with("HTTP/1.") && head[8] == ' ') {
    const auto [end, ec] = std::from_chars(head.data() + 9, head.data() + 12, status);
    if (ec != std::errc() || end != head.data() + 12) status = 0;
  }
  if (status < 100 || status > 599) {
    result.error = "receive: not an HTTP response";
    return result;
  }
  result.status = status;
  return result;
}

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
  std::vector<Endpoint> endpoints;
  for (const std::string& url : options.urls) {
    absl::string_view rest = url;
    if (!absl::ConsumePrefix(&rest, "http://")) {
      return BadUrl(url, absl::StartsWith(url, "https://")
                             ? "https is not supported; use a TLS proxy"
                             : "want http://HOST[:PORT][/PREFIX]");
    }
    Endpoint e;
    e.url = url;
    const size_t slash = rest.find('/');
    absl::string_view authority = rest.substr(0, slash);
    absl::string_view prefix = slash == absl::string_view::npos ? "" : rest.substr(slash);
    if (absl::StrContains(prefix, '?') || absl::StrContains(prefix, '#')) {
      return BadUrl(url, "query and fragment are not allowed");
    }
    if (const size_t at = authority.rfind('@'); at != absl::string_view::npos) {
      e.authorization = absl::StrCat("Basic ", absl::Base64Escape(authority.substr(0, at)));
      authority = authority.substr(at + 1);
    }
    absl::string_view port;
    if (absl::StartsWith(authority, "[")) {  // [IPv6]:port
      const size_t close = authority.find(']');
      if (close == absl::string_view::npos) return BadUrl(url, "unclosed [");
      e.host = std::string(authority.substr(1, close - 1));
      absl::string_view after = authority.substr(close + 1);
      if (!after.empty() && !absl::ConsumePrefix(&after, ":")) return BadUrl(url, "bad port");
      port = after;
    } else {
      const size_t colon = authority.find(':');
      e.host = std::string(authority.substr(0, colon));
      if (colon != absl::string_view::npos) port = authority.substr(colon + 1);
    }
    if (e.host.empty()) return BadUrl(url, "no host");
    if (!port.empty()) {
      const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), e.port);
      if (ec != std::errc() || end != port.data() + port.size() || e.port < 1 || e.port > 65535) {
        return BadUrl(url, "port must be a number in 1-65535");
      }
    } else if (absl::EndsWith(authority, ":")) {
      return BadUrl(url, "empty port");
    }
    while (absl::ConsumeSuffix(&prefix, "/")) {
    }
    e.path = absl::StrCat(prefix, "/api/v2/alerts");
    endpoints.push_back(std::move(e));
  }

  std::unique_ptr<AlertmanagerClient> client(new AlertmanagerClient(std::move(options)));
  for (Endpoint& e : endpoints) {
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
    if (stopping_) {
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
    if (!stopping_) {
      stopping_ = true;
      flush_deadline_ = absl::Now() + flush;
      cut_unix_ns_.store(absl::ToUnixNanos(flush_deadline_), std::memory_order_relaxed);
    }
    wake_.SignalAll();
  }
  if (joined_) return;
  for (const auto& target : targets_) target->thread.join();
  joined_ = true;
}

void AlertmanagerClient::Run(Target* target) {
  const Endpoint& e = target->endpoint;
  const std::string host_header =
      absl::StrCat(absl::StrContains(e.host, ':') ? absl::StrCat("[", e.host, "]") : e.host,
                   e.port == 80 ? "" : absl::StrCat(":", e.port));
  absl::Duration backoff = absl::ZeroDuration();
  absl::Time retry_at = absl::InfinitePast();
  std::vector<std::shared_ptr<const std::string>> batch;
  while (true) {
    absl::Time deadline;
    {
      absl::MutexLock lock(&mu_);
      while (true) {
        const absl::Time now = absl::Now();
        if (stopping_ && (target->queue.empty() || now >= flush_deadline_)) {
          target->dropped += target->queue.size();
          target->queue.clear();
          return;
        }
        if (!target->queue.empty() && now >= retry_at) break;
        absl::Time until = target->queue.empty() ? absl::InfiniteFuture() : retry_at;
        if (stopping_) until = std::min(until, flush_deadline_);
        wake_.WaitWithDeadline(&mu_, until);
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
    std::string request = absl::StrCat("POST ", e.path, " HTTP/1.1\r\nHost: ", host_header,
                                       "\r\nUser-Agent: novapulse\r\n"
                                       "Content-Type: application/json\r\nContent-Length: ",
                                       body.size(), "\r\nConnection: close\r\n");
    if (!e.authorization.empty()) {
      absl::StrAppend(&request, "Authorization: ", e.authorization, "\r\n");
    }
    absl::StrAppend(&request, "\r\n", body);
    const PostResult result = Post(e.host, e.port, request, deadline, &cut_unix_ns_);

    absl::MutexLock lock(&mu_);
    target->inflight = 0;
    const bool ok = result.status >= 200 && result.status < 300;
    if (!ok) {
      target->last_error =
          result.status != 0 ? absl::StrCat("HTTP status ", result.status) : result.error;
    }
    if (ok) {
      target->sent += batch.size();
      backoff = absl::ZeroDuration();
      retry_at = absl::InfinitePast();
    } else {
      target->errors += batch.size();
      if (Retryable(result)) {
        target->queue.insert(target->queue.begin(), batch.begin(), batch.end());
        TrimLocked(target);
        backoff = backoff == absl::ZeroDuration() ? options_.backoff_min
                                                  : std::min(backoff * 2, options_.backoff_max);
        retry_at = absl::Now() + backoff;
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
