// BlockIndex: simdjson's stage 1 alone over a block of newline-delimited
// records, a window of whole lines at a time, so the bytes and their
// structural index are still in the core's cache when the lines are walked.
// Internal to parsers/ and spec/.
//
// Stage 1 (SIMD: quotes, escapes, UTF-8, the position of every structural
// character and of every scalar's first byte) runs once per window; a
// decoder then reads each line's record straight from the index (see
// flat_record.h and spec/plan.h) rather than through On-Demand. A window
// stage 1 rejects (say, one line holds invalid UTF-8) has its lines parsed
// alone, which names their reasons.
//
//   BlockIndex index;
//   index.Start(block, size, capacity);
//   for each non-blank line [begin, end) of the block, in order:
//     uint32_t first;
//     if (index.Line(begin, &first)) {
//       ... walk index.index() from `first`, in index.window() ...
//       if (accepted) index.Advance(next);   // the line's tokens are used up
//     }
#ifndef NOVAPULSE_PARSERS_BLOCK_INDEX_H_
#define NOVAPULSE_PARSERS_BLOCK_INDEX_H_

#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <memory>

namespace novapulse::json {

// Stage 1 indexes a block this much at a time by default.
inline constexpr size_t kDefaultIndexWindowBytes = 1 << 16;

class BlockIndex {
 public:
  // `window_bytes` is for tests, which move the windows' edges.
  explicit BlockIndex(size_t window_bytes = kDefaultIndexWindowBytes) noexcept
      : window_bytes_(window_bytes) {}
  BlockIndex(const BlockIndex&) = delete;
  BlockIndex& operator=(const BlockIndex&) = delete;

  // A new block: `data` is readable for `capacity` >= size + SIMDJSON_PADDING
  // bytes. False (and no line is ever indexed) when it is not.
  bool Start(const char* data, size_t size, size_t capacity) noexcept;

  // The line whose first non-blank byte is at block offset `begin`, lines
  // asked for in order: true when its window is indexed and its first byte
  // is a '{' that stage 1 saw as structural (a line inside a string an
  // earlier bad line left open never is). Then *first is that '{' entry.
  bool Line(size_t begin, uint32_t* first) noexcept;

  // Whether the line [begin, end) of the current window holds a backslash.
  bool Escapes(size_t begin, size_t end) const noexcept;

  // True when the object that closed at entry `close` is the last thing on
  // the line ending at block offset `end` (only whitespace after it).
  bool EndsLine(uint32_t close, size_t end) const noexcept;

  // After a line was read: its entries end before `next`.
  void Advance(uint32_t next) noexcept { token_ = next; }

  // The window's bytes (entries are offsets there), its entries and their count.
  const char* window() const noexcept { return block_ + window_begin_; }
  const char* block() const noexcept { return block_; }
  const uint32_t* index() const noexcept { return index_->structural_indexes.get(); }
  uint32_t count() const noexcept { return tokens_; }

 private:
  bool IndexWindow(size_t begin) noexcept;

  std::unique_ptr<simdjson::internal::dom_parser_implementation> index_;
  size_t window_bytes_;
  size_t capacity_ = 0;
  const char* block_ = nullptr;
  size_t block_size_ = 0;
  bool started_ = false;
  size_t window_begin_ = 0;
  size_t window_end_ = 0;
  bool window_ok_ = false;
  bool window_escapes_ = false;
  uint32_t tokens_ = 0;
  uint32_t token_ = 0;
};

}  // namespace novapulse::json

#endif  // NOVAPULSE_PARSERS_BLOCK_INDEX_H_
