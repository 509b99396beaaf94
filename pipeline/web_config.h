// WebConfig: who may reach novapulse's HTTP endpoint and how, in the file
// format every Prometheus exporter reads with --web.config.file
// (exporter-toolkit's web configuration):
//   tls_server_config:     certificate and key (files or inline PEM), client
//                          certificates (client_auth_type, client_ca_file,
//                          client_allowed_sans), min/max_version,
//                          cipher_suites, prefer_server_cipher_suites,
//                          curve_preferences
//   http_server_config:    headers (the five exporter-toolkit allows), http2
//   basic_auth_users:      user -> bcrypt hash
//   rate_limit:            interval and burst of a token bucket
// The same keys are accepted in the `http` section of novapulse's own config
// (http.tls, http.headers, http.basic_auth_users, http.rate_limit), parsed by
// the functions below, so the two cannot drift.
//
// Plain data: parsing checks names and values, never files; BuildTlsContext
// (pipeline/http_server.h) reads the files. Names are Go's, as in the format:
// cipher suites are the IANA names Go's crypto/tls uses
// (TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256), curves CurveP256/CurveP384/
// CurveP521/X25519, versions TLS10..TLS13.
//   absl::StatusOr<WebConfig> web = LoadWebConfigFile("/etc/novapulse/web.yml");
#ifndef NOVAPULSE_PIPELINE_WEB_CONFIG_H_
#define NOVAPULSE_PIPELINE_WEB_CONFIG_H_

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "base/yaml_reader.h"

namespace novapulse {

// crypto/tls's ClientAuthType, by the names the format uses.
enum class ClientAuth {
  kNone,              // NoClientCert: no certificate is asked for
  kRequest,           // RequestClientCert: asked for, not required, not verified
  kRequireAny,        // RequireAnyClientCert: required, not verified
  kVerifyIfGiven,     // VerifyClientCertIfGiven: verified against the client CA when sent
  kRequireAndVerify,  // RequireAndVerifyClientCert: required and verified
};

// The protocol versions as on the wire (TLS 1.2 is 0x0303).
inline constexpr int kTls10 = 0x0301;
inline constexpr int kTls11 = 0x0302;
inline constexpr int kTls12 = 0x0303;
inline constexpr int kTls13 = 0x0304;

struct WebTlsConfig {
  // The server's certificate chain and key: a file each, or inline PEM.
  std::string cert_file;
  std::string key_file;
  std::string cert;
  std::string key;
  // The CAs client certificates are verified against: a file or inline PEM.
  std::string client_ca_file;
  std::string client_ca;
  ClientAuth client_auth = ClientAuth::kNone;
  // When set, a client certificate must carry one of these as a DNS, e-mail,
  // IP or URI subject alternative name (an exact match).
  std::vector<std::string> client_allowed_sans;
  int min_version = kTls12;
  int max_version = kTls13;
  // Empty: OpenSSL's defaults. TLS 1.3 names (TLS_AES_128_GCM_SHA256 ...)
  // restrict TLS 1.3's suites; the others those of TLS 1.2 and older.
  std::vector<std::string> cipher_suites;
  bool prefer_server_cipher_suites = true;
  std::vector<std::string> curve_preferences;  // empty: OpenSSL's defaults

  // Any TLS key set: the endpoint serves HTTPS only.
  bool enabled() const {
    return !cert_file.empty() || !key_file.empty() || !cert.empty() || !key.empty() ||
           !client_ca_file.empty() || !client_ca.empty() || client_auth != ClientAuth::kNone;
  }
  // The files this reads (to watch for changes), in a fixed order.
  std::vector<std::string> Files() const;
};

struct WebConfig {
  WebTlsConfig tls;
  // Accepted for the format's sake: novapulse speaks HTTP/1.1 only, which
  // every scraper speaks.
  bool http2 = true;
  std::map<std::string, std::string> headers;           // added to every response
  std::map<std::string, std::string> basic_auth_users;  // user -> bcrypt hash
  // A token bucket over all requests: `burst` at once, one more per
  // `interval`. Zero interval: no limit.
  absl::Duration rate_limit_interval = absl::ZeroDuration();
  int64_t rate_limit_burst = 0;
};

// The parts of the format, for a loader walking its own file with `reader`
// (novapulse's config reads the same keys in its http section). Relative
// file names are kept as written.
void ReadTlsServerConfig(YamlReader* reader, const YAML::Node& node, const std::string& path,
                         WebTlsConfig* out);
void ReadHttpHeaders(YamlReader* reader, const YAML::Node& node, const std::string& path,
                     std::map<std::string, std::string>* out);
void ReadBasicAuthUsers(YamlReader* reader, const YAML::Node& node, const std::string& path,
                        std::map<std::string, std::string>* out);
void ReadRateLimit(YamlReader* reader, const YAML::Node& node, const std::string& path,
                   WebConfig* out);
// What a whole WebConfig must satisfy beyond each key (a client CA needs a
// client_auth_type, a verifying client_auth_type needs a client CA, ...);
// errors are recorded at `mark`, under `path` ("" for a web config file).
void CheckWebConfig(YamlReader* reader, const YAML::Mark& mark, const std::string& path,
                    const WebConfig& config);

// One line for logs and check-config: "off", or the files and policies
// ("cert_file=... key_file=... client_auth_type=... min_version=TLS12").
// Inline keys are shown as "(inline)", never their text.
std::string DescribeTls(const WebTlsConfig& tls);

// A web configuration (the text of a file named `file_name` in errors);
// every mistake as FILE:LINE:COL: path: reason.
[[nodiscard]] absl::StatusOr<WebConfig> ParseWebConfig(std::string_view yaml_text,
                                                       std::string_view file_name);
// Reads and parses the file at `path`. Relative file names in it are taken
// from the file's directory, as exporter-toolkit does.
[[nodiscard]] absl::StatusOr<WebConfig> LoadWebConfigFile(const std::string& path);

}  // namespace novapulse

#endif  // NOVAPULSE_PIPELINE_WEB_CONFIG_H_
