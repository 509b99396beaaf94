#include "pipeline/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <simdjson.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <zlib.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <optional>
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
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "aggregators/novagift_metrics.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rules/promql.h"
#include "rules/rule_engine.h"
#include "sinks/exposition.h"
#include "sinks/openmetrics.h"
#include "sinks/rules_json.h"
#include "tests/pipeline/bcrypt_hash.h"
#include "tests/pipeline/test_process.h"
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

using Headers = std::vector<std::pair<std::string, std::string>>;

// A TCP connection to 127.0.0.1:port whose sends and receives give up after
// `timeout`, so a server that does not answer fails the test instead of
// hanging it; -1 when connecting fails.
int Connect(int port, absl::Duration timeout = absl::Seconds(10)) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const timeval tv = absl::ToTimeval(timeout);
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

bool SendAll(int fd, std::string_view data) {
  for (size_t sent = 0; sent < data.size();) {
    const ssize_t n = send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += static_cast<size_t>(n);
  }
  return true;
}

std::string RequestText(const std::string& method, const std::string& path, const Headers& headers,
                        bool close) {
  std::string request = absl::StrCat(method, " ", path, " HTTP/1.1\r\nHost: 127.0.0.1\r\n");
  for (const auto& [name, value] : headers) absl::StrAppend(&request, name, ": ", value, "\r\n");
  if (close) request += "Connection: close\r\n";
  request += "\r\n";
  return request;
}

// Fills status and headers from the head of `raw` (which ends at `end`);
// false when it is not an HTTP/1.1 response.
bool ParseHead(const std::string& raw, size_t end, Response* response) {
  if (!raw.starts_with("HTTP/1.1 ")) return false;
  if (!absl::SimpleAtoi(raw.substr(9, 3), &response->status)) return false;
  for (size_t start = raw.find("\r\n") + 2; start < end;) {
    const size_t line_end = raw.find("\r\n", start);
    const std::string line = raw.substr(start, line_end - start);
    start = line_end + 2;
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    response->headers[absl::AsciiStrToLower(line.substr(0, colon))] =
        std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
  }
  return true;
}

// One HTTP/1.1 request over a fresh connection to 127.0.0.1:port; reads to
// EOF (Connection: close). status 0 when the connection or the reply fails.
Response Fetch(int port, const std::string& method, const std::string& path,
               const Headers& headers = {}) {
  Response response;
  const int fd = Connect(port);
  if (fd < 0) return response;
  if (!SendAll(fd, RequestText(method, path, headers, /*close=*/true))) {
    close(fd);
    return response;
  }
  std::string raw;
  char buf[16384];
  for (ssize_t n; (n = recv(fd, buf, sizeof(buf), 0)) > 0;) raw.append(buf, static_cast<size_t>(n));
  close(fd);

  const size_t end = raw.find("\r\n\r\n");
  if (end == std::string::npos || !ParseHead(raw, end, &response)) return Response();
  response.body = raw.substr(end + 4);
  return response;
}

// Reads one response from a kept-alive connection: the head, then
// Content-Length bytes of body (none for HEAD). Bytes after it stay in
// *carry. status 0 on EOF, error or timeout.
Response ReadResponse(int fd, bool head, std::string* carry) {
  Response response;
  char buf[16384];
  size_t end;
  while ((end = carry->find("\r\n\r\n")) == std::string::npos) {
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return Response();
    carry->append(buf, static_cast<size_t>(n));
  }
  if (!ParseHead(*carry, end, &response)) return Response();
  size_t length = 0;
  if (!head && !absl::SimpleAtoi(response.Header("content-length"), &length)) return Response();
  while (carry->size() < end + 4 + length) {
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return Response();
    carry->append(buf, static_cast<size_t>(n));
  }
  response.body = carry->substr(end + 4, length);
  carry->erase(0, end + 4 + length);
  return response;
}

