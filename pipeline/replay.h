// Offline replay: files -> oneTBB parallel_pipeline -> a MetricEngine (the
// NovaGift metrics, or a metric spec's with `replay --metrics FILE`).
//
//   serial input (FileSource chunks, sources interleaved in event time)
//     -> parallel parse + aggregate (the engine's decoder and shard per worker)
//     -> serial in-order completion (progress)
//
// RunReplay blocks the calling thread, which joins the pipeline's arena.
//   NovaGiftMetrics metrics(threads);
//   absl::StatusOr<ReplayStats> stats = RunReplay(inputs, options, metrics);
#ifndef NOVAPULSE_PIPELINE_REPLAY_H_
#define NOVAPULSE_PIPELINE_REPLAY_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "aggregators/novagift_metrics.h"
#include "parsers/event.h"
#include "pipeline/file_source.h"
#include "pipeline/metric_engine.h"
#include "pipeline/rule_runner.h"
#include "sinks/dead_letter.h"

namespace novapulse {

struct ReplayInput {
  std::string path;  // "-" for stdin
  int input = -1;    // the engine's input (MetricEngine::InputNamed); -1: detected per line
};

struct ReplayProgress {
  uint64_t input_bytes = 0;  // bytes consumed from the inputs (compressed size)
  uint64_t total_bytes = 0;  // 0 when unknown
  uint64_t line_bytes = 0;   // bytes of (decompressed) lines processed
  uint64_t records = 0;
  double elapsed_seconds = 0;
};

struct ReplayOptions {
  int threads = 1;  // must equal the engine's shards
  SourceOptions source;
  // Called from the completion stage at most every progress_interval_seconds.
  std::function<void(const ReplayProgress&)> on_progress;
  double progress_interval_seconds = 0.5;
  // With rules: the metrics were built with rules->window_spec() and
  // attached; replay drives the watermark and the evaluations in event time.
  RuleRunner* rules = nullptr;
  // Rejected records go here too when set; written in input order.
  DeadLetterWriter* dead_letters = nullptr;
  // Whether a thread of its own reads the input (else the pipeline's input
  // stage does). Default: when `threads` leaves a CPU of this process's
  // spare. The results are the same either way.
  std::optional<bool> reader_thread;
  // Whether plain files may be mapped rather than read(2) (--no-mmap
  // clears it). They are when the input stage reads: the copy would cost
  // the workers' CPU. A reader thread of its own copies on a spare CPU,
  // which leaves the lines in cache for the workers.
  bool map_files = true;
  // Stale-series expiry (the metrics were built with it): a sweep (see
  // ExpireSeries) each time the input passes a multiple of this much event
  // time, the input paused and the pipeline drained meanwhile, and one at
  // the end at the newest event time. 0: none.
  int64_t expiry_sweep_ms = 0;
};

struct ReplayStats {
  uint64_t records = 0;  // non-blank lines, accepted or rejected
  uint64_t line_bytes = 0;
  uint64_t mapped_bytes = 0;  // of line_bytes, read from a mapping of the file
  uint64_t input_bytes = 0;
  double elapsed_seconds = 0;
  // CPU time of reading (I/O, decompression, splitting into chunks: on the
  // reader thread or in the input stage) and of everything else (parsing,
  // aggregating, completion).
  double read_cpu_seconds = 0;
  double work_cpu_seconds = 0;
  // Stale-series expiry: sweeps run and series removed.
  uint64_t expiry_sweeps = 0;
  uint64_t series_expired = 0;
};

absl::StatusOr<ReplayStats> RunReplay(const std::vector<ReplayInput>& inputs,
                                      const ReplayOptions& options, MetricEngine& engine);
// Into the NovaGift metrics (the inputs' numbers are Topic values).
absl::StatusOr<ReplayStats> RunReplay(const std::vector<ReplayInput>& inputs,
                                      const ReplayOptions& options, NovaGiftMetrics& metrics);

// `novapulse replay ...`: argv[0] is "replay". Returns the exit status.
// The progress report `replay --progress` writes to stderr: on a terminal,
// one line rewritten in place ("\r", erase to the end of the line, no
// newline); elsewhere (a pipe, a log file), a whole line per report.
std::string FormatProgress(const ReplayProgress& p, bool terminal);

int RunReplayCommand(int argc, char** argv);

}  // namespace novapulse

#endif  // NOVAPULSE_PIPELINE_REPLAY_H_
