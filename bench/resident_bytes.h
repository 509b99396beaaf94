// ResidentBytes: the process's resident set, read from /proc/self/statm
// after malloc_trim(0) (so that memory malloc keeps free does not count),
// for the memory benchmarks. Header-only.
#ifndef NOVAPULSE_BENCH_RESIDENT_BYTES_H_
#define NOVAPULSE_BENCH_RESIDENT_BYTES_H_

#include <malloc.h>
#include <unistd.h>

#include <cstddef>
#include <cstdio>

namespace novapulse::bench {

inline size_t ResidentBytes() {
  malloc_trim(0);
  FILE* statm = std::fopen("/proc/self/statm", "r");
  if (statm == nullptr) return 0;
  unsigned long size_pages = 0, resident_pages = 0;
  const int n = std::fscanf(statm, "%lu %lu", &size_pages, &resident_pages);
  std::fclose(statm);
  return n == 2 ? resident_pages * static_cast<size_t>(sysconf(_SC_PAGESIZE)) : 0;
}

}  // namespace novapulse::bench

#endif  // NOVAPULSE_BENCH_RESIDENT_BYTES_H_