// A request over a kept-alive connection.
Response Exchange(int fd, const std::string& method, const std::string& path,
                  const Headers& headers = {}) {
  std::string carry;
  if (!SendAll(fd, RequestText(method, path, headers, /*close=*/false))) return Response();
  return ReadResponse(fd, method == "HEAD", &carry);
}

// When the server closed `fd` (EOF or reset; anything it sent first is
// read and dropped), or nullopt if it is still open at `deadline`.
std::optional<absl::Time> WaitClosed(int fd, absl::Time deadline) {
  char buf[4096];
  while (true) {
    pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP, .revents = 0};
    const int64_t wait_ms = std::max<int64_t>(0, absl::ToInt64Milliseconds(deadline - absl::Now()));
    const int ready = poll(&p, 1, static_cast<int>(wait_ms));
    if (ready == 0) return std::nullopt;
    if (ready < 0) continue;  // EINTR
    const ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return absl::Now();
  }
}

// Open: the server has neither closed it nor sent anything.
bool StillOpen(int fd) {
  pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP, .revents = 0};
  return poll(&p, 1, 0) == 0;
}

// The soft limit on open files, raised to the hard limit.
rlim_t RaiseFileLimit() {
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);
  getrlimit(RLIMIT_NOFILE, &limit);
  return limit.rlim_cur;
}

// Sends a request header to each socket one byte at a time, a byte to every
// socket per `interval`, never finishing it (a padding field follows the
// request line) until destroyed.
class Trickler {
 public:
  Trickler(std::vector<int> fds, absl::Duration interval)
      : fds_(std::move(fds)), interval_(interval), thread_([this] { Run(); }) {}
  ~Trickler() {
    stop_.Notify();
    thread_.join();
  }
  Trickler(const Trickler&) = delete;
  Trickler& operator=(const Trickler&) = delete;

  // Bytes sent to each socket so far.
  size_t sent() {
    absl::MutexLock lock(&mu_);
    return sent_;
  }
  // True once `n` bytes went to each socket; false at `deadline`.
  bool WaitSent(size_t n, absl::Time deadline) {
    absl::MutexLock lock(&mu_);
    auto done = [this, n]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return sent_ >= n; };
    return mu_.AwaitWithDeadline(absl::Condition(&done), deadline);
  }

 private:
  void Run() {
    const std::string head = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ";
    for (size_t i = 0; !stop_.WaitForNotificationWithTimeout(interval_); ++i) {
      const char byte = i < head.size() ? head[i] : 'a';
      for (int fd : fds_) send(fd, &byte, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
      absl::MutexLock lock(&mu_);
      sent_ = i + 1;
    }
  }

  const std::vector<int> fds_;
  const absl::Duration interval_;
  absl::Mutex mu_;
  size_t sent_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Notification stop_;
  std::thread thread_;
};

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

using testing::BcryptHash;

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
  options.web.basic_auth_users = {{"prometheus", BcryptHash("s3cret")}, {"other", BcryptHash("x")}};
  ASSERT_TRUE(options.web.basic_auth_users["prometheus"].starts_with("$2b$05$"));
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
  options.web.basic_auth_users = {{"prometheus", "plaintext-password"}};
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
  options.web.tls.cert_file = "/nonexistent/cert.pem";
  absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Start(options, MakeHandlers());
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(server.status().message(), HasSubstr("key_file"));
  options.web.tls.key_file = "/nonexistent/key.pem";
  server = HttpServer::Start(options, MakeHandlers());
  ASSERT_FALSE(server.ok());
  EXPECT_THAT(server.status().message(), HasSubstr("/nonexistent/"));
}

// A self-signed certificate for 127.0.0.1 (and its key) in `dir`.
struct TestCert {
  std::string cert;
  std::string key;
};
TestCert MakeCert(const testing::ScratchDir& dir, const std::string& name = "") {
  TestCert files{dir.Path(name + "cert.pem"), dir.Path(name + "key.pem")};
  const testing::ProcessResult r = testing::RunProcess(
      {"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
       "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
       "subjectAltName=IP:127.0.0.1", "-keyout", files.key, "-out", files.cert});
  EXPECT_EQ(r.exit_code, 0) << "openssl req (Debian package openssl): " << r.err;
  return files;
}

