#include "sinks/backfill_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "sinks/text_format.h"

namespace novapulse {
namespace {

constexpr size_t kFlushBytes = size_t{1} << 20;

// Debian's abseil has its own string_view, which std::string_view does not
// convert to.
absl::string_view Av(std::string_view s) { return {s.data(), s.size()}; }

absl::Status IoError(std::string_view what, std::string_view file) {
  return absl::InternalError(
      absl::StrCat("backfill: ", Av(what), " ", Av(file), ": ", std::strerror(errno)));
}

absl::Status WriteAll(int fd, const char* data, size_t size, std::string_view file) {
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return IoError("cannot write", file);
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// mkostemp on `prefix` + "XXXXXX"; the name made, or "" (errno set).
std::string MakeTemp(const std::string& prefix, int* fd) {
  std::string name = prefix + "XXXXXX";
  *fd = mkostemp(name.data(), O_CLOEXEC);
  return *fd < 0 ? std::string() : name;
}

// Seconds with up to three decimals. promtool reads a timestamp as a double
// and takes int64(seconds * 1000), which truncates: where the nearest double
// to t_ms / 1000 multiplies to just below t_ms, the next double up is printed
// instead (shortest text that reads back as it), so the import lands on t_ms.
void AppendTimestamp(std::string* out, int64_t t_ms) {
  char buf[40];
  if (t_ms % 1000 == 0) {
    out->append(buf, std::to_chars(buf, buf + sizeof(buf), t_ms / 1000).ptr);
    return;
  }
  double s = static_cast<double>(t_ms) / 1000.0;
  for (int i = 0; i < 4; ++i) {
    const auto back = static_cast<int64_t>(s * 1000.0);
    if (back == t_ms) break;
    s = std::nextafter(s, back < t_ms ? std::numeric_limits<double>::infinity()
                                      : -std::numeric_limits<double>::infinity());
  }
  out->append(buf, std::to_chars(buf, buf + sizeof(buf), s, std::chars_format::fixed).ptr);
}

// An `le` value in any float spelling ("0.5", "1", "1e3", "+Inf").
bool ParseLe(std::string_view text, double* v) {
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), *v);
  return ec == std::errc() && end == text.data() + text.size() && !std::isnan(*v);
}

bool IsCounter(MetricType type) {
  return type == MetricType::kCounter || type == MetricType::kComputedCounter;
}

}  // namespace

// Reads one series' samples back in time order: its spilled chunks, then its
// in-memory tail.
class BackfillWriter::Cursor {
 public:
  Cursor(const Series* s, size_t chunk_samples) : s_(s), chunk_samples_(chunk_samples) {}

  // Loads the next non-empty run of samples; false at the end or on error.
  bool Load(int fd, absl::Status* status) {
    pos_ = 0;
    while (next_chunk_ <= s_->chunks.size()) {
      const size_t i = next_chunk_++;
      if (i == s_->chunks.size()) {
        run_ = s_->tail.data();
        size_ = s_->tail.size();
      } else {
        buf_.resize(chunk_samples_);
        const size_t bytes = chunk_samples_ * sizeof(Sample);
        size_t done = 0;
        while (done < bytes) {
          const ssize_t n = ::pread(fd, reinterpret_cast<char*>(buf_.data()) + done, bytes - done,
                                    static_cast<off_t>(s_->chunks[i] + done));
          if (n < 0 && errno == EINTR) continue;
          if (n <= 0) {
            if (n == 0) errno = EIO;
            *status = IoError("cannot read", "the spill file");
            return false;
          }
          done += static_cast<size_t>(n);
        }
        run_ = buf_.data();
        size_ = chunk_samples_;
      }
      if (size_ > 0) return true;
    }
    size_ = 0;
    return false;
  }
  bool done() const { return pos_ >= size_; }
  const Sample& sample() const { return run_[pos_]; }
  const Series& series() const { return *s_; }
  bool Advance(int fd, absl::Status* status) {
    if (++pos_ < size_) return true;
    return Load(fd, status);
  }

 private:
  const Series* s_;
  size_t chunk_samples_;
  size_t next_chunk_ = 0;
  std::vector<Sample> buf_;
  const Sample* run_ = nullptr;
  size_t size_ = 0;
  size_t pos_ = 0;
};

absl::StatusOr<std::unique_ptr<BackfillWriter>> BackfillWriter::Create(const std::string& path,
                                                                       Options options) {
  if (options.chunk_samples == 0) {
    return absl::InvalidArgumentError("backfill: chunk_samples must be positive");
  }
  int out_fd = -1;
  std::string out_path = MakeTemp(path + ".tmp.", &out_fd);
  if (out_path.empty()) return IoError("cannot create a file next to", path);
  int spill_fd = -1;
  std::string spill_path = MakeTemp(path + ".spill.", &spill_fd);
  if (spill_path.empty()) {
    const char* tmpdir = std::getenv("TMPDIR");
    const std::string dir = tmpdir != nullptr && *tmpdir != '\0' ? tmpdir : "/tmp";
    spill_path = MakeTemp(dir + "/novapulse-backfill-spill.", &spill_fd);
    if (spill_path.empty()) {
      absl::Status st = IoError("cannot create a spill file in", dir);
      ::close(out_fd);
      ::unlink(out_path.c_str());
      return st;
    }
  }
  // Unlinked now, the spill file goes away with its descriptor, on any exit.
  ::unlink(spill_path.c_str());
  return std::unique_ptr<BackfillWriter>(
      new BackfillWriter(path, std::move(out_path), out_fd, spill_fd, options));
}

