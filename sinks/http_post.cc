#include "sinks/http_post.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace novapulse {
namespace {

int MillisUntil(absl::Time deadline) {
  const int64_t ms = absl::ToInt64Milliseconds(deadline - absl::Now());
  return static_cast<int>(std::clamp<int64_t>(ms, 0, 100));  // short slices: see Post
}

}  // namespace

bool Retryable(const PostResult& r) {
  return r.status == 0 || r.status >= 500 || r.status == 408 || r.status == 429;
}

PostResult HttpPost(const HttpEndpoint& endpoint, const std::string& request, absl::Time deadline,
                    const std::atomic<int64_t>* cut_unix_ns) {
  const std::string& host = endpoint.host;
  const int port = endpoint.port;
  const auto effective = [&] {
    return std::min(deadline, absl::FromUnixNanos(cut_unix_ns->load(std::memory_order_relaxed)));
  };
  PostResult result;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* addrs = nullptr;
  const std::string port_text = std::to_string(port);
  if (const int rc = getaddrinfo(host.c_str(), port_text.c_str(), &hints, &addrs); rc != 0) {
    result.error = absl::StrCat("resolve ", host, ": ", gai_strerror(rc));
    return result;
  }
  absl::Cleanup free_addrs = [addrs] { freeaddrinfo(addrs); };
  int fd = -1;
  absl::Cleanup close_fd = [&fd] {
    if (fd >= 0) close(fd);
  };
  for (addrinfo* a = addrs; a != nullptr && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    if (connect(fd, a->ai_addr, a->ai_addrlen) != 0 && errno != EINPROGRESS) {
      result.error = absl::StrCat("connect: ", std::strerror(errno));
      close(fd);
      fd = -1;
      continue;
    }
    pollfd p{fd, POLLOUT, 0};
    int ready = 0;
    while (ready == 0 && absl::Now() < effective()) {
      ready = poll(&p, 1, MillisUntil(effective()));
      if (ready < 0 && errno == EINTR) ready = 0;
    }
    int err = 0;
    socklen_t len = sizeof(err);
    if (ready <= 0) {
      err = ETIMEDOUT;
    } else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
      err = errno;
    }
    if (err != 0) {
      result.error = absl::StrCat("connect: ", std::strerror(err));
      close(fd);
      fd = -1;
    }
  }
  if (fd < 0) return result;

  for (size_t sent = 0; sent < request.size();) {
    const ssize_t n = send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      result.error = absl::StrCat("send: ", std::strerror(errno));
      return result;
    }
    if (absl::Now() >= effective()) {
      result.error = "send: timed out";
      return result;
    }
    pollfd p{fd, POLLOUT, 0};
    poll(&p, 1, MillisUntil(effective()));
  }

  std::string head;
  char buf[4096];
  while (head.find("\r\n") == std::string::npos) {
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n > 0) {
      head.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) break;
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      result.error = absl::StrCat("receive: ", std::strerror(errno));
      return result;
    }
    if (absl::Now() >= effective()) {
      result.error = "receive: timed out";
      return result;
    }
    pollfd p{fd, POLLIN, 0};
    poll(&p, 1, MillisUntil(effective()));
  }
  // "HTTP/1.1 200 OK"
  int status = 0;
  if (head.size() >= 12 && head.starts_with("HTTP/1.") && head[8] == ' ') {
    const auto [end, ec] = std::from_chars(head.data() + 9, head.data() + 12, status);
    if (ec != std::errc() || end != head.data() + 12) status = 0;
  }
  if (status < 100 || status > 599) {
    result.error = "receive: not an HTTP response";
    return result;
  }
  result.status = status;
  return result;
}

std::string HttpEndpoint::HostHeader() const {
  return absl::StrCat(absl::StrContains(host, ':') ? absl::StrCat("[", host, "]") : host,
                      port == 80 ? "" : absl::StrCat(":", port));
}

std::string HttpEndpoint::Redacted() const {
  return absl::StrCat("http://", authorization.empty() ? "" : "<redacted>@", HostHeader(), path);
}

absl::StatusOr<HttpEndpoint> ParseHttpUrl(const std::string& url) {
  auto bad = [](const char* why) { return absl::InvalidArgumentError(why); };
  absl::string_view rest = url;
  if (!absl::ConsumePrefix(&rest, "http://")) {
    return bad(absl::StartsWith(url, "https://") ? "https is not supported; use a TLS proxy"
                                                 : "want http://HOST[:PORT][/PATH]");
  }
  HttpEndpoint e;
  e.url = url;
  const size_t slash = rest.find('/');
  absl::string_view authority = rest.substr(0, slash);
  const absl::string_view path = slash == absl::string_view::npos ? "" : rest.substr(slash);
  if (absl::StrContains(path, '?') || absl::StrContains(path, '#')) {
    return bad("query and fragment are not allowed");
  }
  e.path = std::string(path);
  if (const size_t at = authority.rfind('@'); at != absl::string_view::npos) {
    e.authorization = absl::StrCat("Basic ", absl::Base64Escape(authority.substr(0, at)));
    authority = authority.substr(at + 1);
  }
  absl::string_view port;
  if (absl::StartsWith(authority, "[")) {  // [IPv6]:port
    const size_t close = authority.find(']');
    if (close == absl::string_view::npos) return bad("unclosed [");
    e.host = std::string(authority.substr(1, close - 1));
    absl::string_view after = authority.substr(close + 1);
    if (!after.empty() && !absl::ConsumePrefix(&after, ":")) return bad("bad port");
    port = after;
  } else {
    const size_t colon = authority.find(':');
    e.host = std::string(authority.substr(0, colon));
    if (colon != absl::string_view::npos) port = authority.substr(colon + 1);
  }
  if (e.host.empty()) return bad("no host");
  if (!port.empty()) {
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), e.port);
    if (ec != std::errc() || end != port.data() + port.size() || e.port < 1 || e.port > 65535) {
      return bad("port must be a number in 1-65535");
    }
  } else if (absl::EndsWith(authority, ":")) {
    return bad("empty port");
  }
  return e;
}

std::string PostHead(const HttpEndpoint& endpoint, std::string_view content_type,
                     size_t content_length,
                     const std::vector<std::pair<std::string, std::string>>& headers) {
  std::string head =
      absl::StrCat("POST ", endpoint.path.empty() ? "/" : endpoint.path,
                   " HTTP/1.1\r\nHost: ", endpoint.HostHeader(),
                   "\r\nUser-Agent: novapulse\r\nContent-Type: ", std::string(content_type),
                   "\r\nContent-Length: ", content_length, "\r\nConnection: close\r\n");
  if (!endpoint.authorization.empty()) {
    absl::StrAppend(&head, "Authorization: ", endpoint.authorization, "\r\n");
  }
  for (const auto& [name, value] : headers) absl::StrAppend(&head, name, ": ", value, "\r\n");
  head.append("\r\n");
  return head;
}

}  // namespace novapulse
