#include "base/file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace novapulse {

absl::StatusOr<std::string> ReadRegularFile(const std::string& path) {
  // O_NONBLOCK: opening a FIFO must not wait for a writer.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    const int error = errno;
    return absl::ErrnoToStatus(error, absl::StrCat(path, ": cannot open"));
  }
  absl::Cleanup close_fd = [fd] { ::close(fd); };
  struct stat st = {};
  if (::fstat(fd, &st) != 0) {
    const int error = errno;
    return absl::ErrnoToStatus(error, path);
  }
  if (S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": is a directory"));
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": not a regular file"));
  }
  std::string text;
  text.reserve(static_cast<size_t>(st.st_size));
  char buffer[1 << 16];
  while (true) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n == 0) break;
    if (n < 0) {
      const int error = errno;
      if (error == EINTR) continue;
      return absl::ErrnoToStatus(error, absl::StrCat(path, ": read error"));
    }
    text.append(buffer, static_cast<size_t>(n));
  }
  return text;
}

absl::Status WriteWholeFile(const std::string& path, std::string_view bytes) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    const int error = errno;
    return absl::ErrnoToStatus(error, absl::StrCat(path, ": cannot open for writing"));
  }
  absl::Cleanup close_fd = [&fd] {
    if (fd >= 0) ::close(fd);
  };
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      const int error = errno;
      if (error == EINTR) continue;
      return absl::ErrnoToStatus(error, absl::StrCat(path, ": write error"));
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  const int closed = ::close(std::exchange(fd, -1));
  if (closed != 0) {
    const int error = errno;
    return absl::ErrnoToStatus(error, absl::StrCat(path, ": close error"));
  }
  return absl::OkStatus();
}

}  // namespace novapulse
