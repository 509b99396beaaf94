#include "pipeline/metric_engine.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/time_math.h"
#include "parsers/event_time_sniff.h"

namespace novapulse {

namespace {

// The non-blank lines of `text`, first to last or last to first, until
// `found` says one will do.
template <typename Found>
bool ForEdgeLine(std::string_view text, bool last, Found found) {
  while (!text.empty()) {
    size_t begin = 0, end = text.size();
    if (last) {
      const size_t nl = text.rfind('\n', text.size() - 1);
      begin = nl == std::string_view::npos ? 0 : nl + 1;
      if (begin == text.size()) {  // a trailing newline
        text.remove_suffix(1);
        continue;
      }
    } else {
      const size_t nl = text.find('\n');
      end = nl == std::string_view::npos ? text.size() : nl;
    }
    std::string_view line = text.substr(begin, end - begin);
    if (last) {
      text = text.substr(0, begin == 0 ? 0 : begin - 1);
    } else {
      text.remove_prefix(std::min(text.size(), end + 1));
    }
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) {
      line.remove_suffix(1);
    }
    if (line.find_first_not_of(" \t") == std::string_view::npos) continue;
    if (found(line)) return true;
  }
  return false;
}

// A worker's batch starts with the watermark it was given, and with no
// newest event time carried over from the batch before.
template <typename Writer>
void StartBatch(Writer& writer, int64_t watermark_ms) {
  writer.SetWatermark(watermark_ms);
  writer.EndBatch();
}

}  // namespace

absl::StatusOr<int> NovaGiftInputNamed(std::string_view name) {
  if (name == "access-log" || name == "access_log" || name == TopicName(Topic::kAccessLog)) {
    return InputOfTopic(Topic::kAccessLog);
  }
  if (name == "outbox" || name == TopicName(Topic::kOutbox)) {
    return InputOfTopic(Topic::kOutbox);
  }
  if (name == "auto") return -1;
  return absl::InvalidArgumentError("unknown topic '" + std::string(name) +
                                    "' (expected access-log, outbox or auto)");
}

absl::StatusOr<int> SpecInputNamed(const spec::MetricSpecSet& spec, std::string_view name) {
  if (name == "auto") return -1;
  if (const int input = spec.InputIndex(name); input >= 0) return input;
  std::vector<std::string> names;
  for (const spec::InputSpec& in : spec.inputs) names.push_back(in.name);
  return absl::InvalidArgumentError(
      absl::StrCat("unknown input '", std::string(name),
                   "' (the metric spec's inputs: ", absl::StrJoin(names, ", "), "; or auto)"));
}

std::vector<MetricDef> MetricDefsOf(const spec::SpecPlan* plan, const MetricExpiry& expiry) {
  return plan != nullptr ? SpecMetrics::Defs(plan->spec(), expiry) : NovaGiftMetricDefs();
}

std::unique_ptr<MetricEngine> MakeMetricEngine(std::shared_ptr<const spec::SpecPlan> plan,
                                               int threads, size_t series_limit,
                                               const WindowSpec* windows,
                                               const MetricExpiry& expiry,
                                               size_t max_record_bytes) {
  if (plan == nullptr) {
    return std::make_unique<NovaGiftEngine>(
        std::make_unique<NovaGiftMetrics>(threads, series_limit, windows, expiry),
        max_record_bytes);
  }
  return std::make_unique<SpecEngine>(
      std::make_unique<SpecMetrics>(std::move(plan), threads, series_limit, windows, expiry),
      max_record_bytes);
}

NovaGiftEngine::NovaGiftEngine(NovaGiftMetrics& metrics, size_t max_record_bytes)
    : metrics_(metrics) {
  for (int i = 0; i < metrics.num_shards(); ++i) {
    parsers_.push_back(std::make_unique<RecordParser>(max_record_bytes));
  }
}

