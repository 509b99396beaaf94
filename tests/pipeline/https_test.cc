// HttpServer over TLS: client certificates (RequireAndVerifyClientCert,
// client_allowed_sans), protocol versions, headers, basic auth and the rate
// limit from a web config file, certificate and config reloads, the
// handshake-failure counters and log lines, and a real Prometheus scraping
// over mTLS. Certificates come from the openssl CLI, requests from curl.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "aggregators/metric_source.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pipeline/http_server.h"
#include "pipeline/web_config.h"
#include "simdjson.h"
#include "tests/pipeline/bcrypt_hash.h"
#include "tests/pipeline/run_service.h"
#include "tests/pipeline/test_process.h"
#include "tests/sinks/prometheus_process.h"

namespace novapulse {
namespace {

using ::novapulse::testing::ProcessResult;
using ::novapulse::testing::ReadWholeFile;
using ::novapulse::testing::RunProcess;
using ::novapulse::testing::ScratchDir;
using ::novapulse::testing::WriteWholeFile;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kOpenssl[] = "/usr/bin/openssl";
constexpr char kCurl[] = "/usr/bin/curl";

constexpr char kHandshakeFailures[] = "novapulse_http_tls_handshake_failures_total";
constexpr char kRefused[] = "novapulse_http_requests_refused_total";
constexpr char kReloads[] = "novapulse_http_web_config_reloads_total";
constexpr char kLastReloadOk[] = "novapulse_http_web_config_last_reload_successful";

// What the metrics handler serves.
constexpr char kMetricsText[] = "# TYPE test_value gauge\ntest_value 42\n";
constexpr char kOpenMetricsText[] = "# TYPE test_value gauge\ntest_value 42\n# EOF\n";

// A certificate and its key, as files.
struct KeyPair {
  std::string cert;
  std::string key;
};

void Openssl(std::vector<std::string> args) {
  args.insert(args.begin(), kOpenssl);
  const ProcessResult r = RunProcess(args);
  EXPECT_EQ(r.exit_code, 0) << absl::StrJoin(args, " ") << "\n"
                            << r.err << " (Debian package openssl)";
}

// A CA: an EC P-256 key and a self-signed certificate, CA:TRUE.
KeyPair MakeCa(const ScratchDir& dir, const std::string& name) {
  KeyPair ca{dir.Path(name + ".pem"), dir.Path(name + ".key")};
  Openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
           "-days", "2", "-subj", "/CN=" + name, "-addext", "basicConstraints=critical,CA:TRUE",
           "-keyout", ca.key, "-out", ca.cert});
  return ca;
}

// A leaf certificate signed by `ca`, with subjectAltName `san` (e.g.
// "IP:127.0.0.1", "DNS:prometheus.example").
KeyPair MakeLeaf(const ScratchDir& dir, const std::string& name, const KeyPair& ca,
                 const std::string& san) {
  KeyPair leaf{dir.Path(name + ".pem"), dir.Path(name + ".key")};
  const std::string csr = dir.Path(name + ".csr");
  const std::string ext = dir.Path(name + ".ext");
  WriteWholeFile(ext,
                 absl::StrCat("basicConstraints=critical,CA:FALSE\nsubjectAltName=", san, "\n"));
  Openssl({"req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
           "-subj", "/CN=" + name, "-keyout", leaf.key, "-out", csr});
  Openssl({"x509", "-req", "-in", csr, "-CA", ca.cert, "-CAkey", ca.key, "-set_serial",
           absl::StrCat(1000 + name.size() * 7 + static_cast<size_t>(name[0])), "-days", "2",
           "-extfile", ext, "-out", leaf.cert});
  return leaf;
}