// `curl` over HTTPS, verifying the server against `ca`; the body, or
// "curl failed: ..." when it does not get a 200.
std::string CurlHttps(int port, const std::string& path, const std::string& ca,
                      const std::vector<std::string>& extra = {}) {
  std::vector<std::string> argv = {"/usr/bin/curl", "-sS", "--max-time", "10",
                                   "--cacert",      ca,    "--fail"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back(absl::StrCat("https://127.0.0.1:", port, path));
  const testing::ProcessResult r = testing::RunProcess(argv);
  if (r.exit_code != 0) return absl::StrCat("curl failed: ", r.exit_code, " ", r.err);
  return r.out;
}

TEST_F(HttpServerTest, ServesHttpsWithSeparateCertAndKey) {
  testing::ScratchDir dir;
  const TestCert files = MakeCert(dir);
  HttpOptions options;
  options.web.tls.cert_file = files.cert;
  options.web.tls.key_file = files.key;
  std::unique_ptr<HttpServer> server = StartServer(options);
  ASSERT_NE(server, nullptr);
  EXPECT_TRUE(server->tls());
  const std::string expected = RenderPrometheusText(metrics_.Snapshot());
  EXPECT_EQ(CurlHttps(server->port(), "/metrics", files.cert), expected);
  EXPECT_EQ(CurlHttps(server->port(), "/metrics", files.cert, {"--tlsv1.2", "--tls-max", "1.2"}),
            expected);
  EXPECT_EQ(CurlHttps(server->port(), "/healthz", files.cert), "ok\n");

  // Plain HTTP to the TLS port: the handshake fails and the connection is
  // closed (no hang), and the server goes on serving.
  const absl::Time start = absl::Now();
  EXPECT_EQ(Fetch(server->port(), "GET", "/metrics").status, 0);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  const int silent = Connect(server->port());
  ASSERT_GE(silent, 0);
  EXPECT_EQ(CurlHttps(server->port(), "/metrics", files.cert), expected);
  close(silent);
}

TEST_F(HttpServerTest, ServesHttpsWithCertAndKeyInOneFile) {
  testing::ScratchDir dir;
  const TestCert files = MakeCert(dir);
  const std::string both = dir.Path("both.pem");
  testing::WriteWholeFile(both,
                          testing::ReadWholeFile(files.key) + testing::ReadWholeFile(files.cert));
  HttpOptions options;
  options.web.tls.cert_file = both;
  options.web.tls.key_file = both;
  std::unique_ptr<HttpServer> server = StartServer(options);
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(CurlHttps(server->port(), "/healthz", files.cert), "ok\n");
}

TEST_F(HttpServerTest, BadTlsFilesAreClearErrors) {
  testing::ScratchDir dir;
  const TestCert files = MakeCert(dir);
  const TestCert other = MakeCert(dir, "other-");
  const std::string junk = dir.Path("junk.pem");
  testing::WriteWholeFile(junk, "not a pem file\n");
  struct Case {
    std::string cert, key, want;
  };
  const std::vector<Case> cases = {
      {junk, files.key, absl::StrCat("http: tls cert_file ", junk, ": ")},
      {files.cert, junk, absl::StrCat("http: tls key_file ", junk, ": ")},
      {files.key, files.key, absl::StrCat("http: tls cert_file ", files.key, ": ")},
      {files.cert, other.key, absl::StrCat("http: tls key_file ", other.key)},
      {dir.Path("missing.pem"), files.key,
       "http: tls cert_file " + dir.Path("missing.pem") + ": cannot open"},
  };
  for (const Case& c : cases) {
    HttpOptions options;
    options.listen = "127.0.0.1:0";
    options.web.tls.cert_file = c.cert;
    options.web.tls.key_file = c.key;
    absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Start(options, MakeHandlers());
    ASSERT_FALSE(server.ok()) << c.cert << " " << c.key;
    EXPECT_THAT(std::string(server.status().message()), HasSubstr(c.want));
  }
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

TEST_F(HttpServerTest, PathsMatchExactly) {
  std::unique_ptr<HttpServer> server = StartServer();
  ASSERT_NE(server, nullptr);
  const int port = server->port();
  for (const std::string path :
       {"/metrics%00.html", "/metrics%00", "/metrics/", "//metrics", "/METRICS", "/metrics.html",
        "/metric%73", "/healthz/", "/readyz%20", "metrics", "*"}) {
    const Response r = Fetch(port, "GET", path);
    EXPECT_EQ(r.status, 404) << path;
    EXPECT_EQ(r.body, "not found\n") << path;
  }
  const Response query = Fetch(port, "GET", "/metrics?x=1");
  EXPECT_EQ(query.status, 200);
  EXPECT_EQ(query.body, RenderPrometheusText(metrics_.Snapshot()));
  EXPECT_EQ(Fetch(port, "GET", "/healthz?verbose").status, 200);
  // A raw NUL in the request line is not HTTP at all.
  EXPECT_EQ(Fetch(port, "GET", std::string("/metrics\0.html", 13)).status, 400);
  EXPECT_EQ(scrapes_, 1);
}

TEST_F(HttpServerTest, HealthzFollowsTheHealthyHandler) {
  std::atomic<bool> healthy{true};
  HttpServer::Handlers handlers = MakeHandlers();
  handlers.healthy = [&healthy](std::string* reason) {
    if (healthy) return true;
    *reason = "kafka consumer stopped";
    return false;
  };
  absl::StatusOr<std::unique_ptr<HttpServer>> server =
      HttpServer::Start({.listen = "127.0.0.1:0"}, std::move(handlers));
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  Response r = Fetch(port, "GET", "/healthz");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ok\n");
  healthy = false;
  r = Fetch(port, "GET", "/healthz");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, "kafka consumer stopped\n");
  r = Fetch(port, "HEAD", "/healthz");
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, "");
}

