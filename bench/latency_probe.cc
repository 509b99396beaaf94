// latency_probe: how long an access-log event takes from being produced to
// Kafka to being counted in the /metrics of a running `novapulse run`.
//
// Produces access-log lines (stamped with the current time) at a steady rate
// in 1 ms ticks, recording for every tick the cumulative count handed to
// librdkafka and when, and, from the delivery reports, when each cumulative
// count was acknowledged by the broker. A second thread scrapes /metrics
// every --scrape-ms and records novapulse_events_total{topic=TOPIC,
// result="accepted"} with the time the response arrived. The latency of a
// tick's count N is the arrival time of the first scrape showing >= N (over
// the count before producing) minus the time N was produced. Counts, not
// identities: partitions are consumed in parallel, so the N-th event counted
// need not be the N-th produced; over 4 partitions fed round-robin by the
// sticky partitioner the difference is a few ms.
//
// What the figure includes: the producer's linger and the broker's ack, the
// consumer's fetch, novapulse's batching (a batch is handed to the workers
// after kafka.batch_timeout, 100 ms by default, or batch_size messages), the
// aggregation, and up to one scrape period. Run by bench/kafka_latency_bench.sh.
//
//   latency_probe --brokers 127.0.0.1:9092 --metrics 127.0.0.1:9464 --rate 100000 --duration 30
#include <arpa/inet.h>
#include <librdkafka/rdkafka.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "base/cli.h"

namespace {

constexpr std::string_view kUsage =
    R"(Usage: latency_probe --brokers ADDR --metrics HOST:PORT [OPTIONS]

Produces access-log lines at a steady rate and measures how long each
cumulative count takes to show in novapulse's /metrics.

  --brokers ADDR         Kafka bootstrap servers (required)
  --metrics HOST:PORT    novapulse's HTTP address (required; IPv4)
  --topic NAME           default novagift.access-log
  --rate N               events per second (default 100000)
  --duration S           seconds of producing (default 30)
  --scrape-ms MS         scrape period (default 10)
  --warmup S             seconds at the start left out of the percentiles (default 2)
  --property KEY=VALUE   librdkafka producer property (repeatable; after the
                         defaults linger.ms=1, compression.codec=lz4, acks=all)
  --trace FILE           writes every scrape: seconds since the start,
                         duration ms, accepted count
)";

using Clock = std::chrono::steady_clock;

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

// A cumulative count and the time it was reached.
struct Mark {
  uint64_t count;
  Clock::time_point at;
};

struct Scrape {
  Clock::time_point done;
  double duration_ms;
  std::optional<uint64_t> accepted;
  uint64_t rejected;
};

// Delivery reports are served by rd_kafka_poll on the producing thread.
struct Deliveries {
  uint64_t delivered = 0;
  uint64_t failed = 0;
  std::string first_error;
};

void OnDelivery(rd_kafka_t* /*rk*/, const rd_kafka_message_t* m, void* opaque) {
  auto* d = static_cast<Deliveries*>(opaque);
  if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (d->failed++ == 0) d->first_error = rd_kafka_err2str(m->err);
    return;
  }
  ++d->delivered;
}

// One HTTP/1.1 GET with Connection: close; the whole response, or nullopt.
std::optional<std::string> HttpGet(const sockaddr_in& addr, const std::string& request) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return std::nullopt;
  std::optional<std::string> out;
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0 &&
      send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size())) {
    std::string body;
    char buf[65536];
    ssize_t n;
    while ((n = recv(fd, buf, sizeof(buf), 0)) > 0) body.append(buf, static_cast<size_t>(n));
    if (n == 0) out = std::move(body);
  }
  close(fd);
  return out;
}

// The value of the line that starts with `prefix` (the series and a space).
std::optional<uint64_t> SeriesValue(std::string_view text, std::string_view prefix) {
  size_t at = 0;
  while ((at = text.find(prefix, at)) != std::string_view::npos) {
    if (at == 0 || text[at - 1] == '\n') {
      return std::strtoull(text.data() + at + prefix.size(), nullptr, 10);
    }
    at += prefix.size();
  }
  return std::nullopt;
}