// A leaf signed by `ca` that was valid on 2020-01-01 only. OpenSSL 3.0's
// `x509 -req` cannot set past dates; `openssl ca` can (-startdate/-enddate).
KeyPair MakeExpiredLeaf(const ScratchDir& dir, const std::string& name, const KeyPair& ca,
                        const std::string& san) {
  KeyPair leaf{dir.Path(name + ".pem"), dir.Path(name + ".key")};
  const std::string csr = dir.Path(name + ".csr");
  const std::string db = dir.Path(name + "-ca");
  std::filesystem::create_directories(db);
  WriteWholeFile(db + "/index.txt", "");
  WriteWholeFile(db + "/serial", "01\n");
  const std::string config = db + "/ca.cnf";
  WriteWholeFile(config, absl::StrCat("[ca]\ndefault_ca = ca_section\n"
                                      "[ca_section]\n"
                                      "database = ",
                                      db, "/index.txt\nnew_certs_dir = ", db, "\nserial = ", db,
                                      "/serial\n"
                                      "default_md = sha256\npolicy = policy_any\n"
                                      "unique_subject = no\n"
                                      "[policy_any]\ncommonName = supplied\n"
                                      "[leaf]\nbasicConstraints = critical,CA:FALSE\n"
                                      "subjectAltName = ",
                                      san, "\n"));
  Openssl({"req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
           "-subj", "/CN=" + name, "-keyout", leaf.key, "-out", csr});
  Openssl({"ca", "-batch", "-config", config, "-cert", ca.cert, "-keyfile", ca.key, "-startdate",
           "20200101000000Z", "-enddate", "20200102000000Z", "-extensions", "leaf", "-notext",
           "-in", csr, "-out", leaf.cert});
  return leaf;
}

// Everything the tests need: two CAs, a server certificate from each, and
// client certificates.
struct Pki {
  explicit Pki(const ScratchDir& dir)
      : ca(MakeCa(dir, "ca")),
        other_ca(MakeCa(dir, "other-ca")),
        server(MakeLeaf(dir, "server", ca, "IP:127.0.0.1")),
        other_server(MakeLeaf(dir, "other-server", other_ca, "IP:127.0.0.1")),
        client(MakeLeaf(dir, "client", ca, "DNS:prometheus.example")),
        other_san_client(MakeLeaf(dir, "other-san-client", ca, "DNS:other.example")),
        foreign_client(MakeLeaf(dir, "foreign-client", other_ca, "DNS:prometheus.example")),
        expired_client(MakeExpiredLeaf(dir, "expired-client", ca, "DNS:prometheus.example")) {}

  KeyPair ca;
  KeyPair other_ca;
  KeyPair server;        // 127.0.0.1, from `ca`
  KeyPair other_server;  // 127.0.0.1, from `other_ca`
  KeyPair client;        // prometheus.example, from `ca`
  KeyPair other_san_client;
  KeyPair foreign_client;  // from `other_ca`
  KeyPair expired_client;  // from `ca`, expired in 2020
};

HttpServer::Handlers MakeHandlers() {
  HttpServer::Handlers handlers;
  handlers.metrics = [](bool openmetrics) {
    return std::string(openmetrics ? kOpenMetricsText : kMetricsText);
  };
  handlers.ready = [](std::string*) { return true; };
  return handlers;
}

std::unique_ptr<HttpServer> StartServer(HttpOptions options) {
  options.listen = "127.0.0.1:0";
  absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Start(options, MakeHandlers());
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? std::move(*server) : nullptr;
}

// A server with TLS from `web_config_file`.
std::unique_ptr<HttpServer> StartServer(const std::string& web_config_file,
                                        absl::Duration reload_check_interval = absl::Seconds(1)) {
  HttpOptions options;
  options.web_config_file = web_config_file;
  options.reload_check_interval = reload_check_interval;
  return StartServer(options);
}

// `curl -sS --max-time 10 ARGS...`.
ProcessResult Curl(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {kCurl, "-sS", "--max-time", "10"};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProcess(argv);
}

std::string Url(int port, const std::string& path = "/metrics") {
  return absl::StrCat("https://127.0.0.1:", port, path);
}

// curl over HTTPS, verifying the server against `ca`, presenting `client`
// when it has a certificate; --fail, so any status but 2xx is an error.
ProcessResult CurlTls(int port, const std::string& ca, const KeyPair& client = {},
                      const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args = {"--fail", "--cacert", ca};
  if (!client.cert.empty()) {
    args.insert(args.end(), {"--cert", client.cert, "--key", client.key});
  }
  args.insert(args.end(), extra.begin(), extra.end());
  args.push_back(Url(port));
  return Curl(args);
}

