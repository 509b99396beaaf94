// Dead letters: rejected records written as JSON lines, each with its reject
// reason and where it came from, to a file rotated by size (FILE, FILE.1, ...
// FILE.keep, oldest last; DeadLetterWriter) or, in `novapulse run`, to a
// Kafka topic, one message per line (sinks/kafka_dead_letters.h); both
// are a DeadLetterSink.
//
//   {"reason":"wrong_type","topic":"novagift.access-log","source":"a.ndjson","line":17,
//    "length":153,"bytes":"{\"ts\":..."}
//   {"reason":"malformed_json","topic":"novagift.outbox","partition":3,"offset":812,
//    "length":70000,"truncated":true,"bytes_base64":"..."}
//
// `partition` and `offset` appear for Kafka records, `source` and `line` for
// records read from a file. `bytes` holds the record as a JSON string when it
// is valid UTF-8, else `bytes_base64` holds it in base64; at most
// kMaxDeadLetterRecordBytes of it are kept, with "truncated": true when cut.
// `length` is always the record's full length in bytes.
//
// Threads: a worker collects the rejected records of its batch in a
// DeadLetterBatch that belongs to the batch (no lock, nothing blocks); the
// pipeline's serial in-order completion stage hands each batch to
// DeadLetterWriter::Write, so the file order is the input order whatever the
// number of workers. DeadLetterWriter is thread-safe; its counters may be
// read from any thread (scrapes).
//   auto writer = DeadLetterWriter::Open({.path = "rejected.ndjson"});
//   batch.Add(RejectReason::kWrongType, Topic::kOutbox, {.line = 3}, record);  // worker
//   (*writer)->Write(batch, "input.ndjson", lines_before);                    // completion stage
#ifndef NOVAPULSE_SINKS_DEAD_LETTER_H_
#define NOVAPULSE_SINKS_DEAD_LETTER_H_

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "aggregators/metric_def.h"
#include "aggregators/metric_source.h"
#include "aggregators/metric_store.h"
#include "parsers/event.h"

namespace novapulse {

// Bytes of one rejected record kept for its dead letter.
inline constexpr size_t kMaxDeadLetterRecordBytes = 64 * 1024;

// Where a rejected record came from; unknown parts stay at their defaults.
struct DeadLetterOrigin {
  int32_t partition = -1;  // Kafka partition, -1 when not from Kafka
  int64_t offset = -1;     // Kafka offset, -1 when not from Kafka
  uint64_t line = 0;       // line in its batch, 1-based; 0 when unknown
};

// The rejected records of one batch, copied (capped) out of the batch's
// buffer. Owned by whoever owns the batch; reused across batches.
class DeadLetterBatch {
 public:
  struct Entry {
    RejectReason reason = RejectReason::kMalformedJson;
    int input = -1;  // the pipeline's input; -1: it could not be told
    DeadLetterOrigin origin;
    uint64_t length = 0;  // the record's full length
    size_t begin = 0;     // kept bytes: bytes_[begin, begin + size)
    size_t size = 0;
  };

  void Clear() {
    entries_.clear();
    bytes_.clear();
    lines_seen = 0;
  }
  // Keeps at most kMaxDeadLetterRecordBytes of `record`, cut at a UTF-8
  // character boundary when one is near. `length` is the full length when
  // `record` is already only a head of it (0: record.size()).
  void Add(RejectReason reason, int input, const DeadLetterOrigin& origin, std::string_view record,
           uint64_t length = 0);
  void Add(RejectReason reason, Topic topic, const DeadLetterOrigin& origin,
           std::string_view record, uint64_t length = 0) {
    Add(reason, InputOfTopic(topic), origin, record, length);
  }

  const std::vector<Entry>& entries() const { return entries_; }
  std::string_view bytes(const Entry& e) const { return {bytes_.data() + e.begin, e.size}; }
  bool empty() const { return entries_.empty(); }

  // Lines of the batch seen so far, blank ones included: a file batch's
  // worker numbers its lines with it, the completion stage adds it up.
  uint64_t lines_seen = 0;

