#include "pipeline/http_server.h"

#include <arpa/inet.h>
#include <crypt.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <charconv>
#include <chrono>
#include <cstring>
#include <iterator>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <thread>
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
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "base/file.h"
#include "base/log.h"

namespace novapulse {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = boost::asio::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr char kPrometheusContentType[] = "text/plain; version=0.0.4; charset=utf-8";
constexpr char kOpenMetricsContentType[] =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
constexpr char kTextContentType[] = "text/plain; charset=utf-8";
constexpr char kAllowedMethods[] = "GET, HEAD";
// After a response that ends the connection, what the client still sends is
// read and dropped this long before closing, so the kernel does not answer
// it with a reset that could destroy the response in flight.
constexpr Clock::duration kLinger = std::chrono::seconds(1);
// Bytes read at a time while waiting for a request or draining.
constexpr size_t kSmallRead = 512;
// Open files novapulse needs besides the connections (Kafka, files, logs).
constexpr rlim_t kSpareFiles = 256;

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

std::string_view View(beast::string_view s) { return {s.data(), s.size()}; }
// Debian's abseil is built without absl::string_view = std::string_view.
absl::string_view Absl(std::string_view s) { return {s.data(), s.size()}; }

// True when the comma-separated header `value` lists `token` (a media type or
// a coding, compared case-insensitively) without "q=0".
bool HeaderAccepts(std::string_view value, std::string_view token) {
  for (absl::string_view item : absl::StrSplit(Absl(value), ',')) {
    std::vector<absl::string_view> parts = absl::StrSplit(item, ';');
    if (!absl::EqualsIgnoreCase(absl::StripAsciiWhitespace(parts[0]), Absl(token))) continue;
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
  // crypt_data is ~32 KiB: kept off the worker's stack.
  auto data = std::make_unique<crypt_data>();
  const char* result = crypt_r(password.c_str(), hash.c_str(), data.get());
  // On failure libcrypt returns NULL or a string starting with '*', which
  // never equals a valid hash.
  return result != nullptr && result[0] != '*' && ConstantTimeEquals(result, hash);
}

// OpenSSL's reason for a failed TLS call, e.g. "no start line".
std::string TlsReason(const beast::error_code& ec) {
  std::string reason = ec.message();
  ERR_clear_error();
  return reason;
}

// Raises the soft open-file limit to the hard one (each connection is a
// file); returns the soft limit in force.
rlim_t RaiseOpenFileLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return RLIM_INFINITY;
  if (limit.rlim_cur < limit.rlim_max) {
    rlimit raised = limit;
    raised.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) return raised.rlim_cur;
  }
  return limit.rlim_cur;
}

Clock::duration ToClock(absl::Duration d) {
  return std::chrono::duration_cast<Clock::duration>(absl::ToChronoNanoseconds(d));
}

void NameThread(const char* name) { pthread_setname_np(pthread_self(), name); }

// Asio opens sockets without close-on-exec; a process started later must not
// hold connections (or the port) open.
void CloseOnExec(int fd) { fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC); }

// The PEM text of a TLS setting: the file's, or the inline text.
absl::StatusOr<std::string> PemOf(const std::string& file, const std::string& inline_text,
                                  std::string_view key) {
  if (file.empty()) return inline_text;
  absl::StatusOr<std::string> text = ReadRegularFile(file);
  if (!text.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("http: tls ", std::string(key), " ", text.status().message()));
  }
  return text;
}

// How a key is named in errors: "cert_file PATH", or "cert (inline)".
std::string Named(std::string_view key, const std::string& file) {
  return file.empty() ? absl::StrCat(absl::StripSuffix(Absl(key), "_file"), " (inline)")
                      : absl::StrCat(std::string(key), " ", file);
}

// The subject alternative names of `cert` as Go's crypto/x509 lists them
// (DNS names, e-mail addresses, IP addresses, URIs) include one of `allowed`.
bool HasAllowedSan(X509* cert, const std::vector<std::string>& allowed) {
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (names == nullptr) return false;
  absl::Cleanup free_names = [names] { GENERAL_NAMES_free(names); };
  for (int i = 0; i < sk_GENERAL_NAME_num(names); ++i) {
    const GENERAL_NAME* name = sk_GENERAL_NAME_value(names, i);
    std::string value;
    if (name->type == GEN_DNS || name->type == GEN_EMAIL || name->type == GEN_URI) {
      const ASN1_IA5STRING* s = name->d.ia5;
      value.assign(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                   static_cast<size_t>(ASN1_STRING_length(s)));
    } else if (name->type == GEN_IPADD) {
      const ASN1_OCTET_STRING* ip = name->d.iPAddress;
      char text[INET6_ADDRSTRLEN] = {};
      const int family = ASN1_STRING_length(ip) == 4 ? AF_INET : AF_INET6;
      if (ASN1_STRING_length(ip) != 4 && ASN1_STRING_length(ip) != 16) continue;
      if (inet_ntop(family, ASN1_STRING_get0_data(ip), text, sizeof(text)) == nullptr) continue;
      value = text;
    } else {
      continue;
    }
    if (std::find(allowed.begin(), allowed.end(), value) != allowed.end()) return true;
  }
  return false;
}

// notAfter of `cert` as Unix seconds; 0 when unreadable.
double NotAfter(const X509* cert) {
  const ASN1_TIME* t = cert != nullptr ? X509_get0_notAfter(cert) : nullptr;
  tm parts{};
  if (t == nullptr || ASN1_TIME_to_tm(t, &parts) != 1) return 0;
  return static_cast<double>(timegm(&parts));
}

struct TlsContext {
  std::shared_ptr<ssl::context> context;
  double not_after = 0;  // of the served certificate
};