TEST_F(HttpServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  std::unique_ptr<HttpServer> server = StartServer();
  ASSERT_NE(server, nullptr);
  const int fd = Connect(server->port());
  ASSERT_GE(fd, 0);
  const std::string text = RenderPrometheusText(metrics_.Snapshot());
  Response r = Exchange(fd, "GET", "/healthz");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ok\n");
  EXPECT_EQ(r.Header("connection"), "");
  r = Exchange(fd, "HEAD", "/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.Header("content-length"), absl::StrCat(text.size()));
  r = Exchange(fd, "GET", "/metrics");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, text);
  EXPECT_EQ(Exchange(fd, "GET", "/nowhere").status, 404);
  EXPECT_EQ(Exchange(fd, "POST", "/metrics", {{"Content-Length", "0"}}).status, 405);

  // Two requests in one write: two responses, in order.
  ASSERT_TRUE(SendAll(
      fd, RequestText("GET", "/readyz", {}, false) + RequestText("GET", "/healthz", {}, true)));
  std::string carry;
  r = ReadResponse(fd, false, &carry);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ready\n");
  r = ReadResponse(fd, false, &carry);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ok\n");
  EXPECT_EQ(r.Header("connection"), "close");
  EXPECT_TRUE(WaitClosed(fd, absl::Now() + absl::Seconds(10)).has_value());
  close(fd);
}

