// HttpServer: the scrape endpoint of `novapulse run`, on Boost.Beast/Asio:
//   GET|HEAD /metrics  Prometheus text 0.0.4, or OpenMetrics 1.0 when the
//                      Accept header asks for application/openmetrics-text;
//                      gzip when Accept-Encoding allows it
//   GET|HEAD /healthz  200 "ok", or 503 with the reason the healthy handler
//                      gives
//   GET|HEAD /readyz   200 "ready", or 503 with the reason the pipeline gives
//   GET|HEAD /api/v1/alerts, /api/v1/rules
//                      Prometheus's JSON (sinks/rules_json.h), when the
//                      handler is set; 404 otherwise
// optional TLS (OpenSSL 3) with optional client certificates, basic auth
// against bcrypt hashes, extra headers and a rate limit: a WebConfig
// (pipeline/web_config.h), the web config file of Prometheus's exporters.
// Other methods get 405, other paths 404. Paths match exactly, without
// percent-decoding; a query string is ignored.
//
// Reload: at most every reload_check_interval, a new connection or request
// checks whether the web config file (when one is used) or a file the
// config names (certificate, key, client CA) changed; if so they are read
// again, and new connections and requests use them. A config that does not
// load is logged and counted, and the one in force stays. Turning TLS on or
// off takes a restart (or SIGHUP, which restarts the service).
//
// Threads: one I/O thread ("http-io") accepts, reads request headers, writes
// responses and keeps every timeout; it never runs a handler. An idle or
// slow client costs a socket and a small buffer, never a thread. The
// handlers (and bcrypt checks) run on a fixed pool of HttpOptions::num_threads
// workers ("http-worker"), so a slow render never stalls reading or
// accepting; they must be safe to call from several threads at once. Start() and the destructor
// (which stops accepting, closes every connection and joins all threads, waiting only for handlers
// already running) belong to one owner thread.
//   absl::StatusOr<std::unique_ptr<HttpServer>> server =
//       HttpServer::Start(HttpOptionsFromConfig(config.http), std::move(handlers));
#ifndef NOVAPULSE_PIPELINE_HTTP_SERVER_H_
#define NOVAPULSE_PIPELINE_HTTP_SERVER_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "aggregators/metric_source.h"
#include "pipeline/config.h"
#include "pipeline/web_config.h"

namespace novapulse {

struct HttpOptions {
  // "HOST:PORT" (IPv4 literal) or ":PORT" for every interface; port 0 picks
  // a free port (read it back with HttpServer::port()).
  std::string listen = "127.0.0.1:9464";
  // TLS, client certificates, basic auth, headers, rate limit.
  WebConfig web;
  // When set, `web` is ignored and read from this file (exporter-toolkit's
  // format; relative names in it are from its directory).
  std::string web_config_file;
  absl::Duration reload_check_interval = absl::Seconds(1);
  int num_threads = 4;  // workers running the handlers

  // Limits. Every connection counts, idle or busy. At the cap the one idle
  // the longest (waiting for, or in the middle of, a request header) is
  // closed to admit the new one; when none is idle, the one writing a
  // response the longest (a slow reader); when every connection waits for a
  // worker, the new one is closed. Start() raises the soft RLIMIT_NOFILE to
  // the hard limit, and logs a warning when that is still below
  // max_connections; out of files, accepting closes idle connections too.
  size_t max_connections = 2048;
  // The whole request header (and a TLS handshake) must arrive within this,
  // counted from accept or from a kept-alive request's first byte: a client
  // trickling a byte at a time is cut off.
  absl::Duration header_timeout = absl::Seconds(10);
  // A kept-alive connection waits this long for the next request's first
  // byte (longer than the usual scrape intervals, so scrapes reuse it).
  absl::Duration idle_timeout = absl::Minutes(2);
  // A response must be written within this, or the connection is closed.
  absl::Duration write_timeout = absl::Seconds(30);
  // Request line and header fields; larger gets 431. Request bodies are
  // refused (413, connection closed): every endpoint is GET or HEAD.
  size_t max_header_bytes = 8192;
};

HttpOptions HttpOptionsFromConfig(const HttpConfig& config);

// OK when `listen` ("HOST:PORT", as in HttpOptions) parses and can be bound
// right now; the socket is closed at once. Otherwise why not, naming the
// address ("port in use" when another socket listens there). For checking a
// config; Start() does not need it. `held`: the listen address of a server
// this process runs and is about to close (a reload); an address on its
// port is only parsed, since the port is free once that server is gone.
[[nodiscard]] absl::Status CheckListenAddress(const std::string& listen,
                                              const std::string& held = "");
// OK when the TLS config loads as Start() loads it: the certificate chain
// and its key (matching), the client CAs, cipher suites and curves;
// otherwise why not, naming the file.
[[nodiscard]] absl::Status CheckTlsConfig(const WebTlsConfig& tls);

class HttpServer : public MetricSource {
 public:
  struct Handlers {
    // The exposition text; OpenMetrics (ending in "# EOF") when `openmetrics`.
    std::function<std::string(bool openmetrics)> metrics;
    // True when ready; otherwise fills *reason.
    std::function<bool(std::string* reason)> ready;
    // Optional: true when healthy, otherwise fills *reason (503). Unset:
    // healthy while the process serves.
    std::function<bool(std::string* reason)> healthy;
    // Optional: the bodies of /api/v1/alerts and /api/v1/rules (JSON).
    std::function<std::string()> alerts;
    std::function<std::string()> rules;
  };

