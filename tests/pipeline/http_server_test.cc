#include "pipeline/http_server.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <crypt.h>
#include <netinet/in.h>
#include <simdjson.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "aggregators/novagift_metrics.h"
#include "aggregators/promql.h"
#include "aggregators/rules.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sinks/exposition.h"
#include "sinks/openmetrics.h"
#include "sinks/rules_json.h"
#include "tests/sinks/prometheus_text.h"

namespace novapulse {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

struct Response {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;

  std::string Header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
};

// One HTTP/1.1 request over a fresh connection to 127.0.0.1:port; reads to
// EOF (Connection: close). status 0 when the connection or the reply fails.
Response Fetch(int port, const std::string& method, const std::string& path,
               const std::vector<std::pair<std::string, std::string>>& headers = {}) {
  Response response;
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return response;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return response;
  }
  std::string request = absl::StrCat(method, " ", path, " HTTP/1.1\r\nHost: 127.0.0.1\r\n");
  for (const auto& [name, value] : headers) absl::StrAppend(&request, name, ": ", value, "\r\n");
  request += "Connection: close\r\n\r\n";
  for (size_t sent = 0; sent < request.size();) {
    const ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) {
      close(fd);
      return response;
    }
    sent += static_cast<size_t>(n);
  }
  std::string raw;
  char buf[16384];
  for (ssize_t n; (n = recv(fd, buf, sizeof(buf), 0)) > 0;) raw.append(buf, static_cast<size_t>(n));
  close(fd);

  const size_t end = raw.find("\r\n\r\n");
  if (end == std::string::npos || !raw.starts_with("HTTP/1.1 ")) return response;
  if (!absl::SimpleAtoi(raw.substr(9, 3), &response.status)) return response;
  for (size_t start = raw.find("\r\n") + 2; start < end;) {
    const size_t line_end = raw.find("\r\n", start);
    const std::string line = raw.substr(start, line_end - start);
    start = line_end + 2;
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    response.headers[absl::AsciiStrToLower(line.substr(0, colon))] =
        std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
  }
  response.body = raw.substr(end + 4);
  return response;
}

std::string Gunzip(const std::string& in) {
  z_stream z{};
  if (inflateInit2(&z, 15 + 16) != Z_OK) return "<inflateInit2 failed>";
  std::string out;
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  char buf[16384];
  int rc = Z_OK;
  while (rc == Z_OK) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof(buf);
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof(buf) - z.avail_out);
  }
  inflateEnd(&z);
  return rc == Z_STREAM_END ? out : "<not a complete gzip stream>";
}

std::string BcryptHash(const std::string& password) {
  char setting[CRYPT_GENSALT_OUTPUT_SIZE];
  if (crypt_gensalt_rn("$2b$", 5, nullptr, 0, setting, sizeof(setting)) == nullptr) return "";
  auto data = std::make_unique<crypt_data>();
  const char* hash = crypt_r(password.c_str(), setting, data.get());
  return hash != nullptr ? hash : "";
}

std::string Basic(const std::string& user, const std::string& password) {
  return absl::StrCat("Basic ", absl::Base64Escape(absl::StrCat(user, ":", password)));
}

constexpr int64_t kT0 = 1795651200LL * 1'000'000;  // 2026-11-26T00:00:00Z
constexpr char kPrometheusType[] = "text/plain; version=0.0.4; charset=utf-8";
constexpr char kOpenMetricsType[] = "application/openmetrics-text; version=1.0.0; charset=utf-8";
// What Prometheus 2.x sends when scraping.
constexpr char kPrometheusAccept[] =
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

AccessLogEvent Access(std::string_view route, uint16_t status) {
  AccessLogEvent e;
  e.ts_us = kT0;
  e.method = "GET";
  e.route = route;
  e.status = status;
  e.duration_ms = 12.5;
  return e;
}

// A server on a free port over a NovaGiftMetrics with a few events; readiness
// follows ready_ / reason_.
class HttpServerTest : public ::testing::Test {
 protected:
  HttpServerTest() : metrics_(1) {
    metrics_.writer(0).Record(Access("/api/gifts/:id/claim", 201));
    metrics_.writer(0).Record(Access("/api/gifts", 200));
  }

