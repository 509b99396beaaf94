// BackfillWriter: writes every sample of a replay, with its timestamp, as one
// OpenMetrics 1.0 text file for `promtool tsdb create-blocks-from openmetrics`.
//
// Samples arrive time-major (every series at one step, then every series at
// the next), but OpenMetrics wants the file metric-major: a family's lines
// contiguous, within it each Metric (label set) contiguous, and within that
// one MetricPoint (a histogram's buckets, _count and _sum at one time) after
// another in ascending time. The writer transposes through a spill file: each
// series keeps its newest `chunk_samples` samples in memory and writes full
// chunks to the spill file, remembering their offsets; Finish() reads each
// series' chunks back in order. Memory is the in-memory chunks (series x
// chunk_samples x 16 bytes) plus 8 bytes per spilled chunk, whatever the
// length of the replay; the spill file holds 16 bytes per sample.
//
// Files: the spill file is created next to `path` (or in $TMPDIR when that
// directory is not writable) and unlinked at once, so it disappears with the
// writer however the process ends. The output is written to a temporary name
// next to `path` and renamed over `path` only when Finish() succeeds; on any
// failure, or when the writer is destroyed without Finish(), it is removed.
//
// Format (what promtool 2.42 was checked to import; see the tests):
//   # TYPE gifts_created counter         counters: family without `_total`,
//   # HELP gifts_created Gifts created.  samples with it
//   gifts_created_total{mode="solo"} 3 1795651200
//   gifts_created_total{mode="solo"} 5 1795651215.5
//   # TYPE outbox_retry_count histogram  buckets in ascending le, then
//   outbox_retry_count_bucket{le="1.0"} 2 1795651200    _count, _sum
//   ...
//   # EOF
// Timestamps are seconds, with up to three decimals for milliseconds
// (promtool turns them back into milliseconds by truncating seconds * 1000;
// the text chosen always truncates to the given millisecond). Values print as
// in sinks/text_format.h (NaN, +Inf, -Inf); `le` in canonical float form
// ("1.0"), as /metrics spells it in OpenMetrics, because Prometheus 2.x keeps
// le strings as written. Families appear in the order of their first
// AddSeries, Metrics within a family likewise.
//
// Errors: promtool silently drops a sample not after its series' previous
// one, so Append() refuses such a sample and Finish() reports it, as it
// reports a suffix that does not fit the family's type and I/O errors.
//
// Threads: one thread uses a writer; it is not thread-safe.
//   auto w = BackfillWriter::Create("backfill.om");  // StatusOr
//   uint32_t s = (*w)->AddSeries(def, "_total", {{"mode", "solo"}});
//   (*w)->Append(s, t_ms, value);  ...  absl::Status st = (*w)->Finish();
#ifndef NOVAPULSE_SINKS_BACKFILL_WRITER_H_
#define NOVAPULSE_SINKS_BACKFILL_WRITER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "aggregators/metric_def.h"
#include "aggregators/window.h"

namespace novapulse {

class BackfillWriter : public WindowSampleSink {
 public:
  struct Options {
    // Samples each series holds in memory before spilling them as a chunk.
    size_t chunk_samples = 512;
  };
  using Labels = std::vector<std::pair<std::string, std::string>>;
  // Returned by AddSeries for a series it refused; Append ignores it.
  static constexpr uint32_t kInvalidSeries = UINT32_MAX;

  // Creates the spill file and the temporary output next to `path`.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<BackfillWriter>> Create(
      const std::string& path, Options options);
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<BackfillWriter>> Create(
      const std::string& path) {
    return Create(path, Options());
  }

  ~BackfillWriter() override;
  BackfillWriter(const BackfillWriter&) = delete;
  BackfillWriter& operator=(const BackfillWriter&) = delete;

  // The handle of one sample stream of `family`: `suffix` is "" or "_total"
  // for counters (both mean the `_total` samples, whether or not
  // family.name ends in `_total`), "" for gauges, and "_bucket" (with an
  // "le" label holding the bound, any float spelling), "_sum" or "_count"
  // for histograms. `labels` are the series' labels in the order to print
  // them. The same family, suffix and labels give the same handle. A family
  // is known by its name; its help, type and buckets are taken from the
  // first call that names it.
  uint32_t AddSeries(const MetricDef& family, std::string_view suffix, Labels labels) override;

  // Appends a sample of `series`; times must ascend per series.
  void Append(uint32_t series, int64_t t_ms, double value) noexcept override;

  // Writes the file and renames it to `path`. Call once; the writer holds no
  // files afterwards, whatever the result.
  [[nodiscard]] absl::Status Finish();

  // Counts; still valid after Finish(), which frees the series.
  size_t series() const { return series_count_; }
  uint64_t samples() const { return samples_; }
  // Bytes of the file Finish() wrote.
  uint64_t bytes_written() const { return bytes_written_; }
  // Heap bytes of the in-memory chunks, chunk offsets, series heads and
  // spill buffer (the hash indexes, about a head per series again, aside).
  size_t MemoryBytes() const;

 private:
  struct Sample {
    int64_t t_ms;
    double value;
  };
  struct Series {
    std::string head;  // `name{labels} `, ready to print
    uint32_t family = 0;
    uint32_t metric = 0;
    uint8_t rank = 0;  // order within a MetricPoint: bucket, _count, _sum
    double le = 0;
    int64_t last_t_ms = 0;
    bool has_samples = false;
    std::vector<Sample> tail;      // newest samples, not yet spilled
    std::vector<uint64_t> chunks;  // spill offsets of full chunks, in order
  };
  struct Family {
    std::string name;  // OpenMetrics family name (a counter's without _total)
    std::string help;
    MetricType type = MetricType::kGauge;
    std::vector<std::vector<uint32_t>> metrics;               // series of each Metric
    absl::flat_hash_map<std::string, uint32_t> metric_index;  // labels -> metric
  };
  class Cursor;

  BackfillWriter(std::string path, std::string out_path, int out_fd, int spill_fd, Options options);
  void Fail(absl::Status status);
  void Spill(Series& s) noexcept;
  absl::Status FlushSpill();
  absl::Status WriteFile();
  absl::Status WriteMetric(const std::vector<uint32_t>& parts, std::string* out);
  absl::Status FlushOut(std::string* out);
  void CloseFiles();

  std::string path_;
  std::string out_path_;  // temporary name of the output until renamed
  int out_fd_ = -1;
  int spill_fd_ = -1;
  Options options_;
  std::vector<Family> families_;
  absl::flat_hash_map<std::string, uint32_t> family_index_;
  std::vector<Series> series_;
  absl::flat_hash_map<std::string, uint32_t> series_index_;  // head -> series
  std::vector<char> spill_buf_;  // chunks not yet written to the spill file
  uint64_t spill_size_ = 0;      // logical size, buffered bytes included
  size_t series_count_ = 0;
  uint64_t samples_ = 0;
  uint64_t bytes_written_ = 0;
  absl::Status status_;  // the first error
  bool finished_ = false;
};

}  // namespace novapulse

#endif  // NOVAPULSE_SINKS_BACKFILL_WRITER_H_