  // Binds and starts serving. Errors name the address and the reason (bad
  // address, port in use) or the TLS file and what is wrong with it.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const HttpOptions& options,
                                                                         Handlers handlers);

  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;
  ~HttpServer() override;

  // The bound port (the chosen one when options asked for port 0).
  int port() const { return port_; }
  bool tls() const { return tls_; }

  // TLS handshakes refused by reason, web config reloads, refused requests,
  // the served certificate's expiry.
  void CollectMetrics(MetricFamilies* out) override;

 private:
  // The Asio side: sockets, TLS context, timers, connections, threads.
  class Io;
  // One loaded version of the web config: what it says, its TLS context,
  // and the files it was read from.
  struct Web;

  // A parsed request header, as the handlers see it (views into the
  // request, which outlives the call).
  struct Request {
    std::string_view method;
    std::string_view target;
    std::string_view accept;
    std::string_view accept_encoding;
    std::string_view authorization;
  };
  struct Reply {
    int status = 200;
    std::string content_type;
    std::string body;
    std::vector<std::pair<std::string, std::string>> headers;
  };

  HttpServer(const HttpOptions& options, Handlers handlers);

  // The web config in force, after reloading it when a check is due and a
  // file changed. Any thread.
  std::shared_ptr<const Web> CurrentWeb();
  void MaybeReload();
  // Loads the web config `options` names: stamps its files, then reads
  // them. `watched` and `stamps` receive the files met and their stamps,
  // also when loading fails.
  static absl::StatusOr<std::shared_ptr<Web>> LoadWeb(const HttpOptions& options,
                                                      std::vector<std::string>* watched,
                                                      std::string* stamps);
  // Called by the I/O thread when a TLS handshake fails.
  void HandshakeFailed(std::string_view reason, const std::string& detail, const std::string& peer);

  // Routes a request and runs its handler; on a worker thread.
  Reply Respond(const Request& request);
  Reply Route(const WebConfig& web, const Request& request);
  Reply ServeMetrics(const Request& request);
  // True when the credentials are good, or no users are configured.
  bool Authorized(const WebConfig& web, std::string_view authorization);
  bool CheckPassword(const WebConfig& web, std::string_view user, std::string_view password);
  // False when the rate limit refuses a request now.
  bool TakeToken(const WebConfig& web);

  Handlers handlers_;
  const HttpOptions options_;
  uint64_t cache_seed_ = 0;
  int port_ = 0;
  bool tls_ = false;

  absl::Mutex web_mu_;
  std::shared_ptr<const Web> web_ ABSL_GUARDED_BY(web_mu_);
  std::atomic<int64_t> next_check_ns_{0};  // steady clock
  absl::Mutex reload_mu_;                  // one reload at a time
  // The files of the last reload that failed and their stamps, so the same
  // broken files are not read (and logged) again every check, and a file the
  // broken config names is watched until it appears.
  std::vector<std::string> failed_watched_ ABSL_GUARDED_BY(reload_mu_);
  std::string failed_stamps_ ABSL_GUARDED_BY(reload_mu_);

  absl::Mutex bucket_mu_;
  double tokens_ ABSL_GUARDED_BY(bucket_mu_) = -1;  // < 0: full at the next request
  int64_t bucket_ns_ ABSL_GUARDED_BY(bucket_mu_) = 0;

  // Counters for CollectMetrics.
  struct Counters;
  std::unique_ptr<Counters> counters_;
  absl::Mutex log_mu_;  // handshake failure lines: a few per window, the rest counted
  int64_t log_window_ns_ ABSL_GUARDED_BY(log_mu_) = 0;
  int logged_in_window_ ABSL_GUARDED_BY(log_mu_) = 0;
  int64_t log_suppressed_ ABSL_GUARDED_BY(log_mu_) = 0;

  // Successful verifications, keyed by a seeded hash of user and password
  // (never the password itself): bcrypt costs milliseconds per check and
  // Prometheus scrapes with the same credentials every interval.
  static constexpr size_t kMaxCachedCredentials = 256;
  absl::Mutex cache_mu_;
  absl::flat_hash_set<uint64_t> verified_ ABSL_GUARDED_BY(cache_mu_);

  // Last: its threads call the members above, so it goes first.
  std::unique_ptr<Io> io_;
};

}  // namespace novapulse

#endif  // NOVAPULSE_PIPELINE_HTTP_SERVER_H_
