#include "pipeline/replay.h"

#include <oneapi/tbb/concurrent_queue.h>
#include <oneapi/tbb/parallel_pipeline.h>
#include <oneapi/tbb/task_arena.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "pipeline/cli.h"
#include "pipeline/process_metrics.h"
#include "pipeline/record_worker.h"
#include "pipeline/rule_runner.h"
#include "sinks/alert_timeline.h"
#include "sinks/backfill_writer.h"
#include "sinks/exposition.h"
#include "sinks/report.h"

namespace novapulse {
namespace {

using Clock = std::chrono::steady_clock;

struct Token {
  Chunk chunk;
  size_t source = 0;
  bool last_of_source = false;
  uint64_t records = 0;
  uint64_t input_before = 0;         // input bytes of all sources before this chunk's
  int64_t last_ms = INT64_MIN;       // event time of the chunk's last line, if known
  int64_t watermark_ms = INT64_MIN;  // window slots ending by this are closed to it
  int64_t newest_us = INT64_MIN;     // newest accepted event time in the chunk
  DeadLetterBatch rejected;          // with ReplayOptions::dead_letters
};

// A chunk's window watermark is the one computed this many chunks back:
// every chunk that far back has completed when a chunk enters the pipeline
// (at most 2 * threads + 1 are in flight), so the late decision depends on
// the input alone, not on thread timing, and is the same for 1 and 2 threads.
constexpr size_t kWatermarkLagChunks = 5;

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// User and system time of every thread of the process so far.
double ProcessCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) * 1e-6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

}  // namespace