// A server context as `tls` asks: the certificate chain and its key, the
// client certificate policy and CAs, versions, cipher suites and curves.
// Errors name the setting and, for files, the file.
absl::StatusOr<TlsContext> BuildTlsContext(const WebTlsConfig& tls) {
  absl::StatusOr<std::string> cert = PemOf(tls.cert_file, tls.cert, "cert_file");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = PemOf(tls.key_file, tls.key, "key_file");
  if (!key.ok()) return key.status();
  absl::Cleanup wipe = [&key] { OPENSSL_cleanse(key->data(), key->size()); };

  auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
  SSL_CTX* ctx = context->native_handle();
  SSL_CTX_set_min_proto_version(ctx, tls.min_version);
  SSL_CTX_set_max_proto_version(ctx, tls.max_version);
  // OpenSSL 3's default security level refuses TLS 1.0 and 1.1 handshakes
  // outright; a config that asks for them means it.
  if (tls.min_version < kTls12) SSL_CTX_set_security_level(ctx, 0);
  // A client renegotiating over and over would keep the I/O thread doing
  // handshakes without opening a connection.
  uint64_t options = SSL_OP_NO_RENEGOTIATION;
  if (tls.prefer_server_cipher_suites) options |= SSL_OP_CIPHER_SERVER_PREFERENCE;
  SSL_CTX_set_options(ctx, options);
  // Sessions resume only against the context that made them; without an id
  // context OpenSSL refuses resumption when client certificates are asked for.
  static constexpr unsigned char kSessionContext[] = "novapulse";
  SSL_CTX_set_session_id_context(ctx, kSessionContext, sizeof(kSessionContext) - 1);

  beast::error_code ec;
  // An encrypted key must fail here, not prompt on the terminal.
  context->set_password_callback(
      [](size_t, ssl::context::password_purpose) { return std::string(); }, ec);
  context->use_certificate_chain(asio::buffer(*cert), ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("http: tls ", Named("cert_file", tls.cert_file), ": ", TlsReason(ec)));
  }
  context->use_private_key(asio::buffer(*key), ssl::context::pem, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("http: tls ", Named("key_file", tls.key_file), ": ", TlsReason(ec)));
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat("http: tls ", Named("key_file", tls.key_file),
                                                   " does not match ",
                                                   Named("cert_file", tls.cert_file)));
  }

  std::vector<std::string> suites12;
  std::vector<std::string> suites13;
  for (const std::string& name : tls.cipher_suites) {
    const std::string openssl = OPENSSL_cipher_name(name.c_str());
    (absl::StartsWith(openssl, "TLS_") ? suites13 : suites12).push_back(openssl);
  }
  if (!suites12.empty() &&
      SSL_CTX_set_cipher_list(ctx, absl::StrJoin(suites12, ":").c_str()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError("http: tls cipher_suites: none of them can be used");
  }
  if (!suites13.empty() &&
      SSL_CTX_set_ciphersuites(ctx, absl::StrJoin(suites13, ":").c_str()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError("http: tls cipher_suites: the TLS 1.3 ones cannot be used");
  }
  if (!tls.curve_preferences.empty()) {
    std::vector<std::string> groups;
    for (const std::string& curve : tls.curve_preferences) {
      groups.push_back(curve == "X25519" ? "X25519" : absl::StrCat("P-", curve.substr(6)));
    }
    if (SSL_CTX_set1_groups_list(ctx, absl::StrJoin(groups, ":").c_str()) != 1) {
      ERR_clear_error();
      return absl::InvalidArgumentError("http: tls curve_preferences: cannot be used");
    }
  }

  if (!tls.client_ca_file.empty() || !tls.client_ca.empty()) {
    absl::StatusOr<std::string> ca = PemOf(tls.client_ca_file, tls.client_ca, "client_ca_file");
    if (!ca.ok()) return ca.status();
    BIO* bio = BIO_new_mem_buf(ca->data(), static_cast<int>(ca->size()));
    if (bio == nullptr) return absl::ResourceExhaustedError("http: tls: out of memory");
    absl::Cleanup free_bio = [bio] { BIO_free(bio); };
    ERR_clear_error();
    int count = 0;
    while (X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
      absl::Cleanup free_x = [x] { X509_free(x); };
      if (X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), x) != 1 ||
          SSL_CTX_add_client_CA(ctx, x) != 1) {
        ERR_clear_error();
        continue;  // the same certificate twice
      }
      ++count;
    }
    // The end of the text reads as "no start line"; anything else is a
    // certificate that does not parse, and the ones after it would be lost.
    const unsigned long err = ERR_peek_last_error();
    ERR_clear_error();
    if (err != 0 &&
        !(ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE)) {
      return absl::InvalidArgumentError(
          absl::StrCat("http: tls ", Named("client_ca_file", tls.client_ca_file),
                       ": a certificate does not parse after ", count, " that do"));
    }
    if (count == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "http: tls ", Named("client_ca_file", tls.client_ca_file), ": holds no PEM certificate"));
    }
  }
  ssl::verify_mode mode = ssl::verify_none;
  switch (tls.client_auth) {
    case ClientAuth::kNone:
      break;
    case ClientAuth::kRequest:
    case ClientAuth::kVerifyIfGiven:
      mode = ssl::verify_peer;
      break;
    case ClientAuth::kRequireAny:
    case ClientAuth::kRequireAndVerify:
      mode = ssl::verify_peer | ssl::verify_fail_if_no_peer_cert;
      break;
  }
  context->set_verify_mode(mode);
  if (mode != ssl::verify_none) {
    const bool verify = tls.client_auth == ClientAuth::kVerifyIfGiven ||
                        tls.client_auth == ClientAuth::kRequireAndVerify;
    context->set_verify_callback(
        [verify, sans = tls.client_allowed_sans](bool preverified, ssl::verify_context& vc) {
          X509_STORE_CTX* store = vc.native_handle();
          // Request and RequireAny take any certificate, as Go does.
          if (!preverified && verify) return false;
          if (sans.empty() || X509_STORE_CTX_get_error_depth(store) != 0) return true;
          if (HasAllowedSan(X509_STORE_CTX_get_current_cert(store), sans)) return true;
          X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
          return false;
        },
        ec);
  }
  return TlsContext{std::move(context), NotAfter(SSL_CTX_get0_certificate(ctx))};
}