// The HTTP status curl got (with --cacert `ca`), 0 when it got none.
int CurlStatus(int port, const std::string& ca, const std::vector<std::string>& extra = {}) {
  std::vector<std::string> args = {"-o", "/dev/null", "-w", "%{http_code}", "--cacert", ca};
  args.insert(args.end(), extra.begin(), extra.end());
  args.push_back(Url(port));
  const ProcessResult r = Curl(args);
  int status = 0;
  if (r.exit_code != 0 || !absl::SimpleAtoi(r.out, &status)) return 0;
  return status;
}

// The value of `family`'s series whose (only) label value is `label` ("" for
// a family without labels), as the server collects it; NaN when absent.
double ServerMetric(HttpServer& server, std::string_view family, std::string_view label = "") {
  MetricFamilies families;
  server.CollectMetrics(&families);
  for (const FamilySnapshot& f : families.families()) {
    if (f.def->name != family) continue;
    for (size_t i = 0; i < f.size(); ++i) {
      if (f.keys[i] == label) return f.Gauge(i);
    }
  }
  return std::nan("");
}

// Polls `condition` until it holds or `timeout` passes.
bool Eventually(const std::function<bool()>& condition,
                absl::Duration timeout = absl::Seconds(10)) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    if (condition()) return true;
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(20));
  }
}

// Waits until the server counted `want` handshake failures for `reason`.
::testing::AssertionResult HandshakeFailuresReach(HttpServer& server, std::string_view reason,
                                                  double want) {
  if (Eventually([&] { return ServerMetric(server, kHandshakeFailures, reason) >= want; })) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure()
         << kHandshakeFailures << "{reason=\"" << reason << "\"} is "
         << ServerMetric(server, kHandshakeFailures, reason) << ", want " << want;
}

using testing::BcryptHash;

// tls_server_config for `server` requiring client certificates from `ca`,
// plus `more` (indented lines under tls_server_config).
std::string MtlsConfig(const KeyPair& server, const KeyPair& ca, const std::string& more = "") {
  return absl::StrCat("tls_server_config:\n  cert_file: ", server.cert,
                      "\n  key_file: ", server.key, "\n  client_ca_file: ", ca.cert,
                      "\n  client_auth_type: RequireAndVerifyClientCert\n", more);
}

std::string TlsConfig(const KeyPair& server, const std::string& more = "") {
  return absl::StrCat("tls_server_config:\n  cert_file: ", server.cert,
                      "\n  key_file: ", server.key, "\n", more);
}

// Writes `bytes` to a temporary name next to `path`, then renames it there.
void ReplaceFile(const std::string& path, const std::string& bytes) {
  const std::string tmp = path + ".tmp";
  WriteWholeFile(tmp, bytes);
  ASSERT_EQ(std::rename(tmp.c_str(), path.c_str()), 0) << path;
}

TEST(Https, ServesAClientWithACertificateFromTheClientCa) {
  ScratchDir dir;
  const Pki pki(dir);
  HttpOptions options;
  options.web.tls.cert_file = pki.server.cert;
  options.web.tls.key_file = pki.server.key;
  options.web.tls.client_ca_file = pki.ca.cert;
  options.web.tls.client_auth = ClientAuth::kRequireAndVerify;
  std::unique_ptr<HttpServer> server = StartServer(options);
  ASSERT_NE(server, nullptr);
  EXPECT_TRUE(server->tls());

  const ProcessResult r = CurlTls(server->port(), pki.ca.cert, pki.client);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, kMetricsText);
  for (const char* reason : {"no_client_cert", "client_cert_invalid", "plain_http"}) {
    EXPECT_EQ(ServerMetric(*server, kHandshakeFailures, reason), 0) << reason;
  }
}

// The server of the refusal tests: client certificates required and
// verified against pki.ca.
HttpOptions MtlsOptions(const Pki& pki) {
  HttpOptions options;
  options.web.tls = {.cert_file = pki.server.cert,
                     .key_file = pki.server.key,
                     .client_ca_file = pki.ca.cert,
                     .client_auth = ClientAuth::kRequireAndVerify};
  return options;
}