absl::StatusOr<ReplayStats> RunReplay(const std::vector<ReplayInput>& inputs,
                                      const ReplayOptions& options, NovaGiftMetrics& metrics) {
  if (options.threads < 1 || options.threads != metrics.num_shards()) {
    return absl::InvalidArgumentError("replay threads must equal the metric shards");
  }
  // With a core to spare, a reader thread of its own does the I/O and
  // decompression, so the workers only parse and aggregate. When the workers
  // have every core, a third thread would only take turns with them: the
  // pipeline's serial input stage then reads, on whichever worker is free,
  // and plain files are mapped, since copying them would cost worker time.
  const bool reader_thread = options.reader_thread.value_or(options.threads < AvailableCpus());
  std::vector<std::unique_ptr<FileSource>> sources;
  uint64_t total_bytes = 0;
  SourceOptions source_options = options.source;
  source_options.map_files = options.map_files && !reader_thread;
  // Every chunk of a source may be in flight at once; a chunk is at most
  // chunk_bytes unless a line is longer (pages dropped under such a chunk
  // only fault in again).
  const size_t max_tokens = static_cast<size_t>(options.threads) * 2 + 1;
  // One more for the reader to fill ahead, and one held per source while
  // choosing which source goes next.
  const size_t num_tokens = max_tokens + 1 + inputs.size();
  source_options.mapped_behind_bytes =
      num_tokens * options.source.chunk_bytes + options.source.max_record_bytes;
  if (options.dead_letters) source_options.dropped_head_bytes = kMaxDeadLetterRecordBytes;
  for (const ReplayInput& input : inputs) {
    absl::StatusOr<std::unique_ptr<FileSource>> source =
        FileSource::Open(input.path, input.topic, source_options);
    if (!source.ok()) return source.status();
    total_bytes += (*source)->total_bytes();
    sources.push_back(*std::move(source));
  }
  const size_t num_sources = sources.size();

  std::vector<std::unique_ptr<RecordParser>> parsers;
  parsers.reserve(static_cast<size_t>(options.threads));
  for (int i = 0; i < options.threads; ++i) {
    parsers.push_back(std::make_unique<RecordParser>(options.source.max_record_bytes));
  }
  // Chunk buffers circulate free -> reader -> filled -> pipeline -> free, so
  // memory stays flat whatever the input size.
  tbb::concurrent_bounded_queue<Token*> free_tokens;
  tbb::concurrent_bounded_queue<Token*> filled;
  std::vector<std::unique_ptr<Token>> tokens;
  tokens.reserve(num_tokens);
  for (size_t i = 0; i < num_tokens; ++i) {
    tokens.push_back(std::make_unique<Token>());
    free_tokens.push(tokens.back().get());
  }
  RuleRunner* rules = options.rules;
  const size_t lag = std::max(kWatermarkLagChunks, max_tokens);
  // Watermark after each completed chunk, by sequence number mod (lag + 1).
  std::vector<std::atomic<int64_t>> watermarks(lag + 1);
  for (auto& w : watermarks) w.store(INT64_MIN, std::memory_order_relaxed);
  // Sources without a single chunk: set by the reader before the first chunk
  // enters the pipeline, so they never hold the watermark back.
  std::vector<std::atomic<bool>> empty(num_sources);

  // The chunks in the order they enter the pipeline. Sources are
  // interleaved in event time: the next chunk is the pending one whose last
  // line is oldest, so the watermark (the slowest source's progress) moves
  // for all of them together. nullptr at the end, or after a read error.
  absl::Status read_error;
  std::vector<Token*> pending(num_sources, nullptr);
  std::vector<uint64_t> consumed(num_sources, 0);
  bool started = false;
  auto fill = [&](size_t s) -> absl::Status {
    Token* token;
    free_tokens.pop(token);
    absl::StatusOr<bool> more = sources[s]->Next(&token->chunk);
    if (!more.ok() || !*more) {
      free_tokens.push(token);
      return more.status();
    }
    token->source = s;
    const std::string_view text(token->chunk.data, token->chunk.size);
    int64_t last = INT64_MIN;
    if (LastLineEventTime(text, &last)) token->last_ms = last;
    pending[s] = token;
    return absl::OkStatus();
  };
  auto next_chunk = [&]() -> Token* {
    if (!started) {
      started = true;
      int64_t first_ms = INT64_MAX;
      for (size_t s = 0; s < num_sources && read_error.ok(); ++s) {
        read_error = fill(s);
        if (pending[s] == nullptr) empty[s].store(true, std::memory_order_release);
        int64_t t;
        if (pending[s] != nullptr &&
            FirstLineEventTime({pending[s]->chunk.data, pending[s]->chunk.size}, &t)) {
          first_ms = std::min(first_ms, t);
        }
      }
      if (rules != nullptr && first_ms != INT64_MAX) rules->Start(first_ms);
    }
    if (!read_error.ok()) return nullptr;
    size_t next = num_sources;
    for (size_t s = 0; s < num_sources; ++s) {
      if (pending[s] == nullptr) continue;
      if (next == num_sources || pending[s]->last_ms < pending[next]->last_ms) next = s;
    }
    if (next == num_sources) return nullptr;
    Token* token = pending[next];
    pending[next] = nullptr;
    consumed[next] = token->chunk.input_bytes;
    read_error = fill(next);
    token->last_of_source = pending[next] == nullptr;
    uint64_t before = 0;
    for (size_t s = 0; s < num_sources; ++s) before += s == next ? 0 : consumed[s];
    token->input_before = before;
    return token;
  };

  double read_cpu_seconds = 0;
  const double cpu_start = ProcessCpuSeconds();
  std::thread reader;
  if (reader_thread) {
    reader = std::thread([&] {
      const double reader_start = ThreadCpuSeconds();
      try {
        while (Token* token = next_chunk()) filled.push(token);
      } catch (const tbb::user_abort&) {
        // The pipeline gave up; nothing left to feed.
      }
      read_cpu_seconds = ThreadCpuSeconds() - reader_start;
      filled.push(nullptr);
    });
  }

  ReplayStats stats;
  std::vector<uint64_t> lines_before(inputs.size(), 0);  // per input, for dead letters
  const Clock::time_point start = Clock::now();
  Clock::time_point last_progress = start;
  uint64_t sequence_in = 0;
  uint64_t sequence_out = 0;
  std::vector<int64_t> source_newest(num_sources, INT64_MIN);
  std::vector<bool> source_done(num_sources, false);
  int64_t watermark = INT64_MIN;
  int64_t newest = INT64_MIN;

  tbb::task_arena arena(options.threads);
  arena.execute([&] {
    tbb::parallel_pipeline(
        max_tokens,
        tbb::make_filter<void, Token*>(tbb::filter_mode::serial_in_order,
                                       [&](tbb::flow_control& fc) -> Token* {
                                         Token* token;
                                         if (reader_thread) {
                                           filled.pop(token);
                                         } else {
                                           const double before = ThreadCpuSeconds();
                                           token = next_chunk();
                                           read_cpu_seconds += ThreadCpuSeconds() - before;
                                         }
                                         if (token == nullptr) {
                                           fc.stop();
                                           return nullptr;
                                         }
                                         const uint64_t seq = sequence_in++;
                                         token->watermark_ms =
                                             seq >= lag
                                                 ? watermarks[(seq - lag) % watermarks.size()].load(
                                                       std::memory_order_acquire)
                                                 : INT64_MIN;
                                         return token;
                                       }) &
            tbb::make_filter<Token*, Token*>(
                tbb::filter_mode::parallel,
                [&](Token* token) -> Token* {
                  const int worker = tbb::this_task_arena::current_thread_index();
                  NovaGiftMetrics::Writer& writer = metrics.writer(worker);
                  writer.SetWatermark(token->watermark_ms);
                  writer.EndBatch();
                  const Chunk& chunk = token->chunk;
                  DeadLetterBatch* rejected = options.dead_letters ? &token->rejected : nullptr;
                  if (rejected) rejected->Clear();
                  for (uint32_t i = 0; i < chunk.oversize_lines; ++i) {
                    writer.Reject(chunk.topic, RejectReason::kOversize);
                    if (rejected && i < chunk.dropped.size()) {
                      const DeadLetterOrigin origin{.line = ++rejected->lines_seen};
                      rejected->Add(RejectReason::kOversize, chunk.topic, origin,
                                    chunk.dropped[i].head, chunk.dropped[i].length);
                    }
                  }
                  token->records = chunk.oversize_lines +
                                   ProcessLines(chunk.topic, chunk.data, chunk.size, chunk.capacity,
                                                *parsers[worker], writer, rejected);
                  token->newest_us = writer.EndBatch();
                  return token;
                }) &
            tbb::make_filter<Token*, void>(tbb::filter_mode::serial_in_order, [&](Token* token) {
              stats.records += token->records;
              stats.line_bytes += token->chunk.size;
              if (token->chunk.mapped()) stats.mapped_bytes += token->chunk.size;
              stats.input_bytes = token->input_before + token->chunk.input_bytes;
              const size_t src = token->source;
              if (token->newest_us != INT64_MIN) {
                source_newest[src] = std::max(source_newest[src], token->newest_us / 1000);
                newest = std::max(newest, source_newest[src]);
              }
              if (token->last_of_source) source_done[src] = true;
              if (options.dead_letters) {
                options.dead_letters->Write(token->rejected, inputs[token->source].path,
                                            lines_before[token->source]);
                lines_before[token->source] += token->rejected.lines_seen;
              }
              free_tokens.push(token);
              if (rules != nullptr) {
                // The slowest source still reading holds the watermark back.
                int64_t slowest = INT64_MAX;
                for (size_t s = 0; s < num_sources; ++s) {
                  if (source_done[s] || empty[s].load(std::memory_order_acquire)) continue;
                  slowest = std::min(slowest, source_newest[s]);
                }
                if (slowest != INT64_MAX && slowest != INT64_MIN) {
                  watermark = std::max(watermark, slowest - rules->lateness_ms());
                }
                const uint64_t seq = sequence_out++;
                watermarks[seq % watermarks.size()].store(watermark, std::memory_order_release);
                // Chunks from seq + 1 on use watermarks of seq + 1 - lag or
                // later: slots ending by that one take no more writes.
                if (seq + 1 >= lag) {
                  rules->AdvanceTo(watermarks[(seq + 1 - lag) % watermarks.size()].load(
                      std::memory_order_relaxed));
                }
              }
              if (options.on_progress) {
                const Clock::time_point now = Clock::now();
                if (std::chrono::duration<double>(now - last_progress).count() >=
                    options.progress_interval_seconds) {
                  last_progress = now;
                  options.on_progress({stats.input_bytes, total_bytes, stats.line_bytes,
                                       stats.records,
                                       std::chrono::duration<double>(now - start).count()});
                }
              }
            }));
  });
  if (reader.joinable()) reader.join();
  if (!read_error.ok()) return read_error;
  if (rules != nullptr && newest != INT64_MIN) rules->Finish(newest);
  stats.elapsed_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  stats.read_cpu_seconds = read_cpu_seconds;
  stats.work_cpu_seconds = std::max(0.0, ProcessCpuSeconds() - cpu_start - read_cpu_seconds);
  return stats;
}