// Why a handshake failed, as a reason label from a fixed set and a detail
// for the log.
std::pair<std::string_view, std::string> HandshakeFailure(const beast::error_code& ec, SSL* ssl) {
  if (ec == beast::error::timeout) return {"timeout", "handshake not finished in time"};
  if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated ||
      ec == asio::error::connection_reset || ec == asio::error::operation_aborted) {
    return {"closed", "the client closed the connection"};
  }
  if (ec.category() != asio::error::get_ssl_category()) return {"other", ec.message()};
  const int reason = ERR_GET_REASON(static_cast<unsigned long>(ec.value()));
  std::string text = ec.message();
  switch (reason) {
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
      return {"plain_http", "plain HTTP sent to the HTTPS port"};
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
      return {"no_client_cert", "the client sent no certificate and one is required"};
    case SSL_R_CERTIFICATE_VERIFY_FAILED: {
      const long verify = SSL_get_verify_result(ssl);
      if (verify == X509_V_ERR_APPLICATION_VERIFICATION) {
        return {"client_cert_san", "client certificate has none of client_allowed_sans"};
      }
      return {"client_cert_invalid",
              absl::StrCat("client certificate refused: ", X509_verify_cert_error_string(verify))};
    }
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_NO_SHARED_GROUPS:
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
    case SSL_R_UNSUPPORTED_SSL_VERSION:
    case SSL_R_VERSION_TOO_LOW:
    case SSL_R_VERSION_TOO_HIGH:
      return {"no_common_parameters", text};
    default:
      break;
  }
  // The client's alert (it refused our certificate, say): reason codes
  // from SSL_AD_REASON_OFFSET on.
  if (reason >= SSL_AD_REASON_OFFSET) return {"client_alert", text};
  return {"other", text};
}

}  // namespace

struct HttpServer::Web {
  WebConfig config;
  std::shared_ptr<ssl::context> tls;  // null: plain HTTP
  double not_after = 0;
  std::vector<std::string> watched;  // the files it was read from
  std::string stamps;                // theirs, taken before reading
};

// Everything below runs on the I/O thread unless it says otherwise. A
// connection is a Session, owned by the handlers of its pending operations
// (shared_ptr); `connections_` lists the open ones for eviction and
// shutdown. Each session has at most one request in flight: the next is read
// only once the response is written, so memory per connection is its header
// buffer (max_header_bytes) plus the response being written.
class HttpServer::Io {
 public:
  Io(HttpServer* server, const HttpOptions& options)
      : server_(server),
        header_timeout_(ToClock(options.header_timeout)),
        idle_timeout_(ToClock(options.idle_timeout)),
        write_timeout_(ToClock(options.write_timeout)),
        max_connections_(options.max_connections),
        max_header_bytes_(options.max_header_bytes),
        num_threads_(options.num_threads) {}
  Io(const Io&) = delete;
  Io& operator=(const Io&) = delete;
  ~Io();

  // On the owner thread, before Run().
  [[nodiscard]] absl::Status Bind(const ListenAddress& address, const std::string& listen);
  void Run();
  int port() const { return port_; }
  void set_tls(bool tls) { tls_ = tls; }

 private:
  class Connection;
  template <class Stream>
  class Session;
  using Response = http::response<http::string_body>;

  void Accept();
  void OnAccept(const beast::error_code& ec, tcp::socket socket);
  // Closes the connection idle the longest or, when none is idle, the one
  // writing a response the longest (a slow reader); false when every
  // connection waits for a worker.
  bool Evict();
  // Runs the request on a worker, then hands the response back to `connection`.
  void Dispatch(std::shared_ptr<Connection> connection, http::request<http::empty_body> request);
  void Shutdown();

  HttpServer* const server_;
  const Clock::duration header_timeout_;
  const Clock::duration idle_timeout_;
  const Clock::duration write_timeout_;
  const size_t max_connections_;
  const size_t max_header_bytes_;
  const int num_threads_;

  asio::io_context io_{1};  // the I/O thread's
  asio::io_context work_;   // the workers'
  asio::executor_work_guard<asio::io_context::executor_type> io_guard_ = asio::make_work_guard(io_);
  asio::executor_work_guard<asio::io_context::executor_type> work_guard_ =
      asio::make_work_guard(work_);
  bool tls_ = false;  // sessions are TLS; the context comes from the web config in force
  tcp::acceptor acceptor_{io_};
  asio::steady_timer retry_timer_{io_};  // accept again after running out of files
  std::atomic<bool> stopping_{false};
  // The open connections in the order they last became idle, so the first
  // idle one is the one idle the longest (Evict() skips busy ones; there are
  // at most as many as requests in flight).
  std::list<Connection*> connections_;
  int port_ = 0;
  std::thread io_thread_;
  std::vector<std::thread> workers_;
};

class HttpServer::Io::Connection : public std::enable_shared_from_this<Connection> {
 public:
  explicit Connection(Io* io) : io_(io) {}
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  virtual ~Connection() = default;

  virtual void Start() = 0;
  // Sends `response` (made by a worker for the request read last); reads the
  // next request after it when `keep_alive`.
  virtual void Write(Response response, bool keep_alive) = 0;
  // Closes the socket at once; pending operations end with an error.
  virtual void Close() = 0;

  enum class Phase {
    kIdle,      // waiting for or reading a request header, or draining before closing
    kHandling,  // its request is with a worker
    kWriting,   // writing the response
  };
  Phase phase() const { return phase_; }

 protected:
  friend class Io;

  // Becoming idle moves a connection to the back of the eviction order.
  void SetPhase(Phase phase) {
    if (phase == Phase::kIdle && phase_ != Phase::kIdle) {
      io_->connections_.splice(io_->connections_.end(), io_->connections_, self_);
    }
    phase_ = phase;
  }
  void Unlist() {
    if (listed_) io_->connections_.erase(self_);
    listed_ = false;
  }