BackfillWriter::BackfillWriter(std::string path, std::string out_path, int out_fd, int spill_fd,
                               Options options)
    : path_(std::move(path)),
      out_path_(std::move(out_path)),
      out_fd_(out_fd),
      spill_fd_(spill_fd),
      options_(options) {}

BackfillWriter::~BackfillWriter() {
  if (!finished_) {
    CloseFiles();
    ::unlink(out_path_.c_str());
  }
}

void BackfillWriter::Fail(absl::Status status) {
  if (status_.ok()) status_ = std::move(status);
}

uint32_t BackfillWriter::AddSeries(const MetricDef& family, std::string_view suffix,
                                   Labels labels) {
  const std::string def_name(family.name);
  auto [fit, new_family] =
      family_index_.try_emplace(def_name, static_cast<uint32_t>(families_.size()));
  if (new_family) {
    Family& f = families_.emplace_back();
    f.name = def_name;
    if (IsCounter(family.type) && f.name.ends_with("_total")) {
      f.name.resize(f.name.size() - std::string_view("_total").size());
    }
    f.help = std::string(family.help);
    f.type = family.type;
  }
  const uint32_t family_id = fit->second;
  Family& f = families_[family_id];

  Series s;
  s.family = family_id;
  std::string sample_name = f.name;
  bool ok = true;
  switch (f.type) {
    case MetricType::kCounter:
    case MetricType::kComputedCounter:
      ok = suffix.empty() || suffix == "_total";
      sample_name += "_total";
      break;
    case MetricType::kGauge:
    case MetricType::kComputed:
      ok = suffix.empty();
      break;
    case MetricType::kHistogram:
      if (suffix == "_bucket") {
        s.rank = 0;
      } else if (suffix == "_count") {
        s.rank = 1;
      } else if (suffix == "_sum") {
        s.rank = 2;
      } else {
        ok = false;
      }
      sample_name.append(suffix);
      break;
  }
  if (!ok) {
    Fail(absl::InvalidArgumentError(absl::StrCat("backfill: suffix \"", Av(suffix),
                                                 "\" does not fit ", Av(text::TypeName(f.type)),
                                                 " ", f.name)));
    return kInvalidSeries;
  }

  std::string le_text;
  if (f.type == MetricType::kHistogram && s.rank == 0) {
    auto le =
        std::find_if(labels.begin(), labels.end(), [](const auto& l) { return l.first == "le"; });
    if (le == labels.end() || !ParseLe(le->second, &s.le)) {
      Fail(absl::InvalidArgumentError(
          absl::StrCat("backfill: ", sample_name, " needs an \"le\" label holding a number, got \"",
                       le == labels.end() ? "" : le->second, "\"")));
      return kInvalidSeries;
    }
    labels.erase(le);
    text::AppendCanonicalLe(&le_text, s.le);
  }
  std::string metric_key;
  for (const auto& [name, value] : labels) {
    if (!metric_key.empty()) metric_key.push_back(',');
    metric_key.append(name);
    metric_key.append("=\"");
    text::AppendEscaped(&metric_key, value, /*quote=*/true);
    metric_key.push_back('"');
  }
  s.head = std::move(sample_name);
  if (!metric_key.empty() || !le_text.empty()) {
    s.head.push_back('{');
    s.head.append(metric_key);
    if (!le_text.empty()) {
      if (!metric_key.empty()) s.head.push_back(',');
      s.head.append("le=\"");
      s.head.append(le_text);
      s.head.push_back('"');
    }
    s.head.push_back('}');
  }
  s.head.push_back(' ');

  const auto [sit, new_series] =
      series_index_.try_emplace(s.head, static_cast<uint32_t>(series_.size()));
  if (!new_series) return sit->second;
  const auto [mit, new_metric] =
      f.metric_index.try_emplace(std::move(metric_key), static_cast<uint32_t>(f.metrics.size()));
  if (new_metric) f.metrics.emplace_back();
  s.metric = mit->second;
  f.metrics[s.metric].push_back(sit->second);
  series_.push_back(std::move(s));
  series_count_ = series_.size();
  return sit->second;
}

void BackfillWriter::Append(uint32_t series, int64_t t_ms, double value) noexcept {
  if (series >= series_.size() || !status_.ok()) return;
  Series& s = series_[series];
  if (s.has_samples && t_ms <= s.last_t_ms) {
    Fail(absl::FailedPreconditionError(absl::StrCat("backfill: sample of ", s.head, "at ", t_ms,
                                                    " ms is not after the previous one at ",
                                                    s.last_t_ms, " ms")));
    return;
  }
  s.has_samples = true;
  s.last_t_ms = t_ms;
  if (s.tail.capacity() == 0) s.tail.reserve(options_.chunk_samples);
  s.tail.push_back({t_ms, value});
  ++samples_;
  if (s.tail.size() == options_.chunk_samples) Spill(s);
}

