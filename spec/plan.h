// SpecPlan: a metric spec compiled for the hot path, and SpecDecoder, which
// runs an input's part of it over one JSON record.
//
// Compiling turns each input's field paths into a tree of key tables (one
// per JSON object level the spec reads), so a record is walked once with
// simdjson On-Demand: a key the spec does not read is skipped (validated,
// not decoded), a key it reads lands in its field's slot, typed. Then the
// fields' transforms, fallbacks, defaults and checks run in the spec's
// order. No string map lookups and no allocation per record once the
// decoder's buffers have grown.
//
// A SpecPlan is immutable and shared by every worker; a SpecDecoder belongs
// to one worker (it owns the simdjson parser and the buffers the decoded
// string values point into, valid until its next Decode).
//   absl::StatusOr<std::shared_ptr<const SpecPlan>> plan = SpecPlan::Compile(std::move(spec));
//   SpecDecoder decoder(*plan);
//   if (auto reject = decoder.Decode(0, line, len, capacity)) Count(*reject);
//   else use decoder.values();
#ifndef NOVAPULSE_SPEC_PLAN_H_
#define NOVAPULSE_SPEC_PLAN_H_

#include <simdjson.h>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "parsers/block_index.h"
#include "parsers/event.h"
#include "spec/metric_spec.h"

namespace novapulse::spec {

// One field's value in a decoded record. Strings point into the record or
// the decoder's buffers.
struct FieldValue {
  bool present = false;
  std::string_view text;  // kString
  double number = 0;      // kNumber, kInt, kBool (0/1); scaled
  double raw = 0;         // kNumber, kInt: as read, before the scale
  int64_t time_us = 0;    // kTime
  int32_t code = -1;      // kString with `values`: the value's index there
};

class SpecPlan {
 public:
  // A JSON object level: its keys the spec reads. `target` >= 0 is a field
  // index; < 0 is the nested level -(target + 1).
  struct Level {
    std::vector<std::string> keys;
    std::vector<int32_t> targets;
    // Per key: its bytes and closing quote as up to two little-endian words
    // and their masks, compared with two loads of the raw key (see
    // SpecDecoder::Match), and the next key with the same first byte.
    struct Words {
      uint64_t prefix[2] = {0, 0};
      uint64_t mask[2] = {0, 0};
      uint32_t len = 0;
      int32_t next = -1;
    };
    std::vector<Words> words;
    // By a key's first byte: the first key starting with it, -1 if none.
    std::array<int32_t, 256> by_first;
  };
  struct InputPlan {
    std::vector<Level> levels;  // [0] is the record's root
    // Per field: only another field's fallback reads it, so its transforms
    // run only when that fallback is taken.
    std::vector<uint8_t> lazy;
    // The fields each step after decoding looks at, so a record's check
    // walks only those (see SpecDecoder::Finish).
    std::vector<uint32_t> eager_transforms, fallbacks, required, with_values, required_when;
  };

  // Detection over a record's top-level keys (see SpecDecoder::Detect):
  // every input's `all` and `any` keys in one table whose targets are bits,
  // and per input the bits of each list. Not `usable` past 64 keys.
  struct DetectPlan {
    Level keys;
    std::vector<uint64_t> all, any;
    bool usable = false;
  };

  // Checks what the loader cannot (two fields on one path, a path both a
  // value and an object) and builds the key tables. Errors name the spec's
  // FILE:LINE:COL.
  static absl::StatusOr<std::shared_ptr<const SpecPlan>> Compile(MetricSpecSet spec);

  const MetricSpecSet& spec() const { return spec_; }
  const InputPlan& input(size_t i) const { return inputs_[i]; }
  const DetectPlan& detect() const { return detect_; }

 private:
  MetricSpecSet spec_;
  std::vector<InputPlan> inputs_;
  DetectPlan detect_;
};

class SpecDecoder {
 public:
  // `index_window_bytes` is for tests, which move the block path's windows' edges.
  explicit SpecDecoder(const SpecPlan& plan, size_t max_record_bytes = 1 << 20,
                       size_t index_window_bytes = json::kDefaultIndexWindowBytes);
  SpecDecoder(const SpecDecoder&) = delete;
  SpecDecoder& operator=(const SpecDecoder&) = delete;

  // Decodes `data` (readable for `capacity` >= len + SIMDJSON_PADDING bytes,
  // else copied) as a record of input `input`. nullopt when accepted; then
  // values()[f] is field f's final value.
  [[nodiscard]] std::optional<RejectReason> Decode(size_t input, const char* data, size_t len,
                                                   size_t capacity) noexcept;
  // For tests and tools: copies `record` into a padded buffer first.
  [[nodiscard]] std::optional<RejectReason> Decode(size_t input, std::string_view record);

