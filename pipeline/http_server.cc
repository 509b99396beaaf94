#include "pipeline/http_server.h"

#include <arpa/inet.h>
#include <civetweb.h>
#include <crypt.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <initializer_list>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/hash/hash.h"
#include "absl/random/random.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace novapulse {
namespace {

constexpr char kPrometheusContentType[] = "text/plain; version=0.0.4; charset=utf-8";
constexpr char kOpenMetricsContentType[] =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
constexpr char kAllowedMethods[] = "GET, HEAD";

struct ListenAddress {
  std::string host;  // empty: every interface
  int port = 0;
};

absl::StatusOr<ListenAddress> ParseListen(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("http: bad listen address \"", listen, "\": want HOST:PORT"));
  }
  ListenAddress address;
  address.host = listen.substr(0, colon);
  const std::string port = listen.substr(colon + 1);
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), address.port);
  if (port.empty() || ec != std::errc() || end != port.data() + port.size() || address.port < 0 ||
      address.port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("http: bad listen address \"", listen,
                                                   "\": port must be a number in 0-65535"));
  }
  in_addr ipv4;
  if (!address.host.empty() && inet_pton(AF_INET, address.host.c_str(), &ipv4) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("http: bad listen address \"", listen, "\": host must be an IPv4 address"));
  }
  return address;
}

// The errno of binding `address` (EADDRINUSE, ...), or 0 when it binds; the
// socket is closed at once. civetweb reports only "Failed to setup server
// ports".
int BindError(const ListenAddress& address) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));  // as civetweb does
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(address.port));
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  if (!address.host.empty()) inet_pton(AF_INET, address.host.c_str(), &addr.sin_addr);
  const int error = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ? errno : 0;
  close(fd);
  return error;
}

// True when the comma-separated header `value` lists `token` (a media type or
// a coding, compared case-insensitively) without "q=0".
bool HeaderAccepts(const char* value, std::string_view token) {
  if (value == nullptr) return false;
  for (absl::string_view item : absl::StrSplit(value, ',')) {
    std::vector<absl::string_view> parts = absl::StrSplit(item, ';');
    if (!absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(parts[0]),
                                absl::string_view(token.data(), token.size()))) {
      continue;
    }
    bool refused = false;
    for (size_t i = 1; i < parts.size(); ++i) {
      absl::string_view param = absl::StripAsciiWhitespace(parts[i]);
      if (absl::ConsumePrefix(&param, "q=") || absl::ConsumePrefix(&param, "Q=")) {
        refused = absl::StripTrailingAsciiWhitespace(param).find_first_not_of("0.") ==
                  absl::string_view::npos;
      }
    }
    if (!refused) return true;
  }
  return false;
}

// A gzip member of `in`; false only when zlib fails (out of memory).
// Level 1: Prometheus asks for gzip on every scrape, and exposition text is
// so repetitive that level 1 keeps most of level 6's ratio at a fraction of
// its CPU, which is taken from the ingestion threads.
bool Gzip(const std::string& in, std::string* out) {
  z_stream z{};
  if (deflateInit2(&z, Z_BEST_SPEED, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    return false;
  }
  out->resize(deflateBound(&z, in.size()) + 32);
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(out->data());
  z.avail_out = static_cast<uInt>(out->size());
  const int rc = deflate(&z, Z_FINISH);
  out->resize(z.total_out);
  deflateEnd(&z);
  return rc == Z_STREAM_END;
}

// Equal strings in time that depends only on their lengths.
bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i]) ^ static_cast<unsigned char>(b[i]);
  }
  return diff == 0;
}

// True when `password` hashes to `hash` (any crypt(5) scheme libcrypt knows,
// bcrypt $2b$/$2y$/$2a$ among them).
bool VerifyCrypt(const std::string& password, const std::string& hash) {
  // crypt_data is ~32 KiB: too big for a civetweb worker's stack.
  auto data = std::make_unique<crypt_data>();
  const char* result = crypt_r(password.c_str(), hash.c_str(), data.get());
  // On failure libcrypt returns NULL or a string starting with '*', which
  // never equals a valid hash.
  return result != nullptr && result[0] != '*' && ConstantTimeEquals(result, hash);
}