TEST_F(HttpServerTest, Http10ClosesAfterTheResponse) {
  std::unique_ptr<HttpServer> server = StartServer();
  ASSERT_NE(server, nullptr);
  const int fd = Connect(server->port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendAll(fd, "GET /healthz HTTP/1.0\r\n\r\n"));
  std::string raw;
  char buf[4096];
  for (ssize_t n; (n = recv(fd, buf, sizeof(buf), 0)) > 0;) raw.append(buf, static_cast<size_t>(n));
  close(fd);
  EXPECT_TRUE(raw.starts_with("HTTP/1.0 200 OK\r\n")) << raw;
  EXPECT_TRUE(raw.ends_with("\r\n\r\nok\n")) << raw;
}

TEST_F(HttpServerTest, OversizedHeaderIs431) {
  std::unique_ptr<HttpServer> server = StartServer();
  ASSERT_NE(server, nullptr);
  const Response r = Fetch(server->port(), "GET", "/metrics", {{"X-Big", std::string(10000, 'a')}});
  EXPECT_EQ(r.status, 431);
  EXPECT_EQ(r.Header("connection"), "close");
  // Just under the limit is fine.
  EXPECT_EQ(Fetch(server->port(), "GET", "/healthz", {{"X-Big", std::string(7000, 'a')}}).status,
            200);
  EXPECT_EQ(scrapes_, 0);
}