  const std::vector<FieldValue>& values() const { return values_; }
  const SpecPlan& plan() const { return plan_; }
  // Which input a record of a mixed stream belongs to (DetectSpec), -1 when
  // none says. A record that is not a readable JSON object goes to the
  // first input one of whose `text` keys appears in it, quoted.
  [[nodiscard]] int Detect(const char* data, size_t len, size_t capacity) noexcept;

  // Blocks: one simdjson stage-1 pass over a window of a block's lines at a
  // time (json::BlockIndex), each record then read straight from the
  // structural index, nested objects included. The block path only ever
  // accepts: a record it does not fully understand (an escape in a key or
  // in a value it reads, a \u escape anywhere, numbers beyond plain
  // decimals, a null where none may be, anything rejected) is left to
  // Detect and Decode alone, which name the reason. So what it accepts, and
  // the values it decodes, are theirs.
  //
  //   decoder.StartBlock(block, size, capacity);
  //   for each non-blank line [begin, end) of the block, in order:
  //     int as;
  //     if (!decoder.Next(input, begin, end, &as)) ... Detect/Decode the line alone ...
  //
  // `data` must be readable for `capacity` >= size + SIMDJSON_PADDING bytes;
  // a block that is not is decoded line by line.
  void StartBlock(const char* data, size_t size, size_t capacity) noexcept {
    (void)index_.Start(data, size, capacity);
  }
  // The record on the line whose first non-blank byte is at block offset
  // `begin` and whose newline (or the block's end) is at `end`, as input
  // `input`, or as the input Detect gives when `input` is -1. True when
  // accepted; then *decoded_as is the input and values() what Decode gives.
  [[nodiscard]] bool Next(int input, size_t begin, size_t end, int* decoded_as) noexcept;
  size_t max_record_bytes() const noexcept { return max_record_bytes_; }
  // Records the block path accepted so far (for tests and benchmarks).
  uint64_t streamed() const noexcept { return streamed_; }

 private:
  [[nodiscard]] std::optional<RejectReason> Walk(const InputSpec& in,
                                                 const SpecPlan::InputPlan& plan, int level,
                                                 simdjson::ondemand::object& object, size_t depth,
                                                 bool escapes) noexcept;
  [[nodiscard]] std::optional<RejectReason> Read(const FieldSpec& f, simdjson::ondemand::value& v,
                                                 bool escapes, FieldValue* out) noexcept;
  [[nodiscard]] std::optional<RejectReason> Finish(const InputSpec& in) noexcept;
  void Transform(const FieldSpec& f, size_t index, FieldValue* v);
  void Clear(const InputSpec& in) noexcept;
  // The block path (see Next): the object whose '{' is entry *t, read as
  // level `level`; on success *t is the entry after its '}'.
  [[nodiscard]] bool WalkIndexed(const InputSpec& in, const SpecPlan::InputPlan& plan, int level,
                                 uint32_t* t, size_t depth) noexcept;
  // Steps over the container at entry *t, checking its grammar.
  [[nodiscard]] bool SkipIndexed(uint32_t* t, size_t depth) const noexcept;
  // The input the top-level keys of the object at entry `first` say, -1
  // when none does or detection cannot tell from the index.
  [[nodiscard]] int DetectIndexed(uint32_t first) const noexcept;
  // Notes where the line's backslashes are; false when an escape is not a
  // plain one (\u, whose surrogates simdjson checks, or not an escape).
  [[nodiscard]] bool FindEscapes(size_t begin, size_t end) noexcept;
  // Whether the raw token of index entry i holds a backslash.
  [[nodiscard]] bool Escaped(uint32_t i) const noexcept;
  // The index of the raw key (its first byte after the opening quote, in
  // padded input, unescaped) among the level's keys, -1 if none.
  static int Match(const SpecPlan::Level& l, const char* raw) noexcept;

  const SpecPlan& plan_;
  size_t max_record_bytes_;
  simdjson::ondemand::parser parser_;
  simdjson::ondemand::document doc_;
  std::vector<FieldValue> values_;
  std::vector<uint8_t> seen_;
  std::vector<uint8_t> transformed_;  // lazy fields whose transforms have run
  std::vector<std::string> scratch_;  // per field: its unescaped or transformed value
  std::string tmp_;                   // a transform's output before it becomes the value
  std::string padded_;
  json::BlockIndex index_;
  // The block path's line: whether it holds a backslash, and where (window
  // offsets, ascending).
  bool line_escapes_ = false;
  std::vector<uint32_t> escapes_;
  uint64_t streamed_ = 0;
};

// Whether condition `c` holds over `values` (an absent field's comparisons
// are false).
[[nodiscard]] bool Holds(const Condition& c, const std::vector<FieldValue>& values,
                         const InputSpec& input) noexcept;

}  // namespace novapulse::spec

#endif  // NOVAPULSE_SPEC_PLAN_H_
