#include "pipeline/replay.h"

#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <iostream>
#include <memory>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/cli.h"
#include "base/duration.h"
#include "base/file.h"
#include "base/time_math.h"
#include "parsers/event_time_sniff.h"
#include "pipeline/ingest_pipeline.h"
#include "pipeline/process_metrics.h"
#include "pipeline/record_worker.h"
#include "pipeline/rule_files.h"
#include "pipeline/rule_runner.h"
#include "sinks/alert_timeline.h"
#include "sinks/backfill_writer.h"
#include "sinks/exposition.h"
#include "sinks/report.h"
#include "spec/metric_spec.h"
#include "spec/plan.h"

namespace novapulse {
namespace {

using Clock = std::chrono::steady_clock;

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

// The chunks in the order they enter the pipeline. Sources are interleaved
// in event time: the next chunk is the pending one whose last line is
// oldest, so the watermark (the slowest source's progress) moves for all of
// them together. The first call reads a chunk of every source and starts the
// rules at the oldest first line.
//
// With expiry sweeps every `sweep_ms` of event time, Next() also returns
// nullptr, holding the chunk back, when the next chunk's last line reaches
// the next multiple of sweep_ms: sweep_due() then gives that point, and
// Next() goes on after SweepDone(). Where the input pauses depends on the
// input alone, not on threads or timing.
class ChunkFeed {
 public:
  ChunkFeed(const std::vector<std::unique_ptr<FileSource>>& sources,
            const std::vector<ReplayInput>& inputs, MetricEngine& engine, IngestPipeline& pipeline,
            ChunkLagWatermark& watermarks, RuleRunner* rules, int64_t sweep_ms)
      : sources_(sources),
        inputs_(inputs),
        engine_(engine),
        pipeline_(pipeline),
        watermarks_(watermarks),
        rules_(rules),
        sweep_ms_(sweep_ms),
        pending_(sources.size(), nullptr),
        consumed_(sources.size(), 0) {}

  // nullptr at the end, or after a read error.
  IngestBatch* Next() {
    if (!started_) Start();
    if (!error_.ok()) return nullptr;
    const size_t n = sources_.size();
    size_t next = n;
    for (size_t s = 0; s < n; ++s) {
      if (pending_[s] == nullptr) continue;
      if (next == n || pending_[s]->last_ms < pending_[next]->last_ms) next = s;
    }
    if (next == n) return nullptr;
    const int64_t last_ms = pending_[next]->last_ms;
    if (sweep_ms_ > 0 && last_ms != INT64_MIN) {
      if (next_sweep_ms_ == INT64_MIN) next_sweep_ms_ = SweepPoint(last_ms);
      if (last_ms >= next_sweep_ms_) {
        sweep_due_ms_ = SweepPoint(last_ms) - sweep_ms_;
        next_sweep_ms_ = sweep_due_ms_ + sweep_ms_;
        return nullptr;
      }
    }
    IngestBatch* batch = pending_[next];
    pending_[next] = nullptr;
    consumed_[next] = batch->lines.input_bytes;
    error_ = Fill(next);
    batch->last_of_source = pending_[next] == nullptr;
    uint64_t before = 0;
    for (size_t s = 0; s < n; ++s) before += s == next ? 0 : consumed_[s];
    batch->input_before = before;
    return batch;
  }
  const absl::Status& error() const { return error_; }
  // The event time of the sweep the feed paused for, if it did.
  std::optional<int64_t> sweep_due() const {
    return sweep_due_ms_ == INT64_MIN ? std::nullopt : std::optional<int64_t>(sweep_due_ms_);
  }
  void SweepDone() { sweep_due_ms_ = INT64_MIN; }

 private:
  // The first multiple of sweep_ms_ after `ms`.
  int64_t SweepPoint(int64_t ms) const { return (FloorDiv(ms, sweep_ms_) + 1) * sweep_ms_; }

