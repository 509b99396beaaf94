// https_bench: what TLS costs a scrape of novapulse's HttpServer, against
// plain HTTP in the same run.
//
// The server runs in-process on 127.0.0.1 with a metrics handler returning
// a fixed exposition text of --series lines (100 000 by default, about
// 10 MB: the shape of http_requests_total); a client in the same process
// GETs /metrics as Prometheus does, with or without Accept-Encoding: gzip:
//   BM_Scrape/tls:0|1/gzip:0|1/new_connection:0|1
// new_connection:1 opens a connection (and, with TLS, does the handshake:
// ECDSA P-256 certificate, TLS 1.3) for every scrape; 0 reuses one.
// Counters: MB/s of body received; the time per iteration is per scrape.
//
//   build/https_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdlib.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/str_cat.h"
#include "bench/exposition_text.h"
#include "benchmark/benchmark.h"
#include "pipeline/http_server.h"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;

constexpr int64_t kSeries = 100000;

using novapulse::bench::ExpositionText;

// A self-signed ECDSA P-256 certificate for 127.0.0.1 and its key, as PEM
// files in a fresh directory.
struct SelfSigned {
  std::string dir;
  std::string cert;
  std::string key;
};

SelfSigned MakeCertificate() {
  char dir_template[] = "/tmp/https_bench_XXXXXX";
  SelfSigned files;
  files.dir = mkdtemp(dir_template);
  files.cert = files.dir + "/cert.pem";
  files.key = files.dir + "/key.pem";
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x = X509_new();
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("127.0.0.1"), -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509_sign(x, key, EVP_sha256());
  FILE* cert_out = std::fopen(files.cert.c_str(), "w");
  PEM_write_X509(cert_out, x);
  std::fclose(cert_out);
  FILE* key_out = std::fopen(files.key.c_str(), "w");
  PEM_write_PrivateKey(key_out, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(key_out);
  X509_free(x);
  EVP_PKEY_free(key);
  return files;
}

// One server of each kind for the whole run.
struct Servers {
  Servers() : text(ExpositionText(kSeries)), cert(MakeCertificate()) {
    novapulse::HttpOptions options;
    options.listen = "127.0.0.1:0";
    plain = Start(options);
    options.web.tls.cert_file = cert.cert;
    options.web.tls.key_file = cert.key;
    tls = Start(options);
  }
  ~Servers() { std::filesystem::remove_all(cert.dir); }

  std::unique_ptr<novapulse::HttpServer> Start(const novapulse::HttpOptions& options) {
    novapulse::HttpServer::Handlers handlers;
    handlers.metrics = [this](bool) { return std::string(text); };  // a copy, as a render makes
    handlers.ready = [](std::string*) { return true; };
    absl::StatusOr<std::unique_ptr<novapulse::HttpServer>> server =
        novapulse::HttpServer::Start(options, std::move(handlers));
    if (!server.ok()) {
      std::fprintf(stderr, "https_bench: %s\n", std::string(server.status().message()).c_str());
      std::exit(1);
    }
    return *std::move(server);
  }

  const std::string text;
  const SelfSigned cert;
  std::unique_ptr<novapulse::HttpServer> plain;
  std::unique_ptr<novapulse::HttpServer> tls;
};

Servers& TheServers() {
  static Servers* servers = new Servers();
  return *servers;
}

// GET /metrics over `stream`; the body's size.
template <class Stream>
size_t Scrape(Stream& stream, bool gzip) {
  http::request<http::empty_body> request(http::verb::get, "/metrics", 11);
  request.set(http::field::host, "127.0.0.1");
  if (gzip) request.set(http::field::accept_encoding, "gzip");
  http::write(stream, request);
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(1 << 30);
  http::read(stream, buffer, parser);
  return parser.get().body().size();
}

void BM_Scrape(benchmark::State& state) {
  const bool use_tls = state.range(0) != 0;
  const bool gzip = state.range(1) != 0;
  const bool new_connection = state.range(2) != 0;
  Servers& servers = TheServers();
  const tcp::endpoint endpoint(
      asio::ip::make_address_v4("127.0.0.1"),
      static_cast<uint16_t>((use_tls ? servers.tls : servers.plain)->port()));
  asio::io_context io;
  ssl::context client(ssl::context::tls_client);
  client.load_verify_file(servers.cert.cert);
  client.set_verify_mode(ssl::verify_peer);

  std::optional<beast::tcp_stream> plain;
  std::optional<beast::ssl_stream<beast::tcp_stream>> secure;
  auto open = [&] {
    if (use_tls) {
      secure.emplace(io, client);
      beast::get_lowest_layer(*secure).connect(endpoint);
      secure->handshake(ssl::stream_base::client);
    } else {
      plain.emplace(io);
      plain->connect(endpoint);
    }
  };
  size_t bytes = 0;
  if (!new_connection) open();
  for (auto _ : state) {
    if (new_connection) open();
    bytes += use_tls ? Scrape(*secure, gzip) : Scrape(*plain, gzip);
    if (new_connection) {
      beast::error_code ignored;
      if (use_tls) {
        beast::get_lowest_layer(*secure).socket().close(ignored);
      } else {
        plain->socket().close(ignored);
      }
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
  state.counters["body_bytes"] =
      benchmark::Counter(static_cast<double>(bytes) / static_cast<double>(state.iterations()));
}
BENCHMARK(BM_Scrape)
    ->ArgNames({"tls", "gzip", "new_connection"})
    ->ArgsProduct({{0, 1}, {0, 1}, {0, 1}})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