std::string ReadFile(const std::string& path, absl::Status* status) {
  std::ifstream in(path, std::ios::binary);
  if (!in.is_open()) {
    *status = absl::InvalidArgumentError(
        absl::StrCat("http: cannot open ", path, ": ", std::strerror(errno)));
    return "";
  }
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) *status = absl::InvalidArgumentError(absl::StrCat("http: cannot read ", path));
  return text.str();
}

void SendResponse(mg_connection* conn, int status, const char* content_type,
                  const std::string& body, bool head,
                  std::initializer_list<std::pair<const char*, const char*>> headers = {}) {
  mg_response_header_start(conn, status);
  mg_response_header_add(conn, "Content-Type", content_type, -1);
  const std::string length = absl::StrCat(body.size());
  mg_response_header_add(conn, "Content-Length", length.c_str(), -1);
  for (const auto& [name, value] : headers) mg_response_header_add(conn, name, value, -1);
  mg_response_header_send(conn);
  if (!head && !body.empty()) mg_write(conn, body.data(), body.size());
}

void SendText(mg_connection* conn, int status, const std::string& body, bool head,
              std::initializer_list<std::pair<const char*, const char*>> headers = {}) {
  SendResponse(conn, status, "text/plain; charset=utf-8", body, head, headers);
}

}  // namespace

absl::Status CheckCivetwebTls() {
  if (mg_check_feature(MG_FEATURES_TLS) == 0) {
    return absl::FailedPreconditionError(
        "http: tls is configured but this civetweb build has no TLS support");
  }
  // civetweb loads OpenSSL at run time under this name and calls what it
  // finds; a function it needs but cannot find is a null pointer it calls on
  // the first TLS connection. Debian 12's civetweb 1.15 is built for the
  // OpenSSL 1.1 API and calls SSL_get_peer_certificate after every handshake,
  // which OpenSSL 3 no longer exports.
  void* ssl = dlopen("libssl.so", RTLD_LAZY | RTLD_LOCAL);
  if (ssl == nullptr) {
    return absl::FailedPreconditionError(
        "http: tls is configured but civetweb cannot load libssl.so (install the OpenSSL "
        "development package)");
  }
  const bool usable = dlsym(ssl, "SSL_get_peer_certificate") != nullptr;
  dlclose(ssl);
  if (!usable) {
    return absl::FailedPreconditionError(
        "http: tls is configured but this civetweb build (OpenSSL 1.1 API) cannot use the "
        "installed OpenSSL 3: it would crash on the first TLS connection; terminate TLS in a "
        "proxy in front of novapulse instead");
  }
  return absl::OkStatus();
}

absl::Status CheckListenAddress(const std::string& listen) {
  absl::StatusOr<ListenAddress> address = ParseListen(listen);
  if (!address.ok()) return address.status();
  const int error = BindError(*address);
  if (error == 0) return absl::OkStatus();
  return absl::UnavailableError(
      absl::StrCat("http: cannot bind ", listen, ": ",
                   error == EADDRINUSE ? "port in use" : std::strerror(error)));
}

HttpOptions HttpOptionsFromConfig(const HttpConfig& config) {
  HttpOptions options;
  options.listen = config.listen;
  options.cert_file = config.tls.cert_file;
  options.key_file = config.tls.key_file;
  options.basic_auth_users = config.basic_auth_users;
  return options;
}