  void Start() {
    started_ = true;
    int64_t first_ms = INT64_MAX;
    for (size_t s = 0; s < sources_.size() && error_.ok(); ++s) {
      error_ = Fill(s);
      if (pending_[s] == nullptr) watermarks_.MarkEmpty(s);
      int64_t t;
      if (pending_[s] != nullptr &&
          engine_.EdgeEventTime(inputs_[s].input,
                                {pending_[s]->lines.data, pending_[s]->lines.size},
                                /*last=*/false, &t)) {
        first_ms = std::min(first_ms, t);
      }
    }
    if (rules_ != nullptr && first_ms != INT64_MAX) rules_->Start(first_ms);
  }

  // Reads the next chunk of source `s` into pending_[s] (left null at its end).
  absl::Status Fill(size_t s) {
    IngestBatch* batch = pipeline_.NextFree();
    absl::StatusOr<bool> more = sources_[s]->Next(&batch->lines);
    if (!more.ok() || !*more) {
      pipeline_.Release(batch);
      return more.status();
    }
    batch->source = s;
    batch->input = inputs_[s].input;
    const std::string_view text(batch->lines.data, batch->lines.size);
    int64_t last = INT64_MIN;
    batch->last_ms =
        engine_.EdgeEventTime(inputs_[s].input, text, /*last=*/true, &last) ? last : INT64_MIN;
    pending_[s] = batch;
    return absl::OkStatus();
  }