  Io* const io_;
  Phase phase_ = Phase::kIdle;
  bool listed_ = false;
  std::list<Connection*>::iterator self_;  // in io_->connections_ while listed_
};

template <class Stream>
class HttpServer::Io::Session final : public Connection {
 public:
  static constexpr bool kTls = !std::is_same_v<Stream, beast::tcp_stream>;

  // `tls`: the context of a TLS session (null otherwise), kept alive by
  // the session since a reload may replace it.
  Session(Io* io, tcp::socket socket, std::shared_ptr<ssl::context> tls)
      : Connection(io),
        tls_(std::move(tls)),
        stream_(MakeStream(std::move(socket), tls_.get())),
        buffer_(io->max_header_bytes_) {}
  ~Session() override { Unlist(); }

  void Start() override {
    // The handshake and the whole first header share one deadline.
    Tcp().expires_after(io_->header_timeout_);
    if constexpr (kTls) {
      stream_.async_handshake(ssl::stream_base::server, [self = Self()](beast::error_code ec) {
        if (ec) {
          if (!self->closed_) self->HandshakeFailed(ec);
          return self->Close();
        }
        self->ReadHeader();
      });
    } else {
      ReadHeader();
    }
  }

  void Write(Response response, bool keep_alive) override {
    if (closed_) return;
    if (io_->stopping_.load(std::memory_order_relaxed)) return Close();
    SetPhase(Phase::kWriting);
    response_ = std::move(response);
    keep_alive_ = keep_alive;
    response_.keep_alive(keep_alive);
    Tcp().expires_after(io_->write_timeout_);
    http::async_write(stream_, response_, [self = Self()](beast::error_code ec, size_t) {
      if (ec || self->closed_) return self->Close();
      self->response_ = {};  // the body can be megabytes
      if (self->keep_alive_) {
        self->ReadNext();
      } else {
        self->Linger();
      }
    });
  }

  void Close() override {
    if (closed_) return;
    closed_ = true;
    Unlist();
    Tcp().close();
  }

 private:
  static Stream MakeStream(tcp::socket socket, ssl::context* tls) {
    if constexpr (kTls) {
      return Stream(std::move(socket), *tls);
    } else {
      return Stream(std::move(socket));
    }
  }

  void HandshakeFailed(const beast::error_code& ec) {
    if constexpr (kTls) {
      auto [reason, detail] = HandshakeFailure(ec, stream_.native_handle());
      ERR_clear_error();
      beast::error_code ignored;
      const tcp::endpoint peer = Tcp().socket().remote_endpoint(ignored);
      io_->server_->HandshakeFailed(
          reason, detail,
          ignored ? std::string("?") : absl::StrCat(peer.address().to_string(), ":", peer.port()));
    }
  }

  std::shared_ptr<Session> Self() { return std::static_pointer_cast<Session>(shared_from_this()); }
  beast::tcp_stream& Tcp() { return beast::get_lowest_layer(stream_); }
  size_t SmallRead() const { return std::min(kSmallRead, buffer_.max_size() - buffer_.size()); }

  // After a kept-alive response: the idle timeout runs until the next
  // request's first byte, the header timeout from there (as Go's net/http).
  void ReadNext() {
    SetPhase(Phase::kIdle);
    if (buffer_.size() > 0) {  // pipelined
      Tcp().expires_after(io_->header_timeout_);
      ReadHeader();
      return;
    }
    Tcp().expires_after(io_->idle_timeout_);
    stream_.async_read_some(buffer_.prepare(SmallRead()),
                            [self = Self()](beast::error_code ec, size_t n) {
                              if (ec || self->closed_) return self->Close();
                              self->buffer_.commit(n);
                              self->Tcp().expires_after(self->io_->header_timeout_);
                              self->ReadHeader();
                            });
  }

  void ReadHeader() {
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(io_->max_header_bytes_));
    http::async_read_header(stream_, buffer_, *parser_,
                            [self = Self()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    if (closed_) return;
    if (ec == http::error::header_limit || ec == http::error::buffer_overflow) {
      return Refuse(http::status::request_header_fields_too_large, "request header too large\n");
    }
    if (ec == http::error::end_of_stream || ec == http::error::partial_message) return Close();
    if (ec && ec.category() == http::make_error_code(http::error::bad_target).category()) {
      return Refuse(http::status::bad_request, "bad request\n");
    }
    if (ec) return Close();  // timeout, reset
    SetPhase(Phase::kHandling);
    if (parser_->chunked() || parser_->content_length().value_or(0) > 0) {
      return Refuse(http::status::payload_too_large, "request bodies are not accepted\n");
    }
    http::request<http::empty_body> request = parser_->release();
    parser_.reset();
    io_->Dispatch(Self(), std::move(request));
  }

  // Answers a request that goes no further than this thread, then closes.
  void Refuse(http::status status, std::string_view text) {
    parser_.reset();
    Response response(status, 11);
    response.set(http::field::content_type, kTextContentType);
    response.body() = text;
    response.prepare_payload();
    Write(std::move(response), /*keep_alive=*/false);
  }

  void Linger() {
    SetPhase(Phase::kIdle);
    beast::error_code ec;
    Tcp().socket().shutdown(tcp::socket::shutdown_send, ec);
    if (ec) return Close();
    Tcp().expires_after(kLinger);
    Drain();
  }

  void Drain() {
    buffer_.clear();
    Tcp().async_read_some(buffer_.prepare(SmallRead()),
                          [self = Self()](beast::error_code ec, size_t) {
                            if (ec || self->closed_) return self->Close();
                            self->Drain();
                          });
  }

  std::shared_ptr<ssl::context> tls_;
  Stream stream_;
  beast::flat_buffer buffer_;  // at most max_header_bytes
  std::optional<http::request_parser<http::empty_body>> parser_;
  Response response_;
  bool keep_alive_ = false;
  bool closed_ = false;
};

HttpServer::Io::~Io() {
  if (!io_thread_.joinable()) return;  // Run() never called: nothing pending
  stopping_ = true;
  asio::post(io_, [this] { Shutdown(); });
  // Workers finish the handler they run and skip the queued ones (stopping_),
  // handing every connection back to the I/O thread, which runs until the
  // last closed connection's operations have ended.
  work_guard_.reset();
  for (std::thread& worker : workers_) worker.join();
  io_guard_.reset();
  io_thread_.join();
}

absl::Status HttpServer::Io::Bind(const ListenAddress& address, const std::string& listen) {
  beast::error_code ec;
  asio::ip::address_v4 ip = asio::ip::address_v4::any();
  if (!address.host.empty()) ip = asio::ip::make_address_v4(address.host, ec);
  const tcp::endpoint endpoint(ip, static_cast<uint16_t>(address.port));
  if (!ec) acceptor_.open(endpoint.protocol(), ec);
  if (!ec) CloseOnExec(acceptor_.native_handle());
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (!ec) port_ = acceptor_.local_endpoint(ec).port();
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("http: cannot serve on ", listen, ": ", ec.message()));
  }
  return absl::OkStatus();
}