 private:
  std::vector<Entry> entries_;
  std::string bytes_;
};

// The "topic" of a dead letter of input `input`: its name in `names` (by
// input), "unknown" when the input could not be told.
std::string_view DeadLetterInputName(const std::vector<std::string>& names, int input);
// The NovaGift inputs' names: the two topics.
std::vector<std::string> NovaGiftDeadLetterNames();

struct DeadLetterOptions {
  std::string path;
  uint64_t max_bytes = 100 << 20;  // a file is rotated before it would grow past this
  int keep = 3;                    // rotated files kept: path.1 ... path.keep
  bool truncate = false;           // start with an empty file instead of appending
  // Names written as "topic", by input (DeadLetterInputName).
  std::vector<std::string> topic_names = NovaGiftDeadLetterNames();
};

// The dead letters' metric families (see aggregators/metric_source.h).
#define NOVAPULSE_DEAD_LETTER_METRICS(M)                                                   \
  M(kDeadLettersTotal, "novapulse_dead_letters_total",                                     \
    "Rejected records for the dead-letter file, by result (written, or dropped on an I/O " \
    "error).",                                                                             \
    MetricType::kComputedCounter, {"result"}, {})

enum DeadLetterMetric : size_t {
  NOVAPULSE_DEAD_LETTER_METRICS(NOVAPULSE_METRIC_ID) kDeadLetterMetricCount
};

const std::vector<MetricDef>& DeadLetterMetricDefs();

// Where the completion stage hands each batch's dead letters. Thread-safe.
class DeadLetterSink : public MetricSource {
 public:
  // Writes one JSON line per entry of `batch`, in order, never blocking on
  // a slow destination. `source` names the file the batch came from (empty:
  // not a file); each entry's line becomes line_base + its line. A record
  // that cannot be written is counted as dropped; the first error is kept.
  virtual void Write(const DeadLetterBatch& batch, std::string_view source = {},
                     uint64_t line_base = 0) = 0;
  uint64_t written() const { return written_.load(std::memory_order_relaxed); }
  uint64_t dropped() const { return dropped_.load(std::memory_order_relaxed); }
  // The first error; OK when there was none.
  virtual absl::Status error() const = 0;
  // novapulse_dead_letters_total{result="written|dropped"}.
  void CollectMetrics(MetricFamilies* out) override;

 protected:
  void Count(uint64_t written, uint64_t dropped) {
    written_.fetch_add(written, std::memory_order_relaxed);
    dropped_.fetch_add(dropped, std::memory_order_relaxed);
  }

 private:
  std::atomic<uint64_t> written_{0};
  std::atomic<uint64_t> dropped_{0};
};

class DeadLetterWriter : public DeadLetterSink {
 public:
  // Opens (or creates) options.path. Errors name the path.
  static absl::StatusOr<std::unique_ptr<DeadLetterWriter>> Open(DeadLetterOptions options);
  ~DeadLetterWriter() override;
  DeadLetterWriter(const DeadLetterWriter&) = delete;
  DeadLetterWriter& operator=(const DeadLetterWriter&) = delete;

  // Appends to the file and flushes; see DeadLetterSink::Write.
  void Write(const DeadLetterBatch& batch, std::string_view source = {},
             uint64_t line_base = 0) override;
  // The first write, rotation or open error.
  absl::Status error() const override;

 private:
  explicit DeadLetterWriter(DeadLetterOptions options);
  absl::Status OpenFile(bool truncate) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status Rotate() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Fail(absl::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const DeadLetterOptions options_;
  mutable absl::Mutex mu_;
  std::FILE* file_ ABSL_GUARDED_BY(mu_) = nullptr;
  uint64_t size_ ABSL_GUARDED_BY(mu_) = 0;  // bytes in the current file
  std::string line_ ABSL_GUARDED_BY(mu_);   // scratch for one formatted line
  absl::Status error_ ABSL_GUARDED_BY(mu_);
};

// One dead letter as a JSON line (with its newline), appended to `out`.
// Exposed for tests and the fuzz target.
void AppendDeadLetterJson(const DeadLetterBatch::Entry& entry, std::string_view bytes,
                          std::string_view topic_name, std::string_view source, uint64_t line_base,
                          std::string* out);

}  // namespace novapulse

#endif  // NOVAPULSE_SINKS_DEAD_LETTER_H_
