// HttpPost: one HTTP/1.1 POST to an http:// endpoint over a fresh
// connection, for the clients that push (Alertmanager, remote_write):
// non-blocking sockets polled in short slices, so a deadline bounds the
// whole exchange and a shutdown can cut a POST in flight.
//
// Pure functions; safe from any thread.
//   absl::StatusOr<HttpEndpoint> e = ParseHttpUrl("http://127.0.0.1:9090/api/v1/write");
//   std::string request = PostHead(*e, "application/x-protobuf", body.size(), {}) + body;
//   PostResult r = HttpPost(*e, request, absl::Now() + absl::Seconds(10), &cut);
#ifndef NOVAPULSE_SINKS_HTTP_POST_H_
#define NOVAPULSE_SINKS_HTTP_POST_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace novapulse {

struct HttpEndpoint {
  std::string url;  // as configured
  std::string host;
  int port = 80;
  std::string path;           // as in the URL ("" when it has none)
  std::string authorization;  // "Basic ..." from user:password@, or empty

  // The Host header's value: host, [host] for IPv6, ":port" unless 80.
  std::string HostHeader() const;
  // The URL for logs: the user and password, if any, as <redacted>.
  std::string Redacted() const;
};

// "http://[USER:PASSWORD@]HOST[:PORT][/PATH]"; errors say what is wrong
// (https is refused: these clients speak plain HTTP, TLS is a proxy's job)
// and never repeat the URL, which may hold a password.
[[nodiscard]] absl::StatusOr<HttpEndpoint> ParseHttpUrl(const std::string& url);

// The request line and headers of a POST of `content_length` bytes to
// `endpoint` (Connection: close), ending with the blank line.
std::string PostHead(const HttpEndpoint& endpoint, std::string_view content_type,
                     size_t content_length,
                     const std::vector<std::pair<std::string, std::string>>& headers);

struct PostResult {
  int status = 0;     // HTTP status; 0 when there was no answer
  std::string error;  // why there was no answer
};

// True when a later POST of the same body may succeed: no answer, 5xx,
// 408 or 429.
bool Retryable(const PostResult& r);

// Sends `request` (head and body) and reads the status line of the answer.
// `deadline` bounds the whole exchange; so does *cut_unix_ns, re-read every
// 100 ms.
PostResult HttpPost(const HttpEndpoint& endpoint, const std::string& request, absl::Time deadline,
                    const std::atomic<int64_t>* cut_unix_ns);

}  // namespace novapulse

#endif  // NOVAPULSE_SINKS_HTTP_POST_H_