  HttpServer::Handlers MakeHandlers() {
    HttpServer::Handlers handlers;
    handlers.metrics = [this](bool openmetrics) {
      ++scrapes_;
      if (openmetrics) ++openmetrics_scrapes_;
      return openmetrics ? RenderOpenMetricsText(metrics_.Snapshot())
                         : RenderPrometheusText(metrics_.Snapshot());
    };
    handlers.ready = [this](std::string* reason) {
      if (ready_) return true;
      *reason = "partitions not assigned";
      return false;
    };
    return handlers;
  }

  std::unique_ptr<HttpServer> StartServer(HttpOptions options = {}) {
    if (options.listen == HttpOptions().listen) options.listen = "127.0.0.1:0";
    absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Start(options, MakeHandlers());
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? std::move(*server) : nullptr;
  }

  NovaGiftMetrics metrics_;
  std::atomic<int> scrapes_{0};
  std::atomic<int> openmetrics_scrapes_{0};
  std::atomic<bool> ready_{true};
};

TEST_F(HttpServerTest, PortZeroBindsARealPort) {
  std::unique_ptr<HttpServer> server = StartServer();
  ASSERT_NE(server, nullptr);
  EXPECT_GT(server->port(), 0);
  EXPECT_FALSE(server->tls());
  EXPECT_EQ(Fetch(server->port(), "GET", "/healthz").status, 200);
}

TEST_F(HttpServerTest, MetricsServesPrometheusTextByDefault) {
  std::unique_ptr<HttpServer> server = StartServer();
  ASSERT_NE(server, nullptr);
  const Response r = Fetch(server->port(), "GET", "/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.Header("content-type"), kPrometheusType);
  EXPECT_EQ(r.Header("content-encoding"), "");
  EXPECT_EQ(r.body, RenderPrometheusText(metrics_.Snapshot()));
  const testing::PromText text = testing::ParsePromText(r.body);
  EXPECT_THAT(testing::ValidateExposition(text), IsEmpty());
  EXPECT_EQ(text.Value("http_requests_total",
                       {{"method", "GET"}, {"route", "/api/gifts/:id/claim"}, {"status", "201"}}),
            1);
  EXPECT_EQ(openmetrics_scrapes_, 0);
}

TEST_F(HttpServerTest, MetricsServesOpenMetricsWhenAcceptAsksForIt) {
  std::unique_ptr<HttpServer> server = StartServer();
  ASSERT_NE(server, nullptr);
  const Response r = Fetch(server->port(), "GET", "/metrics", {{"Accept", kPrometheusAccept}});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.Header("content-type"), kOpenMetricsType);
  EXPECT_EQ(r.body, RenderOpenMetricsText(metrics_.Snapshot()));
  EXPECT_THAT(r.body, EndsWith("# EOF\n"));
  EXPECT_THAT(r.body, HasSubstr("# TYPE http_requests counter\n"));
  EXPECT_EQ(openmetrics_scrapes_, 1);
}

