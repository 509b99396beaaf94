// Cat: absl::StrCat that also takes std::string_view. Debian's abseil is
// built with its own absl::string_view rather than an alias of
// std::string_view, so a std::string_view crosses into StrCat, Status and
// the like through Av.
//   return absl::InvalidArgumentError(Cat("unknown incident '", name, "'"));
#ifndef NOVAPULSE_BASE_STR_CAT_H_
#define NOVAPULSE_BASE_STR_CAT_H_

#include <string>
#include <string_view>
#include <type_traits>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace novapulse {

inline absl::string_view Av(std::string_view s) { return {s.data(), s.size()}; }

namespace str_cat_internal {

template <typename T>
decltype(auto) Piece(const T& v) {
  if constexpr (std::is_convertible_v<const T&, std::string_view> &&
                !std::is_convertible_v<const T&, absl::string_view>) {
    return Av(v);
  } else {
    return (v);
  }
}

}  // namespace str_cat_internal

template <typename... Args>
std::string Cat(const Args&... args) {
  return absl::StrCat(str_cat_internal::Piece(args)...);
}

}  // namespace novapulse

#endif  // NOVAPULSE_BASE_STR_CAT_H_