NovaGiftEngine::NovaGiftEngine(std::unique_ptr<NovaGiftMetrics> metrics, size_t max_record_bytes)
    : NovaGiftEngine(*metrics, max_record_bytes) {
  owned_ = std::move(metrics);
}

bool NovaGiftEngine::EdgeEventTime(int /*input*/, std::string_view text, bool last, int64_t* ms) {
  return last ? LastLineEventTime(text, ms) : FirstLineEventTime(text, ms);
}

void NovaGiftEngine::Start(int worker, int64_t watermark_ms) {
  StartBatch(metrics_.writer(worker), watermark_ms);
}

uint64_t NovaGiftEngine::ProcessLines(int worker, int input, const char* data, size_t size,
                                      size_t capacity, DeadLetterBatch* rejected,
                                      const RecordLimits& limits) {
  return novapulse::ProcessLines(TopicOfInput(input), data, size, capacity, *parsers_[worker],
                                 metrics_.writer(worker), rejected, limits);
}

void NovaGiftEngine::ProcessRecord(int worker, int input, const char* data, size_t len,
                                   size_t capacity, DeadLetterBatch* rejected,
                                   const DeadLetterOrigin& origin, const RecordLimits& limits) {
  novapulse::ProcessRecord(TopicOfInput(input), data, len, capacity, *parsers_[worker],
                           metrics_.writer(worker), rejected, origin, limits);
}

void NovaGiftEngine::Reject(int worker, int input, RejectReason reason) {
  metrics_.writer(worker).Reject(TopicOfInput(input), reason);
}

SpecEngine::SpecEngine(SpecMetrics& metrics, size_t max_record_bytes)
    : metrics_(metrics), edge_(metrics.plan(), max_record_bytes) {
  for (int i = 0; i < metrics.num_shards(); ++i) {
    decoders_.push_back(std::make_unique<spec::SpecDecoder>(metrics.plan(), max_record_bytes));
  }
}

SpecEngine::SpecEngine(std::unique_ptr<SpecMetrics> metrics, size_t max_record_bytes)
    : SpecEngine(*metrics, max_record_bytes) {
  owned_ = std::move(metrics);
}

bool SpecEngine::LineEventTime(int input, std::string_view line, int64_t* ms) {
  if (input < 0) input = edge_.Detect(line.data(), line.size(), line.size());
  if (input < 0 || edge_.Decode(static_cast<size_t>(input), line)) return false;
  const spec::InputSpec& in = metrics_.plan().spec().inputs[static_cast<size_t>(input)];
  const spec::FieldValue& t = edge_.values()[in.time_field];
  if (!t.present) return false;
  *ms = FloorDiv(t.time_us, int64_t{1000});
  return true;
}

bool SpecEngine::EdgeEventTime(int input, std::string_view text, bool last, int64_t* ms) {
  // Lines that do not decode are passed over, however many: the first time
  // found starts the rules, and the last one orders the chunk among the
  // inputs'.
  return ForEdgeLine(text, last,
                     [&](std::string_view line) { return LineEventTime(input, line, ms); });
}

void SpecEngine::Start(int worker, int64_t watermark_ms) {
  StartBatch(metrics_.writer(worker), watermark_ms);
}

uint64_t SpecEngine::ProcessLines(int worker, int input, const char* data, size_t size,
                                  size_t capacity, DeadLetterBatch* rejected,
                                  const RecordLimits& limits) {
  return ProcessSpecLines(input, data, size, capacity, *decoders_[worker], metrics_.writer(worker),
                          rejected, limits);
}

void SpecEngine::ProcessRecord(int worker, int input, const char* data, size_t len, size_t capacity,
                               DeadLetterBatch* rejected, const DeadLetterOrigin& origin,
                               const RecordLimits& limits) {
  ProcessSpecRecord(input, data, len, capacity, *decoders_[worker], metrics_.writer(worker),
                    rejected, origin, limits);
}

}  // namespace novapulse