namespace {

constexpr std::string_view kReplayUsage = R"(Usage: novapulse replay [OPTIONS] FILE...

Replays NDJSON access-log and outbox records (plain, gzip or zstd; "-" reads
stdin) as fast as the CPU allows and prints the final metrics in Prometheus
text format. Rejected records are counted by reason and summarised on stderr.

Options:
  --threads N            worker threads (default: every CPU this process may
                         use)
  --output FILE          write the metrics to FILE instead of stdout
  --topic TOPIC          topic of the FILEs that follow: access-log, outbox, or
                         auto (default: auto, detected per line)
  --max-record-bytes N   longer records are rejected as oversize (default 1048576)
  --series-limit N       series per metric before folding into __overflow__
                         (default 10000)
  --chunk-bytes N        bytes read per chunk (default 1048576)
  --no-mmap              never map plain files, read(2) them (they are mapped
                         when the workers take every CPU)
  --dead-letter FILE     write each rejected record, with its reason, file and
                         line, to FILE as a JSON line (FILE is replaced)
  --dead-letter-max-bytes N
                         rotate FILE to FILE.1 ... before it grows past N bytes
                         (default 104857600)
  --dead-letter-keep N   rotated files kept (default 3)
  --progress / --no-progress
                         progress line on stderr (default: when stderr is a terminal)
  --report               print the key NovaGift figures on stderr at the end
  --rules FILE           evaluate this Prometheus rule file in event time (a
                         backtest) and print the alert timeline on stderr;
                         repeatable
  --lateness DUR         allowed event-time disorder before a window slot
                         closes (default 30s); later events count in the
                         metrics but not in the windows rules read
  --window-memory-bytes N
                         budget of the windows rules read (default 134217728);
                         past it, new label sets fold into __overflow__ there
  --alerts-json FILE     write the alert timeline as JSON to FILE
  --openmetrics FILE     also write every series at every --step of event time
                         as OpenMetrics with timestamps, for
                         promtool tsdb create-blocks-from openmetrics FILE DIR
  --step DUR             the backfill's step (default 15s)
  -q, --quiet            no summary on stderr
  -h, --help             this help
)";

