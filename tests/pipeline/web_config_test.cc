#include "pipeline/web_config.h"

#include <string>

#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "pipeline/config.h"
#include "tests/pipeline/test_process.h"

namespace novapulse {
namespace {

using ::testing::HasSubstr;

constexpr char kHash[] = "$2y$10$X0h1gDsPszWURQaxFh.zoubFi6DXncSjhoQNJgRrnGs7EsimhC7zG";

std::string ErrorOf(std::string_view yaml) {
  absl::StatusOr<WebConfig> config = ParseWebConfig(yaml, "web.yml");
  return config.ok() ? "" : std::string(config.status().message());
}

TEST(WebConfig, ReadsExporterToolkitsFullFormat) {
  const absl::StatusOr<WebConfig> c = ParseWebConfig(absl::StrCat(R"(
tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.crt
  client_allowed_sans: [prometheus.example, 10.0.0.1]
  min_version: TLS13
  max_version: TLS13
  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384]
  prefer_server_cipher_suites: false
  curve_preferences: [X25519, CurveP256]
http_server_config:
  http2: false
  headers:
    X-Frame-Options: deny
    Content-Security-Policy: default-src 'self'
basic_auth_users:
  prometheus: ')",
                                                                  kHash, R"('
rate_limit:
  interval: 1s
  burst: 5
)"),
                                                     "web.yml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->tls.cert_file, "server.crt");
  EXPECT_EQ(c->tls.key_file, "server.key");
  EXPECT_EQ(c->tls.client_auth, ClientAuth::kRequireAndVerify);
  EXPECT_EQ(c->tls.client_ca_file, "ca.crt");
  EXPECT_THAT(c->tls.client_allowed_sans, ::testing::ElementsAre("prometheus.example", "10.0.0.1"));
  EXPECT_EQ(c->tls.min_version, kTls13);
  EXPECT_EQ(c->tls.max_version, kTls13);
  EXPECT_THAT(c->tls.cipher_suites, ::testing::ElementsAre("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                                                           "TLS_AES_256_GCM_SHA384"));
  EXPECT_FALSE(c->tls.prefer_server_cipher_suites);
  EXPECT_THAT(c->tls.curve_preferences, ::testing::ElementsAre("X25519", "CurveP256"));
  EXPECT_FALSE(c->http2);
  EXPECT_EQ(c->headers.at("X-Frame-Options"), "deny");
  EXPECT_EQ(c->headers.at("Content-Security-Policy"), "default-src 'self'");
  EXPECT_EQ(c->basic_auth_users.at("prometheus"), kHash);
  EXPECT_EQ(c->rate_limit_interval, absl::Seconds(1));
  EXPECT_EQ(c->rate_limit_burst, 5);
}

TEST(WebConfig, DefaultsAreExporterToolkits) {
  const absl::StatusOr<WebConfig> c =
      ParseWebConfig("tls_server_config:\n  cert_file: a\n  key_file: b\n", "web.yml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->tls.client_auth, ClientAuth::kNone);
  EXPECT_EQ(c->tls.min_version, kTls12);
  EXPECT_EQ(c->tls.max_version, kTls13);
  EXPECT_TRUE(c->tls.prefer_server_cipher_suites);
  EXPECT_TRUE(c->http2);
  EXPECT_TRUE(c->tls.enabled());
}

TEST(WebConfig, AnEmptyFileIsPlainHttpWithoutAuth) {
  const absl::StatusOr<WebConfig> c = ParseWebConfig("", "web.yml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_FALSE(c->tls.enabled());
  EXPECT_TRUE(c->basic_auth_users.empty());
}

TEST(WebConfig, TheOldRequireClientCertSpellingIsRequireAny) {
  const absl::StatusOr<WebConfig> c = ParseWebConfig(
      "tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: RequireClientCert\n",
      "web.yml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->tls.client_auth, ClientAuth::kRequireAny);
}

TEST(WebConfig, EveryMistakeIsAnErrorWithItsPosition) {
  EXPECT_THAT(ErrorOf("tls_server_config:\n  cert_fil: a\n"),
              HasSubstr("web.yml:2:3: tls_server_config: unknown key 'cert_fil'"));
  EXPECT_THAT(ErrorOf("tls_server_config:\n  cert_file: a\n  key_file: b\n  min_version: TLS14\n"),
              HasSubstr("web.yml:4:16: tls_server_config.min_version: expected one of TLS10, "
                        "TLS11, TLS12, TLS13, got 'TLS14'"));
  EXPECT_THAT(
      ErrorOf("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_auth_type: Maybe\n"),
      HasSubstr("tls_server_config.client_auth_type: expected one of NoClientCert"));
  EXPECT_THAT(ErrorOf("tls_server_config:\n  cert_file: a\n  key_file: b\n"
                      "  cipher_suites: [TLS_RSA_WITH_RC4_128_SHA]\n"),
              HasSubstr("web.yml:4:19: tls_server_config.cipher_suites[0]: expected a cipher "
                        "suite's IANA name"));
  EXPECT_THAT(ErrorOf("tls_server_config:\n  cert_file: a\n  key_file: b\n"
                      "  curve_preferences: [CurveP999]\n"),
              HasSubstr("tls_server_config.curve_preferences[0]: expected one of CurveP256"));
  EXPECT_THAT(ErrorOf("http_server_config:\n  headers:\n    X-Powered-By: me\n"),
              HasSubstr("web.yml:3:5: http_server_config.headers.X-Powered-By: this header "
                        "cannot be set"));
  EXPECT_THAT(ErrorOf("http_server_config:\n  headers:\n    X-Frame-Options: allow\n"),
              HasSubstr("http_server_config.headers.X-Frame-Options: expected one of deny, "
                        "sameorigin, got 'allow'"));
  EXPECT_THAT(ErrorOf("basic_auth_users:\n  u: plaintext\n"),
              HasSubstr("web.yml:2:6: basic_auth_users.u: not a bcrypt hash"));
  EXPECT_THAT(ErrorOf("rate_limit:\n  interval: 1s\n"),
              HasSubstr("rate_limit: burst must be at least 1 when interval is set"));
  EXPECT_THAT(
      ErrorOf("tls_srv_config: {}\n"),
      HasSubstr("web.yml:1:1: 'tls_srv_config': unknown section (allowed: tls_server_config, "
                "http_server_config, basic_auth_users, rate_limit)"));
}

TEST(WebConfig, PoliciesThatCannotWorkTogetherAreRefused) {
  EXPECT_THAT(ErrorOf("tls_server_config:\n  cert_file: a\n"),
              HasSubstr("tls_server_config: missing one of key_file or key"));
  EXPECT_THAT(ErrorOf("tls_server_config:\n  client_auth_type: RequireAndVerifyClientCert\n"),
              HasSubstr("missing one of cert_file or cert"));
  EXPECT_THAT(ErrorOf("tls_server_config:\n  cert_file: a\n  key_file: b\n  client_ca_file: c\n"),
              HasSubstr("a client CA is set without a client_auth_type"));
  EXPECT_THAT(ErrorOf("tls_server_config:\n  cert_file: a\n  key_file: b\n"
                      "  client_auth_type: RequireAndVerifyClientCert\n"),
              HasSubstr("set client_ca_file (or client_ca)"));
  EXPECT_THAT(ErrorOf("tls_server_config:\n  cert_file: a\n  key_file: b\n"
                      "  client_allowed_sans: [x]\n"),
              HasSubstr("client_allowed_sans needs a client_auth_type"));
  EXPECT_THAT(ErrorOf("tls_server_config:\n  cert_file: a\n  key_file: b\n"
                      "  min_version: TLS13\n  max_version: TLS12\n"),
              HasSubstr("min_version is above max_version"));
  EXPECT_THAT(ErrorOf("tls_server_config:\n  cert_file: a\n  cert: x\n  key_file: b\n"),
              HasSubstr("set cert_file or cert, not both"));
}

TEST(WebConfig, RelativeFilesAreTakenFromTheFilesDirectory) {
  testing::ScratchDir dir;
  testing::WriteWholeFile(
      dir.Path("web.yml"),
      "tls_server_config:\n  cert_file: certs/s.crt\n  key_file: /abs/s.key\n"
      "  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n");
  const absl::StatusOr<WebConfig> c = LoadWebConfigFile(dir.Path("web.yml"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->tls.cert_file, dir.Path("certs/s.crt"));
  EXPECT_EQ(c->tls.key_file, "/abs/s.key");
  EXPECT_EQ(c->tls.client_ca_file, dir.Path("ca.crt"));
  EXPECT_THAT(c->tls.Files(),
              ::testing::ElementsAre(dir.Path("certs/s.crt"), "/abs/s.key", dir.Path("ca.crt")));
}

TEST(WebConfig, AMissingFileNamesIt) {
  const absl::StatusOr<WebConfig> c = LoadWebConfigFile("/nonexistent/web.yml");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()), HasSubstr("/nonexistent/web.yml"));
}

TEST(WebConfig, DescribeTlsNamesFilesAndPoliciesButNeverInlineText) {
  WebTlsConfig tls;
  EXPECT_EQ(DescribeTls(tls), "off");
  tls.cert = "-----BEGIN CERTIFICATE-----secret";
  tls.key = "-----BEGIN PRIVATE KEY-----secret";
  tls.client_ca_file = "/etc/ca.pem";
  tls.client_auth = ClientAuth::kRequireAndVerify;
  const std::string shown = DescribeTls(tls);
  EXPECT_EQ(shown,
            "cert_file=(inline) key_file=(inline) client_auth_type=RequireAndVerifyClientCert "
            "client_ca_file=/etc/ca.pem min_version=TLS12 max_version=TLS13");
  EXPECT_THAT(shown, ::testing::Not(HasSubstr("secret")));
}

// The service config's http section takes the same keys.
TEST(WebConfig, TheServiceConfigsHttpSectionReadsTheSameKeys) {
  const absl::StatusOr<Config> c = ParseConfig(absl::StrCat(R"(
kafka: {brokers: "k:9092"}
http:
  tls:
    cert_file: s.crt
    key_file: s.key
    client_auth_type: RequireAndVerifyClientCert
    client_ca_file: ca.crt
    min_version: TLS13
  headers:
    X-Content-Type-Options: nosniff
  basic_auth_users:
    prometheus: ')",
                                                            kHash, R"('
  rate_limit: {interval: 100ms, burst: 10}
)"),
                                               "novapulse.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->http.web.tls.client_auth, ClientAuth::kRequireAndVerify);
  EXPECT_EQ(c->http.web.tls.min_version, kTls13);
  EXPECT_EQ(c->http.web.headers.at("X-Content-Type-Options"), "nosniff");
  EXPECT_EQ(c->http.web.rate_limit_burst, 10);

  const absl::StatusOr<Config> bad = ParseConfig(
      "kafka: {brokers: \"k:9092\"}\nhttp:\n  tls:\n    cert_file: a\n    key_file: b\n"
      "    client_ca_file: c\n",
      "novapulse.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()),
              HasSubstr("novapulse.yaml:3:3: http.tls: a client CA is set without"));
}

TEST(WebConfig, AWebConfigFileAndInlineKeysAreNotBothAllowed) {
  const absl::StatusOr<Config> both = ParseConfig(
      "kafka: {brokers: \"k:9092\"}\nhttp:\n  web_config_file: web.yml\n"
      "  tls: {cert_file: a, key_file: b}\n",
      "novapulse.yaml");
  ASSERT_FALSE(both.ok());
  EXPECT_THAT(std::string(both.status().message()),
              HasSubstr("novapulse.yaml:3:3: http: set web_config_file or "
                        "tls/headers/basic_auth_users/rate_limit here, not both"));

  testing::ScratchDir dir;
  testing::WriteWholeFile(
      dir.Path("n.yaml"),
      "kafka: {brokers: \"k:9092\"}\nhttp:\n  tls: {cert_file: a, key_file: b}\n");
  const absl::StatusOr<Config> flag = LoadConfig(dir.Path("n.yaml"), "web.yml");
  ASSERT_FALSE(flag.ok());
  EXPECT_THAT(std::string(flag.status().message()), HasSubstr("--web.config.file is given"));

  testing::WriteWholeFile(dir.Path("plain.yaml"), "kafka: {brokers: \"k:9092\"}\n");
  const absl::StatusOr<Config> taken = LoadConfig(dir.Path("plain.yaml"), "web.yml");
  ASSERT_TRUE(taken.ok()) << taken.status();
  EXPECT_EQ(taken->http.web_config_file, "web.yml");
}

}  // namespace
}  // namespace novapulse