TEST_F(HttpServerTest, OpenMetricsRefusedWithQZeroGivesPrometheusText) {
  std::unique_ptr<HttpServer> server = StartServer();
  ASSERT_NE(server, nullptr);
  const Response r = Fetch(server->port(), "GET", "/metrics",
                           {{"Accept", "application/openmetrics-text;q=0, text/plain"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.Header("content-type"), kPrometheusType);
  EXPECT_EQ(openmetrics_scrapes_, 0);
}

TEST_F(HttpServerTest, MetricsAreGzippedWhenAcceptEncodingAllows) {
  std::unique_ptr<HttpServer> server = StartServer();
  ASSERT_NE(server, nullptr);
  const std::string plain = RenderPrometheusText(metrics_.Snapshot());
  const Response r =
      Fetch(server->port(), "GET", "/metrics", {{"Accept-Encoding", "deflate, gzip;q=0.9"}});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.Header("content-encoding"), "gzip");
  EXPECT_EQ(r.Header("content-length"), absl::StrCat(r.body.size()));
  EXPECT_LT(r.body.size(), plain.size());
  EXPECT_EQ(Gunzip(r.body), plain);

  const Response om = Fetch(server->port(), "GET", "/metrics",
                            {{"Accept", kPrometheusAccept}, {"Accept-Encoding", "gzip"}});
  EXPECT_EQ(om.Header("content-type"), kOpenMetricsType);
  EXPECT_EQ(Gunzip(om.body), RenderOpenMetricsText(metrics_.Snapshot()));
}

TEST_F(HttpServerTest, HeadSendsHeadersWithoutBody) {
  std::unique_ptr<HttpServer> server = StartServer();
  ASSERT_NE(server, nullptr);
  const Response r = Fetch(server->port(), "HEAD", "/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.Header("content-type"), kPrometheusType);
  EXPECT_EQ(r.Header("content-length"),
            absl::StrCat(RenderPrometheusText(metrics_.Snapshot()).size()));
  EXPECT_EQ(r.body, "");
  EXPECT_EQ(Fetch(server->port(), "HEAD", "/healthz").status, 200);
}

TEST_F(HttpServerTest, UnknownPathIs404) {
  std::unique_ptr<HttpServer> server = StartServer();
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(Fetch(server->port(), "GET", "/").status, 404);
  EXPECT_EQ(Fetch(server->port(), "GET", "/metrics/extra").status, 404);
  EXPECT_EQ(Fetch(server->port(), "GET", "/api/v1/alerts").status, 404);
}

TEST_F(HttpServerTest, OtherMethodsAre405WithAllow) {
  std::unique_ptr<HttpServer> server = StartServer();
  ASSERT_NE(server, nullptr);
  for (const std::string method : {"POST", "PUT", "DELETE"}) {
    const Response r = Fetch(server->port(), method, "/metrics", {{"Content-Length", "0"}});
    EXPECT_EQ(r.status, 405) << method;
    EXPECT_EQ(r.Header("allow"), "GET, HEAD") << method;
  }
  EXPECT_EQ(scrapes_, 0);
}

TEST_F(HttpServerTest, HealthzIsOk) {
  std::unique_ptr<HttpServer> server = StartServer();
  ASSERT_NE(server, nullptr);
  ready_ = false;  // health does not depend on readiness
  const Response r = Fetch(server->port(), "GET", "/healthz");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ok\n");
}

TEST_F(HttpServerTest, ReadyzFollowsTheReadyHandlerWithReason) {
  std::unique_ptr<HttpServer> server = StartServer();
  ASSERT_NE(server, nullptr);
  Response r = Fetch(server->port(), "GET", "/readyz");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ready\n");
  ready_ = false;
  r = Fetch(server->port(), "GET", "/readyz");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, "partitions not assigned\n");
  ready_ = true;
  EXPECT_EQ(Fetch(server->port(), "GET", "/readyz").status, 200);
}

TEST_F(HttpServerTest, BasicAuthChecksBcryptHashes) {
  HttpOptions options;
  options.basic_auth_users = {{"prometheus", BcryptHash("s3cret")}, {"other", BcryptHash("x")}};
  ASSERT_TRUE(options.basic_auth_users["prometheus"].starts_with("$2b$05$"));
  std::unique_ptr<HttpServer> server = StartServer(options);
  ASSERT_NE(server, nullptr);
  const int port = server->port();

  for (int i = 0; i < 2; ++i) {  // the second one comes from the cache
    const Response ok =
        Fetch(port, "GET", "/metrics", {{"Authorization", Basic("prometheus", "s3cret")}});
    EXPECT_EQ(ok.status, 200);
    EXPECT_EQ(ok.body, RenderPrometheusText(metrics_.Snapshot()));
  }
  const std::vector<std::vector<std::pair<std::string, std::string>>> refused = {
      {},
      {{"Authorization", Basic("prometheus", "wrong")}},
      {{"Authorization", Basic("prometheus", "s3cret2")}},
      {{"Authorization", Basic("other", "s3cret")}},
      {{"Authorization", Basic("nobody", "s3cret")}},
      {{"Authorization", "Basic !!!notbase64"}},
      {{"Authorization", "Bearer s3cret"}},
  };
  for (const auto& headers : refused) {
    const Response r = Fetch(port, "GET", "/metrics", headers);
    EXPECT_EQ(r.status, 401) << (headers.empty() ? "none" : headers[0].second);
    EXPECT_EQ(r.Header("www-authenticate"), "Basic realm=\"novapulse\"");
    EXPECT_THAT(r.body, ::testing::Not(HasSubstr("s3cret")));
  }
  EXPECT_EQ(Fetch(port, "GET", "/healthz").status, 401);
  EXPECT_EQ(Fetch(port, "GET", "/readyz").status, 401);
  EXPECT_EQ(Fetch(port, "GET", "/healthz", {{"Authorization", Basic("other", "x")}}).status, 200);
  EXPECT_EQ(scrapes_, 2);
}

TEST_F(HttpServerTest, RejectsHashesThatAreNotBcrypt) {
  HttpOptions options;
  options.listen = "127.0.0.1:0";
  options.basic_auth_users = {{"prometheus", "plaintext-password"}};
  absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Start(options, MakeHandlers());
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(server.status().message(), HasSubstr("prometheus"));
  EXPECT_THAT(server.status().message(), ::testing::Not(HasSubstr("plaintext-password")));
}

TEST_F(HttpServerTest, PortInUseIsAClearError) {
  std::unique_ptr<HttpServer> first = StartServer();
  ASSERT_NE(first, nullptr);
  HttpOptions options;
  options.listen = absl::StrCat("127.0.0.1:", first->port());
  absl::StatusOr<std::unique_ptr<HttpServer>> second = HttpServer::Start(options, MakeHandlers());
  ASSERT_FALSE(second.ok());
  EXPECT_THAT(second.status().message(), HasSubstr(options.listen));
  EXPECT_THAT(std::string(second.status().message()), HasSubstr("in use"));
  EXPECT_EQ(Fetch(first->port(), "GET", "/healthz").status, 200);
}

TEST_F(HttpServerTest, BadListenAddressesAreClearErrors) {
  for (const std::string listen :
       {"9464", "localhost:9464", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:70000", "1.2.3:80"}) {
    HttpOptions options;
    options.listen = listen;
    absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Start(options, MakeHandlers());
    ASSERT_FALSE(server.ok()) << listen;
    EXPECT_THAT(server.status().message(), HasSubstr(listen));
  }
}

TEST_F(HttpServerTest, TlsNeedsBothFiles) {
  HttpOptions options;
  options.listen = "127.0.0.1:0";
  options.cert_file = "/nonexistent/cert.pem";
  absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Start(options, MakeHandlers());
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(server.status().message(), HasSubstr("key_file"));
  options.key_file = "/nonexistent/key.pem";
  server = HttpServer::Start(options, MakeHandlers());
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(server.status().message(), HasSubstr("/nonexistent/"));
}

// Serves HTTPS where civetweb can; elsewhere (Debian 12's civetweb with
// OpenSSL 3) Start() must refuse with the reason instead of crashing later.
TEST_F(HttpServerTest, ServesHttpsWithSeparateCertAndKeyOrRefusesClearly) {
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / "np_http_tls";
  std::filesystem::create_directories(dir);
  const std::string cert = (dir / "cert.pem").string();
  const std::string key = (dir / "key.pem").string();
  const std::string command = absl::StrCat(
      "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 "
      "-subj /CN=127.0.0.1 -keyout ",
      key, " -out ", cert, " >/dev/null 2>&1");
  if (std::system(command.c_str()) != 0) GTEST_SKIP() << "no openssl command to make a cert";

  HttpOptions options;
  options.listen = "127.0.0.1:0";
  options.cert_file = cert;
  options.key_file = key;
  const absl::Status tls = CheckCivetwebTls();
  if (!tls.ok()) {
    absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Start(options, MakeHandlers());
    ASSERT_FALSE(server.ok());
    EXPECT_EQ(server.status(), tls);
    EXPECT_THAT(std::string(server.status().message()), HasSubstr("tls"));
    std::filesystem::remove_all(dir);
    return;
  }
  std::unique_ptr<HttpServer> server = StartServer(options);
  ASSERT_NE(server, nullptr);
  EXPECT_TRUE(server->tls());
  char error[256] = {};
  mg_connection* conn = mg_download("127.0.0.1", server->port(), /*use_ssl=*/1, error,
                                    sizeof(error), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_NE(conn, nullptr) << error;
  EXPECT_EQ(mg_get_response_info(conn)->status_code, 200);
  std::string body;
  char buf[4096];
  for (int n; (n = mg_read(conn, buf, sizeof(buf))) > 0;) body.append(buf, static_cast<size_t>(n));
  mg_close_connection(conn);
  EXPECT_EQ(body, RenderPrometheusText(metrics_.Snapshot()));
  std::filesystem::remove_all(dir);
}

TEST_F(HttpServerTest, ConcurrentScrapesWhileIngestingSeeMonotonicCounters) {
  std::unique_ptr<HttpServer> server = StartServer();
  ASSERT_NE(server, nullptr);
  const testing::Labels series = {{"method", "GET"}, {"route", "/busy"}, {"status", "200"}};
  std::atomic<bool> stop{false};
  std::atomic<int64_t> written{0};
  std::thread writer([&] {
    NovaGiftMetrics::Writer& w = metrics_.writer(0);
    while (!stop.load(std::memory_order_relaxed)) {
      w.Record(Access("/busy", 200));
      written.fetch_add(1, std::memory_order_relaxed);
    }
  });
  constexpr int kScrapers = 4;
  constexpr int kScrapesEach = 15;
  absl::Mutex mu;
  std::vector<std::string> failures;
  std::vector<std::thread> scrapers;
  scrapers.reserve(kScrapers);
  for (int t = 0; t < kScrapers; ++t) {
    scrapers.emplace_back([&, t] {
      double last = 0;
      for (int i = 0; i < kScrapesEach; ++i) {
        const bool openmetrics = (t + i) % 2 == 1;
        const Response r = Fetch(
            server->port(), "GET", "/metrics",
            openmetrics
                ? std::vector<std::pair<std::string, std::string>>{{"Accept", kPrometheusAccept}}
                : std::vector<std::pair<std::string, std::string>>{});
        std::string failure;
        double value = std::nan("");
        if (r.status != 200) {
          failure = absl::StrCat("status ", r.status);
        } else if (openmetrics) {
          const std::string needle =
              "http_requests_total{method=\"GET\",route=\"/busy\",status=\"200\"} ";
          const size_t at = r.body.find(needle);
          if (!r.body.ends_with("# EOF\n")) {
            failure = "OpenMetrics text without # EOF";
          } else if (at == std::string::npos) {
            value = 0;  // before the writer's first event
          } else {
            const size_t from = at + needle.size();
            if (!absl::SimpleAtod(r.body.substr(from, r.body.find('\n', from) - from), &value)) {
              failure = "unreadable counter value";
            }
          }
        } else {
          const testing::PromText text = testing::ParsePromText(r.body);
          value = text.Has("http_requests_total", series)
                      ? text.Value("http_requests_total", series)
                      : 0;
          if (!text.errors.empty()) failure = text.errors[0];
        }
        if (failure.empty() && !(value >= last)) {
          failure = absl::StrCat("counter went from ", last, " to ", value);
        }
        if (!failure.empty()) {
          absl::MutexLock lock(&mu);
          failures.push_back(absl::StrCat("scraper ", t, " scrape ", i, ": ", failure));
        }
        if (value >= last) last = value;
      }
    });
  }
  for (std::thread& s : scrapers) s.join();
  stop = true;
  writer.join();
  EXPECT_THAT(failures, IsEmpty());
  EXPECT_EQ(scrapes_, kScrapers * kScrapesEach);
  const testing::PromText final_text =
      testing::ParsePromText(Fetch(server->port(), "GET", "/metrics").body);
  EXPECT_EQ(final_text.Value("http_requests_total", series), static_cast<double>(written.load()));
  EXPECT_GT(written.load(), 0);
}

TEST_F(HttpServerTest, ApiPathsAreNotFoundWithoutTheirHandlers) {
  std::unique_ptr<HttpServer> server = StartServer();
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(Fetch(server->port(), "GET", "/api/v1/alerts").status, 404);
  EXPECT_EQ(Fetch(server->port(), "GET", "/api/v1/rules").status, 404);
}

TEST_F(HttpServerTest, ServesAlertsAndRulesOfARealRuleEngine) {
  absl::StatusOr<RuleSet> rules = ParseRuleFile(R"(groups:
  - name: api
    rules:
      - record: route:requests:sum
        expr: sum by (route) (requests)
      - alert: ErrorsHigh
        expr: requests{status="500"} > 2
        for: 15s
        labels: {severity: page}
        annotations: {summary: "{{ $labels.route }} fails"}
)",
                                                "alerts/api.yml");
  ASSERT_TRUE(rules.ok()) << rules.status();
  promql::SeriesStore store;
  RuleEngine engine(*std::move(rules), &store);
  const uint32_t ok = store.Ref({{"__name__", "requests"}, {"route", "/claim"}, {"status", "200"}});
  const uint32_t bad =
      store.Ref({{"__name__", "requests"}, {"route", "/claim"}, {"status", "500"}});
  for (int64_t t = 15'000; t <= 45'000; t += 15'000) {
    store.Append(ok, t, 10);
    store.Append(bad, t, 5);
    engine.EvaluateDue(t);
  }

  HttpServer::Handlers handlers = MakeHandlers();
  handlers.alerts = [&engine] { return AlertsJson(engine.Snapshot()); };
  handlers.rules = [&engine] { return RulesJson(engine.Snapshot()); };
  absl::StatusOr<std::unique_ptr<HttpServer>> server =
      HttpServer::Start({.listen = "127.0.0.1:0"}, std::move(handlers));
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();

  const Response alerts = Fetch(port, "GET", "/api/v1/alerts");
  EXPECT_EQ(alerts.status, 200);
  EXPECT_EQ(alerts.Header("content-type"), "application/json");
  EXPECT_EQ(alerts.body, AlertsJson(engine.Snapshot()));
  EXPECT_EQ(alerts.body,
            R"({"status":"success","data":{"alerts":[{"labels":{"alertname":"ErrorsHigh",)"
            R"("route":"/claim","severity":"page","status":"500"},"annotations":{"summary":)"
            R"("/claim fails"},"state":"firing","activeAt":"1970-01-01T00:00:15Z",)"
            R"("value":"5e+00"}]}})");

  const Response rules_response = Fetch(port, "GET", "/api/v1/rules");
  EXPECT_EQ(rules_response.status, 200);
  EXPECT_EQ(rules_response.Header("content-type"), "application/json");
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(simdjson::padded_string(rules_response.body)).get(doc), simdjson::SUCCESS)
      << rules_response.body;
  std::string_view value;
  ASSERT_EQ(doc.at_pointer("/data/groups/0/file").get(value), simdjson::SUCCESS);
  EXPECT_EQ(value, "alerts/api.yml");
  ASSERT_EQ(doc.at_pointer("/data/groups/0/rules/0/type").get(value), simdjson::SUCCESS);
  EXPECT_EQ(value, "recording");
  ASSERT_EQ(doc.at_pointer("/data/groups/0/rules/1/state").get(value), simdjson::SUCCESS);
  EXPECT_EQ(value, "firing");
  ASSERT_EQ(doc.at_pointer("/data/groups/0/rules/1/lastEvaluation").get(value), simdjson::SUCCESS);
  EXPECT_EQ(value, "1970-01-01T00:00:45Z");
  double interval = 0;
  ASSERT_EQ(doc.at_pointer("/data/groups/0/interval").get(interval), simdjson::SUCCESS);
  EXPECT_EQ(interval, 15);

  const Response head = Fetch(port, "HEAD", "/api/v1/rules");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.body, "");
  EXPECT_EQ(Fetch(port, "POST", "/api/v1/alerts").status, 405);
}

TEST(HttpOptions, BuiltFromTheHttpConfig) {
  HttpConfig config;
  config.listen = "0.0.0.0:9999";
  config.tls.cert_file = "c.pem";
  config.tls.key_file = "k.pem";
  config.basic_auth_users = {{"u", "$2b$05$x"}};
  const HttpOptions options = HttpOptionsFromConfig(config);
  EXPECT_EQ(options.listen, "0.0.0.0:9999");
  EXPECT_EQ(options.cert_file, "c.pem");
  EXPECT_EQ(options.key_file, "k.pem");
  EXPECT_EQ(options.basic_auth_users, config.basic_auth_users);
  EXPECT_EQ(options.num_threads, 4);
}

}  // namespace
}  // namespace novapulse