absl::StatusOr<Topic> ParseTopic(std::string_view name) {
  if (name == "access-log" || name == "access_log" || name == TopicName(Topic::kAccessLog)) {
    return Topic::kAccessLog;
  }
  if (name == "outbox" || name == TopicName(Topic::kOutbox)) return Topic::kOutbox;
  if (name == "auto") return Topic::kAuto;
  return absl::InvalidArgumentError("unknown topic '" + std::string(name) +
                                    "' (expected access-log, outbox or auto)");
}

void PrintProgress(const ReplayProgress& p) {
  const double mb = p.line_bytes / 1e6;
  const double rate = p.elapsed_seconds > 0 ? p.records / p.elapsed_seconds : 0;
  std::string eta = "?";
  if (p.total_bytes > 0 && p.input_bytes > 0 && p.input_bytes <= p.total_bytes) {
    const double left =
        p.elapsed_seconds * (static_cast<double>(p.total_bytes) / p.input_bytes - 1.0);
    eta = absl::StrFormat("%.0fs", left);
  }
  const std::string pct =
      p.total_bytes > 0 ? absl::StrFormat(" %5.1f%%", 100.0 * p.input_bytes / p.total_bytes) : "";
  std::fprintf(stderr, "\r\033[K%s %9.1f MB  %10.0f events/s  ETA %s", pct.c_str(), mb, rate,
               eta.c_str());
  std::fflush(stderr);
}

}  // namespace