  const std::vector<std::unique_ptr<FileSource>>& sources_;
  const std::vector<ReplayInput>& inputs_;
  MetricEngine& engine_;
  IngestPipeline& pipeline_;
  ChunkLagWatermark& watermarks_;
  RuleRunner* const rules_;
  const int64_t sweep_ms_;
  int64_t next_sweep_ms_ = INT64_MIN;  // pause when a chunk's last line reaches it
  int64_t sweep_due_ms_ = INT64_MIN;
  std::vector<IngestBatch*> pending_;
  std::vector<uint64_t> consumed_;
  bool started_ = false;
  absl::Status error_;
};

}  // namespace

absl::StatusOr<ReplayStats> RunReplay(const std::vector<ReplayInput>& inputs,
                                      const ReplayOptions& options, NovaGiftMetrics& metrics) {
  NovaGiftEngine engine(metrics, options.source.max_record_bytes);
  return RunReplay(inputs, options, engine);
}

absl::StatusOr<ReplayStats> RunReplay(const std::vector<ReplayInput>& inputs,
                                      const ReplayOptions& options, MetricEngine& engine) {
  if (options.threads < 1 || options.threads != engine.num_shards()) {
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
  const size_t in_flight = static_cast<size_t>(options.threads) * 2 + 1;
  // One more for the reader to fill ahead, and one held per source while
  // choosing which source goes next.
  const size_t num_batches = in_flight + 1 + inputs.size();
  source_options.mapped_behind_bytes =
      num_batches * options.source.chunk_bytes + options.source.max_record_bytes;
  if (options.dead_letters) source_options.dropped_head_bytes = kMaxDeadLetterRecordBytes;
  for (const ReplayInput& input : inputs) {
    absl::StatusOr<std::unique_ptr<FileSource>> source =
        FileSource::Open(input.path, source_options);
    if (!source.ok()) return source.status();
    total_bytes += (*source)->total_bytes();
    sources.push_back(*std::move(source));
  }
  const size_t num_sources = sources.size();
  RuleRunner* rules = options.rules;
  ChunkLagWatermark watermarks(num_sources, in_flight,
                               rules ? std::optional<int64_t>(rules->lateness_ms()) : std::nullopt);

  ReplayStats stats;
  std::vector<uint64_t> lines_before(inputs.size(), 0);  // per input, for dead letters
  const Clock::time_point start = Clock::now();
  Clock::time_point last_progress = start;
  IngestPipeline pipeline(
      IngestOptions{.threads = options.threads,
                    .max_record_bytes = options.source.max_record_bytes,
                    .in_flight = in_flight,
                    .batches = num_batches,
                    .dead_letters = options.dead_letters != nullptr},
      engine, watermarks, rules, [&](IngestBatch& batch) {
        const Chunk& chunk = batch.lines;
        stats.records += batch.records;
        stats.line_bytes += chunk.size;
        if (chunk.mapped()) stats.mapped_bytes += chunk.size;
        stats.input_bytes = batch.input_before + chunk.input_bytes;
        if (options.dead_letters) {
          options.dead_letters->Write(batch.rejected, inputs[batch.source].path,
                                      lines_before[batch.source]);
          lines_before[batch.source] += batch.rejected.lines_seen;
        }
        if (options.on_progress) {
          const Clock::time_point now = Clock::now();
          if (std::chrono::duration<double>(now - last_progress).count() >=
              options.progress_interval_seconds) {
            last_progress = now;
            options.on_progress({stats.input_bytes, total_bytes, stats.line_bytes, stats.records,
                                 std::chrono::duration<double>(now - start).count()});
          }
        }
      });

  ChunkFeed feed(sources, inputs, engine, pipeline, watermarks, rules, options.expiry_sweep_ms);
  // A sweep where the feed paused: the pipeline is drained by then. "Now"
  // is the sweep point, but not past the newest event read, nor past what
  // the slowest input still reading has reached (its series would look
  // idle while its next chunk waits): as in `run`, where the slowest
  // partition holds it back.
  auto sweep = [&](int64_t now_ms) {
    const int64_t now = std::min({now_ms, watermarks.newest_ms(), watermarks.reading_ms()});
    ++stats.expiry_sweeps;
    if (now != INT64_MIN) {
      stats.series_expired += ExpireSeries(engine, rules, now);
    }
  };
  double read_cpu_seconds = 0;
  const double cpu_start = ProcessCpuSeconds();
  if (reader_thread) {
    std::thread reader([&] {
      const double reader_start = ThreadCpuSeconds();
      while (true) {
        while (IngestBatch* batch = feed.Next()) pipeline.Submit(batch);
        const std::optional<int64_t> due = feed.sweep_due();
        if (!due) break;
        pipeline.Drain();
        sweep(*due);
        feed.SweepDone();
      }
      read_cpu_seconds = ThreadCpuSeconds() - reader_start;
      pipeline.EndInput();
    });
    pipeline.Run();
    reader.join();
  } else {
    // The pipeline runs until the feed pauses or ends; after a pause every
    // chunk taken has completed.
    while (true) {
      pipeline.Run([&]() -> IngestBatch* {
        const double before = ThreadCpuSeconds();
        IngestBatch* batch = feed.Next();
        read_cpu_seconds += ThreadCpuSeconds() - before;
        return batch;
      });
      const std::optional<int64_t> due = feed.sweep_due();
      if (!due) break;
      sweep(*due);
      feed.SweepDone();
    }
  }
  if (!feed.error().ok()) return feed.error();
  if (rules != nullptr && watermarks.newest_ms() != INT64_MIN)
    rules->Finish(watermarks.newest_ms());
  // The end of the input: what is idle by its newest event goes too.
  if (options.expiry_sweep_ms > 0 && watermarks.newest_ms() != INT64_MIN) {
    sweep(watermarks.newest_ms());
  }
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
  --metrics FILE         the metric spec to count with (see the README's
                         Defining metrics; default: the NovaGift metrics)
  --topic INPUT          input of the FILEs that follow: access-log, outbox, or
                         auto (default: auto, detected per line); with
                         --metrics, the name or topic of one of its inputs
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
  --zero-new-series      a label set first met in the input starts at 0 in the
                         windows at the start of the slot of its first event,
                         so rules count its first increments (as Prometheus's
                         created-timestamp zero ingestion does)
  --expire-after DUR     a label set no event updated for DUR of event time
                         leaves the metrics (and the windows rules read, with
                         a staleness marker) at the next sweep, every tenth
                         of DUR (1s to 30s) of event time, and at the end
                         (default 0: never; see the README's Stale series)
  --alerts-json FILE     write the alert timeline as JSON to FILE
  --openmetrics FILE     also write every series at every --step of event time
                         as OpenMetrics with timestamps, for
                         promtool tsdb create-blocks-from openmetrics FILE DIR
  --step DUR             the backfill's step (default 15s)
  -q, --quiet            no summary on stderr
  -h, --help             this help
)";

// What `novapulse replay` was asked to do.
struct ReplayCommand {
  std::vector<ReplayInput> inputs;
  std::vector<std::string> input_names;  // per input, its --topic ("auto" when none)
  std::string trailing_topic;            // a --topic after the last input
  std::string metric_spec;
  ReplayOptions options;
  std::string output;
  size_t series_limit = kDefaultSeriesLimit;
  bool progress = false;
  bool quiet = false;
  bool report = false;
  std::vector<std::string> rule_files;
  std::string alerts_json;
  std::string openmetrics;
  int64_t expire_after_ms = 0;
  RuleRunnerOptions rule_options;
  DeadLetterOptions dead_letter;
};

// Parses the flags into `command`; the exit status when the command ends
// here (help, usage error).
std::optional<int> ParseReplayFlags(int argc, char** argv, ReplayCommand* command) {
  ArgParser args(argc, argv, kReplayUsage);
  ReplayCommand& c = *command;
  ReplayOptions& options = c.options;
  options.threads = AvailableCpus();
  c.progress = isatty(STDERR_FILENO);
  c.dead_letter.truncate = true;
  std::string topic = "auto";
  while (args.Next()) {
    if (args.Is("--threads")) {
      options.threads = static_cast<int>(args.Int(1, 1024));
    } else if (args.Is("--output")) {
      c.output = args.Value();
    } else if (args.Is("--topic")) {
      topic = args.Value();
    } else if (args.Is("--metrics")) {
      c.metric_spec = args.Value();
    } else if (args.Is("--max-record-bytes")) {
      options.source.max_record_bytes = static_cast<size_t>(args.Int(64, 1LL << 30));
    } else if (args.Is("--chunk-bytes")) {
      options.source.chunk_bytes = static_cast<size_t>(args.Int(4096, 1LL << 30));
    } else if (args.IsSwitch("--no-mmap")) {
      options.map_files = false;
    } else if (args.Is("--dead-letter")) {
      c.dead_letter.path = args.Value();
    } else if (args.Is("--dead-letter-max-bytes")) {
      c.dead_letter.max_bytes = static_cast<uint64_t>(args.Int(4096, 1LL << 40));
    } else if (args.Is("--dead-letter-keep")) {
      c.dead_letter.keep = static_cast<int>(args.Int(0, 1000));
    } else if (args.Is("--series-limit")) {
      c.series_limit = static_cast<size_t>(args.Int(1, 100'000'000));
    } else if (args.IsSwitch("--progress")) {
      c.progress = true;
    } else if (args.IsSwitch("--no-progress")) {
      c.progress = false;
    } else if (args.IsSwitch("--report")) {
      c.report = true;
    } else if (args.Is("--rules")) {
      c.rule_files.push_back(std::string(args.Value()));
    } else if (args.Is("--alerts-json")) {
      c.alerts_json = args.Value();
    } else if (args.Is("--openmetrics")) {
      c.openmetrics = args.Value();
    } else if (args.Is("--step")) {
      const std::string text(args.Value());
      int64_t& step = c.rule_options.backfill_step_ms;
      if (!ParseDuration(text, &step) || step < 1000 || step % 1000 != 0) {
        return args.Fail("--step: expected whole seconds like 15s or 1m, got '" + text + "'");
      }
    } else if (args.Is("--lateness")) {
      const std::string text(args.Value());
      if (!ParseDuration(text, &c.rule_options.lateness_ms)) {
        return args.Fail("--lateness: expected a duration like 30s or 2m, got '" + text + "'");
      }
    } else if (args.Is("--window-memory-bytes")) {
      c.rule_options.window_memory_bytes = static_cast<size_t>(
          args.Int(static_cast<int64_t>(kMinWindowMemoryBytes), int64_t{1} << 40));
    } else if (args.Is("--expire-after")) {
      const std::string text(args.Value());
      int64_t& ms = c.expire_after_ms;
      // As metrics.expire_after allows: up to 366 days.
      if (!ParseDuration(text, &ms) || ms < 0 || ms > int64_t{366} * 24 * 3600 * 1000) {
        return args.Fail(
            "--expire-after: expected a duration like 15m or 1h (0: never, at most "
            "366d), got '" +
            text + "'");
      }
      options.expiry_sweep_ms = ms > 0 ? ExpirySweepMs(ms) : 0;
    } else if (args.IsSwitch("--zero-new-series")) {
      c.rule_options.zero_new_series = true;
    } else if (args.IsSwitch("-q") || args.IsSwitch("--quiet")) {
      c.quiet = true;
    } else if (args.IsPositional()) {
      c.inputs.push_back({std::string(args.Positional()), -1});
      c.input_names.push_back(topic);
    } else {
      return args.UnknownFlag();
    }
    if (args.failed()) return args.exit_code();
  }
  if (args.help()) return 0;
  if (c.inputs.empty()) return args.Fail("no input files (use - for stdin)");
  // A --topic after the last file names no file, but a wrong name is still
  // wrong.
  if (c.input_names.back() != topic) c.trailing_topic = topic;
  if (!c.alerts_json.empty() && c.rule_files.empty()) {
    return args.Fail("--alerts-json needs --rules");
  }
  return std::nullopt;
}

// A replay's outputs beside the metrics: dead letters, the backfill, the
// rules and their alert timeline.
struct ReplayOutputs {
  std::unique_ptr<DeadLetterWriter> dead_letters;
  std::unique_ptr<BackfillWriter> backfill;
  std::unique_ptr<RuleRunner> rules;
  AlertTimeline timeline;
};

// `families`: those of the metrics the rules will read.
absl::Status OpenOutputs(ReplayCommand& c, const std::vector<MetricDef>& families,
                         ReplayOutputs* out) {
  if (!c.dead_letter.path.empty()) {
    absl::StatusOr<std::unique_ptr<DeadLetterWriter>> opened =
        DeadLetterWriter::Open(std::move(c.dead_letter));
    if (!opened.ok()) return opened.status();
    out->dead_letters = *std::move(opened);
    c.options.dead_letters = out->dead_letters.get();
  }
  if (!c.openmetrics.empty()) {
    absl::StatusOr<std::unique_ptr<BackfillWriter>> writer = BackfillWriter::Create(c.openmetrics);
    if (!writer.ok()) return writer.status();
    out->backfill = *std::move(writer);
    c.rule_options.backfill = out->backfill.get();
  }
  if (c.rule_files.empty() && !out->backfill) return absl::OkStatus();
  RuleSet set;
  if (!c.rule_files.empty()) {
    absl::StatusOr<RuleSet> loaded = LoadRuleFiles(c.rule_files);
    if (!loaded.ok()) return loaded.status();
    set = *std::move(loaded);
  }
  absl::StatusOr<std::unique_ptr<RuleRunner>> runner =
      RuleRunner::Build(std::move(set), c.rule_options, families);
  if (!runner.ok()) return runner.status();
  out->rules = *std::move(runner);
  for (const std::string& name : out->rules->unknown_metrics()) {
    std::fprintf(stderr,
                 "novapulse replay: note: the rules read %s, which novapulse does not "
                 "export; its selectors select nothing\n",
                 name.c_str());
  }
  out->rules->engine().set_on_transition(
      [timeline = &out->timeline](const AlertTransition& t) { timeline->Add(t); });
  c.options.rules = out->rules.get();
  return absl::OkStatus();
}

// Writes `text` to `path`, or to stdout when `path` is empty.
absl::Status WriteText(const std::string& path, const std::string& text) {
  if (path.empty()) {
    std::cout << text;
    std::cout.flush();
    return absl::OkStatus();
  }
  return WriteWholeFile(path, text);
}

// The backtest's report on stderr: the alert timeline and what the
// evaluations cost; the timeline as JSON with --alerts-json.
absl::Status ReportRules(const ReplayCommand& c, ReplayOutputs& out) {
  RuleRunner& rules = *out.rules;
  std::cerr << FormatAlertTimeline(out.timeline.episodes());
  const uint64_t instants = rules.eval_instants();
  std::cerr << absl::StrFormat(
      "rules: %d evaluations at %d instants; per instant %.1f us mean, p50 < %.0f us, p99 < "
      "%.0f us; window history %.1f MB for %d series\n",
      rules.engine().evaluations(), instants,
      instants > 0 ? rules.eval_seconds() * 1e6 / static_cast<double>(instants) : 0.0,
      rules.EvalQuantileSeconds(0.5) * 1e6, rules.EvalQuantileSeconds(0.99) * 1e6,
      static_cast<double>(rules.history()->MemoryBytes()) / 1e6, rules.history()->series());
  for (const WindowHistory::Folded& f : rules.history()->folded()) {
    std::cerr << absl::StrFormat(
        "window memory budget reached: %s (%d label sets folded into __overflow__ in the "
        "windows the rules read)\n",
        std::string(f.metric), f.series);
  }
  if (c.alerts_json.empty()) return absl::OkStatus();
  return WriteText(c.alerts_json, AlertTimelineJson(out.timeline.episodes()));
}

int Failed(absl::string_view message) {
  std::fprintf(stderr, "novapulse replay: %s\n", std::string(message).c_str());
  return 1;
}

}  // namespace

std::string FormatProgress(const ReplayProgress& p, bool terminal) {
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
  if (terminal) {
    return absl::StrFormat("\r\033[K%s %9.1f MB  %10.0f events/s  ETA %s", pct, mb, rate, eta);
  }
  return absl::StrFormat("novapulse replay:%s %.1f MB, %.0f events/s, ETA %s\n", pct, mb, rate,
                         eta);
}

int RunReplayCommand(int argc, char** argv) {
  ReplayCommand c;
  if (std::optional<int> done = ParseReplayFlags(argc, argv, &c)) return *done;
  const MetricExpiry expiry{.default_ms = c.expire_after_ms, .by_family = {}};
  std::shared_ptr<const spec::SpecPlan> plan;  // with --metrics
  if (!c.metric_spec.empty()) {
    absl::StatusOr<spec::MetricSpecSet> spec = spec::LoadMetricSpec(c.metric_spec);
    if (!spec.ok()) return Failed(spec.status().message());
    absl::StatusOr<std::shared_ptr<const spec::SpecPlan>> compiled =
        spec::SpecPlan::Compile(*std::move(spec));
    if (!compiled.ok()) {
      return Failed(absl::StrCat(c.metric_spec, ": ", compiled.status().message()));
    }
    plan = *std::move(compiled);
  }
  // The inputs' names, before any output file is touched.
  auto named = [&](const std::string& name) {
    return plan ? SpecInputNamed(plan->spec(), name) : NovaGiftInputNamed(name);
  };
  for (size_t i = 0; i <= c.inputs.size(); ++i) {
    const bool trailing = i == c.inputs.size();
    if (trailing && c.trailing_topic.empty()) break;
    absl::StatusOr<int> input = named(trailing ? c.trailing_topic : c.input_names[i]);
    if (!input.ok()) {
      std::fprintf(stderr, "novapulse replay: --topic: %s\n",
                   std::string(input.status().message()).c_str());
      return 2;
    }
    if (!trailing) c.inputs[i].input = *input;
  }
  if (plan) {
    // A dead letter's "topic": its input's.
    c.dead_letter.topic_names.clear();
    for (const spec::InputSpec& in : plan->spec().inputs) {
      c.dead_letter.topic_names.push_back(in.topic);
    }
  }
  ReplayOutputs out;
  if (absl::Status opened = OpenOutputs(c, MetricDefsOf(plan.get(), expiry), &out); !opened.ok()) {
    return Failed(opened.message());
  }
  const WindowSpec* windows = out.rules ? &out.rules->window_spec() : nullptr;
  const std::unique_ptr<MetricEngine> made = MakeMetricEngine(
      plan, c.options.threads, c.series_limit, windows, expiry, c.options.source.max_record_bytes);
  MetricEngine& engine = *made;
  if (out.rules) out.rules->Attach(&engine.store());
  const bool terminal = isatty(STDERR_FILENO) != 0;
  if (c.progress) {
    c.options.on_progress = [terminal](const ReplayProgress& p) {
      std::fputs(FormatProgress(p, terminal).c_str(), stderr);
      std::fflush(stderr);
    };
  }
  absl::StatusOr<ReplayStats> stats = RunReplay(c.inputs, c.options, engine);
  if (c.progress && terminal) std::fputs("\r\033[K", stderr);
  if (!stats.ok()) return Failed(stats.status().message());
  if (stats->records == 0) {
    std::fputs(
        "novapulse replay: warning: no records read: the input is empty (did the file pattern "
        "match?)\n",
        stderr);
  }

  MetricRegistry registry;
  registry.Add(&engine.source());
  registry.Add(out.dead_letters.get());
  const MetricFamilies collected = registry.Collect();
  const std::vector<FamilySnapshot>& families = collected.families();
  std::string text;
  WritePrometheusText(families, &text);
  if (out.rules) WriteRuleSeries(out.rules->engine().Snapshot().series, &text);
  if (absl::Status written = WriteText(c.output, text); !written.ok()) {
    return Failed(written.message());
  }
  if (c.report) std::cerr << FormatKeyMetrics(families);
  if (out.backfill) {
    if (absl::Status written = out.backfill->Finish(); !written.ok()) {
      return Failed(absl::StrCat(c.openmetrics, ": ", written.message()));
    }
    if (!c.quiet) {
      std::cerr << absl::StrFormat("openmetrics: %d series, %d samples, %.1f MB in %s\n",
                                   out.backfill->series(), out.backfill->samples(),
                                   static_cast<double>(out.backfill->bytes_written()) / 1e6,
                                   c.openmetrics);
    }
  }
  if (out.rules && !c.rule_files.empty()) {
    if (absl::Status reported = ReportRules(c, out); !reported.ok()) {
      return Failed(reported.message());
    }
  }
  if (!c.quiet) {
    std::cerr << FormatReplaySummary(families, {.records = stats->records,
                                                .bytes = stats->line_bytes,
                                                .seconds = stats->elapsed_seconds,
                                                .threads = c.options.threads,
                                                .read_cpu_seconds = stats->read_cpu_seconds,
                                                .work_cpu_seconds = stats->work_cpu_seconds});
  }
  if (!c.quiet && c.expire_after_ms > 0) {
    std::cerr << absl::StrFormat(
        "expiry: %d series idle for %s of event time removed in %d sweeps\n", stats->series_expired,
        absl::FormatDuration(absl::Milliseconds(c.expire_after_ms)), stats->expiry_sweeps);
  }
  if (out.dead_letters && !out.dead_letters->error().ok()) {
    std::fprintf(stderr, "novapulse replay: %" PRIu64 " dead letters dropped: %s\n",
                 out.dead_letters->dropped(),
                 std::string(out.dead_letters->error().message()).c_str());
    return 1;
  }
  return 0;
}

}  // namespace novapulse