HttpServer::HttpServer(const HttpOptions& options, Handlers handlers)
    : handlers_(std::move(handlers)), users_(options.basic_auth_users) {
  absl::BitGen gen;
  cache_seed_ = absl::Uniform<uint64_t>(gen);
}

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpOptions& options,
                                                              Handlers handlers) {
  if (!handlers.metrics || !handlers.ready) {
    return absl::InvalidArgumentError("http: metrics and ready handlers are required");
  }
  if (options.num_threads < 1) {
    return absl::InvalidArgumentError("http: num_threads must be at least 1");
  }
  absl::StatusOr<ListenAddress> address = ParseListen(options.listen);
  if (!address.ok()) return address.status();
  for (const auto& [user, hash] : options.basic_auth_users) {
    if (user.empty() || user.find(':') != std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("http: basic auth user \"", user, "\" must be non-empty without ':'"));
    }
    if (!absl::StartsWith(hash, "$2")) {
      // The hash itself is a secret: name the user only.
      return absl::InvalidArgumentError(
          absl::StrCat("http: basic auth user \"", user, "\": password hash is not bcrypt"));
    }
  }

  const bool tls = !options.cert_file.empty() || !options.key_file.empty();
  // civetweb reads certificate and key from one PEM file; with two files we
  // join them into a private temporary file that lives until the server has
  // loaded it.
  std::string pem_file;
  absl::Cleanup remove_pem = [&pem_file, &options] {
    if (!pem_file.empty() && pem_file != options.cert_file) unlink(pem_file.c_str());
  };
  if (tls) {
    if (options.cert_file.empty() || options.key_file.empty()) {
      return absl::InvalidArgumentError("http: tls needs both cert_file and key_file");
    }
    absl::Status status;
    const std::string cert = ReadFile(options.cert_file, &status);
    if (!status.ok()) return status;
    // Checked after reading the cert, so a wrong path is reported first.
    if (absl::Status usable = CheckCivetwebTls(); !usable.ok()) return usable;
    if (options.key_file == options.cert_file) {
      pem_file = options.cert_file;
    } else {
      std::string pem = ReadFile(options.key_file, &status);
      if (!status.ok()) return status;
      if (!pem.empty() && pem.back() != '\n') pem.push_back('\n');
      pem += cert;
      const char* tmpdir = getenv("TMPDIR");
      std::string path = absl::StrCat(tmpdir != nullptr && tmpdir[0] != '\0' ? tmpdir : "/tmp",
                                      "/novapulse-tls-XXXXXX");
      const int fd = mkstemp(path.data());  // mode 0600
      if (fd < 0) return absl::InternalError("http: cannot create a temporary file for tls");
      pem_file = path;
      const bool written = write(fd, pem.data(), pem.size()) == static_cast<ssize_t>(pem.size());
      close(fd);
      if (!written) return absl::InternalError("http: cannot write a temporary file for tls");
    }
  }

  std::unique_ptr<HttpServer> server(new HttpServer(options, std::move(handlers)));
  server->tls_ = tls;
  const std::string ports =
      absl::StrCat(address->host, address->host.empty() ? "" : ":", address->port, tls ? "s" : "");
  const std::string threads = absl::StrCat(options.num_threads);
  std::vector<const char*> config = {
      "listening_ports",    ports.c_str(), "num_threads",       threads.c_str(),
      "request_timeout_ms", "10000",       "enable_keep_alive", "yes",
  };
  if (tls) {
    config.insert(config.end(), {"ssl_certificate", pem_file.c_str(),
                                 // TLS 1.2 and newer.
                                 "ssl_protocol_version", "4"});
  }
  config.push_back(nullptr);

  mg_callbacks callbacks{};
  callbacks.begin_request = &HttpServer::HandleRequest;
  // Errors come back through mg_error_data; nothing else to log.
  callbacks.log_message = [](const mg_connection*, const char*) { return 1; };
  mg_init_library(tls ? MG_FEATURES_TLS : MG_FEATURES_DEFAULT);
  mg_init_data init{};
  init.callbacks = &callbacks;
  init.user_data = server.get();
  init.configuration_options = config.data();
  char error_text[256] = {};
  unsigned error_code = 0;
  mg_error_data error{};
  error.code = &error_code;
  error.text = error_text;
  error.text_buffer_size = sizeof(error_text);
  server->ctx_ = mg_start2(&init, &error);
  if (server->ctx_ == nullptr) {
    std::string reason = error_text[0] != '\0' ? error_text : "unknown error";
    if (const int bind_error = BindError(*address); bind_error != 0) {
      absl::StrAppend(&reason, " (", std::strerror(bind_error), ")");
    }
    return absl::UnavailableError(
        absl::StrCat("http: cannot serve on ", options.listen, ": ", reason));
  }
  mg_server_port bound[4] = {};
  const int n = mg_get_server_ports(server->ctx_, 4, bound);
  if (n < 1) {
    return absl::InternalError(
        absl::StrCat("http: cannot read the bound port of ", options.listen));
  }
  server->port_ = bound[0].port;
  return server;
}

HttpServer::~HttpServer() {
  // Start() takes one civetweb library reference for every HttpServer it
  // constructs, whether or not mg_start2 then succeeds.
  if (ctx_ != nullptr) mg_stop(ctx_);
  mg_exit_library();
}

int HttpServer::HandleRequest(mg_connection* conn) {
  auto* server = static_cast<HttpServer*>(mg_get_user_data(mg_get_context(conn)));
  return server->Serve(conn);
}

