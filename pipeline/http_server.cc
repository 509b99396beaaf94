#include "pipeline/http_server.h"

#include <arpa/inet.h>
#include <crypt.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <sys/resource.h>
#include <zlib.h>

#include <algorithm>
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

// Loads the certificate chain and its key into a new server context in
// *tls; errors name the file.
absl::Status LoadTlsContext(const std::string& cert_file, const std::string& key_file,
                            std::optional<ssl::context>* tls) {
  absl::StatusOr<std::string> cert = ReadRegularFile(cert_file);
  if (!cert.ok())
    return absl::InvalidArgumentError(absl::StrCat("http: ", cert.status().message()));
  absl::StatusOr<std::string> key = ReadRegularFile(key_file);
  if (!key.ok()) return absl::InvalidArgumentError(absl::StrCat("http: ", key.status().message()));
  absl::Cleanup wipe = [&key] { OPENSSL_cleanse(key->data(), key->size()); };

  tls->emplace(ssl::context::tls_server);
  SSL_CTX* ctx = (*tls)->native_handle();
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // A client renegotiating over and over would keep the I/O thread doing
  // handshakes without opening a connection.
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
  beast::error_code ec;
  // An encrypted key must fail here, not prompt on the terminal.
  (*tls)->set_password_callback(
      [](size_t, ssl::context::password_purpose) { return std::string(); }, ec);
  (*tls)->use_certificate_chain(asio::buffer(*cert), ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("http: tls cert_file ", cert_file, ": ", TlsReason(ec)));
  }
  (*tls)->use_private_key(asio::buffer(*key), ssl::context::pem, ec);
  if (ec) {
    return absl::InvalidArgumentError(
        absl::StrCat("http: tls key_file ", key_file, ": ", TlsReason(ec)));
  }
  if (SSL_CTX_check_private_key(ctx) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        absl::StrCat("http: tls key_file ", key_file, " does not match cert_file ", cert_file));
  }
  return absl::OkStatus();
}

}  // namespace

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
  [[nodiscard]] absl::Status LoadTls(const std::string& cert_file, const std::string& key_file);
  [[nodiscard]] absl::Status Bind(const ListenAddress& address, const std::string& listen);
  void Run();
  int port() const { return port_; }

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
  std::optional<ssl::context> tls_;
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

  Session(Io* io, tcp::socket socket)
      : Connection(io),
        stream_(MakeStream(io, std::move(socket))),
        buffer_(io->max_header_bytes_) {}
  ~Session() override { Unlist(); }

  void Start() override {
    // The handshake and the whole first header share one deadline.
    Tcp().expires_after(io_->header_timeout_);
    if constexpr (kTls) {
      stream_.async_handshake(ssl::stream_base::server, [self = Self()](beast::error_code ec) {
        if (ec) return self->Close();
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
  static Stream MakeStream(Io* io, tcp::socket socket) {
    if constexpr (kTls) {
      return Stream(std::move(socket), *io->tls_);
    } else {
      return Stream(std::move(socket));
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

absl::Status HttpServer::Io::LoadTls(const std::string& cert_file, const std::string& key_file) {
  return LoadTlsContext(cert_file, key_file, &tls_);
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
    connection =
        std::make_shared<Session<beast::ssl_stream<beast::tcp_stream>>>(this, std::move(socket));
  } else {
    connection = std::make_shared<Session<beast::tcp_stream>>(this, std::move(socket));
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

absl::Status CheckTlsFiles(const std::string& cert_file, const std::string& key_file) {
  std::optional<ssl::context> tls;
  return LoadTlsContext(cert_file, key_file, &tls);
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
  if (tls && (options.cert_file.empty() || options.key_file.empty())) {
    return absl::InvalidArgumentError("http: tls needs both cert_file and key_file");
  }

  std::unique_ptr<HttpServer> server(new HttpServer(options, std::move(handlers)));
  server->io_ = std::make_unique<Io>(server.get(), options);
  if (tls) {
    if (absl::Status loaded = server->io_->LoadTls(options.cert_file, options.key_file);
        !loaded.ok()) {
      return loaded;
    }
  }
  if (absl::Status bound = server->io_->Bind(*address, options.listen); !bound.ok()) return bound;
  server->port_ = server->io_->port();
  server->tls_ = tls;

  const rlim_t files = RaiseOpenFileLimit();
  if (files != RLIM_INFINITY && files < options.max_connections + kSpareFiles) {
    Log(LogLevel::kWarn, "http: open file limit below max_connections",
        {{"limit", absl::StrCat(files)},
         {"max_connections", absl::StrCat(options.max_connections)}});
  }
  server->io_->Run();
  return server;
}

HttpServer::~HttpServer() { io_.reset(); }

HttpServer::Reply HttpServer::Respond(const Request& request) {
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

  if (!Authorized(request.authorization)) {
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

bool HttpServer::Authorized(std::string_view authorization) {
  if (users_.empty()) return true;
  absl::string_view credentials = Absl(authorization);
  std::string decoded;
  if (!absl::ConsumePrefix(&credentials, "Basic ") ||
      !absl::Base64Unescape(absl::StripAsciiWhitespace(credentials), &decoded)) {
    return false;
  }
  const size_t colon = decoded.find(':');
  if (colon == std::string::npos) return false;
  return CheckPassword(std::string_view(decoded).substr(0, colon),
                       std::string_view(decoded).substr(colon + 1));
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