void BackfillWriter::Spill(Series& s) noexcept {
  const size_t bytes = s.tail.size() * sizeof(Sample);
  const char* data = reinterpret_cast<const char*>(s.tail.data());
  s.chunks.push_back(spill_size_);
  spill_buf_.insert(spill_buf_.end(), data, data + bytes);
  spill_size_ += bytes;
  s.tail.clear();
  if (spill_buf_.size() >= kFlushBytes) Fail(FlushSpill());
}

absl::Status BackfillWriter::FlushSpill() {
  absl::Status st = WriteAll(spill_fd_, spill_buf_.data(), spill_buf_.size(), "the spill file");
  spill_buf_.clear();
  return st;
}

absl::Status BackfillWriter::FlushOut(std::string* out) {
  absl::Status st = WriteAll(out_fd_, out->data(), out->size(), out_path_);
  bytes_written_ += out->size();
  out->clear();
  return st;
}

absl::Status BackfillWriter::WriteMetric(const std::vector<uint32_t>& parts, std::string* out) {
  std::vector<Cursor> cursors;
  cursors.reserve(parts.size());
  absl::Status st;
  for (uint32_t id : parts) {
    Cursor& c = cursors.emplace_back(&series_[id], options_.chunk_samples);
    if (!c.Load(spill_fd_, &st) && !st.ok()) return st;
  }
  // One MetricPoint per distinct time: the parts that have a sample then, in
  // part order. Fed from a window every part has every time.
  while (true) {
    int64_t t = std::numeric_limits<int64_t>::max();
    bool any = false;
    for (const Cursor& c : cursors) {
      if (!c.done()) {
        t = std::min(t, c.sample().t_ms);
        any = true;
      }
    }
    if (!any) break;
    for (Cursor& c : cursors) {
      if (c.done() || c.sample().t_ms != t) continue;
      out->append(c.series().head);
      text::AppendDouble(out, c.sample().value);
      out->push_back(' ');
      AppendTimestamp(out, t);
      out->push_back('\n');
      if (!c.Advance(spill_fd_, &st) && !st.ok()) return st;
    }
    if (out->size() >= kFlushBytes) {
      if (st = FlushOut(out); !st.ok()) return st;
    }
  }
  return absl::OkStatus();
}

absl::Status BackfillWriter::WriteFile() {
  if (absl::Status st = FlushSpill(); !st.ok()) return st;
  std::string out;
  out.reserve(kFlushBytes + 4096);
  for (Family& f : families_) {
    // OpenMetrics: "The ordering SHOULD be TYPE, UNIT, HELP."
    out.append("# TYPE ");
    out.append(f.name);
    out.push_back(' ');
    out.append(text::TypeName(f.type));
    out.push_back('\n');
    if (!f.help.empty()) {
      out.append("# HELP ");
      out.append(f.name);
      out.push_back(' ');
      text::AppendEscaped(&out, f.help, /*quote=*/true);
      out.push_back('\n');
    }
    for (std::vector<uint32_t>& parts : f.metrics) {
      std::stable_sort(parts.begin(), parts.end(), [&](uint32_t a, uint32_t b) {
        const Series& x = series_[a];
        const Series& y = series_[b];
        return x.rank != y.rank ? x.rank < y.rank : x.le < y.le;
      });
      if (absl::Status st = WriteMetric(parts, &out); !st.ok()) return st;
    }
  }
  out.append("# EOF\n");
  if (absl::Status st = FlushOut(&out); !st.ok()) return st;
  if (::fsync(out_fd_) != 0) return IoError("cannot sync", out_path_);
  return absl::OkStatus();
}

void BackfillWriter::CloseFiles() {
  if (out_fd_ >= 0) ::close(out_fd_);
  if (spill_fd_ >= 0) ::close(spill_fd_);
  out_fd_ = -1;
  spill_fd_ = -1;
}

absl::Status BackfillWriter::Finish() {
  if (finished_) return absl::FailedPreconditionError("backfill: Finish() called twice");
  finished_ = true;
  absl::Status st = status_.ok() ? WriteFile() : status_;
  if (st.ok() && ::close(out_fd_) != 0) st = IoError("cannot close", out_path_);
  out_fd_ = -1;
  CloseFiles();
  if (st.ok() && ::rename(out_path_.c_str(), path_.c_str()) != 0) {
    st = IoError(absl::StrCat("cannot rename ", out_path_, " to"), path_);
  }
  if (!st.ok()) ::unlink(out_path_.c_str());
  std::vector<Series>().swap(series_);
  std::vector<char>().swap(spill_buf_);
  return st;
}

size_t BackfillWriter::MemoryBytes() const {
  size_t bytes = series_.capacity() * sizeof(Series) + spill_buf_.capacity();
  for (const Series& s : series_) {
    bytes += s.tail.capacity() * sizeof(Sample) + s.chunks.capacity() * sizeof(uint64_t) +
             s.head.capacity();
  }
  return bytes;
}

}  // namespace novapulse
