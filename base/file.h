// Reading a whole file that must be a regular one: config files, rule
// files, TLS certificates. A directory or a device read through a stream
// gives no bytes or blocks, which would pass for an empty file; here it is an
// error naming the path.
//
// Thread-safe (no state).
//   absl::StatusOr<std::string> text = ReadRegularFile("configs/novapulse.yaml");
#ifndef NOVAPULSE_BASE_FILE_H_
#define NOVAPULSE_BASE_FILE_H_

#include <string>

#include "absl/status/statusor.h"

namespace novapulse {

// The bytes of the regular file at `path`. Errors say "PATH: cannot open:
// <reason>", "PATH: is a directory", "PATH: not a regular file" or
// "PATH: read error: <reason>". Opening does not wait on a FIFO.
[[nodiscard]] absl::StatusOr<std::string> ReadRegularFile(const std::string& path);

}  // namespace novapulse

#endif  // NOVAPULSE_BASE_FILE_H_
