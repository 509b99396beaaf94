#include "parsers/block_index.h"

#include <string.h>

#include <algorithm>
#include <bit>
#include <cstring>

#include "parsers/event.h"
#include "parsers/json_values.h"

namespace novapulse::json {

namespace {

// A larger block is parsed line by line (the replay's chunks are 1 MiB plus
// one record by default).
constexpr size_t kMaxBlockBytes = size_t{64} << 20;

}  // namespace

bool BlockIndex::Start(const char* data, size_t size, size_t capacity) noexcept {
  started_ = size > 0 && size <= kMaxBlockBytes && capacity >= size + simdjson::SIMDJSON_PADDING;
  block_ = data;
  block_size_ = size;
  window_begin_ = window_end_ = 0;
  window_ok_ = false;
  tokens_ = token_ = 0;
  return started_;
}

bool BlockIndex::IndexWindow(size_t begin) noexcept {
  // A window ends at a newline at most window_bytes_ past `begin`, or just
  // past a single longer line.
  size_t end = block_size_;
  if (block_size_ - begin > window_bytes_) {
    const void* last = memrchr(block_ + begin, '\n', window_bytes_);
    const void* next = last ? last : std::memchr(block_ + begin, '\n', block_size_ - begin);
    if (next != nullptr) end = static_cast<size_t>(static_cast<const char*>(next) - block_) + 1;
  }
  window_begin_ = begin;
  window_end_ = end;
  tokens_ = token_ = 0;
  const size_t size = end - begin;
  // Per window rather than per block: these bytes are about to be read by
  // stage 1 too, and a window without a backslash spares each line a scan.
  window_escapes_ = std::memchr(block_ + begin, '\\', size) != nullptr;
  if (size > capacity_) {
    const size_t capacity = std::max(window_bytes_, std::bit_ceil(size));
    const simdjson::error_code error =
        index_ ? index_->set_capacity(capacity)
               : simdjson::get_active_implementation()->create_dom_parser_implementation(
                     capacity, kMaxJsonDepth, index_);
    if (error) return false;
    capacity_ = capacity;
  }
  // Regular mode: the window is whole lines, so a string still open at its
  // end is an error like any other, and the window's lines go one by one.
  if (index_->stage1(reinterpret_cast<const uint8_t*>(block_ + begin), size,
                     simdjson::stage1_mode::regular)) {
    return false;
  }
  tokens_ = index_->n_structural_indexes;
  return true;
}

bool BlockIndex::Line(size_t begin, uint32_t* first) noexcept {
  if (!started_) return false;
  if (begin >= window_end_) window_ok_ = IndexWindow(begin);
  if (!window_ok_) return false;
  const uint32_t* const index = this->index();
  const size_t offset = begin - window_begin_;
  while (token_ < tokens_ && index[token_] < offset) ++token_;
  if (token_ >= tokens_ || index[token_] != offset || block_[begin] != '{') return false;
  *first = token_;
  return true;
}

bool BlockIndex::Escapes(size_t begin, size_t end) const noexcept {
  return window_escapes_ && std::memchr(block_ + begin, '\\', end - begin) != nullptr;
}

bool BlockIndex::EndsLine(uint32_t close, size_t end) const noexcept {
  const char* p = window() + index()[close] + 1;
  if (p > block_ + end) return false;
  for (; p < block_ + end; ++p) {
    if (!detail::IsJsonSpace(*p)) return false;
  }
  return true;
}

}  // namespace novapulse::json
