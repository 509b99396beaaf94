// Condition: the small boolean language of a metric spec's `when:` and
// `required:` keys, parsed into a tree over an input's fields.
//
//   status == "queued" and type in ["gift.created", "gift.claimed"]
//   error_code exists
//   not (status >= 500) or route =~ "^/api/"
//
// Grammar (keywords lower case; `and` binds tighter than `or`):
//   expr    := and ("or" and)*
//   and     := unary ("and" unary)*
//   unary   := "not" unary | "(" expr ")" | FIELD "exists"
//            | FIELD ("==" | "!=" | "<" | "<=" | ">" | ">=") LITERAL
//            | FIELD ("in" | "not" "in") "[" LITERAL ("," LITERAL)* "]"
//            | FIELD ("=~" | "!~") STRING          (RE2, anchored at both ends)
//   LITERAL := STRING ("..." with \" and \\) | NUMBER | "true" | "false"
// A comparison with a field the record does not have is false (so
// `x != "a"` is false when x is absent: write `not x exists or x != "a"`).
//
// Pure data once parsed; safe to share between threads.
#ifndef NOVAPULSE_SPEC_CONDITION_H_
#define NOVAPULSE_SPEC_CONDITION_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace re2 {
class RE2;
}  // namespace re2

namespace novapulse::spec {

struct Literal {
  enum class Kind : uint8_t { kString, kNumber, kBool };
  Kind kind = Kind::kString;
  std::string text;   // kString
  double number = 0;  // kNumber; kBool as 0 or 1
};

struct Condition {
  enum class Op : uint8_t {
    kTrue,  // no condition
    kAnd,
    kOr,
    kNot,
    kExists,
    kEq,
    kNe,
    kLt,
    kLe,
    kGt,
    kGe,
    kIn,
    kNotIn,
    kMatch,
    kNotMatch,
  };
  Op op = Op::kTrue;
  int field = -1;                   // index in the input's fields, for leaves
  std::vector<Condition> children;  // kAnd, kOr (two or more), kNot (one)
  std::vector<Literal> literals;    // one for comparisons, the list for kIn
  std::shared_ptr<const re2::RE2> regex;
  // Set when the spec is compiled (spec/plan.h), for a leaf comparing a
  // string field that has a `values` list: bit i says whether the field's
  // i-th value satisfies the leaf, so it is tested without a string compare.
  bool by_code = false;
  uint64_t codes = 0;
  // Set when the spec is compiled, for a condition that is `exists` and
  // value-code leaves joined by `and` (most are: `status == "queued" and
  // type == "gift.created"`): the fields that must be present, and per
  // coded field the codes it may have. Holds then checks these in a loop
  // instead of walking the tree.
  struct CodeTest {
    int field = -1;
    uint64_t codes = 0;
  };
  bool flat = false;
  std::vector<int> flat_present;
  std::vector<CodeTest> flat_codes;

  bool always() const { return op == Op::kTrue; }
  // The fields the condition reads, in the order met, without repeats.
  void Fields(std::vector<int>* out) const;
};

// Resolves a field name to its index, or -1 when the input has none so named.
using FieldResolver = std::function<int(std::string_view name)>;

// Parses `text`. Errors read "COL: MESSAGE", COL 1-based within `text`, so
// the caller can add the column where the text starts in its file.
absl::StatusOr<Condition> ParseCondition(std::string_view text, const FieldResolver& resolve);

}  // namespace novapulse::spec

#endif  // NOVAPULSE_SPEC_CONDITION_H_