void HttpServer::Io::Run() {
  Accept();
  io_thread_ = std::thread([this] {
    NameThread("http-io");
    io_.run();
  });
  workers_.reserve(static_cast<size_t>(num_threads_));
  for (int i = 0; i < num_threads_; ++i) {
    workers_.emplace_back([this] {
      NameThread("http-worker");
      work_.run();
    });
  }
}

void HttpServer::Io::Accept() {
  acceptor_.async_accept(
      io_, [this](beast::error_code ec, tcp::socket socket) { OnAccept(ec, std::move(socket)); });
}

void HttpServer::Io::OnAccept(const beast::error_code& ec, tcp::socket socket) {
  if (stopping_.load(std::memory_order_relaxed)) return;
  if (ec == boost::system::errc::too_many_files_open ||
      ec == boost::system::errc::too_many_files_open_in_system) {
    // The listening socket stays readable: accepting again at once would
    // spin. Free a file if a connection is idle, else wait a little.
    if (Evict()) return Accept();
    retry_timer_.expires_after(std::chrono::milliseconds(100));
    retry_timer_.async_wait([this](beast::error_code timer_ec) {
      if (!timer_ec && !stopping_.load(std::memory_order_relaxed)) Accept();
    });
    return;
  }
  if (ec) return Accept();  // one client's trouble (e.g. reset before accept)
  if (connections_.size() >= max_connections_ && !Evict()) {
    beast::error_code ignored;
    socket.close(ignored);  // every connection waits for a worker: shed the new one
    return Accept();
  }
  beast::error_code ignored;
  socket.set_option(tcp::no_delay(true), ignored);
  CloseOnExec(socket.native_handle());
  std::shared_ptr<Connection> connection;
  if (tls_) {
    connection = std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(
        this, std::move(socket), server_->CurrentWeb()->tls);
  } else {
    connection = std::make_shared<Session<beast::tcp_stream>>(this, std::move(socket), nullptr);
  }
  connection->self_ = connections_.insert(connections_.end(), connection.get());
  connection->listed_ = true;
  connection->Start();
  Accept();
}

bool HttpServer::Io::Evict() {
  Connection* writer = nullptr;
  for (Connection* connection : connections_) {
    if (connection->phase() == Connection::Phase::kIdle) {
      connection->Close();
      return true;
    }
    if (writer == nullptr && connection->phase() == Connection::Phase::kWriting) {
      writer = connection;
    }
  }
  if (writer == nullptr) return false;
  writer->Close();
  return true;
}

void HttpServer::Io::Dispatch(std::shared_ptr<Connection> connection,
                              http::request<http::empty_body> request) {
  if (stopping_.load(std::memory_order_relaxed)) return;  // Shutdown() closes it
  asio::post(work_,
             [this, connection = std::move(connection), request = std::move(request)]() mutable {
               // On a worker.
               Response response;
               if (!stopping_.load(std::memory_order_relaxed)) {
                 const Request view = {
                     .method = View(request.method_string()),
                     .target = View(request.target()),
                     .accept = View(request[http::field::accept]),
                     .accept_encoding = View(request[http::field::accept_encoding]),
                     .authorization = View(request[http::field::authorization]),
                 };
                 Reply reply = server_->Respond(view);
                 response = Response(static_cast<http::status>(reply.status), request.version());
                 response.set(http::field::content_type, reply.content_type);
                 for (const auto& [name, value] : reply.headers) response.set(name, value);
                 response.content_length(reply.body.size());
                 if (request.method() != http::verb::head) response.body() = std::move(reply.body);
               }
               asio::post(io_, [connection = std::move(connection), response = std::move(response),
                                keep_alive = request.keep_alive()]() mutable {
                 connection->Write(std::move(response), keep_alive);
               });
             });
}

void HttpServer::Io::Shutdown() {
  beast::error_code ignored;
  acceptor_.close(ignored);
  retry_timer_.cancel();
  while (!connections_.empty()) connections_.front()->Close();
}

absl::Status CheckListenAddress(const std::string& listen, const std::string& held) {
  absl::StatusOr<ListenAddress> address = ParseListen(listen);
  if (!address.ok()) return address.status();
  if (absl::StatusOr<ListenAddress> ours = ParseListen(held);
      ours.ok() && ours->port != 0 && ours->port == address->port) {
    return absl::OkStatus();
  }
  // Bound as Start binds, then closed at once (never listened on).
  asio::io_context io;
  tcp::acceptor acceptor(io);
  beast::error_code ec;
  asio::ip::address_v4 ip = asio::ip::address_v4::any();
  if (!address->host.empty()) ip = asio::ip::make_address_v4(address->host, ec);
  const tcp::endpoint endpoint(ip, static_cast<uint16_t>(address->port));
  if (!ec) acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) return absl::OkStatus();
  return absl::UnavailableError(
      absl::StrCat("http: cannot bind ", listen, ": ",
                   ec == asio::error::address_in_use ? "port in use" : ec.message()));
}

