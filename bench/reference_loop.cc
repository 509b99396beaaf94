// The reference loop for the replay benchmark: the least a program must do
// to turn an access-log file into per-(method, route, status) counts with
// simdjson. It loads the whole file, runs iterate_many over it, reads the
// same fields novapulse reads into a hash map, and nothing else: no
// validation beyond simdjson's, no histograms, no bad-input accounting.
//
// simdjson's iterate_many runs stage 1 of the next batch on a thread of its
// own by default; --one-thread turns that off, for a loop on one core.
//
//   reference_loop [--one-thread] FILE
//     -> prints "events=N seconds=S events_per_s=R mb_per_s=M keys=K"
#include <simdjson.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>

#include "base/string_map.h"

int main(int argc, char** argv) {
  const bool one_thread = argc == 3 && std::string_view(argv[1]) == "--one-thread";
  if (argc != 2 && !one_thread) {
    std::fprintf(stderr, "usage: reference_loop [--one-thread] FILE\n");
    return 2;
  }
  const char* path = argv[argc - 1];
  simdjson::padded_string json;
  if (auto error = simdjson::padded_string::load(path).get(json)) {
    std::fprintf(stderr, "reference_loop: %s: %s\n", path, simdjson::error_message(error));
    return 1;
  }
  struct Stat {
    uint64_t count = 0;
    double duration_ms = 0;
  };
  novapulse::StringMap<Stat> stats;
  std::string key;
  uint64_t events = 0;
  const auto start = std::chrono::steady_clock::now();
  simdjson::ondemand::parser parser;
#ifdef SIMDJSON_THREADS_ENABLED
  parser.threaded = !one_thread;
#endif
  simdjson::ondemand::document_stream docs;
  if (auto error = parser.iterate_many(json, 1 << 24).get(docs)) {
    std::fprintf(stderr, "reference_loop: %s\n", simdjson::error_message(error));
    return 1;
  }
  for (auto doc : docs) {
    std::string_view ts, method, route, path;
    int64_t status = 0;
    double duration = 0;
    // A line without a route has its path read instead and is counted under
    // an empty route (novapulse normalises the path into one): every line is
    // an event, as in novapulse's count, and the map stays as small.
    if (doc["ts"].get_string().get(ts) || doc["method"].get_string().get(method) ||
        (doc["route"].get_string().get(route) && doc["path"].get_string().get(path)) ||
        doc["status"].get_int64().get(status) || doc["duration_ms"].get_double().get(duration)) {
      continue;
    }
    key.assign(method);
    key.push_back('\xff');
    key.append(route);
    key.push_back('\xff');
    key.append(std::to_string(status));
    (void)ts;  // read (and unescaped) like novapulse does, not used further
    (void)path;
    Stat& s = stats[key];
    ++s.count;
    s.duration_ms += duration;
    ++events;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("events=%llu seconds=%.3f events_per_s=%.0f mb_per_s=%.1f keys=%zu\n",
              static_cast<unsigned long long>(events), seconds, events / seconds,
              json.size() / 1e6 / seconds, stats.size());
  return 0;
}
