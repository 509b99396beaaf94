// promql_ast: the parsed form of a PromQL-subset expression, shared by the
// parser (promql_parser.cc) and the evaluator (promql_eval.cc); nothing else
// includes it. Nodes are built once by Parse() and immutable afterwards, so
// they may be read from any number of threads.
#ifndef NOVAPULSE_RULES_PROMQL_AST_H_
#define NOVAPULSE_RULES_PROMQL_AST_H_

#include <cstdint>
#include <string>
#include <vector>

#include "rules/promql.h"

namespace novapulse::promql {

enum class Func {
  kRate,
  kIncrease,
  kIrate,
  kDelta,
  kIdelta,
  kAvgOverTime,
  kMinOverTime,
  kMaxOverTime,
  kSumOverTime,
  kCountOverTime,
  kLastOverTime,
  kQuantileOverTime,
  kStddevOverTime,
  kStdvarOverTime,
  kPresentOverTime,
  kHistogramQuantile,
  kAbsent,
  kAbsentOverTime,
  kAbs,
  kCeil,
  kFloor,
  kRound,
  kClamp,
  kClampMin,
  kClampMax,
  kScalar,
  kVector,
  kTime,
};

enum class AggOp { kSum, kAvg, kMin, kMax, kCount };

enum class BinOp {
  kAdd,
  kSub,
  kMul,
  kDiv,
  kMod,
  kPow,
  kEq,
  kNe,
  kGt,
  kLt,
  kGe,
  kLe,
  kAnd,
  kOr,
  kUnless,
};

inline bool IsComparison(BinOp op) { return op >= BinOp::kEq && op <= BinOp::kLe; }
inline bool IsSetOp(BinOp op) { return op >= BinOp::kAnd; }

class Expr {
 public:
  enum class Kind {
    kNumber,
    kVectorSelector,
    kMatrixSelector,
    kCall,
    kAggregate,
    kBinary,
    kNeg,
    kParen
  };

  Kind kind = Kind::kNumber;
  ValueType type = ValueType::kScalar;
  int offset = 0;  // byte offset of the node's first token in the text

  // kNumber.
  double number = 0;

  // kVectorSelector and kMatrixSelector. `matchers` never holds __name__.
  std::string metric;
  std::vector<Matcher> matchers;
  int64_t offset_ms = 0;
  int64_t range_ms = 0;  // kMatrixSelector only

  // kCall.
  Func func = Func::kTime;
  std::vector<ExprPtr> args;

  // kAggregate: `args[0]` is the argument.
  AggOp agg = AggOp::kSum;
  std::vector<std::string> grouping;  // sorted, unique
  bool without = false;

  // kBinary; kNeg and kParen use `lhs`.
  BinOp op = BinOp::kAdd;
  bool return_bool = false;
  bool matching_on = false;               // on(...) rather than ignoring(...)
  std::vector<std::string> match_labels;  // sorted, unique
  ExprPtr lhs, rhs;
  // Longest path to a leaf, counting this node: bounded at parse time so that
  // evaluating (and destroying) the tree cannot exhaust the stack.
  int depth = 1;
};

}  // namespace novapulse::promql

#endif  // NOVAPULSE_RULES_PROMQL_AST_H_