// What one refused request left behind: curl's result, whether the server
// counted it under `reason` in time, a good request's result after it, and
// the log meanwhile.
struct Refusal {
  ProcessResult refused;
  bool counted = false;
  ProcessResult good;
  std::string log;
};

Refusal Refuse(HttpServer& server, const Pki& pki, std::string_view reason,
               const std::function<ProcessResult()>& request) {
  Refusal r;
  ::testing::internal::CaptureStderr();
  r.refused = request();
  r.counted = HandshakeFailuresReach(server, reason, 1);
  // The I/O thread logs the refusal before it handles the next connection:
  // once a good request is served, the line is out.
  r.good = CurlTls(server.port(), pki.ca.cert, pki.client);
  r.log = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(r.refused.exit_code, 0) << r.refused.out;
  EXPECT_THAT(r.refused.out, Not(HasSubstr("test_value")));
  EXPECT_TRUE(r.counted) << HandshakeFailuresReach(server, reason, 1);
  EXPECT_EQ(r.good.exit_code, 0) << r.good.err;
  EXPECT_EQ(r.good.out, kMetricsText);
  EXPECT_THAT(r.log, HasSubstr("tls handshake refused"));
  EXPECT_THAT(r.log, HasSubstr(absl::StrCat("reason=", std::string(reason))));
  return r;
}

TEST(Https, RefusesAClientWithoutACertificate) {
  ScratchDir dir;
  const Pki pki(dir);
  std::unique_ptr<HttpServer> server = StartServer(MtlsOptions(pki));
  ASSERT_NE(server, nullptr);
  const Refusal r =
      Refuse(*server, pki, "no_client_cert", [&] { return CurlTls(server->port(), pki.ca.cert); });
  EXPECT_THAT(r.log, HasSubstr("peer=127.0.0.1:"));
  EXPECT_EQ(ServerMetric(*server, kHandshakeFailures, "client_cert_invalid"), 0);
}

TEST(Https, RefusesAClientCertificateFromAnotherCa) {
  ScratchDir dir;
  const Pki pki(dir);
  std::unique_ptr<HttpServer> server = StartServer(MtlsOptions(pki));
  ASSERT_NE(server, nullptr);
  const Refusal r = Refuse(*server, pki, "client_cert_invalid", [&] {
    return CurlTls(server->port(), pki.ca.cert, pki.foreign_client);
  });
  EXPECT_THAT(r.log, HasSubstr("unable to get local issuer certificate"));
  EXPECT_EQ(ServerMetric(*server, kHandshakeFailures, "no_client_cert"), 0);
}

TEST(Https, RefusesAnExpiredClientCertificate) {
  ScratchDir dir;
  const Pki pki(dir);
  std::unique_ptr<HttpServer> server = StartServer(MtlsOptions(pki));
  ASSERT_NE(server, nullptr);
  const Refusal r = Refuse(*server, pki, "client_cert_invalid", [&] {
    return CurlTls(server->port(), pki.ca.cert, pki.expired_client);
  });
  EXPECT_THAT(r.log, HasSubstr("certificate has expired"));
}

TEST(Https, RefusesPlainHttpOnTheTlsPort) {
  ScratchDir dir;
  const Pki pki(dir);
  std::unique_ptr<HttpServer> server = StartServer(MtlsOptions(pki));
  ASSERT_NE(server, nullptr);
  Refuse(*server, pki, "plain_http", [&] {
    return Curl({"--fail", absl::StrCat("http://127.0.0.1:", server->port(), "/metrics")});
  });
}

