// HttpServer: the scrape endpoint of `novapulse run`, a civetweb server with
//   GET|HEAD /metrics  Prometheus text 0.0.4, or OpenMetrics 1.0 when the
//                      Accept header asks for application/openmetrics-text;
//                      gzip when Accept-Encoding allows it
//   GET|HEAD /healthz  200 "ok" while the process serves, or 503 with the
//                      reason the healthy handler gives
//   GET|HEAD /readyz   200 "ready", or 503 with the reason the pipeline gives
//   GET|HEAD /api/v1/alerts, /api/v1/rules
//                      Prometheus's JSON (sinks/rules_json.h), when the
//                      handler is set; 404 otherwise
// optional TLS, and optional basic auth against bcrypt hashes (as Prometheus's
// web-config does). Other methods get 405, other paths 404.
//
// Threads: the handlers run on civetweb's small worker pool, never on a
// pipeline thread, so a scrape never blocks ingestion; they must be safe to
// call from several threads at once. Start() and the destructor (which stops
// the server and waits for running requests) belong to one owner thread.
//   absl::StatusOr<std::unique_ptr<HttpServer>> server =
//       HttpServer::Start(HttpOptionsFromConfig(config.http), std::move(handlers));
#ifndef NOVAPULSE_PIPELINE_HTTP_SERVER_H_
#define NOVAPULSE_PIPELINE_HTTP_SERVER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "pipeline/config.h"

struct mg_connection;
struct mg_context;

namespace novapulse {

struct HttpOptions {
  // "HOST:PORT" (IPv4 literal) or ":PORT" for every interface; port 0 picks
  // a free port (read it back with HttpServer::port()).
  std::string listen = "127.0.0.1:9464";
  std::string cert_file;  // both empty: plain HTTP; both set: HTTPS
  std::string key_file;
  std::map<std::string, std::string> basic_auth_users;  // user -> bcrypt hash
  int num_threads = 4;
};

HttpOptions HttpOptionsFromConfig(const HttpConfig& config);

// OK when `listen` ("HOST:PORT" as in HttpOptions) is an address Start()
// accepts and can bind right now; the socket is closed at once. Otherwise
// why not, naming the address ("port in use" when another socket listens
// there). For checking a config; Start() does not need it.
[[nodiscard]] absl::Status CheckListenAddress(const std::string& listen);

// OK when civetweb can serve TLS here; otherwise why not. Start() checks it
// whenever TLS is configured.
[[nodiscard]] absl::Status CheckCivetwebTls();

class HttpServer {
 public:
  struct Handlers {
    // The exposition text; OpenMetrics (ending in "# EOF") when `openmetrics`.
    std::function<std::string(bool openmetrics)> metrics;
    // True when ready; otherwise fills *reason.
    std::function<bool(std::string* reason)> ready;
    // Optional: false, with *reason, when the process can no longer do its
    // work (a supervisor should restart it).
    std::function<bool(std::string* reason)> healthy;
    // Optional: the bodies of /api/v1/alerts and /api/v1/rules (JSON).
    std::function<std::string()> alerts;
    std::function<std::string()> rules;
  };

  // Binds and starts serving. Errors name the address and the reason (bad
  // address, port in use, TLS files unreadable or TLS not built in).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const HttpOptions& options,
                                                                         Handlers handlers);

  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;
  ~HttpServer();

  // The bound port (the chosen one when options asked for port 0).
  int port() const { return port_; }
  bool tls() const { return tls_; }

 private:
  HttpServer(const HttpOptions& options, Handlers handlers);

  // civetweb's begin_request callback; each returns the status it sent.
  static int HandleRequest(mg_connection* conn);
  int Serve(mg_connection* conn);
  int ServeMetrics(mg_connection* conn, bool head);
  int ServeReady(mg_connection* conn, bool head);
  int ServeJson(mg_connection* conn, const std::function<std::string()>& body, bool head);
  // True when the request may proceed; otherwise has answered 401.
  bool Authorized(mg_connection* conn);
  bool CheckPassword(std::string_view user, std::string_view password);

  Handlers handlers_;
  std::map<std::string, std::string> users_;
  uint64_t cache_seed_ = 0;
  int port_ = 0;
  bool tls_ = false;
  mg_context* ctx_ = nullptr;

  // Successful verifications, keyed by a seeded hash of user and password
  // (never the password itself): bcrypt costs milliseconds per check and
  // Prometheus scrapes with the same credentials every interval.
  static constexpr size_t kMaxCachedCredentials = 256;
  absl::Mutex cache_mu_;
  absl::flat_hash_set<uint64_t> verified_ ABSL_GUARDED_BY(cache_mu_);
};

}  // namespace novapulse

#endif  // NOVAPULSE_PIPELINE_HTTP_SERVER_H_