// The nearest-rank percentile of sorted values.
double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const size_t rank = static_cast<size_t>(p / 100 * static_cast<double>(sorted.size()) + 0.999999);
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

void PrintPercentiles(const char* what, std::vector<double> v) {
  std::sort(v.begin(), v.end());
  std::printf("%-32s samples %zu  p50 %.1f  p90 %.1f  p99 %.1f  max %.1f ms\n", what, v.size(),
              Percentile(v, 50), Percentile(v, 90), Percentile(v, 99), v.empty() ? 0 : v.back());
}

// For each mark of `from` at or after `start`: the time from it to the first
// mark of `to` whose count reaches it (`to` is in count order).
std::vector<double> Latencies(const std::vector<Mark>& from, const std::vector<Mark>& to,
                              Clock::time_point start) {
  std::vector<double> out;
  size_t j = 0;
  for (const Mark& m : from) {
    while (j < to.size() && to[j].count < m.count) ++j;
    if (j == to.size()) break;
    if (m.at >= start) out.push_back(Ms(to[j].at - m.at));
  }
  return out;
}

// "2026-11-27T12:51:03.123Z" for the current wall time, into buf (25 bytes).
void FormatNow(char* buf) {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  tm t;
  gmtime_r(&ts.tv_sec, &t);
  std::snprintf(buf, 25, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", t.tm_year + 1900, t.tm_mon + 1,
                t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, static_cast<int>(ts.tv_nsec / 1000000));
}

}  // namespace