absl::Status CheckTlsConfig(const WebTlsConfig& tls) { return BuildTlsContext(tls).status(); }

HttpOptions HttpOptionsFromConfig(const HttpConfig& config) {
  HttpOptions options;
  options.listen = config.listen;
  options.web = config.web;
  options.web_config_file = config.web_config_file;
  return options;
}

namespace {

#define NOVAPULSE_HTTP_METRICS(M)                                                                 \
  M(kHandshakeFailures, "novapulse_http_tls_handshake_failures_total",                            \
    "TLS handshakes that failed, by reason: plain_http, no_client_cert, client_cert_invalid "     \
    "(unknown CA, expired, ...), client_cert_san, no_common_parameters (version, cipher suite, "  \
    "curve), client_alert (the client refused the server), timeout, closed, other.",              \
    MetricType::kComputedCounter, {"reason"}, {})                                                 \
  M(kRefused, "novapulse_http_requests_refused_total",                                            \
    "Requests refused before their handler: unauthorized (basic auth), rate_limited.",            \
    MetricType::kComputedCounter, {"reason"}, {})                                                 \
  M(kReloads, "novapulse_http_web_config_reloads_total",                                          \
    "Reloads of the web config after it or a file it names changed, by result.",                  \
    MetricType::kComputedCounter, {"result"}, {})                                                 \
  M(kLastReloadOk, "novapulse_http_web_config_last_reload_successful",                            \
    "0 when the last reload of the web config failed (the previous one stays in force), else 1.", \
    MetricType::kComputed, {}, {})                                                                \
  M(kNotAfter, "novapulse_http_tls_certificate_not_after_timestamp_seconds",                      \
    "When the served TLS certificate expires (Unix seconds); absent without TLS.",                \
    MetricType::kComputed, {}, {})

enum HttpMetric : size_t { NOVAPULSE_HTTP_METRICS(NOVAPULSE_METRIC_ID) };

const std::vector<MetricDef>& HttpMetricDefs() {
  static const std::vector<MetricDef> kDefs = {NOVAPULSE_HTTP_METRICS(NOVAPULSE_METRIC_DEF)};
  return kDefs;
}

constexpr std::array<std::string_view, 9> kHandshakeReasons = {"plain_http",
                                                               "no_client_cert",
                                                               "client_cert_invalid",
                                                               "client_cert_san",
                                                               "no_common_parameters",
                                                               "client_alert",
                                                               "timeout",
                                                               "closed",
                                                               "other"};

// What a watched file looked like: changed content shows as another mtime,
// size or inode (a renamed-in file, as Kubernetes secrets are updated).
std::string Stamp(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return absl::StrCat(path, ":missing;");
  return absl::StrCat(path, ":", st.st_ino, ":", st.st_size, ":", st.st_mtim.tv_sec, ".",
                      st.st_mtim.tv_nsec, ";");
}

int64_t SteadyNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

}  // namespace

struct HttpServer::Counters {
  std::array<std::atomic<int64_t>, kHandshakeReasons.size()> handshake{};
  std::atomic<int64_t> unauthorized{0};
  std::atomic<int64_t> rate_limited{0};
  std::atomic<int64_t> reloads_ok{0};
  std::atomic<int64_t> reloads_failed{0};
  std::atomic<bool> last_reload_ok{true};
};

absl::StatusOr<std::shared_ptr<HttpServer::Web>> HttpServer::LoadWeb(
    const HttpOptions& options, std::vector<std::string>* watched, std::string* stamps) {
  auto web = std::make_shared<Web>();
  watched->clear();
  stamps->clear();
  if (!options.web_config_file.empty()) {
    watched->push_back(options.web_config_file);
    stamps->append(Stamp(options.web_config_file));
    absl::StatusOr<WebConfig> config = LoadWebConfigFile(options.web_config_file);
    if (!config.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("http: web config ", config.status().message()));
    }
    web->config = *std::move(config);
  } else {
    web->config = options.web;
  }
  for (const auto& [user, hash] : web->config.basic_auth_users) {
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
  const WebTlsConfig& tls = web->config.tls;
  if (tls.enabled()) {
    if ((tls.cert_file.empty() && tls.cert.empty()) || (tls.key_file.empty() && tls.key.empty())) {
      return absl::InvalidArgumentError("http: tls needs both cert_file and key_file");
    }
    for (const std::string& file : tls.Files()) {
      watched->push_back(file);
      stamps->append(Stamp(file));
    }
    absl::StatusOr<TlsContext> context = BuildTlsContext(tls);
    if (!context.ok()) return context.status();
    web->tls = std::move(context->context);
    web->not_after = context->not_after;
  }
  web->watched = *watched;
  web->stamps = *stamps;
  return web;
}

HttpServer::HttpServer(const HttpOptions& options, Handlers handlers)
    : handlers_(std::move(handlers)), options_(options), counters_(std::make_unique<Counters>()) {
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
  if (options.max_connections < 1) {
    return absl::InvalidArgumentError("http: max_connections must be at least 1");
  }
  if (options.max_header_bytes < 256 || options.max_header_bytes > (1u << 20)) {
    return absl::InvalidArgumentError("http: max_header_bytes must be in 256-1048576");
  }
  if (options.header_timeout <= absl::ZeroDuration() ||
      options.idle_timeout <= absl::ZeroDuration() ||
      options.write_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("http: timeouts must be positive");
  }
  absl::StatusOr<ListenAddress> address = ParseListen(options.listen);
  if (!address.ok()) return address.status();
  std::vector<std::string> watched;
  std::string stamps;
  absl::StatusOr<std::shared_ptr<Web>> web = LoadWeb(options, &watched, &stamps);
  if (!web.ok()) return web.status();

  std::unique_ptr<HttpServer> server(new HttpServer(options, std::move(handlers)));
  server->tls_ = (*web)->tls != nullptr;
  {
    absl::MutexLock lock(&server->web_mu_);
    server->web_ = *std::move(web);
  }
  server->next_check_ns_ = SteadyNanos() + absl::ToInt64Nanoseconds(options.reload_check_interval);
  server->io_ = std::make_unique<Io>(server.get(), options);
  server->io_->set_tls(server->tls_);
  if (absl::Status bound = server->io_->Bind(*address, options.listen); !bound.ok()) return bound;
  server->port_ = server->io_->port();

  const rlim_t files = RaiseOpenFileLimit();
  if (files != RLIM_INFINITY && files < options.max_connections + kSpareFiles) {
    Log(LogLevel::kWarn, "http: open file limit below max_connections",
        {{"limit", absl::StrCat(files)},
         {"max_connections", absl::StrCat(options.max_connections)}});
  }
  server->io_->Run();
  return server;
}