TEST(Https, CountsEachRefusedClientUnderItsReason) {
  ScratchDir dir;
  const Pki pki(dir);
  const std::string web = dir.Path("web.yml");
  WriteWholeFile(web, MtlsConfig(pki.server, pki.ca));
  std::unique_ptr<HttpServer> server = StartServer(web);
  ASSERT_NE(server, nullptr);

  for (int i = 0; i < 2; ++i) {
    EXPECT_NE(CurlTls(server->port(), pki.ca.cert).exit_code, 0);
    EXPECT_NE(CurlTls(server->port(), pki.ca.cert, pki.foreign_client).exit_code, 0);
    EXPECT_NE(CurlTls(server->port(), pki.ca.cert, pki.expired_client).exit_code, 0);
  }
  EXPECT_TRUE(HandshakeFailuresReach(*server, "no_client_cert", 2));
  EXPECT_TRUE(HandshakeFailuresReach(*server, "client_cert_invalid", 4));
  const ProcessResult good = CurlTls(server->port(), pki.ca.cert, pki.client);
  EXPECT_EQ(good.exit_code, 0) << good.err;
  EXPECT_EQ(good.out, kMetricsText);
  // Every failure is in the reason it belongs to and no other.
  EXPECT_EQ(ServerMetric(*server, kHandshakeFailures, "no_client_cert"), 2);
  EXPECT_EQ(ServerMetric(*server, kHandshakeFailures, "client_cert_invalid"), 4);
  EXPECT_EQ(ServerMetric(*server, kHandshakeFailures, "client_cert_san"), 0);
  EXPECT_EQ(ServerMetric(*server, kHandshakeFailures, "plain_http"), 0);
  EXPECT_EQ(ServerMetric(*server, kHandshakeFailures, "other"), 0);
}

TEST(Https, ClientAllowedSansServeOnlyTheNamedClient) {
  ScratchDir dir;
  const Pki pki(dir);
  const std::string web = dir.Path("web.yml");
  WriteWholeFile(web,
                 MtlsConfig(pki.server, pki.ca, "  client_allowed_sans: [prometheus.example]\n"));
  std::unique_ptr<HttpServer> server = StartServer(web);
  ASSERT_NE(server, nullptr);

  const ProcessResult good = CurlTls(server->port(), pki.ca.cert, pki.client);
  EXPECT_EQ(good.exit_code, 0) << good.err;
  EXPECT_EQ(good.out, kMetricsText);

  ::testing::internal::CaptureStderr();
  const ProcessResult other = CurlTls(server->port(), pki.ca.cert, pki.other_san_client);
  const bool counted = HandshakeFailuresReach(*server, "client_cert_san", 1);
  const ProcessResult again = CurlTls(server->port(), pki.ca.cert, pki.client);
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(other.exit_code, 0) << other.out;
  EXPECT_THAT(other.out, Not(HasSubstr("test_value")));
  EXPECT_TRUE(counted) << HandshakeFailuresReach(*server, "client_cert_san", 1);
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_THAT(log, HasSubstr("reason=client_cert_san"));
  EXPECT_EQ(ServerMetric(*server, kHandshakeFailures, "client_cert_invalid"), 0);
}

TEST(Https, MinVersionTls13RefusesATls12Client) {
  ScratchDir dir;
  const Pki pki(dir);
  const std::string web = dir.Path("web.yml");
  WriteWholeFile(web, TlsConfig(pki.server, "  min_version: TLS13\n"));
  std::unique_ptr<HttpServer> server = StartServer(web);
  ASSERT_NE(server, nullptr);

  const ProcessResult old = CurlTls(server->port(), pki.ca.cert, {}, {"--tls-max", "1.2"});
  EXPECT_NE(old.exit_code, 0) << old.out;
  EXPECT_TRUE(HandshakeFailuresReach(*server, "no_common_parameters", 1));

  const ProcessResult current = CurlTls(server->port(), pki.ca.cert, {}, {"-v"});
  EXPECT_EQ(current.exit_code, 0) << current.err;
  EXPECT_EQ(current.out, kMetricsText);
  EXPECT_THAT(current.err, HasSubstr("SSL connection using TLSv1.3"));
  EXPECT_EQ(ServerMetric(*server, kHandshakeFailures, "no_common_parameters"), 1);
}

