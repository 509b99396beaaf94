// Reading a whole file that must be a regular one: config files, rule
// files, TLS certificates. A directory or a device read through a stream
// gives no bytes or blocks, which would pass for an empty file; here it is an
// error naming the path. Writing a whole file, with errors that name the path
// and the system's reason.
//
// Thread-safe (no state).
//   absl::StatusOr<std::string> text = ReadRegularFile("configs/novapulse.yaml");
//   absl::Status written = WriteWholeFile("/tmp/metrics.prom", text);
#ifndef NOVAPULSE_BASE_FILE_H_
#define NOVAPULSE_BASE_FILE_H_

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace novapulse {

// The bytes of the regular file at `path`. Errors say "PATH: cannot open:
// <reason>", "PATH: is a directory", "PATH: not a regular file" or
// "PATH: read error: <reason>". Opening does not wait on a FIFO.
[[nodiscard]] absl::StatusOr<std::string> ReadRegularFile(const std::string& path);

// Creates or truncates the file at `path` and writes `bytes` to it. Errors
// say "PATH: cannot open for writing: <reason>", "PATH: write error:
// <reason>" or "PATH: close error: <reason>".
[[nodiscard]] absl::Status WriteWholeFile(const std::string& path, std::string_view bytes);

}  // namespace novapulse

#endif  // NOVAPULSE_BASE_FILE_H_