std::shared_ptr<const HttpServer::Web> HttpServer::CurrentWeb() {
  MaybeReload();
  absl::MutexLock lock(&web_mu_);
  return web_;
}

void HttpServer::MaybeReload() {
  const int64_t now = SteadyNanos();
  int64_t due = next_check_ns_.load(std::memory_order_relaxed);
  if (now < due) return;
  // One thread checks; the others go on with the config in force.
  if (!next_check_ns_.compare_exchange_strong(
          due, now + absl::ToInt64Nanoseconds(options_.reload_check_interval))) {
    return;
  }
  if (!reload_mu_.TryLock()) return;
  absl::Cleanup unlock = [this] { reload_mu_.Unlock(); };
  std::shared_ptr<const Web> current;
  {
    absl::MutexLock lock(&web_mu_);
    current = web_;
  }
  auto stamps_of = [](const std::vector<std::string>& files) {
    std::string stamps;
    for (const std::string& file : files) stamps += Stamp(file);
    return stamps;
  };
  // After a failed reload, the files that load read decide (a web config
  // may name a certificate that does not exist yet); otherwise those of the
  // config in force.
  if (!failed_watched_.empty() ? stamps_of(failed_watched_) == failed_stamps_
                               : stamps_of(current->watched) == current->stamps) {
    return;
  }

  std::vector<std::string> watched;
  std::string stamps;
  absl::StatusOr<std::shared_ptr<Web>> web = LoadWeb(options_, &watched, &stamps);
  absl::Status status = web.status();
  if (status.ok() && ((*web)->tls != nullptr) != tls_) {
    status = absl::FailedPreconditionError(
        "http: switching between HTTP and HTTPS takes a restart (or SIGHUP)");
  }
  if (!status.ok()) {
    failed_watched_ = std::move(watched);
    failed_stamps_ = std::move(stamps);
    counters_->reloads_failed.fetch_add(1, std::memory_order_relaxed);
    counters_->last_reload_ok.store(false, std::memory_order_relaxed);
    Log(LogLevel::kError, "http: web config not reloaded, the previous one stays in force",
        {{"error", std::string(status.message())}});
    return;
  }
  failed_watched_.clear();
  failed_stamps_.clear();
  counters_->reloads_ok.fetch_add(1, std::memory_order_relaxed);
  counters_->last_reload_ok.store(true, std::memory_order_relaxed);
  Log(LogLevel::kInfo, "http: web config reloaded",
      {{"tls", DescribeTls((*web)->config.tls)},
       {"basic_auth_users", absl::StrCat((*web)->config.basic_auth_users.size())}});
  absl::MutexLock lock(&web_mu_);
  web_ = *std::move(web);
}

void HttpServer::HandshakeFailed(std::string_view reason, const std::string& detail,
                                 const std::string& peer) {
  auto it = std::find(kHandshakeReasons.begin(), kHandshakeReasons.end(), reason);
  if (it == kHandshakeReasons.end()) it = kHandshakeReasons.end() - 1;  // "other"
  counters_->handshake[static_cast<size_t>(it - kHandshakeReasons.begin())].fetch_add(
      1, std::memory_order_relaxed);
  // A client that connects and goes away (a TCP health check) is not news.
  if (reason == "closed") return;
  // At most kLogBurst lines per window; the rest are counted in the next line.
  constexpr int kLogBurst = 10;
  constexpr int64_t kLogWindowNs = 10'000'000'000;
  int64_t suppressed = 0;
  {
    absl::MutexLock lock(&log_mu_);
    const int64_t now = SteadyNanos();
    if (now - log_window_ns_ >= kLogWindowNs) {
      log_window_ns_ = now;
      logged_in_window_ = 0;
    }
    if (logged_in_window_ >= kLogBurst) {
      ++log_suppressed_;
      return;
    }
    ++logged_in_window_;
    suppressed = std::exchange(log_suppressed_, 0);
  }
  Log(LogLevel::kWarn, "http: tls handshake refused",
      {{"reason", std::string(reason)},
       {"detail", detail},
       {"peer", peer},
       {"not_logged_before", absl::StrCat(suppressed)}});
}

bool HttpServer::TakeToken(const WebConfig& web) {
  if (web.rate_limit_interval <= absl::ZeroDuration()) return true;
  const double burst = static_cast<double>(web.rate_limit_burst);
  const double per_ns =
      1.0 / static_cast<double>(absl::ToInt64Nanoseconds(web.rate_limit_interval));
  absl::MutexLock lock(&bucket_mu_);
  const int64_t now = SteadyNanos();
  if (tokens_ < 0) {
    tokens_ = burst;
  } else {
    tokens_ = std::min(burst, tokens_ + static_cast<double>(now - bucket_ns_) * per_ns);
  }
  bucket_ns_ = now;
  if (tokens_ < 1) return false;
  tokens_ -= 1;
  return true;
}