TEST(Https, MaxVersionTls12ServesATls12Client) {
  ScratchDir dir;
  const Pki pki(dir);
  const std::string web = dir.Path("web.yml");
  WriteWholeFile(web, TlsConfig(pki.server, "  max_version: TLS12\n"));
  std::unique_ptr<HttpServer> server = StartServer(web);
  ASSERT_NE(server, nullptr);
  // curl's --tlsv1.3 asks for at least 1.3.
  EXPECT_NE(CurlTls(server->port(), pki.ca.cert, {}, {"--tlsv1.3"}).exit_code, 0);
  EXPECT_TRUE(HandshakeFailuresReach(*server, "no_common_parameters", 1));
  const ProcessResult r = CurlTls(server->port(), pki.ca.cert, {}, {"--tls-max", "1.2"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, kMetricsText);
}

TEST(Https, AddsTheConfiguredHeadersToEveryResponse) {
  ScratchDir dir;
  const Pki pki(dir);
  const std::string web = dir.Path("web.yml");
  WriteWholeFile(web, MtlsConfig(pki.server, pki.ca) +
                          "http_server_config:\n  headers:\n    X-Frame-Options: deny\n"
                          "    Content-Security-Policy: \"default-src 'none'\"\n"
                          "    Strict-Transport-Security: max-age=31536000\n");
  std::unique_ptr<HttpServer> server = StartServer(web);
  ASSERT_NE(server, nullptr);
  for (const std::string path : {"/metrics", "/healthz", "/nonexistent"}) {
    const ProcessResult r =
        Curl({"-D", "-", "-o", "/dev/null", "--cacert", pki.ca.cert, "--cert", pki.client.cert,
              "--key", pki.client.key, Url(server->port(), path)});
    ASSERT_EQ(r.exit_code, 0) << path << ": " << r.err;
    EXPECT_THAT(r.out, HasSubstr(path == "/nonexistent" ? "HTTP/1.1 404" : "HTTP/1.1 200"));
    EXPECT_THAT(r.out, HasSubstr("X-Frame-Options: deny\r\n")) << path;
    EXPECT_THAT(r.out, HasSubstr("Content-Security-Policy: default-src 'none'\r\n")) << path;
    EXPECT_THAT(r.out, HasSubstr("Strict-Transport-Security: max-age=31536000\r\n")) << path;
  }
}

TEST(Https, ReloadsARenamedInCertificateAndKeepsTheOldConfigWhenTheNewOneIsBroken) {
  ScratchDir dir;
  const Pki pki(dir);
  // The served pair lives under fixed names; the config names them.
  const KeyPair served{dir.Path("served.pem"), dir.Path("served.key")};
  WriteWholeFile(served.cert, ReadWholeFile(pki.server.cert));
  WriteWholeFile(served.key, ReadWholeFile(pki.server.key));
  const std::string web = dir.Path("web.yml");
  const std::string config = TlsConfig(served);
  WriteWholeFile(web, config);
  std::unique_ptr<HttpServer> server = StartServer(web, absl::Milliseconds(100));
  ASSERT_NE(server, nullptr);

  ProcessResult r = CurlTls(server->port(), pki.ca.cert);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, kMetricsText);
  EXPECT_NE(CurlTls(server->port(), pki.other_ca.cert).exit_code, 0);
  EXPECT_EQ(ServerMetric(*server, kReloads, "success"), 0);
  EXPECT_EQ(ServerMetric(*server, kLastReloadOk), 1);

  // Certificate B, from the other CA: key first, then certificate, each
  // renamed into place. (A check between the two renames may see a
  // mismatched pair and count a failed reload; the next one succeeds.)
  ReplaceFile(served.key, ReadWholeFile(pki.other_server.key));
  ReplaceFile(served.cert, ReadWholeFile(pki.other_server.cert));
  // Each connection may trigger the check.
  EXPECT_TRUE(Eventually([&] { return CurlTls(server->port(), pki.other_ca.cert).exit_code == 0; }))
      << "certificate B never served";
  EXPECT_GE(ServerMetric(*server, kReloads, "success"), 1);
  EXPECT_EQ(ServerMetric(*server, kLastReloadOk), 1);
  EXPECT_NE(CurlTls(server->port(), pki.ca.cert).exit_code, 0) << "certificate A still served";

  // A broken config: counted, logged, and B stays in force.
  const double failures = ServerMetric(*server, kReloads, "failure");
  const double successes = ServerMetric(*server, kReloads, "success");
  ::testing::internal::CaptureStderr();
  ReplaceFile(web, "tls_server_config: [this is: not, a web config\n");
  const bool counted = Eventually([&] {
    r = CurlTls(server->port(), pki.other_ca.cert);
    return ServerMetric(*server, kReloads, "failure") > failures;
  });
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(counted) << "the broken config was never counted";
  EXPECT_EQ(ServerMetric(*server, kReloads, "failure"), failures + 1);
  EXPECT_EQ(ServerMetric(*server, kReloads, "success"), successes);
  EXPECT_EQ(ServerMetric(*server, kLastReloadOk), 0);
  EXPECT_THAT(log, HasSubstr("web config not reloaded"));
  r = CurlTls(server->port(), pki.other_ca.cert);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, kMetricsText);
  // The same broken file is not counted again at every check.
  for (int i = 0; i < 3; ++i) EXPECT_EQ(CurlTls(server->port(), pki.other_ca.cert).exit_code, 0);
  EXPECT_EQ(ServerMetric(*server, kReloads, "failure"), failures + 1);

  // Fixed again (back to certificate A): reloaded, and the gauge is 1 again.
  ReplaceFile(served.key, ReadWholeFile(pki.server.key));
  ReplaceFile(served.cert, ReadWholeFile(pki.server.cert));
  ReplaceFile(web, config);
  EXPECT_TRUE(Eventually([&] { return CurlTls(server->port(), pki.ca.cert).exit_code == 0; }))
      << "certificate A never served again";
  EXPECT_EQ(ServerMetric(*server, kLastReloadOk), 1);
  EXPECT_GT(ServerMetric(*server, kReloads, "success"), successes);
}

