#include "sinks/dead_letter.h"

#include <simdjson.h>

#include <bit>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "base/json_escape.h"

namespace novapulse {
namespace {

bool IsContinuationByte(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

template <typename Int>
void AppendInt(Int v, std::string* out) {
  char buf[24];
  const auto end = std::to_chars(buf, buf + sizeof(buf), v).ptr;
  out->append(buf, static_cast<size_t>(end - buf));
}

}  // namespace

std::string_view DeadLetterInputName(const std::vector<std::string>& names, int input) {
  if (input >= 0 && static_cast<size_t>(input) < names.size()) return names[input];
  return "unknown";
}

std::vector<std::string> NovaGiftDeadLetterNames() {
  return {std::string(TopicName(Topic::kAccessLog)), std::string(TopicName(Topic::kOutbox))};
}

void DeadLetterBatch::Add(RejectReason reason, int input, const DeadLetterOrigin& origin,
                          std::string_view record, uint64_t length) {
  size_t keep = std::min(record.size(), kMaxDeadLetterRecordBytes);
  if (keep < record.size()) {
    // Cut before a character, not inside one, so valid UTF-8 stays valid.
    size_t cut = keep;
    for (int i = 0; i < 3 && cut > 0 && IsContinuationByte(record[cut]); ++i) --cut;
    if (!IsContinuationByte(record[cut])) keep = cut;
  }
  Entry& e = entries_.emplace_back();
  e.reason = reason;
  e.input = input;
  e.origin = origin;
  e.length = length > 0 ? length : record.size();
  e.begin = bytes_.size();
  e.size = keep;
  bytes_.append(record.data(), keep);
}

void AppendDeadLetterJson(const DeadLetterBatch::Entry& e, std::string_view bytes,
                          std::string_view topic_name, std::string_view source, uint64_t line_base,
                          std::string* out) {
  out->append("{\"reason\":\"");
  out->append(RejectReasonName(e.reason));
  out->append("\",\"topic\":\"");
  AppendJsonEscaped(topic_name, out);
  out->push_back('"');
  if (e.origin.partition >= 0) {
    out->append(",\"partition\":");
    AppendInt(e.origin.partition, out);
    out->append(",\"offset\":");
    AppendInt(e.origin.offset, out);
  }
  if (!source.empty()) {
    out->append(",\"source\":\"");
    // A file name need not be UTF-8; the escaper writes U+FFFD for what is not.
    AppendJsonEscaped(source, out);
    out->push_back('"');
  }
  if (e.origin.line > 0) {
    out->append(",\"line\":");
    AppendInt(line_base + e.origin.line, out);
  }
  out->append(",\"length\":");
  AppendInt(e.length, out);
  if (bytes.size() < e.length) out->append(",\"truncated\":true");
  if (simdjson::validate_utf8(bytes.data(), bytes.size())) {
    out->append(",\"bytes\":\"");
    AppendJsonEscaped(bytes, out);
  } else {
    out->append(",\"bytes_base64\":\"");
    out->append(absl::Base64Escape(absl::string_view(bytes.data(), bytes.size())));
  }
  out->append("\"}\n");
}

const std::vector<MetricDef>& DeadLetterMetricDefs() {
  static const std::vector<MetricDef> kDefs = {NOVAPULSE_DEAD_LETTER_METRICS(NOVAPULSE_METRIC_DEF)};
  return kDefs;
}

DeadLetterWriter::DeadLetterWriter(DeadLetterOptions options) : options_(std::move(options)) {}

DeadLetterWriter::~DeadLetterWriter() {
  absl::MutexLock lock(&mu_);
  if (file_ != nullptr) std::fclose(file_);
}

absl::StatusOr<std::unique_ptr<DeadLetterWriter>> DeadLetterWriter::Open(
    DeadLetterOptions options) {
  if (options.path.empty()) return absl::InvalidArgumentError("dead-letter path is empty");
  if (options.keep < 0) return absl::InvalidArgumentError("dead-letter keep must be >= 0");
  std::unique_ptr<DeadLetterWriter> writer(new DeadLetterWriter(std::move(options)));
  absl::MutexLock lock(&writer->mu_);
  if (absl::Status s = writer->OpenFile(writer->options_.truncate); !s.ok()) return s;
  return writer;
}

absl::Status DeadLetterWriter::OpenFile(bool truncate) {
  file_ = std::fopen(options_.path.c_str(), truncate ? "wb" : "ab");
  if (file_ == nullptr) {
    return absl::UnavailableError(
        absl::StrCat(options_.path, ": cannot open for writing: ", std::strerror(errno)));
  }
  // Appending: the size so far counts towards the rotation.
  std::fseek(file_, 0, SEEK_END);
  const long at = std::ftell(file_);
  size_ = at > 0 ? static_cast<uint64_t>(at) : 0;
  return absl::OkStatus();
}

absl::Status DeadLetterWriter::Rotate() {
  if (file_ != nullptr) {
    const bool ok = std::fclose(file_) == 0;
    file_ = nullptr;
    if (!ok) return absl::DataLossError(absl::StrCat(options_.path, ": close failed"));
  }
  const std::string& path = options_.path;
  for (int i = options_.keep; i >= 1; --i) {
    const std::string from = i == 1 ? path : absl::StrCat(path, ".", i - 1);
    const std::string to = absl::StrCat(path, ".", i);
    if (std::rename(from.c_str(), to.c_str()) != 0 && errno != ENOENT) {
      return absl::UnavailableError(
          absl::StrCat(from, ": cannot rename to ", to, ": ", std::strerror(errno)));
    }
  }
  return OpenFile(/*truncate=*/true);
}

void DeadLetterWriter::Fail(absl::Status status) {
  if (error_.ok()) error_ = std::move(status);
}

void DeadLetterWriter::Write(const DeadLetterBatch& batch, std::string_view source,
                             uint64_t line_base) {
  if (batch.empty()) return;
  absl::MutexLock lock(&mu_);
  uint64_t written = 0, dropped = 0;
  for (const DeadLetterBatch::Entry& e : batch.entries()) {
    line_.clear();
    AppendDeadLetterJson(e, batch.bytes(e), DeadLetterInputName(options_.topic_names, e.input),
                         source, line_base, &line_);
    if (file_ != nullptr && size_ > 0 && size_ + line_.size() > options_.max_bytes) {
      if (absl::Status s = Rotate(); !s.ok()) Fail(std::move(s));
    }
    if (file_ == nullptr) {
      // A failed rotation: try again with the next batch, drop this one.
      ++dropped;
      continue;
    }
    if (std::fwrite(line_.data(), 1, line_.size(), file_) != line_.size()) {
      Fail(absl::DataLossError(
          absl::StrCat(options_.path, ": write failed: ", std::strerror(errno))));
      ++dropped;
      continue;
    }
    size_ += line_.size();
    ++written;
  }
  if (file_ != nullptr && std::fflush(file_) != 0) {
    Fail(
        absl::DataLossError(absl::StrCat(options_.path, ": write failed: ", std::strerror(errno))));
    // Which of the batch's lines reached the file is unknown: count none.
    dropped += written;
    written = 0;
  }
  if (file_ == nullptr) {
    if (absl::Status s = OpenFile(/*truncate=*/false); !s.ok()) Fail(std::move(s));
  }
  Count(written, dropped);
}

absl::Status DeadLetterWriter::error() const {
  absl::MutexLock lock(&mu_);
  return error_;
}

void DeadLetterSink::CollectMetrics(MetricFamilies* out) {
  FamilySnapshot& total = out->Start(DeadLetterMetricDefs()[kDeadLettersTotal]);
  out->Add(total, {"written"}, static_cast<double>(written()));
  out->Add(total, {"dropped"}, static_cast<double>(dropped()));
}

}  // namespace novapulse