void HttpServer::CollectMetrics(MetricFamilies* out) {
  const std::vector<MetricDef>& defs = HttpMetricDefs();
  auto load = [](const std::atomic<int64_t>& v) {
    return static_cast<double>(v.load(std::memory_order_relaxed));
  };
  FamilySnapshot& handshakes = out->Start(defs[kHandshakeFailures]);
  for (size_t i = 0; i < kHandshakeReasons.size(); ++i) {
    out->Add(handshakes, {kHandshakeReasons[i]}, load(counters_->handshake[i]));
  }
  FamilySnapshot& refused = out->Start(defs[kRefused]);
  out->Add(refused, {"rate_limited"}, load(counters_->rate_limited));
  out->Add(refused, {"unauthorized"}, load(counters_->unauthorized));
  FamilySnapshot& reloads = out->Start(defs[kReloads]);
  out->Add(reloads, {"failure"}, load(counters_->reloads_failed));
  out->Add(reloads, {"success"}, load(counters_->reloads_ok));
  out->AddSingle(defs[kLastReloadOk],
                 counters_->last_reload_ok.load(std::memory_order_relaxed) ? 1 : 0);
  std::shared_ptr<const Web> web;
  {
    absl::MutexLock lock(&web_mu_);
    web = web_;
  }
  if (web->tls != nullptr) out->AddSingle(defs[kNotAfter], web->not_after);
}

HttpServer::~HttpServer() { io_.reset(); }

HttpServer::Reply HttpServer::Respond(const Request& request) {
  const std::shared_ptr<const Web> web = CurrentWeb();
  Reply reply = Route(web->config, request);
  for (const auto& [name, value] : web->config.headers) reply.headers.emplace_back(name, value);
  return reply;
}

HttpServer::Reply HttpServer::Route(const WebConfig& web, const Request& request) {
  auto text = [](int status, std::string body,
                 std::vector<std::pair<std::string, std::string>> headers = {}) {
    return Reply{status, kTextContentType, std::move(body), std::move(headers)};
  };
  // 200 when `check` passes, else 503 with its reason.
  auto check = [&text](const std::function<bool(std::string*)>& check, std::string_view good,
                       std::string_view fallback) {
    std::string reason;
    if (check(&reason)) return text(200, std::string(good));
    if (reason.empty()) reason = fallback;
    reason.push_back('\n');
    return text(503, std::move(reason));
  };

  if (!TakeToken(web)) {
    counters_->rate_limited.fetch_add(1, std::memory_order_relaxed);
    return text(429, "too many requests\n");
  }
  if (!Authorized(web, request.authorization)) {
    counters_->unauthorized.fetch_add(1, std::memory_order_relaxed);
    return text(401, "unauthorized\n", {{"WWW-Authenticate", "Basic realm=\"novapulse\""}});
  }
  // The path as sent: "/metrics/", "/METRICS" or "/metrics%00" are other paths.
  const std::string_view path = request.target.substr(0, request.target.find('?'));
  const std::function<std::string()>* api = nullptr;
  if (path == "/api/v1/alerts" && handlers_.alerts) api = &handlers_.alerts;
  if (path == "/api/v1/rules" && handlers_.rules) api = &handlers_.rules;
  const bool known =
      path == "/metrics" || path == "/healthz" || path == "/readyz" || api != nullptr;
  if (!known) return text(404, "not found\n");
  if (request.method != "GET" && request.method != "HEAD") {
    return text(405, "method not allowed\n", {{"Allow", kAllowedMethods}});
  }
  if (path == "/metrics") return ServeMetrics(request);
  if (path == "/readyz") return check(handlers_.ready, "ready\n", "not ready");
  if (path == "/healthz") {
    if (!handlers_.healthy) return text(200, "ok\n");
    return check(handlers_.healthy, "ok\n", "not healthy");
  }
  return Reply{200, "application/json", (*api)(), {}};
}

HttpServer::Reply HttpServer::ServeMetrics(const Request& request) {
  const bool openmetrics = HeaderAccepts(request.accept, "application/openmetrics-text");
  Reply reply{200,
              openmetrics ? kOpenMetricsContentType : kPrometheusContentType,
              handlers_.metrics(openmetrics),
              {{"Vary", "Accept-Encoding"}}};
  if (HeaderAccepts(request.accept_encoding, "gzip")) {
    std::string gzipped;
    if (Gzip(reply.body, &gzipped)) {
      reply.body = std::move(gzipped);
      reply.headers.emplace_back("Content-Encoding", "gzip");
    }
  }
  return reply;
}

bool HttpServer::Authorized(const WebConfig& web, std::string_view authorization) {
  if (web.basic_auth_users.empty()) return true;
  absl::string_view credentials = Absl(authorization);
  std::string decoded;
  if (!absl::ConsumePrefix(&credentials, "Basic ") ||
      !absl::Base64Unescape(absl::StripAsciiWhitespace(credentials), &decoded)) {
    return false;
  }
  const size_t colon = decoded.find(':');
  if (colon == std::string::npos) return false;
  return CheckPassword(web, std::string_view(decoded).substr(0, colon),
                       std::string_view(decoded).substr(colon + 1));
}

bool HttpServer::CheckPassword(const WebConfig& web, std::string_view user,
                               std::string_view password) {
  const std::map<std::string, std::string>& users = web.basic_auth_users;
  const auto it = users.find(std::string(user));
  // The hash is part of the key: a reload that changes it drops the entry.
  const uint64_t key = absl::HashOf(cache_seed_, user, password,
                                    it == users.end() ? std::string_view() : it->second);
  {
    absl::MutexLock lock(&cache_mu_);
    if (verified_.contains(key)) return true;
  }
  if (it == users.end()) {
    // Spend the same bcrypt time as for a known user, so response time does
    // not tell which user names exist.
    VerifyCrypt(std::string(password), users.begin()->second);
    return false;
  }
  if (!VerifyCrypt(std::string(password), it->second)) return false;
  absl::MutexLock lock(&cache_mu_);
  if (verified_.size() >= kMaxCachedCredentials) verified_.clear();
  verified_.insert(key);
  return true;
}

}  // namespace novapulse