TEST(Https, BasicAuthFromTheWebConfigFileOverTls) {
  ScratchDir dir;
  const Pki pki(dir);
  const std::string web = dir.Path("web.yml");
  WriteWholeFile(web,
                 MtlsConfig(pki.server, pki.ca) +
                     absl::StrCat("basic_auth_users:\n  prometheus: ", BcryptHash("s3cret"), "\n"));
  std::unique_ptr<HttpServer> server = StartServer(web);
  ASSERT_NE(server, nullptr);
  const std::vector<std::string> cert = {"--cert", pki.client.cert, "--key", pki.client.key};
  auto with = [&cert](std::vector<std::string> more) {
    more.insert(more.begin(), cert.begin(), cert.end());
    return more;
  };

  EXPECT_EQ(CurlStatus(server->port(), pki.ca.cert, with({})), 401);
  EXPECT_EQ(CurlStatus(server->port(), pki.ca.cert, with({"-u", "prometheus:wrong"})), 401);
  EXPECT_EQ(CurlStatus(server->port(), pki.ca.cert, with({"-u", "nobody:s3cret"})), 401);
  EXPECT_EQ(ServerMetric(*server, kRefused, "unauthorized"), 3);
  const ProcessResult r =
      CurlTls(server->port(), pki.ca.cert, pki.client, {"-u", "prometheus:s3cret"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, kMetricsText);
  EXPECT_EQ(ServerMetric(*server, kRefused, "unauthorized"), 3);
  EXPECT_EQ(ServerMetric(*server, kRefused, "rate_limited"), 0);
}

TEST(Https, RateLimitRefusesRequestsBeyondTheBurst) {
  ScratchDir dir;
  const Pki pki(dir);
  const std::string web = dir.Path("web.yml");
  WriteWholeFile(web, TlsConfig(pki.server) + "rate_limit:\n  interval: 1h\n  burst: 2\n");
  std::unique_ptr<HttpServer> server = StartServer(web);
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(CurlStatus(server->port(), pki.ca.cert), 200);
  EXPECT_EQ(CurlStatus(server->port(), pki.ca.cert), 200);
  EXPECT_EQ(CurlStatus(server->port(), pki.ca.cert), 429);
  EXPECT_EQ(CurlStatus(server->port(), pki.ca.cert), 429);
  EXPECT_EQ(ServerMetric(*server, kRefused, "rate_limited"), 2);
  EXPECT_EQ(ServerMetric(*server, kRefused, "unauthorized"), 0);
}

// --- A real Prometheus scraping over mTLS -----------------------------------

// Adapted from tests/sinks/backfill_writer_test.cc.

TEST(Https, PrometheusScrapesOverMtlsAndIsRefusedWithoutACertificate) {
  if (access(testing::kPrometheus, X_OK) != 0) GTEST_SKIP() << "prometheus not installed";
  ScratchDir dir;
  const Pki pki(dir);
  const std::string web = dir.Path("web.yml");
  WriteWholeFile(web, MtlsConfig(pki.server, pki.ca));
  std::unique_ptr<HttpServer> server = StartServer(web);
  ASSERT_NE(server, nullptr);

  const std::string target = absl::StrCat("127.0.0.1:", server->port());
  const std::string config = dir.Path("prometheus.yml");
  WriteWholeFile(config, absl::StrCat(R"(global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: mtls
    scheme: https
    tls_config:
      ca_file: )",
                                      pki.ca.cert, "\n      cert_file: ", pki.client.cert,
                                      "\n      key_file: ", pki.client.key, R"(
    static_configs:
      - targets: [')",
                                      target, R"(']
  - job_name: nocert
    scheme: https
    tls_config:
      ca_file: )",
                                      pki.ca.cert, R"(
    static_configs:
      - targets: [')",
                                      target, "']\n"));
  const std::string log = dir.Path("prometheus.log");
  testing::PrometheusProcess prometheus(dir.Path("tsdb"), config, log);
  ASSERT_TRUE(prometheus.WaitReady(std::chrono::seconds(60))) << ReadWholeFile(log);

  const bool scraped = Eventually(
      [&] {
        return prometheus.Query("up{job=\"mtls\"}") == 1.0 &&
               prometheus.Query("up{job=\"nocert\"}") == 0.0 &&
               prometheus.Query("test_value{job=\"mtls\"}") == 42.0;
      },
      absl::Seconds(60));
  EXPECT_TRUE(scraped) << "up{job=\"mtls\"}=" << prometheus.Query("up{job=\"mtls\"}").value_or(-1)
                       << " up{job=\"nocert\"}="
                       << prometheus.Query("up{job=\"nocert\"}").value_or(-1) << " test_value="
                       << prometheus.Query("test_value{job=\"mtls\"}").value_or(-1) << "\n"
                       << ReadWholeFile(log);
  EXPECT_EQ(prometheus.Query("test_value{job=\"nocert\"}"), std::nullopt);
  const std::optional<std::string> error = prometheus.LastError("nocert");
  ASSERT_TRUE(error.has_value());
  EXPECT_FALSE(error->empty());
  EXPECT_EQ(prometheus.LastError("mtls"), std::optional<std::string>(""));
  // The server saw the certificate-less scrapes.
  EXPECT_TRUE(HandshakeFailuresReach(*server, "no_client_cert", 1));
  EXPECT_EQ(ServerMetric(*server, kHandshakeFailures, "client_cert_invalid"), 0);
}

}  // namespace
}  // namespace novapulse