TEST_F(HttpServerTest, RequestBodiesAreRefused) {
  std::unique_ptr<HttpServer> server = StartServer();
  ASSERT_NE(server, nullptr);
  for (const std::string& request :
       {std::string("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"),
        std::string("GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"),
        std::string("POST /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                    "5\r\nhello\r\n0\r\n\r\n")}) {
    const int fd = Connect(server->port());
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(SendAll(fd, request));
    std::string carry;
    const Response r = ReadResponse(fd, false, &carry);
    EXPECT_EQ(r.status, 413) << request;
    EXPECT_EQ(r.Header("connection"), "close");
    EXPECT_TRUE(WaitClosed(fd, absl::Now() + absl::Seconds(10)).has_value());
    close(fd);
  }
  EXPECT_EQ(scrapes_, 0);
}

// The test that civetweb (a worker thread pinned per connection) failed:
// idle and trickling connections must cost the scrape target nothing.
TEST_F(HttpServerTest, StaysUpWithAThousandIdleAndFiftyTricklingConnections) {
  constexpr int kIdle = 1000;
  constexpr int kTrickling = 50;
  if (RaiseFileLimit() < 2 * (kIdle + kTrickling) + 200) {
    GTEST_SKIP() << "the open file limit is too low for " << kIdle + kTrickling << " connections";
  }
  HttpOptions options;
  options.header_timeout = absl::Minutes(1);  // they must all stay open during the test
  std::unique_ptr<HttpServer> server = StartServer(options);
  ASSERT_NE(server, nullptr);
  const int port = server->port();

  std::vector<int> idle;
  for (int i = 0; i < kIdle; ++i) {
    const int fd = Connect(port);
    ASSERT_GE(fd, 0) << "connection " << i;
    idle.push_back(fd);
  }
  std::vector<int> trickling;
  for (int i = 0; i < kTrickling; ++i) {
    const int fd = Connect(port);
    ASSERT_GE(fd, 0);
    trickling.push_back(fd);
  }
  {
    Trickler trickler(trickling, absl::Milliseconds(20));
    // Part of the header is in, the rest trickles on while we scrape.
    ASSERT_TRUE(trickler.WaitSent(10, absl::Now() + absl::Seconds(10)));
    const std::string text = RenderPrometheusText(metrics_.Snapshot());
    for (int i = 0; i < 20; ++i) {
      const absl::Time start = absl::Now();
      const Response r = Fetch(port, "GET", "/healthz");
      EXPECT_EQ(r.status, 200);
      EXPECT_EQ(r.body, "ok\n");
      EXPECT_LT(absl::Now() - start, absl::Seconds(5));
    }
    for (int i = 0; i < 5; ++i) {
      const absl::Time start = absl::Now();
      const Response r = Fetch(port, "GET", "/metrics");
      EXPECT_EQ(r.status, 200);
      EXPECT_EQ(r.body, text);
      EXPECT_LT(absl::Now() - start, absl::Seconds(5));
    }
  }
  // Nobody was dropped to make room.
  int open = 0;
  for (int fd : idle) open += StillOpen(fd);
  for (int fd : trickling) open += StillOpen(fd);
  EXPECT_EQ(open, kIdle + kTrickling);

  const absl::Time stop = absl::Now();
  server.reset();  // closes them all without waiting for them
  EXPECT_LT(absl::Now() - stop, absl::Seconds(5));
  for (int fd : idle) {
    EXPECT_TRUE(WaitClosed(fd, absl::Now() + absl::Seconds(5)).has_value());
    close(fd);
  }
  for (int fd : trickling) close(fd);
}

TEST_F(HttpServerTest, TricklingAndSilentClientsAreCutOffAfterTheHeaderTimeout) {
  HttpOptions options;
  options.header_timeout = absl::Seconds(1);
  options.idle_timeout = absl::Seconds(2);
  std::unique_ptr<HttpServer> server = StartServer(options);
  ASSERT_NE(server, nullptr);
  const int port = server->port();

  const absl::Time start = absl::Now();
  const int silent = Connect(port);
  const int trickling = Connect(port);
  const int kept = Connect(port);
  ASSERT_GE(silent, 0);
  ASSERT_GE(trickling, 0);
  ASSERT_GE(kept, 0);
  // The server starts the idle timer once it has written the answer: after
  // the request was sent, and possibly before the client has read it.
  const absl::Time asked = absl::Now();
  EXPECT_EQ(Exchange(kept, "GET", "/healthz").status, 200);
  const absl::Time answered = absl::Now();
  const absl::Time deadline = start + absl::Seconds(10);
  Trickler trickler({trickling}, absl::Milliseconds(50));

  // The header timeout counts from accept, whatever the client sends.
  const std::optional<absl::Time> silent_closed = WaitClosed(silent, deadline);
  const std::optional<absl::Time> trickling_closed = WaitClosed(trickling, deadline);
  ASSERT_TRUE(silent_closed.has_value());
  ASSERT_TRUE(trickling_closed.has_value());
  EXPECT_GE(*silent_closed - start, absl::Seconds(1));
  EXPECT_GE(*trickling_closed - start, absl::Seconds(1));
  EXPECT_GT(trickler.sent(), 5u);
  // A kept-alive connection waits the idle timeout for its next request.
  EXPECT_TRUE(StillOpen(kept) || absl::Now() - answered >= absl::Seconds(2));
  const std::optional<absl::Time> kept_closed = WaitClosed(kept, deadline);
  ASSERT_TRUE(kept_closed.has_value());
  EXPECT_GE(*kept_closed - asked, absl::Seconds(2));
  EXPECT_EQ(Fetch(port, "GET", "/healthz").status, 200);
  close(silent);
  close(trickling);
  close(kept);
}

TEST_F(HttpServerTest, AKeptAliveRequestGetsTheHeaderTimeoutFromItsFirstByte) {
  HttpOptions options;
  options.header_timeout = absl::Seconds(1);
  std::unique_ptr<HttpServer> server = StartServer(options);
  ASSERT_NE(server, nullptr);
  const int fd = Connect(server->port());
  ASSERT_GE(fd, 0);
  EXPECT_EQ(Exchange(fd, "GET", "/healthz").status, 200);
  const absl::Time first_byte = absl::Now();
  ASSERT_TRUE(SendAll(fd, "G"));
  const std::optional<absl::Time> closed = WaitClosed(fd, first_byte + absl::Seconds(10));
  ASSERT_TRUE(closed.has_value());
  EXPECT_GE(*closed - first_byte, absl::Seconds(1));
  close(fd);
}

TEST_F(HttpServerTest, AtTheConnectionCapTheOldestIdleConnectionsAreClosed) {
  constexpr int kCap = 20;
  constexpr int kMore = 5;
  HttpOptions options;
  options.max_connections = kCap;
  std::unique_ptr<HttpServer> server = StartServer(options);
  ASSERT_NE(server, nullptr);
  std::vector<int> idle;
  for (int i = 0; i < kCap; ++i) {
    const int fd = Connect(server->port());
    ASSERT_GE(fd, 0);
    idle.push_back(fd);
  }
  std::vector<int> newer;
  for (int i = 0; i < kMore; ++i) {
    const int fd = Connect(server->port());
    ASSERT_GE(fd, 0);
    newer.push_back(fd);
    const Response r = Exchange(fd, "GET", "/healthz");
    EXPECT_EQ(r.status, 200) << "new connection " << i;
  }
  for (int i = 0; i < kMore; ++i) {
    EXPECT_TRUE(WaitClosed(idle[i], absl::Now() + absl::Seconds(10)).has_value()) << i;
  }
  for (int i = kMore; i < kCap; ++i) EXPECT_TRUE(StillOpen(idle[i])) << i;
  // The newest are still served on their connections.
  for (int fd : newer) EXPECT_EQ(Exchange(fd, "GET", "/readyz").status, 200);
  for (int fd : idle) close(fd);
  for (int fd : newer) close(fd);
}

// Waits until the server has sent something on `fd`; false at `deadline`.
bool WaitReadable(int fd, absl::Time deadline) {
  pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
  const int64_t wait_ms = std::max<int64_t>(0, absl::ToInt64Milliseconds(deadline - absl::Now()));
  return poll(&p, 1, static_cast<int>(wait_ms)) == 1;
}

TEST_F(HttpServerTest, AtTheCapASlowReaderMakesRoomWhenNoneIsIdle) {
  // More than the kernel buffers of a loopback connection hold.
  const std::string big(32 << 20, 'x');
  HttpServer::Handlers handlers = MakeHandlers();
  handlers.metrics = [&big](bool) { return big; };
  HttpOptions options;
  options.listen = "127.0.0.1:0";
  options.max_connections = 2;
  absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Start(options, handlers);
  ASSERT_TRUE(server.ok()) << server.status();
  const int port = (*server)->port();
  // Two clients ask for /metrics and do not read it: both are writing.
  const int first = Connect(port);
  const int second = Connect(port);
  ASSERT_GE(first, 0);
  ASSERT_GE(second, 0);
  for (int fd : {first, second}) {
    ASSERT_TRUE(SendAll(fd, RequestText("GET", "/metrics", {}, false)));
    ASSERT_TRUE(WaitReadable(fd, absl::Now() + absl::Seconds(10)));
  }
  // A third is admitted in place of the one writing the longest.
  const int third = Connect(port);
  ASSERT_GE(third, 0);
  EXPECT_EQ(Exchange(third, "GET", "/healthz").status, 200);
  size_t first_bytes = 0;
  char buf[65536];
  for (ssize_t n; (n = recv(first, buf, sizeof(buf), 0)) > 0;) first_bytes += n;
  EXPECT_LT(first_bytes, big.size());
  std::string carry;
  const Response r = ReadResponse(second, false, &carry);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body.size(), big.size());
  close(first);
  close(second);
  close(third);
}

TEST_F(HttpServerTest, ASlowHandlerStallsNeitherOtherRequestsNorReading) {
  absl::Notification entered;
  absl::Notification release;
  HttpServer::Handlers handlers = MakeHandlers();
  handlers.metrics = [&](bool) {
    entered.Notify();
    release.WaitForNotification();
    return std::string("slow 1\n");
  };
  HttpOptions options;
  options.listen = "127.0.0.1:0";
  options.num_threads = 2;
  absl::StatusOr<std::unique_ptr<HttpServer>> two = HttpServer::Start(options, handlers);
  ASSERT_TRUE(two.ok()) << two.status();
  options.num_threads = 1;
  absl::StatusOr<std::unique_ptr<HttpServer>> one = HttpServer::Start(options, handlers);
  ASSERT_TRUE(one.ok()) << one.status();

  Response slow;
  std::thread scrape([&] { slow = Fetch((*two)->port(), "GET", "/metrics"); });
  entered.WaitForNotification();
  // The other worker answers.
  EXPECT_EQ(Fetch((*two)->port(), "GET", "/healthz").status, 200);
  release.Notify();
  scrape.join();
  EXPECT_EQ(slow.status, 200);
  EXPECT_EQ(slow.body, "slow 1\n");

  // With the only worker busy, connections are still accepted and read.
  absl::Notification entered_one;
  absl::Notification release_one;
  HttpServer::Handlers blocking = MakeHandlers();
  blocking.metrics = [&](bool) {
    entered_one.Notify();
    release_one.WaitForNotification();
    return std::string("slow 2\n");
  };
  one->reset();
  one = HttpServer::Start(options, std::move(blocking));
  ASSERT_TRUE(one.ok()) << one.status();
  std::thread scrape_one([&] { slow = Fetch((*one)->port(), "GET", "/metrics"); });
  entered_one.WaitForNotification();
  EXPECT_EQ(Fetch((*one)->port(), "GET", "/healthz", {{"X-Big", std::string(10000, 'a')}}).status,
            431);
  release_one.Notify();
  scrape_one.join();
  EXPECT_EQ(slow.body, "slow 2\n");
}

TEST_F(HttpServerTest, ShutdownClosesConnectionsWithoutWaitingForThem) {
  std::unique_ptr<HttpServer> server = StartServer();
  ASSERT_NE(server, nullptr);
  std::vector<int> fds;
  for (int i = 0; i < 100; ++i) {
    const int fd = Connect(server->port());
    ASSERT_GE(fd, 0);
    fds.push_back(fd);
  }
  ASSERT_TRUE(SendAll(fds[0], "GET /metrics HTTP/1.1\r\nHost:"));  // half a header
  EXPECT_EQ(Exchange(fds[1], "GET", "/healthz").status, 200);      // kept alive
  const absl::Time start = absl::Now();
  server.reset();
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
  for (int fd : fds) {
    EXPECT_TRUE(WaitClosed(fd, absl::Now() + absl::Seconds(5)).has_value());
    close(fd);
  }
}

TEST_F(HttpServerTest, BadLimitsAreRefused) {
  for (const auto& set : std::vector<std::function<void(HttpOptions*)>>{
           [](HttpOptions* o) { o->num_threads = 0; },
           [](HttpOptions* o) { o->max_connections = 0; },
           [](HttpOptions* o) { o->header_timeout = absl::ZeroDuration(); },
           [](HttpOptions* o) { o->write_timeout = -absl::Seconds(1); },
           [](HttpOptions* o) { o->max_header_bytes = 10; },
       }) {
    HttpOptions options;
    options.listen = "127.0.0.1:0";
    set(&options);
    EXPECT_FALSE(HttpServer::Start(options, MakeHandlers()).ok());
  }
}

TEST(HttpOptions, BuiltFromTheHttpConfig) {
  HttpConfig config;
  config.listen = "0.0.0.0:9999";
  config.web.tls.cert_file = "c.pem";
  config.web.tls.key_file = "k.pem";
  config.web.basic_auth_users = {{"u", "$2b$05$x"}};
  const HttpOptions options = HttpOptionsFromConfig(config);
  EXPECT_EQ(options.listen, "0.0.0.0:9999");
  EXPECT_EQ(options.web.tls.cert_file, "c.pem");
  EXPECT_EQ(options.web.tls.key_file, "k.pem");
  EXPECT_EQ(options.web.basic_auth_users, config.web.basic_auth_users);
  EXPECT_EQ(options.num_threads, 4);
}

}  // namespace
}  // namespace novapulse