int RunReplayCommand(int argc, char** argv) {
  ArgParser args(argc, argv, kReplayUsage);
  std::vector<ReplayInput> inputs;
  ReplayOptions options;
  options.threads = AvailableCpus();
  std::string output;
  size_t series_limit = kDefaultSeriesLimit;
  Topic topic = Topic::kAuto;
  bool progress = isatty(STDERR_FILENO);
  bool quiet = false;
  bool report = false;
  std::vector<std::string> rule_files;
  std::string alerts_json;
  std::string openmetrics;
  RuleRunnerOptions rule_options;
  DeadLetterOptions dead_letter;
  dead_letter.truncate = true;
  while (args.Next()) {
    if (args.Is("--threads")) {
      options.threads = static_cast<int>(args.Int(1, 1024));
    } else if (args.Is("--output")) {
      output = args.Value();
    } else if (args.Is("--topic")) {
      absl::StatusOr<Topic> t = ParseTopic(args.Value());
      if (!t.ok()) return args.Fail(std::string(t.status().message()));
      topic = *t;
    } else if (args.Is("--max-record-bytes")) {
      options.source.max_record_bytes = static_cast<size_t>(args.Int(64, 1LL << 30));
    } else if (args.Is("--chunk-bytes")) {
      options.source.chunk_bytes = static_cast<size_t>(args.Int(4096, 1LL << 30));
    } else if (args.IsSwitch("--no-mmap")) {
      options.map_files = false;
    } else if (args.Is("--dead-letter")) {
      dead_letter.path = args.Value();
    } else if (args.Is("--dead-letter-max-bytes")) {
      dead_letter.max_bytes = static_cast<uint64_t>(args.Int(4096, 1LL << 40));
    } else if (args.Is("--dead-letter-keep")) {
      dead_letter.keep = static_cast<int>(args.Int(0, 1000));
    } else if (args.Is("--series-limit")) {
      series_limit = static_cast<size_t>(args.Int(1, 100'000'000));
    } else if (args.IsSwitch("--progress")) {
      progress = true;
    } else if (args.IsSwitch("--no-progress")) {
      progress = false;
    } else if (args.IsSwitch("--report")) {
      report = true;
    } else if (args.Is("--rules")) {
      rule_files.push_back(std::string(args.Value()));
    } else if (args.Is("--alerts-json")) {
      alerts_json = args.Value();
    } else if (args.Is("--openmetrics")) {
      openmetrics = args.Value();
    } else if (args.Is("--step")) {
      const std::string text(args.Value());
      if (!promql::ParseDuration(text, &rule_options.backfill_step_ms) ||
          rule_options.backfill_step_ms < 1000 || rule_options.backfill_step_ms % 1000 != 0) {
        return args.Fail("--step: expected whole seconds like 15s or 1m, got '" + text + "'");
      }
    } else if (args.Is("--lateness")) {
      const std::string text(args.Value());
      if (!promql::ParseDuration(text, &rule_options.lateness_ms)) {
        return args.Fail("--lateness: expected a duration like 30s or 2m, got '" + text + "'");
      }
    } else if (args.Is("--window-memory-bytes")) {
      rule_options.window_memory_bytes = static_cast<size_t>(
          args.Int(static_cast<int64_t>(kMinWindowMemoryBytes), int64_t{1} << 40));
    } else if (args.IsSwitch("-q") || args.IsSwitch("--quiet")) {
      quiet = true;
    } else if (args.IsPositional()) {
      inputs.push_back({std::string(args.Positional()), topic});
    } else {
      return args.UnknownFlag();
    }
    if (args.failed()) return args.exit_code();
  }
  if (args.help()) return 0;
  if (inputs.empty()) return args.Fail("no input files (use - for stdin)");
  if (!alerts_json.empty() && rule_files.empty()) return args.Fail("--alerts-json needs --rules");

  std::unique_ptr<DeadLetterWriter> dead_letters;
  if (!dead_letter.path.empty()) {
    absl::StatusOr<std::unique_ptr<DeadLetterWriter>> opened =
        DeadLetterWriter::Open(std::move(dead_letter));
    if (!opened.ok()) {
      std::fprintf(stderr, "novapulse replay: %s\n",
                   std::string(opened.status().message()).c_str());
      return 1;
    }
    dead_letters = *std::move(opened);
    options.dead_letters = dead_letters.get();
  }
  std::unique_ptr<RuleRunner> rules;
  AlertTimeline timeline;
  std::unique_ptr<BackfillWriter> backfill;
  if (!openmetrics.empty()) {
    absl::StatusOr<std::unique_ptr<BackfillWriter>> writer = BackfillWriter::Create(openmetrics);
    if (!writer.ok()) {
      std::fprintf(stderr, "novapulse replay: %s\n",
                   std::string(writer.status().message()).c_str());
      return 1;
    }
    backfill = *std::move(writer);
    rule_options.backfill = backfill.get();
  }
  if (!rule_files.empty() || backfill) {
    RuleSet set;
    if (!rule_files.empty()) {
      absl::StatusOr<RuleSet> loaded = LoadRuleFiles(rule_files);
      if (!loaded.ok()) {
        std::fprintf(stderr, "novapulse replay: %s\n",
                     std::string(loaded.status().message()).c_str());
        return 1;
      }
      set = *std::move(loaded);
    }
    absl::StatusOr<std::unique_ptr<RuleRunner>> runner =
        RuleRunner::Build(std::move(set), rule_options);
    if (!runner.ok()) {
      std::fprintf(stderr, "novapulse replay: %s\n",
                   std::string(runner.status().message()).c_str());
      return 1;
    }
    rules = *std::move(runner);
    for (const std::string& name : rules->unknown_metrics()) {
      std::fprintf(stderr,
                   "novapulse replay: note: the rules read %s, which novapulse does not "
                   "export; its selectors select nothing\n",
                   name.c_str());
    }
    rules->engine().set_on_transition([&timeline](const AlertTransition& t) { timeline.Add(t); });
  }
  NovaGiftMetrics metrics(options.threads, series_limit, rules ? &rules->window_spec() : nullptr);
  if (rules) {
    rules->Attach(&metrics);
    options.rules = rules.get();
  }
  if (progress) options.on_progress = PrintProgress;
  absl::StatusOr<ReplayStats> stats = RunReplay(inputs, options, metrics);
  if (progress) std::fputs("\r\033[K", stderr);
  if (!stats.ok()) {
    std::fprintf(stderr, "novapulse replay: %s\n", std::string(stats.status().message()).c_str());
    return 1;
  }
  std::vector<FamilySnapshot> families = metrics.Snapshot();
  if (dead_letters) dead_letters->AppendFamilies(&families);
  std::string text;
  WritePrometheusText(families, &text);
  if (rules) WriteRuleSeries(rules->engine().Snapshot().series, &text);
  if (output.empty()) {
    std::cout << text;
    std::cout.flush();
  } else {
    std::ofstream out(output, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    if (!out) {
      std::fprintf(stderr, "novapulse replay: cannot write %s\n", output.c_str());
      return 1;
    }
  }
  if (report) std::cerr << FormatKeyMetrics(families);
  if (backfill) {
    const absl::Status written = backfill->Finish();
    if (!written.ok()) {
      std::fprintf(stderr, "novapulse replay: %s: %s\n", openmetrics.c_str(),
                   std::string(written.message()).c_str());
      return 1;
    }
    if (!quiet) {
      std::cerr << absl::StrFormat(
          "openmetrics: %d series, %d samples, %.1f MB in %s\n", backfill->series(),
          backfill->samples(), static_cast<double>(backfill->bytes_written()) / 1e6, openmetrics);
    }
  }
  if (rules && !rule_files.empty()) {
    std::cerr << FormatAlertTimeline(timeline.episodes());
    const uint64_t instants = rules->eval_instants();
    std::cerr << absl::StrFormat(
        "rules: %d evaluations at %d instants; per instant %.1f us mean, p50 < %.0f us, p99 < "
        "%.0f us; window history %.1f MB for %d series\n",
        rules->engine().evaluations(), instants,
        instants > 0 ? rules->eval_seconds() * 1e6 / static_cast<double>(instants) : 0.0,
        rules->EvalQuantileSeconds(0.5) * 1e6, rules->EvalQuantileSeconds(0.99) * 1e6,
        static_cast<double>(rules->history()->MemoryBytes()) / 1e6, rules->history()->series());
    for (const WindowHistory::Folded& f : rules->history()->folded()) {
      std::cerr << absl::StrFormat(
          "window memory budget reached: %s (%d label sets folded into __overflow__ in the "
          "windows the rules read)\n",
          std::string(f.metric), f.series);
    }
    if (!alerts_json.empty()) {
      std::ofstream out(alerts_json, std::ios::binary | std::ios::trunc);
      out << AlertTimelineJson(timeline.episodes());
      out.close();
      if (!out) {
        std::fprintf(stderr, "novapulse replay: cannot write %s\n", alerts_json.c_str());
        return 1;
      }
    }
  }
  if (!quiet) {
    std::cerr << FormatReplaySummary(families, {.records = stats->records,
                                                .bytes = stats->line_bytes,
                                                .seconds = stats->elapsed_seconds,
                                                .threads = options.threads,
                                                .read_cpu_seconds = stats->read_cpu_seconds,
                                                .work_cpu_seconds = stats->work_cpu_seconds});
  }
  if (dead_letters && !dead_letters->error().ok()) {
    std::fprintf(stderr, "novapulse replay: %" PRIu64 " dead letters dropped: %s\n",
                 dead_letters->dropped(), std::string(dead_letters->error().message()).c_str());
    return 1;
  }
  return 0;
}

}  // namespace novapulse