namespace novapulse {
namespace {

TEST(Https, AConfigNamingACertificateNotThereYetIsLoadedOnceItAppears) {
  ScratchDir dir;
  const Pki pki(dir);
  const std::string web = dir.Path("web.yml");
  WriteWholeFile(web, TlsConfig(pki.server));
  std::unique_ptr<HttpServer> server = StartServer(web, absl::Milliseconds(100));
  ASSERT_NE(server, nullptr);

  const KeyPair later{dir.Path("later.pem"), dir.Path("later.key")};
  ReplaceFile(web, TlsConfig(later));
  EXPECT_TRUE(Eventually([&] {
    CurlTls(server->port(), pki.ca.cert);
    return ServerMetric(*server, kReloads, "failure") >= 1;
  })) << "the config naming missing files was never counted";
  EXPECT_EQ(CurlTls(server->port(), pki.ca.cert).exit_code, 0) << "the old pair stays in force";

  // Only the files the failed config named change now.
  ReplaceFile(later.key, ReadWholeFile(pki.other_server.key));
  ReplaceFile(later.cert, ReadWholeFile(pki.other_server.cert));
  EXPECT_TRUE(Eventually([&] { return CurlTls(server->port(), pki.other_ca.cert).exit_code == 0; }))
      << "the certificate that appeared was never served";
  EXPECT_GE(ServerMetric(*server, kReloads, "success"), 1);
  EXPECT_EQ(ServerMetric(*server, kLastReloadOk), 1);
}

}  // namespace
}  // namespace novapulse