int main(int argc, char** argv) {
  novapulse::ArgParser args(argc, argv, kUsage);
  std::string brokers, metrics, topic = "novagift.access-log", trace;
  int64_t rate = 100000, scrape_ms = 10;
  double duration_s = 30, warmup_s = 2;
  std::vector<std::pair<std::string, std::string>> properties = {
      {"linger.ms", "1"}, {"compression.codec", "lz4"}, {"acks", "all"}};
  while (args.Next()) {
    if (args.Is("--brokers")) {
      brokers = args.Value();
    } else if (args.Is("--metrics")) {
      metrics = args.Value();
    } else if (args.Is("--topic")) {
      topic = args.Value();
    } else if (args.Is("--rate")) {
      rate = args.Int(1, 10'000'000);
    } else if (args.Is("--duration")) {
      duration_s = args.Double(0.1, 86400);
    } else if (args.Is("--scrape-ms")) {
      scrape_ms = args.Int(1, 10'000);
    } else if (args.Is("--warmup")) {
      warmup_s = args.Double(0, 86400);
    } else if (args.Is("--trace")) {
      trace = args.Value();
    } else if (args.Is("--property")) {
      const std::string kv = args.Value();
      const size_t eq = kv.find('=');
      if (eq == std::string::npos || eq == 0) return args.Fail("--property needs KEY=VALUE");
      properties.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    } else {
      return args.UnknownFlag();
    }
    if (args.failed()) return args.exit_code();
  }
  if (args.help()) return 0;
  if (brokers.empty() || metrics.empty()) return args.Fail("--brokers and --metrics are required");

  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  const size_t colon = metrics.rfind(':');
  if (colon == std::string::npos ||
      inet_pton(AF_INET, metrics.substr(0, colon).c_str(), &addr.sin_addr) != 1) {
    return args.Fail("--metrics must be IPV4:PORT");
  }
  addr.sin_port = htons(static_cast<uint16_t>(std::atoi(metrics.c_str() + colon + 1)));
  const std::string request =
      "GET /metrics HTTP/1.1\r\nHost: " + metrics + "\r\nConnection: close\r\n\r\n";
  const std::string accepted_prefix =
      "novapulse_events_total{topic=\"" + topic + "\",result=\"accepted\"} ";
  const std::string rejected_prefix =
      "novapulse_events_total{topic=\"" + topic + "\",result=\"rejected\"} ";

  char err[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  properties.insert(properties.begin(), {"bootstrap.servers", brokers});
  for (const auto& [key, value] : properties) {
    if (rd_kafka_conf_set(conf, key.c_str(), value.c_str(), err, sizeof(err)) != RD_KAFKA_CONF_OK) {
      std::fprintf(stderr, "latency_probe: %s\n", err);
      return 2;
    }
  }
  Deliveries deliveries;
  rd_kafka_conf_set_dr_msg_cb(conf, OnDelivery);
  rd_kafka_conf_set_opaque(conf, &deliveries);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
  if (rk == nullptr) {
    std::fprintf(stderr, "latency_probe: %s\n", err);
    return 1;
  }
  rd_kafka_topic_t* rkt = rd_kafka_topic_new(rk, topic.c_str(), nullptr);

  // The scraper: first a baseline, then every scrape_ms until the target
  // (set once everything is delivered) shows, or 60 s after it was set.
  std::vector<Scrape> scrapes;
  scrapes.reserve(static_cast<size_t>((duration_s + 70) * 1000 / static_cast<double>(scrape_ms)));
  std::atomic<bool> baseline_taken{false};
  std::atomic<uint64_t> baseline_count{0};   // accepted before producing; set with baseline_taken
  std::atomic<uint64_t> target{UINT64_MAX};  // absolute accepted count to wait for
  std::atomic<bool> give_up{false};
  std::thread scraper([&] {
    const auto period = std::chrono::milliseconds(scrape_ms);
    auto next = Clock::now();
    std::optional<Clock::time_point> deadline;
    for (;;) {
      const auto start = Clock::now();
      std::optional<std::string> text = HttpGet(addr, request);
      const auto done = Clock::now();
      if (text) {
        Scrape s{done, Ms(done - start), SeriesValue(*text, accepted_prefix),
                 SeriesValue(*text, rejected_prefix).value_or(0)};
        scrapes.push_back(s);
        if (s.accepted && !baseline_taken.load()) {
          baseline_count.store(*s.accepted);
          baseline_taken.store(true);
        }
        if (s.accepted && *s.accepted >= target.load()) return;
      }
      if (target.load() != UINT64_MAX && !deadline) deadline = done + std::chrono::seconds(60);
      if ((deadline && done > *deadline) || give_up.load()) return;
      next += period;
      if (next < done) next = done;  // a slow scrape: no burst to catch up
      std::this_thread::sleep_until(next);
    }
  });
  const auto baseline_deadline = Clock::now() + std::chrono::seconds(30);
  while (!baseline_taken.load() && Clock::now() < baseline_deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!baseline_taken.load()) {
    give_up.store(true);
    scraper.join();
    std::fprintf(stderr, "latency_probe: no %s... in http://%s/metrics\n", accepted_prefix.c_str(),
                 metrics.c_str());
    return 1;
  }

  constexpr std::string_view kRoutes[] = {"/api/gifts",  "/api/gifts/:id", "/api/gifts/:id/claim",
                                          "/api/wallet", "/api/users/me",  "/api/webhooks/payment"};
  constexpr int kStatuses[] = {200, 201, 404, 500};
  const auto tick = std::chrono::milliseconds(1);
  const auto total_ticks = static_cast<int64_t>(duration_s * 1000);
  std::vector<Mark> produced, acked;
  produced.reserve(static_cast<size_t>(total_ticks) + 1);
  acked.reserve(static_cast<size_t>(total_ticks) * 2 + 1000);
  char ts[25];
  char line[256];
  uint64_t sent = 0;
  double behind_ms = 0;  // the most the producer fell behind its schedule
  const auto t0 = Clock::now();
  for (int64_t k = 1; k <= total_ticks; ++k) {
    const auto due = t0 + k * tick;
    std::this_thread::sleep_until(due);
    behind_ms = std::max(behind_ms, Ms(Clock::now() - due));
    const auto goal = static_cast<uint64_t>(rate * k / 1000);
    FormatNow(ts);
    while (sent < goal) {
      const int len = std::snprintf(
          line, sizeof(line),
          R"({"ts":"%s","method":"GET","route":"%s","status":%d,"duration_ms":%.1f,"instance":"probe"})",
          ts, kRoutes[sent % std::size(kRoutes)].data(),
          kStatuses[(sent / 7) % std::size(kStatuses)], static_cast<double>(sent % 500) / 10);
      if (rd_kafka_produce(rkt, RD_KAFKA_PARTITION_UA, RD_KAFKA_MSG_F_COPY, line,
                           static_cast<size_t>(len), nullptr, 0, nullptr) != 0) {
        if (rd_kafka_last_error() != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
          std::fprintf(stderr, "latency_probe: produce: %s\n",
                       rd_kafka_err2str(rd_kafka_last_error()));
          give_up.store(true);
          scraper.join();
          return 1;
        }
        rd_kafka_poll(rk, 1);
        continue;
      }
      ++sent;
    }
    produced.push_back({sent, Clock::now()});
    const uint64_t before = deliveries.delivered;
    rd_kafka_poll(rk, 0);
    if (deliveries.delivered != before) acked.push_back({deliveries.delivered, Clock::now()});
  }
  const double produce_s = Ms(Clock::now() - t0) / 1000;
  const auto flush_deadline = Clock::now() + std::chrono::seconds(30);
  while (deliveries.delivered + deliveries.failed < sent && Clock::now() < flush_deadline) {
    const uint64_t before = deliveries.delivered;
    rd_kafka_poll(rk, 1);
    if (deliveries.delivered != before) acked.push_back({deliveries.delivered, Clock::now()});
  }
  const uint64_t baseline = baseline_count.load();
  target.store(baseline + deliveries.delivered);
  scraper.join();
  rd_kafka_topic_destroy(rkt);
  rd_kafka_destroy(rk);

  // Scrapes as marks of the count over the baseline, in count order (the
  // counter only grows).
  std::vector<Mark> visible;
  std::vector<double> scrape_ms_list;
  uint64_t last_count = baseline, rejected = 0;
  for (const Scrape& s : scrapes) {
    scrape_ms_list.push_back(s.duration_ms);
    if (!s.accepted) continue;
    last_count = std::max(last_count, *s.accepted);
    rejected = s.rejected;
    visible.push_back({last_count - baseline, s.done});
  }
  const auto start =
      t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(warmup_s));
  std::printf("produced %" PRIu64 " events in %.2f s = %.0f events/s (target %" PRId64
              "; at most %.1f ms behind schedule); delivered %" PRIu64 ", failed %" PRIu64 "%s%s\n",
              sent, produce_s, static_cast<double>(sent) / produce_s, rate, behind_ms,
              deliveries.delivered, deliveries.failed, deliveries.failed ? "; first error: " : "",
              deliveries.first_error.c_str());
  std::printf("visible in /metrics: %" PRIu64 " accepted, %" PRIu64 " rejected%s\n",
              last_count - baseline, rejected,
              last_count - baseline < deliveries.delivered ? " (NOT ALL: gave up after 60 s)" : "");
  std::printf("percentiles over the events produced after the first %.0f s:\n", warmup_s);
  PrintPercentiles("produce -> broker ack", Latencies(produced, acked, start));
  PrintPercentiles("broker ack -> visible in /metrics", Latencies(acked, visible, start));
  PrintPercentiles("produce -> visible in /metrics", Latencies(produced, visible, start));
  if (warmup_s > 0) {
    PrintPercentiles("  same, including the warm-up", Latencies(produced, visible, t0));
  }
  PrintPercentiles("scrape duration", scrape_ms_list);
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  std::printf("probe CPU (producer + scraper): %.2f s\n",
              static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
                  static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6);
  if (!trace.empty()) {
    if (FILE* f = std::fopen(trace.c_str(), "w")) {
      for (const Scrape& s : scrapes) {
        std::fprintf(f, "%.3f %.2f %" PRIu64 "\n", Ms(s.done - t0) / 1000, s.duration_ms,
                     s.accepted.value_or(0));
      }
      std::fclose(f);
    }
  }
  return last_count - baseline < deliveries.delivered || deliveries.failed ? 1 : 0;
}
