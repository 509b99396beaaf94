// StringMap: a flat_hash_map keyed by std::string that can be looked up with
// a std::string_view without building a string; StringViewMap: the same keyed
// by views into storage owned elsewhere. (Debian's abseil is built
// with its own absl::string_view, so its default string hasher does not take
// std::string_view; this one does.)
#ifndef NOVAPULSE_BASE_STRING_MAP_H_
#define NOVAPULSE_BASE_STRING_MAP_H_

#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"

namespace novapulse {

struct StringViewHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return absl::Hash<std::string_view>{}(s); }
};

struct StringViewEq {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const { return a == b; }
};

template <typename V>
using StringMap = absl::flat_hash_map<std::string, V, StringViewHash, StringViewEq>;

// Keyed by views into storage that outlives the map (e.g. SeriesIndex keys):
// 24-byte slots and no copy of the key.
template <typename V>
using StringViewMap = absl::flat_hash_map<std::string_view, V, StringViewHash, StringViewEq>;

}  // namespace novapulse

#endif  // NOVAPULSE_BASE_STRING_MAP_H_
