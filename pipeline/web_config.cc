#include "pipeline/web_config.h"

#include <openssl/ssl.h>

#include <array>
#include <cctype>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/file.h"

namespace novapulse {
namespace {

// The headers exporter-toolkit lets a web config set, with the values it
// allows where they are an enumeration (none listed: any value).
struct AllowedHeader {
  std::string_view name;
  std::vector<std::string_view> values;
};
const std::array<AllowedHeader, 5>& AllowedHeaders() {
  static const std::array<AllowedHeader, 5> kHeaders = {{
      {"Strict-Transport-Security", {}},
      {"X-Content-Type-Options", {"nosniff"}},
      {"X-Frame-Options", {"deny", "sameorigin"}},
      {"X-XSS-Protection", {}},
      {"Content-Security-Policy", {}},
  }};
  return kHeaders;
}

constexpr std::array<std::pair<std::string_view, int>, 4> kVersions = {{
    {"TLS10", kTls10},
    {"TLS11", kTls11},
    {"TLS12", kTls12},
    {"TLS13", kTls13},
}};

constexpr std::array<std::pair<std::string_view, ClientAuth>, 6> kClientAuth = {{
    {"NoClientCert", ClientAuth::kNone},
    {"RequestClientCert", ClientAuth::kRequest},
    {"RequireAnyClientCert", ClientAuth::kRequireAny},
    // exporter-toolkit's old spelling of RequireAnyClientCert.
    {"RequireClientCert", ClientAuth::kRequireAny},
    {"VerifyClientCertIfGiven", ClientAuth::kVerifyIfGiven},
    {"RequireAndVerifyClientCert", ClientAuth::kRequireAndVerify},
}};

bool KnownCurve(const std::string& name) {
  return name == "CurveP256" || name == "CurveP384" || name == "CurveP521" || name == "X25519";
}

// An IANA cipher suite name OpenSSL implements.
bool KnownCipher(const std::string& name) {
  return std::string_view(OPENSSL_cipher_name(name.c_str())) != "(NONE)";
}

std::string JoinDir(const std::string& dir, const std::string& file) {
  if (file.empty() || file.front() == '/') return file;
  return (std::filesystem::path(dir) / file).string();
}

}  // namespace

std::vector<std::string> WebTlsConfig::Files() const {
  std::vector<std::string> files;
  for (const std::string* f : {&cert_file, &key_file, &client_ca_file}) {
    if (!f->empty()) files.push_back(*f);
  }
  return files;
}

void ReadTlsServerConfig(YamlReader* reader, const YAML::Node& node, const std::string& path,
                         WebTlsConfig* out) {
  auto string = [reader](std::string* field) {
    return
        [reader, field](const YAML::Node& n, const std::string& p) { reader->String(n, p, field); };
  };
  auto list = [reader](const char* want, bool (*valid)(const std::string&),
                       std::vector<std::string>* field) {
    return [reader, want, valid, field](const YAML::Node& n, const std::string& p) {
      reader->StringList(n, p, valid, want, field);
    };
  };
  auto version = [reader](int* field) {
    return [reader, field](const YAML::Node& n, const std::string& p) {
      reader->Enum<int>(n, p, std::span<const std::pair<std::string_view, int>>(kVersions), field);
    };
  };
  reader->Fields(node, path,
                 {{"cert_file", false, string(&out->cert_file)},
                  {"key_file", false, string(&out->key_file)},
                  {"cert", false, string(&out->cert)},
                  {"key", false, string(&out->key)},
                  {"client_ca_file", false, string(&out->client_ca_file)},
                  {"client_ca", false, string(&out->client_ca)},
                  {"client_auth_type", false,
                   [reader, out](const YAML::Node& n, const std::string& p) {
                     reader->Enum<ClientAuth>(
                         n, p,
                         std::span<const std::pair<std::string_view, ClientAuth>>(kClientAuth),
                         &out->client_auth);
                   }},
                  {"client_allowed_sans", false,
                   list(
                       "must not be empty", [](const std::string& s) { return !s.empty(); },
                       &out->client_allowed_sans)},
                  {"min_version", false, version(&out->min_version)},
                  {"max_version", false, version(&out->max_version)},
                  {"cipher_suites", false,
                   list("expected a cipher suite's IANA name that OpenSSL implements "
                        "(e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)",
                        KnownCipher, &out->cipher_suites)},
                  {"prefer_server_cipher_suites", false,
                   [reader, out](const YAML::Node& n, const std::string& p) {
                     reader->Bool(n, p, &out->prefer_server_cipher_suites);
                   }},
                  {"curve_preferences", false,
                   list("expected one of CurveP256, CurveP384, CurveP521, X25519", KnownCurve,
                        &out->curve_preferences)}});
}

void ReadHttpHeaders(YamlReader* reader, const YAML::Node& node, const std::string& path,
                     std::map<std::string, std::string>* out) {
  reader->Entries(
      node, path,
      [&](const std::string& name, const YAML::Node& key_node, const YAML::Node& value) {
        const std::string p = YamlReader::Join(path, name);
        const AllowedHeader* allowed = nullptr;
        std::vector<std::string> names;
        for (const AllowedHeader& h : AllowedHeaders()) {
          if (h.name == name) allowed = &h;
          names.emplace_back(h.name);
        }
        if (allowed == nullptr) {
          reader->Error(
              key_node.Mark(), p,
              absl::StrCat("this header cannot be set; allowed: ", absl::StrJoin(names, ", ")));
          return;
        }
        std::string shown;
        std::optional<std::string> v = reader->Scalar(value, p, "a string", &shown);
        if (!v.has_value()) return;
        if (v->empty()) return;  // "unset if blank"
        if (!allowed->values.empty() && std::find(allowed->values.begin(), allowed->values.end(),
                                                  *v) == allowed->values.end()) {
          reader->Error(value.Mark(), p,
                        absl::StrCat("expected one of ",
                                     absl::StrJoin(std::vector<std::string>(allowed->values.begin(),
                                                                            allowed->values.end()),
                                                   ", "),
                                     ", got ", shown));
          return;
        }
        (*out)[name] = std::move(*v);
      });
}

void ReadBasicAuthUsers(YamlReader* reader, const YAML::Node& node, const std::string& path,
                        std::map<std::string, std::string>* out) {
  reader->Entries(
      node, path,
      [&](const std::string& user, const YAML::Node& key_node, const YAML::Node& value) {
        const std::string p = YamlReader::Join(path, user);
        if (user.empty() || absl::StrContains(user, ':')) {
          reader->Error(key_node.Mark(), p, "a user name must be non-empty and have no ':'");
          return;
        }
        std::optional<std::string> hash = reader->Scalar(value, p, "a bcrypt hash");
        if (!hash.has_value()) return;
        // $2a$/$2b$/$2y$, a two-digit cost, '$', 22 characters of salt and 31 of hash.
        const bool bcrypt =
            hash->size() == 60 &&
            (hash->starts_with("$2a$") || hash->starts_with("$2b$") || hash->starts_with("$2y$")) &&
            std::isdigit(static_cast<unsigned char>((*hash)[4])) &&
            std::isdigit(static_cast<unsigned char>((*hash)[5])) && (*hash)[6] == '$';
        if (!bcrypt) {
          reader->Error(value.Mark(), p, "not a bcrypt hash (want $2b$COST$..., 60 characters)");
          return;
        }
        (*out)[user] = std::move(*hash);
      });
}

void ReadRateLimit(YamlReader* reader, const YAML::Node& node, const std::string& path,
                   WebConfig* out) {
  reader->Fields(node, path,
                 {{"interval", false,
                   [&](const YAML::Node& n, const std::string& p) {
                     reader->Duration(n, p, absl::ZeroDuration(), absl::Hours(1),
                                      &out->rate_limit_interval);
                   }},
                  {"burst", false, [&](const YAML::Node& n, const std::string& p) {
                     reader->Int(n, p, 0, 1000000, &out->rate_limit_burst);
                   }}});
  if (node.IsMap() && out->rate_limit_interval > absl::ZeroDuration() &&
      out->rate_limit_burst < 1) {
    reader->Error(node.Mark(), path, "burst must be at least 1 when interval is set");
  }
}

void CheckWebConfig(YamlReader* reader, const YAML::Mark& mark, const std::string& path,
                    const WebConfig& config) {
  const WebTlsConfig& tls = config.tls;
  const std::string at = YamlReader::Join(path, path.empty() ? "tls_server_config" : "tls");
  auto error = [&](std::string_view reason) { reader->Error(mark, at, reason); };
  if (!tls.enabled()) return;
  if (!tls.cert_file.empty() && !tls.cert.empty()) error("set cert_file or cert, not both");
  if (!tls.key_file.empty() && !tls.key.empty()) error("set key_file or key, not both");
  if (!tls.client_ca_file.empty() && !tls.client_ca.empty()) {
    error("set client_ca_file or client_ca, not both");
  }
  if (tls.cert_file.empty() && tls.cert.empty()) error("missing one of cert_file or cert");
  if (tls.key_file.empty() && tls.key.empty()) error("missing one of key_file or key");
  const bool has_ca = !tls.client_ca_file.empty() || !tls.client_ca.empty();
  if (has_ca && tls.client_auth == ClientAuth::kNone) {
    error("a client CA is set without a client_auth_type that asks for client certificates");
  }
  const bool verifies = tls.client_auth == ClientAuth::kVerifyIfGiven ||
                        tls.client_auth == ClientAuth::kRequireAndVerify;
  if (verifies && !has_ca) {
    // Go would verify against the system's roots; a scrape endpoint that
    // trusts every public CA's clients is never what was meant.
    error("client_auth_type verifies client certificates: set client_ca_file (or client_ca)");
  }
  if (!tls.client_allowed_sans.empty() && tls.client_auth == ClientAuth::kNone) {
    error("client_allowed_sans needs a client_auth_type that asks for client certificates");
  }
  if (tls.min_version > tls.max_version) error("min_version is above max_version");
}

std::string DescribeTls(const WebTlsConfig& tls) {
  if (!tls.enabled()) return "off";
  auto name = [](const auto& table, auto value) {
    for (const auto& [n, v] : table) {
      if (v == value) return std::string(n);
    }
    return std::string("?");
  };
  std::string out = absl::StrCat("cert_file=", tls.cert.empty() ? tls.cert_file : "(inline)",
                                 " key_file=", tls.key.empty() ? tls.key_file : "(inline)");
  absl::StrAppend(&out, " client_auth_type=", name(kClientAuth, tls.client_auth));
  if (!tls.client_ca_file.empty() || !tls.client_ca.empty()) {
    absl::StrAppend(&out,
                    " client_ca_file=", tls.client_ca.empty() ? tls.client_ca_file : "(inline)");
  }
  absl::StrAppend(&out, " min_version=", name(kVersions, tls.min_version),
                  " max_version=", name(kVersions, tls.max_version));
  if (!tls.cipher_suites.empty()) {
    absl::StrAppend(&out, " cipher_suites=", absl::StrJoin(tls.cipher_suites, ","));
  }
  if (!tls.curve_preferences.empty()) {
    absl::StrAppend(&out, " curve_preferences=", absl::StrJoin(tls.curve_preferences, ","));
  }
  if (!tls.client_allowed_sans.empty()) {
    absl::StrAppend(&out, " client_allowed_sans=", absl::StrJoin(tls.client_allowed_sans, ","));
  }
  return out;
}

absl::StatusOr<WebConfig> ParseWebConfig(std::string_view yaml_text, std::string_view file_name) {
  YamlReader reader(file_name);
  WebConfig config;
  LoadYamlDocument(yaml_text, &reader, [&](const YAML::Node& root) {
    if (!root.IsDefined() || root.IsNull()) return;  // an empty file: plain HTTP, no auth
    reader.Fields(root, "",
                  {{"tls_server_config", false,
                    [&](const YAML::Node& n, const std::string& p) {
                      ReadTlsServerConfig(&reader, n, p, &config.tls);
                    }},
                   {"http_server_config", false,
                    [&](const YAML::Node& n, const std::string& p) {
                      reader.Fields(
                          n, p,
                          {{"http2", false,
                            [&](const YAML::Node& m, const std::string& q) {
                              reader.Bool(m, q, &config.http2);
                            }},
                           {"headers", false, [&](const YAML::Node& m, const std::string& q) {
                              ReadHttpHeaders(&reader, m, q, &config.headers);
                            }}});
                    }},
                   {"basic_auth_users", false,
                    [&](const YAML::Node& n, const std::string& p) {
                      ReadBasicAuthUsers(&reader, n, p, &config.basic_auth_users);
                    }},
                   {"rate_limit", false, [&](const YAML::Node& n, const std::string& p) {
                      ReadRateLimit(&reader, n, p, &config);
                    }}});
    if (reader.ok()) CheckWebConfig(&reader, root.Mark(), "", config);
  });
  if (absl::Status s = reader.status(); !s.ok()) return s;
  return config;
}

absl::StatusOr<WebConfig> LoadWebConfigFile(const std::string& path) {
  absl::StatusOr<std::string> text = ReadRegularFile(path);
  if (!text.ok()) return text.status();
  absl::StatusOr<WebConfig> config = ParseWebConfig(*text, path);
  if (!config.ok()) return config.status();
  const std::string dir = std::filesystem::path(path).parent_path().string();
  WebTlsConfig& tls = config->tls;
  for (std::string* file : {&tls.cert_file, &tls.key_file, &tls.client_ca_file}) {
    *file = JoinDir(dir, *file);
  }
  return config;
}

}  // namespace novapulse
