#include "pipeline/replay.h"

#include <oneapi/tbb/concurrent_queue.h>
#include <oneapi/tbb/parallel_pipeline.h>
#include <oneapi/tbb/task_arena.h>
#include <unistd.h>

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
#include "pipeline/record_worker.h"
#include "sinks/exposition.h"
#include "sinks/report.h"

namespace novapulse {
namespace {

using Clock = std::chrono::steady_clock;

struct Token {
  Chunk chunk;
  uint64_t records = 0;
  uint64_t input_before = 0;  // input bytes of the files before this chunk's
  size_t source = 0;          // index of the input the chunk came from
  DeadLetterBatch rejected;   // with ReplayOptions::dead_letters
};

}  // namespace

absl::StatusOr<ReplayStats> RunReplay(const std::vector<ReplayInput>& inputs,
                                      const ReplayOptions& options, NovaGiftMetrics& metrics) {
  if (options.threads < 1 || options.threads != metrics.num_shards()) {
    return absl::InvalidArgumentError("replay threads must equal the metric shards");
  }
  std::vector<std::unique_ptr<FileSource>> sources;
  uint64_t total_bytes = 0;
  SourceOptions source_options = options.source;
  if (options.dead_letters) source_options.dropped_head_bytes = kMaxDeadLetterRecordBytes;
  for (const ReplayInput& input : inputs) {
    absl::StatusOr<std::unique_ptr<FileSource>> source =
        FileSource::Open(input.path, input.topic, source_options);
    if (!source.ok()) return source.status();
    total_bytes += (*source)->total_bytes();
    sources.push_back(*std::move(source));
  }

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
  const size_t max_tokens = static_cast<size_t>(options.threads) * 2 + 1;
  tokens.reserve(max_tokens + 1);
  for (size_t i = 0; i < max_tokens + 1; ++i) {  // one more: the reader fills ahead
    tokens.push_back(std::make_unique<Token>());
    free_tokens.push(tokens.back().get());
  }

  // The reader thread does the I/O and decompression, so the workers only
  // parse and aggregate. It ends by pushing nullptr.
  absl::Status read_error;
  uint64_t consumed_before = 0;  // input bytes of the sources already finished
  std::thread reader([&] {
    try {
      for (size_t current = 0; current < sources.size();) {
        Token* token;
        free_tokens.pop(token);
        absl::StatusOr<bool> more = sources[current]->Next(&token->chunk);
        if (!more.ok() || !*more) {
          free_tokens.push(token);
          if (!more.ok()) {
            read_error = more.status();
            break;
          }
          consumed_before += sources[current]->total_bytes();
          ++current;
          continue;
        }
        token->input_before = consumed_before;
        token->source = current;
        filled.push(token);
      }
    } catch (const tbb::user_abort&) {
      // The pipeline gave up; nothing left to feed.
    }
    filled.push(nullptr);
  });

  ReplayStats stats;
  std::vector<uint64_t> lines_before(inputs.size(), 0);  // per input, for dead letters
  const Clock::time_point start = Clock::now();
  Clock::time_point last_progress = start;

  tbb::task_arena arena(options.threads);
  arena.execute([&] {
    tbb::parallel_pipeline(
        max_tokens,
        tbb::make_filter<void, Token*>(tbb::filter_mode::serial_in_order,
                                       [&](tbb::flow_control& fc) -> Token* {
                                         Token* token;
                                         filled.pop(token);
                                         if (token == nullptr) fc.stop();
                                         return token;
                                       }) &
            tbb::make_filter<Token*, Token*>(
                tbb::filter_mode::parallel,
                [&](Token* token) -> Token* {
                  const int worker = tbb::this_task_arena::current_thread_index();
                  NovaGiftMetrics::Writer& writer = metrics.writer(worker);
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
                  token->records =
                      chunk.oversize_lines + ProcessLines(chunk.topic, chunk.buffer.data(),
                                                          chunk.size, chunk.buffer.size(),
                                                          *parsers[worker], writer, rejected);
                  return token;
                }) &
            tbb::make_filter<Token*, void>(tbb::filter_mode::serial_in_order, [&](Token* token) {
              stats.records += token->records;
              stats.line_bytes += token->chunk.size;
              stats.input_bytes = token->input_before + token->chunk.input_bytes;
              if (options.dead_letters) {
                options.dead_letters->Write(token->rejected, inputs[token->source].path,
                                            lines_before[token->source]);
                lines_before[token->source] += token->rejected.lines_seen;
              }
              free_tokens.push(token);
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
  reader.join();
  if (!read_error.ok()) return read_error;
  stats.elapsed_seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return stats;
}

namespace {

constexpr std::string_view kReplayUsage = R"(Usage: novapulse replay [OPTIONS] FILE...

Replays NDJSON access-log and outbox records (plain, gzip or zstd; "-" reads
stdin) as fast as the CPU allows and prints the final metrics in Prometheus
text format. Rejected records are counted by reason and summarised on stderr.

Options:
  --threads N            worker threads (default: all cores)
  --output FILE          write the metrics to FILE instead of stdout
  --topic TOPIC          topic of the FILEs that follow: access-log, outbox, or
                         auto (default: auto, detected per line)
  --max-record-bytes N   longer records are rejected as oversize (default 1048576)
  --series-limit N       series per metric before folding into __overflow__
                         (default 10000)
  --chunk-bytes N        bytes read per chunk (default 1048576)
  --dead-letter FILE     write each rejected record, with its reason, file and
                         line, to FILE as a JSON line (FILE is replaced)
  --dead-letter-max-bytes N
                         rotate FILE to FILE.1 ... before it grows past N bytes
                         (default 104857600)
  --dead-letter-keep N   rotated files kept (default 3)
  --progress / --no-progress
                         progress line on stderr (default: when stderr is a terminal)
  --report               print the key NovaGift figures on stderr at the end
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
  options.threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::string output;
  size_t series_limit = kDefaultSeriesLimit;
  Topic topic = Topic::kAuto;
  bool progress = isatty(STDERR_FILENO);
  bool quiet = false;
  bool report = false;
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
  NovaGiftMetrics metrics(options.threads, series_limit);
  if (progress) options.on_progress = PrintProgress;
  absl::StatusOr<ReplayStats> stats = RunReplay(inputs, options, metrics);
  if (progress) std::fputs("\r\033[K", stderr);
  if (!stats.ok()) {
    std::fprintf(stderr, "novapulse replay: %s\n", std::string(stats.status().message()).c_str());
    return 1;
  }
  std::vector<FamilySnapshot> families = metrics.Snapshot();
  if (dead_letters) dead_letters->AppendFamilies(&families);
  if (output.empty()) {
    WritePrometheusText(families, std::cout);
    std::cout.flush();
  } else {
    std::ofstream out(output, std::ios::binary | std::ios::trunc);
    WritePrometheusText(families, out);
    out.close();
    if (!out) {
      std::fprintf(stderr, "novapulse replay: cannot write %s\n", output.c_str());
      return 1;
    }
  }
  if (report) std::cerr << FormatKeyMetrics(families);
  if (!quiet) {
    std::cerr << FormatReplaySummary(families, stats->records, stats->line_bytes,
                                     stats->elapsed_seconds, options.threads);
  }
  if (dead_letters && !dead_letters->error().ok()) {
    std::fprintf(stderr, "novapulse replay: %" PRIu64 " dead letters dropped: %s\n",
                 dead_letters->dropped(), std::string(dead_letters->error().message()).c_str());
    return 1;
  }
  return 0;
}

}  // namespace novapulse