int HttpServer::Serve(mg_connection* conn) {
  const mg_request_info* request = mg_get_request_info(conn);
  const std::string_view method = request->request_method;
  const std::string_view path = request->local_uri != nullptr ? request->local_uri : "";
  if (!Authorized(conn)) return 401;
  const std::function<std::string()>* api = nullptr;
  if (path == "/api/v1/alerts" && handlers_.alerts) api = &handlers_.alerts;
  if (path == "/api/v1/rules" && handlers_.rules) api = &handlers_.rules;
  const bool known =
      path == "/metrics" || path == "/healthz" || path == "/readyz" || api != nullptr;
  if (!known) {
    SendText(conn, 404, "not found\n", method == "HEAD");
    return 404;
  }
  const bool head = method == "HEAD";
  if (method != "GET" && !head) {
    SendText(conn, 405, "method not allowed\n", false, {{"Allow", kAllowedMethods}});
    return 405;
  }
  if (path == "/metrics") return ServeMetrics(conn, head);
  if (path == "/readyz") return ServeReady(conn, head);
  if (api != nullptr) return ServeJson(conn, *api, head);
  if (std::string reason; handlers_.healthy && !handlers_.healthy(&reason)) {
    SendText(conn, 503, reason + "\n", head);
    return 503;
  }
  SendText(conn, 200, "ok\n", head);
  return 200;
}

int HttpServer::ServeMetrics(mg_connection* conn, bool head) {
  const bool openmetrics =
      HeaderAccepts(mg_get_header(conn, "Accept"), "application/openmetrics-text");
  std::string body = handlers_.metrics(openmetrics);
  const char* content_type = openmetrics ? kOpenMetricsContentType : kPrometheusContentType;
  if (HeaderAccepts(mg_get_header(conn, "Accept-Encoding"), "gzip")) {
    std::string gzipped;
    if (Gzip(body, &gzipped)) {
      SendResponse(conn, 200, content_type, gzipped, head,
                   {{"Content-Encoding", "gzip"}, {"Vary", "Accept-Encoding"}});
      return 200;
    }
  }
  SendResponse(conn, 200, content_type, body, head, {{"Vary", "Accept-Encoding"}});
  return 200;
}

int HttpServer::ServeReady(mg_connection* conn, bool head) {
  std::string reason;
  if (handlers_.ready(&reason)) {
    SendText(conn, 200, "ready\n", head);
    return 200;
  }
  if (reason.empty()) reason = "not ready";
  reason.push_back('\n');
  SendText(conn, 503, reason, head);
  return 503;
}

int HttpServer::ServeJson(mg_connection* conn, const std::function<std::string()>& body,
                          bool head) {
  SendResponse(conn, 200, "application/json", body(), head);
  return 200;
}

bool HttpServer::Authorized(mg_connection* conn) {
  if (users_.empty()) return true;
  const char* header = mg_get_header(conn, "Authorization");
  absl::string_view credentials = header != nullptr ? header : "";
  std::string decoded;
  bool ok = false;
  if (absl::ConsumePrefix(&credentials, "Basic ") &&
      absl::Base64Unescape(absl::StripAsciiWhitespace(credentials), &decoded)) {
    const size_t colon = decoded.find(':');
    if (colon != std::string::npos) {
      ok = CheckPassword(std::string_view(decoded).substr(0, colon),
                         std::string_view(decoded).substr(colon + 1));
    }
  }
  if (!ok) {
    const bool head = std::string_view(mg_get_request_info(conn)->request_method) == "HEAD";
    SendText(conn, 401, "unauthorized\n", head,
             {{"WWW-Authenticate", "Basic realm=\"novapulse\""}});
  }
  return ok;
}

bool HttpServer::CheckPassword(std::string_view user, std::string_view password) {
  const uint64_t key = absl::HashOf(cache_seed_, user, password);
  {
    absl::MutexLock lock(&cache_mu_);
    if (verified_.contains(key)) return true;
  }
  const auto it = users_.find(std::string(user));
  if (it == users_.end()) {
    // Spend the same bcrypt time as for a known user, so response time does
    // not tell which user names exist.
    VerifyCrypt(std::string(password), users_.begin()->second);
    return false;
  }
  if (!VerifyCrypt(std::string(password), it->second)) return false;
  absl::MutexLock lock(&cache_mu_);
  if (verified_.size() >= kMaxCachedCredentials) verified_.clear();
  verified_.insert(key);
  return true;
}

}  // namespace novapulse
