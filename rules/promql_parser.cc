// Lexer and recursive-descent parser for the PromQL subset (promql.h). The
// grammar, precedence and type rules follow Prometheus 2.42's
// promql/parser (generated_parser.y, lex.go, parse.go); what the subset leaves
// out is rejected with "unsupported: <construct>".
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "base/duration.h"
#include "re2/re2.h"
#include "rules/promql.h"
#include "rules/promql_ast.h"

namespace novapulse::promql {

bool Matcher::Matches(std::string_view v) const {
  switch (op) {
    case Op::kEq:
      return v == value;
    case Op::kNeq:
      return v != value;
    case Op::kRe:
      return RE2::FullMatch(re2::StringPiece(v.data(), v.size()), *re);
    case Op::kNre:
      return !RE2::FullMatch(re2::StringPiece(v.data(), v.size()), *re);
  }
  return false;
}

namespace {

enum class Tok {
  kEof,
  kError,
  kNumber,
  kDuration,
  kString,
  kIdent,
  kLParen,
  kRParen,
  kLBrace,
  kRBrace,
  kLBracket,
  kRBracket,
  kComma,
  kColon,
  kAt,
  kAdd,
  kSub,
  kMul,
  kDiv,
  kMod,
  kPow,
  kEqlc,  // ==
  kNeq,   // !=
  kGtr,
  kLss,
  kGte,
  kLte,
  kAssign,    // =
  kEqlRegex,  // =~
  kNeqRegex,  // !~
};

struct Token {
  Tok type = Tok::kEof;
  int begin = 0;
  int end = 0;
  std::string_view text;
  std::string str;     // kString: the unquoted value; kError: the message
  double num = 0;      // kNumber
  int64_t dur_ms = 0;  // kDuration
};

bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAlnum(char c) { return IsAlpha(c) || IsDigit(c); }
bool IsHex(char c) { return IsDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
int HexVal(char c) {
  if (IsDigit(c)) return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Go's strconv.ParseInt(s, 0, 64) as Prometheus's lexer admits numbers
// (decimal, 0x hex, leading-zero octal), falling back to ParseFloat.
bool ParseNumber(std::string_view s, double* out) {
  std::string str(s);
  bool all_digits = !str.empty() && std::all_of(str.begin(), str.end(), IsDigit);
  errno = 0;
  char* end = nullptr;
  if (str.size() > 2 && str[0] == '0' && (str[1] == 'x' || str[1] == 'X')) {
    int64_t v = std::strtoll(str.c_str() + 2, &end, 16);
    if (errno != 0 || *end != '\0' || str[2] == '-' || str[2] == '+') return false;
    *out = static_cast<double>(v);
    return true;
  }
  if (all_digits) {
    bool octal = str.size() > 1 && str[0] == '0';
    if (!octal || std::all_of(str.begin(), str.end(), [](char c) { return c <= '7'; })) {
      int64_t v = std::strtoll(str.c_str(), &end, octal ? 8 : 10);
      if (errno == 0 && *end == '\0') {
        *out = static_cast<double>(v);
        return true;
      }
    }
  }
  errno = 0;
  double v = std::strtod(str.c_str(), &end);
  if (*end != '\0' || str.empty()) return false;
  // Go's ParseFloat reports out-of-range values as errors, except that
  // overflow to +-Inf is an error too; underflow to 0 is accepted.
  if (errno == ERANGE && std::isinf(v)) return false;
  *out = v;
  return true;
}

class Lexer {
 public:
  explicit Lexer(std::string_view in) : in_(in) {}

  Token Next() {
    SkipSpace();
    Token t;
    t.begin = static_cast<int>(pos_);
    if (pos_ >= in_.size()) {
      t.type = Tok::kEof;
      t.end = t.begin;
      return t;
    }
    char c = in_[pos_];
    auto single = [&](Tok type, size_t len) {
      t.type = type;
      pos_ += len;
    };
    char n = pos_ + 1 < in_.size() ? in_[pos_ + 1] : '\0';
    if (IsDigit(c) || (c == '.' && IsDigit(n))) {
      LexNumberOrDuration(&t);
    } else if (c == ':' && bracket_depth_ > 0) {
      single(Tok::kColon, 1);
    } else if (IsAlpha(c) || c == ':') {
      while (pos_ < in_.size() && (IsAlnum(in_[pos_]) || in_[pos_] == ':')) ++pos_;
      t.type = Tok::kIdent;
    } else if (c == '"' || c == '\'' || c == '`') {
      LexString(&t);
    } else {
      switch (c) {
        case '(':
          single(Tok::kLParen, 1);
          break;
        case ')':
          single(Tok::kRParen, 1);
          break;
        case '{':
          single(Tok::kLBrace, 1);
          break;
        case '}':
          single(Tok::kRBrace, 1);
          break;
        case '[':
          single(Tok::kLBracket, 1);
          ++bracket_depth_;
          break;
        case ']':
          single(Tok::kRBracket, 1);
          if (bracket_depth_ > 0) --bracket_depth_;
          break;
        case ',':
          single(Tok::kComma, 1);
          break;
        case '@':
          single(Tok::kAt, 1);
          break;
        case '+':
          single(Tok::kAdd, 1);
          break;
        case '-':
          single(Tok::kSub, 1);
          break;
        case '*':
          single(Tok::kMul, 1);
          break;
        case '/':
          single(Tok::kDiv, 1);
          break;
        case '%':
          single(Tok::kMod, 1);
          break;
        case '^':
          single(Tok::kPow, 1);
          break;
        case '=':
          if (n == '=') {
            single(Tok::kEqlc, 2);
          } else if (n == '~') {
            single(Tok::kEqlRegex, 2);
          } else {
            single(Tok::kAssign, 1);
          }
          break;
        case '!':
          if (n == '=') {
            single(Tok::kNeq, 2);
          } else if (n == '~') {
            single(Tok::kNeqRegex, 2);
          } else {
            t.type = Tok::kError;
            t.str = "unexpected character after '!'";
            ++pos_;
          }
          break;
        case '>':
          single(n == '=' ? Tok::kGte : Tok::kGtr, n == '=' ? 2 : 1);
          break;
        case '<':
          single(n == '=' ? Tok::kLte : Tok::kLss, n == '=' ? 2 : 1);
          break;
        default:
          t.type = Tok::kError;
          t.str = absl::StrCat("unexpected character: '", std::string(1, c), "'");
          ++pos_;
      }
    }
    t.end = static_cast<int>(pos_);
    t.text = in_.substr(t.begin, t.end - t.begin);
    return t;
  }

 private:
  void SkipSpace() {
    while (pos_ < in_.size()) {
      char c = in_[pos_];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
        ++pos_;
      } else if (c == '#') {
        while (pos_ < in_.size() && in_[pos_] != '\n') ++pos_;
      } else {
        break;
      }
    }
  }

  void AcceptRun(std::string_view set) {
    while (pos_ < in_.size() && set.find(in_[pos_]) != std::string_view::npos) ++pos_;
  }
  bool Accept(std::string_view set) {
    if (pos_ < in_.size() && set.find(in_[pos_]) != std::string_view::npos) {
      ++pos_;
      return true;
    }
    return false;
  }

  // lex.go's scanNumber, then a duration if that fails.
  void LexNumberOrDuration(Token* t) {
    size_t start = pos_;
    std::string_view digits = "0123456789";
    if (Accept("0") && Accept("xX")) digits = "0123456789abcdefABCDEF";
    AcceptRun(digits);
    if (Accept(".")) AcceptRun(digits);
    if (Accept("eE")) {
      Accept("+-");
      AcceptRun("0123456789");
    }
    if (pos_ >= in_.size() || !IsAlnum(in_[pos_])) {
      t->type = Tok::kNumber;
      if (!ParseNumber(in_.substr(start, pos_ - start), &t->num)) {
        t->type = Tok::kError;
        t->str =
            absl::StrCat("invalid number: \"", std::string(in_.substr(start, pos_ - start)), "\"");
      }
      return;
    }
    pos_ = start;
    while (pos_ < in_.size() && IsAlnum(in_[pos_])) ++pos_;
    std::string_view text = in_.substr(start, pos_ - start);
    if (ParseDuration(text, &t->dur_ms)) {
      t->type = Tok::kDuration;
    } else {
      t->type = Tok::kError;
      t->str = absl::StrCat("bad number or duration syntax: \"", std::string(text), "\"");
    }
  }

  void LexString(Token* t) {
    char q = in_[pos_++];
    t->type = Tok::kString;
    if (q == '`') {
      while (pos_ < in_.size() && in_[pos_] != '`') {
        if (in_[pos_] != '\r') t->str.push_back(in_[pos_]);
        ++pos_;
      }
      if (pos_ >= in_.size()) {
        t->type = Tok::kError;
        t->str = "unterminated raw string";
        return;
      }
      ++pos_;
      return;
    }
    while (true) {
      if (pos_ >= in_.size() || in_[pos_] == '\n') {
        t->type = Tok::kError;
        t->str = "unterminated quoted string";
        return;
      }
      char c = in_[pos_++];
      if (c == q) return;
      if (c != '\\') {
        t->str.push_back(c);
        continue;
      }
      if (pos_ >= in_.size()) continue;  // reported as unterminated next round
      char e = in_[pos_++];
      auto bad = [&] {
        t->type = Tok::kError;
        t->str = "invalid escape sequence in string";
        pos_ = in_.size();
      };
      switch (e) {
        case 'a':
          t->str.push_back('\a');
          break;
        case 'b':
          t->str.push_back('\b');
          break;
        case 'f':
          t->str.push_back('\f');
          break;
        case 'n':
          t->str.push_back('\n');
          break;
        case 'r':
          t->str.push_back('\r');
          break;
        case 't':
          t->str.push_back('\t');
          break;
        case 'v':
          t->str.push_back('\v');
          break;
        case '\\':
          t->str.push_back('\\');
          break;
        case '\'':
        case '"':
          if (e != q) return bad();
          t->str.push_back(e);
          break;
        case 'x':
        case 'u':
        case 'U': {
          size_t len = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          if (pos_ + len > in_.size()) return bad();
          uint32_t v = 0;
          for (size_t i = 0; i < len; ++i) {
            if (!IsHex(in_[pos_ + i])) return bad();
            v = v * 16 + HexVal(in_[pos_ + i]);
          }
          pos_ += len;
          if (e == 'x') {
            t->str.push_back(static_cast<char>(v));
          } else {
            if (v > 0x10FFFF || (v >= 0xD800 && v < 0xE000)) return bad();
            AppendUtf8(v, &t->str);
          }
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            if (pos_ + 2 > in_.size()) return bad();
            uint32_t v = e - '0';
            for (int i = 0; i < 2; ++i) {
              char d = in_[pos_ + i];
              if (d < '0' || d > '7') return bad();
              v = v * 8 + (d - '0');
            }
            if (v > 255) return bad();
            pos_ += 2;
            t->str.push_back(static_cast<char>(v));
            break;
          }
          return bad();
      }
    }
  }

  std::string_view in_;
  size_t pos_ = 0;
  int bracket_depth_ = 0;  // inside [...] a colon is a token, not part of a name
};

struct FuncInfo {
  std::string_view name;
  Func func;
  std::vector<ValueType> args;
  int optional;  // trailing arguments that may be left out
  ValueType ret;
};

const std::vector<FuncInfo>& Functions() {
  using V = ValueType;
  static const auto* kFuncs = new std::vector<FuncInfo>{
      {"rate", Func::kRate, {V::kMatrix}, 0, V::kVector},
      {"increase", Func::kIncrease, {V::kMatrix}, 0, V::kVector},
      {"irate", Func::kIrate, {V::kMatrix}, 0, V::kVector},
      {"delta", Func::kDelta, {V::kMatrix}, 0, V::kVector},
      {"idelta", Func::kIdelta, {V::kMatrix}, 0, V::kVector},
      {"avg_over_time", Func::kAvgOverTime, {V::kMatrix}, 0, V::kVector},
      {"min_over_time", Func::kMinOverTime, {V::kMatrix}, 0, V::kVector},
      {"max_over_time", Func::kMaxOverTime, {V::kMatrix}, 0, V::kVector},
      {"sum_over_time", Func::kSumOverTime, {V::kMatrix}, 0, V::kVector},
      {"count_over_time", Func::kCountOverTime, {V::kMatrix}, 0, V::kVector},
      {"last_over_time", Func::kLastOverTime, {V::kMatrix}, 0, V::kVector},
      {"quantile_over_time", Func::kQuantileOverTime, {V::kScalar, V::kMatrix}, 0, V::kVector},
      {"stddev_over_time", Func::kStddevOverTime, {V::kMatrix}, 0, V::kVector},
      {"stdvar_over_time", Func::kStdvarOverTime, {V::kMatrix}, 0, V::kVector},
      {"present_over_time", Func::kPresentOverTime, {V::kMatrix}, 0, V::kVector},
      {"histogram_quantile", Func::kHistogramQuantile, {V::kScalar, V::kVector}, 0, V::kVector},
      {"absent", Func::kAbsent, {V::kVector}, 0, V::kVector},
      {"absent_over_time", Func::kAbsentOverTime, {V::kMatrix}, 0, V::kVector},
      {"abs", Func::kAbs, {V::kVector}, 0, V::kVector},
      {"ceil", Func::kCeil, {V::kVector}, 0, V::kVector},
      {"floor", Func::kFloor, {V::kVector}, 0, V::kVector},
      {"round", Func::kRound, {V::kVector, V::kScalar}, 1, V::kVector},
      {"clamp", Func::kClamp, {V::kVector, V::kScalar, V::kScalar}, 0, V::kVector},
      {"clamp_min", Func::kClampMin, {V::kVector, V::kScalar}, 0, V::kVector},
      {"clamp_max", Func::kClampMax, {V::kVector, V::kScalar}, 0, V::kVector},
      {"scalar", Func::kScalar, {V::kVector}, 0, V::kScalar},
      {"vector", Func::kVector, {V::kScalar}, 0, V::kVector},
      {"time", Func::kTime, {}, 0, V::kScalar},
  };
  return *kFuncs;
}

const FuncInfo* FindFunction(std::string_view name) {
  for (const FuncInfo& f : Functions()) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

std::string_view TypeName(ValueType t) {
  switch (t) {
    case ValueType::kScalar:
      return "scalar";
    case ValueType::kVector:
      return "instant vector";
    case ValueType::kMatrix:
      return "range vector";
    case ValueType::kString:
      return "string";
  }
  return "?";
}

std::string_view TokName(const Token& t) {
  switch (t.type) {
    case Tok::kEof:
      return "end of input";
    case Tok::kNumber:
      return "number";
    case Tok::kDuration:
      return "duration";
    case Tok::kString:
      return "string";
    case Tok::kIdent:
      return "identifier";
    default:
      return t.text;
  }
}

struct OpInfo {
  BinOp op;
  int prec;
};

constexpr int kPrecPow = 6;
constexpr int kPrecMul = 5;

class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text), lex_(text) { Advance(); }

  absl::StatusOr<ExprPtr> Run() {
    ExprPtr e = ParseExpr(0);
    if (e != nullptr && tok_.type != Tok::kEof) {
      Fail(tok_.begin, absl::StrCat("unexpected ", std::string(TokName(tok_))));
    }
    if (!err_.ok()) return err_;
    if (e->type == ValueType::kString) {
      Fail(e->offset, "unsupported: string literal");
      return err_;
    }
    return e;
  }

 private:
  void Advance() {
    tok_ = lex_.Next();
    if (tok_.type == Tok::kError) Fail(tok_.begin, tok_.str);
  }

  // Records the first error; returns nullptr so callers can `return Fail(..)`.
  ExprPtr Fail(int offset, std::string_view msg) {
    if (!err_.ok()) return nullptr;
    int line = 1, col = 1;
    for (int i = 0; i < offset && i < static_cast<int>(text_.size()); ++i) {
      if (text_[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    err_ = absl::InvalidArgumentError(absl::StrCat(line, ":", col, ": ", std::string(msg)));
    return nullptr;
  }
  bool failed() const { return !err_.ok(); }

  bool IsKeyword(std::string_view kw) const {
    return tok_.type == Tok::kIdent && Lower(tok_.text) == kw;
  }

  bool Expect(Tok type, std::string_view what) {
    if (failed()) return false;
    if (tok_.type != type) {
      Fail(tok_.begin, absl::StrCat("unexpected ", std::string(TokName(tok_)), ", expected ",
                                    std::string(what)));
      return false;
    }
    Advance();
    return !failed();
  }

  bool BinaryOp(OpInfo* info) const {
    switch (tok_.type) {
      case Tok::kAdd:
        *info = {BinOp::kAdd, 4};
        return true;
      case Tok::kSub:
        *info = {BinOp::kSub, 4};
        return true;
      case Tok::kMul:
        *info = {BinOp::kMul, kPrecMul};
        return true;
      case Tok::kDiv:
        *info = {BinOp::kDiv, kPrecMul};
        return true;
      case Tok::kMod:
        *info = {BinOp::kMod, kPrecMul};
        return true;
      case Tok::kPow:
        *info = {BinOp::kPow, kPrecPow};
        return true;
      case Tok::kEqlc:
        *info = {BinOp::kEq, 3};
        return true;
      case Tok::kNeq:
        *info = {BinOp::kNe, 3};
        return true;
      case Tok::kGtr:
        *info = {BinOp::kGt, 3};
        return true;
      case Tok::kLss:
        *info = {BinOp::kLt, 3};
        return true;
      case Tok::kGte:
        *info = {BinOp::kGe, 3};
        return true;
      case Tok::kLte:
        *info = {BinOp::kLe, 3};
        return true;
      case Tok::kIdent: {
        std::string kw = Lower(tok_.text);
        if (kw == "and")
          *info = {BinOp::kAnd, 2};
        else if (kw == "unless")
          *info = {BinOp::kUnless, 2};
        else if (kw == "or")
          *info = {BinOp::kOr, 1};
        else if (kw == "atan2")
          *info = {BinOp::kMul, kPrecMul};  // rejected by the caller
        else
          return false;
        return true;
      }
      default:
        return false;
    }
  }

  // Deeper than any rule needs; the evaluator recurses once per level.
  static constexpr int kMaxDepth = 128;

  ExprPtr ParseExpr(int min_prec) {
    if (++depth_ > kMaxDepth) {
      --depth_;
      return Fail(tok_.begin, "expression nested too deeply");
    }
    ExprPtr e = ParseExprAt(min_prec);
    --depth_;
    if (e != nullptr && e->depth > kMaxDepth)
      return Fail(e->offset, "expression nested too deeply");
    return e;
  }

  ExprPtr ParseExprAt(int min_prec) {
    ExprPtr lhs = ParseUnary();
    while (lhs != nullptr && !failed()) {
      OpInfo info;
      if (!BinaryOp(&info) || info.prec < min_prec) break;
      int op_offset = tok_.begin;
      if (IsKeyword("atan2")) return Fail(op_offset, "unsupported: operator atan2");
      Advance();
      auto e = std::make_shared<Expr>();
      e->kind = Expr::Kind::kBinary;
      e->op = info.op;
      e->offset = lhs->offset;
      if (IsKeyword("bool")) {
        e->return_bool = true;
        Advance();
      }
      bool has_matching = false;
      if (IsKeyword("on") || IsKeyword("ignoring")) {
        has_matching = true;
        e->matching_on = IsKeyword("on");
        Advance();
        if (!ParseLabelList(&e->match_labels)) return nullptr;
      }
      if (IsKeyword("group_left") || IsKeyword("group_right")) {
        return Fail(tok_.begin, absl::StrCat("unsupported: ", Lower(tok_.text)));
      }
      ExprPtr rhs = ParseExpr(info.op == BinOp::kPow ? info.prec : info.prec + 1);
      if (rhs == nullptr) return nullptr;
      e->depth = 1 + std::max(lhs->depth, rhs->depth);
      if (e->depth > kMaxDepth) return Fail(op_offset, "expression nested too deeply");
      e->lhs = std::move(lhs);
      e->rhs = std::move(rhs);
      if (!CheckBinary(e.get(), op_offset, has_matching)) return nullptr;
      lhs = std::move(e);
    }
    return failed() ? nullptr : lhs;
  }

  bool CheckBinary(Expr* e, int op_offset, bool has_matching) {
    ValueType lt = e->lhs->type, rt = e->rhs->type;
    if (e->return_bool && !IsComparison(e->op)) {
      Fail(op_offset, "bool modifier can only be used on comparison operators");
      return false;
    }
    if (IsComparison(e->op) && !e->return_bool && lt == ValueType::kScalar &&
        rt == ValueType::kScalar) {
      Fail(op_offset, "comparisons between scalars must use BOOL modifier");
      return false;
    }
    if (lt != ValueType::kScalar && lt != ValueType::kVector) {
      Fail(e->lhs->offset, "binary expression must contain only scalar and instant vector types");
      return false;
    }
    if (rt != ValueType::kScalar && rt != ValueType::kVector) {
      Fail(e->rhs->offset, "binary expression must contain only scalar and instant vector types");
      return false;
    }
    if ((lt != ValueType::kVector || rt != ValueType::kVector) && has_matching &&
        !e->match_labels.empty()) {
      Fail(e->offset, "vector matching only allowed between instant vectors");
      return false;
    }
    if ((lt == ValueType::kScalar || rt == ValueType::kScalar) && IsSetOp(e->op)) {
      static constexpr std::string_view kNames[] = {"and", "or", "unless"};
      Fail(
          e->offset,
          absl::StrCat("set operator \"",
                       std::string(kNames[static_cast<int>(e->op) - static_cast<int>(BinOp::kAnd)]),
                       "\" not allowed in binary scalar expression"));
      return false;
    }
    e->type = (lt == ValueType::kScalar && rt == ValueType::kScalar) ? ValueType::kScalar
                                                                     : ValueType::kVector;
    return true;
  }

  ExprPtr ParseUnary() {
    if (failed()) return nullptr;
    if (tok_.type == Tok::kAdd || tok_.type == Tok::kSub) {
      bool neg = tok_.type == Tok::kSub;
      int offset = tok_.begin;
      Advance();
      ExprPtr operand = ParseExpr(kPrecPow);
      if (operand == nullptr) return nullptr;
      if (operand->kind == Expr::Kind::kNumber) {
        auto e = std::make_shared<Expr>(*operand);
        if (neg) e->number = -e->number;
        e->offset = offset;
        return e;
      }
      if (operand->type != ValueType::kScalar && operand->type != ValueType::kVector) {
        return Fail(operand->offset,
                    absl::StrCat("unary expression only allowed on expressions of type scalar or "
                                 "instant vector, got \"",
                                 std::string(TypeName(operand->type)), "\""));
      }
      if (!neg) return operand;
      auto e = std::make_shared<Expr>();
      e->kind = Expr::Kind::kNeg;
      e->offset = offset;
      e->type = operand->type;
      e->depth = 1 + operand->depth;
      e->lhs = std::move(operand);
      return e;
    }
    return ParsePostfix(ParsePrimary());
  }

  ExprPtr ParsePrimary() {
    if (failed()) return nullptr;
    int offset = tok_.begin;
    switch (tok_.type) {
      case Tok::kNumber: {
        auto e = std::make_shared<Expr>();
        e->kind = Expr::Kind::kNumber;
        e->number = tok_.num;
        e->offset = offset;
        Advance();
        return e;
      }
      case Tok::kString: {
        // Only a top-level string would be valid PromQL here; no function of
        // the subset takes one.
        return Fail(offset, "unsupported: string literal");
      }
      case Tok::kLParen: {
        Advance();
        ExprPtr inner = ParseExpr(0);
        if (inner == nullptr || !Expect(Tok::kRParen, "\")\"")) return nullptr;
        auto e = std::make_shared<Expr>();
        e->kind = Expr::Kind::kParen;
        e->offset = offset;
        e->type = inner->type;
        e->depth = 1 + inner->depth;
        e->lhs = std::move(inner);
        return e;
      }
      case Tok::kLBrace:
        return Fail(offset, "unsupported: selector without a metric name");
      case Tok::kIdent:
        return ParseIdentifier();
      case Tok::kDuration:
        return Fail(offset, "unexpected duration");
      default:
        return Fail(offset, absl::StrCat("unexpected ", std::string(TokName(tok_))));
    }
  }

  ExprPtr ParseIdentifier() {
    int offset = tok_.begin;
    std::string name(tok_.text);
    std::string kw = Lower(name);
    if (kw == "inf" || kw == "nan") {
      auto e = std::make_shared<Expr>();
      e->kind = Expr::Kind::kNumber;
      e->number = kw == "inf" ? std::numeric_limits<double>::infinity()
                              : std::numeric_limits<double>::quiet_NaN();
      e->offset = offset;
      Advance();
      return e;
    }
    static constexpr std::string_view kAggs[] = {"sum", "avg", "min", "max", "count"};
    for (size_t i = 0; i < std::size(kAggs); ++i) {
      if (kw == kAggs[i]) return ParseAggregation(static_cast<AggOp>(i));
    }
    // topk and bottomk select series rather than aggregate them; the header
    // documents them as unsupported functions.
    if (kw == "topk" || kw == "bottomk" || kw == "limitk" || kw == "limit_ratio") {
      return Fail(offset, absl::StrCat("unsupported: function ", kw));
    }
    if (kw == "quantile" || kw == "stddev" || kw == "stdvar" || kw == "group" ||
        kw == "count_values") {
      return Fail(offset, absl::StrCat("unsupported: aggregation ", kw));
    }
    static constexpr std::string_view kReserved[] = {
        "and",     "or", "unless",   "atan2",      "bool",        "by",
        "without", "on", "ignoring", "group_left", "group_right", "offset"};
    for (std::string_view r : kReserved) {
      if (kw == r) return Fail(offset, absl::StrCat("unexpected ", kw));
    }
    Advance();
    if (tok_.type == Tok::kLParen) return ParseCall(name, offset);
    return ParseSelector(std::move(name), offset);
  }

  bool ParseLabelList(std::vector<std::string>* out) {
    if (!Expect(Tok::kLParen, "\"(\"")) return false;
    while (tok_.type != Tok::kRParen) {
      if (tok_.type != Tok::kIdent || tok_.text.find(':') != std::string_view::npos) {
        Fail(tok_.begin, absl::StrCat("unexpected ", std::string(TokName(tok_)),
                                      " in grouping opts, expected label"));
        return false;
      }
      out->emplace_back(tok_.text);
      Advance();
      if (failed()) return false;
      if (tok_.type == Tok::kComma) {
        Advance();
      } else if (tok_.type != Tok::kRParen) {
        Fail(tok_.begin, absl::StrCat("unexpected ", std::string(TokName(tok_)),
                                      " in grouping opts, expected \")\" or \",\""));
        return false;
      }
      if (failed()) return false;
    }
    Advance();
    std::sort(out->begin(), out->end());
    out->erase(std::unique(out->begin(), out->end()), out->end());
    return !failed();
  }

  ExprPtr ParseAggregation(AggOp op) {
    auto e = std::make_shared<Expr>();
    e->kind = Expr::Kind::kAggregate;
    e->agg = op;
    e->offset = tok_.begin;
    e->type = ValueType::kVector;
    std::string name = Lower(tok_.text);
    Advance();
    bool grouped = false;
    auto modifier = [&]() -> bool {
      if (IsKeyword("by") || IsKeyword("without")) {
        if (grouped) {
          Fail(tok_.begin, "unexpected grouping, aggregation already has one");
          return false;
        }
        grouped = true;
        e->without = IsKeyword("without");
        Advance();
        return ParseLabelList(&e->grouping);
      }
      return true;
    };
    if (!modifier() || !Expect(Tok::kLParen, "\"(\"")) return nullptr;
    int arg_offset = tok_.begin;
    ExprPtr arg = ParseExpr(0);
    if (arg == nullptr) return nullptr;
    if (tok_.type == Tok::kComma) {
      return Fail(arg_offset, absl::StrCat("aggregation ", name, " takes no parameter"));
    }
    if (!Expect(Tok::kRParen, "\")\"") || !modifier()) return nullptr;
    if (arg->type != ValueType::kVector) {
      return Fail(arg->offset, absl::StrCat("expected type instant vector in aggregation "
                                            "expression, got ",
                                            std::string(TypeName(arg->type))));
    }
    e->depth = std::max(e->depth, 1 + arg->depth);
    e->args.push_back(std::move(arg));
    return e;
  }

  ExprPtr ParseCall(const std::string& name, int offset) {
    const FuncInfo* f = FindFunction(name);
    if (f == nullptr) return Fail(offset, absl::StrCat("unsupported: function ", name));
    auto e = std::make_shared<Expr>();
    e->kind = Expr::Kind::kCall;
    e->func = f->func;
    e->offset = offset;
    e->type = f->ret;
    Advance();  // "("
    while (!failed() && tok_.type != Tok::kRParen) {
      ExprPtr arg = ParseExpr(0);
      if (arg == nullptr) return nullptr;
      e->depth = std::max(e->depth, 1 + arg->depth);
      e->args.push_back(std::move(arg));
      if (tok_.type == Tok::kComma) {
        Advance();
        if (tok_.type == Tok::kRParen) {
          return Fail(tok_.begin, "unexpected \")\", expected expression");
        }
      } else if (tok_.type != Tok::kRParen) {
        return Fail(tok_.begin, absl::StrCat("unexpected ", std::string(TokName(tok_)),
                                             " in call, expected \",\" or \")\""));
      }
    }
    if (!Expect(Tok::kRParen, "\")\"")) return nullptr;
    size_t max_args = f->args.size();
    size_t min_args = max_args - f->optional;
    if (e->args.size() < min_args || e->args.size() > max_args) {
      std::string want =
          min_args == max_args ? absl::StrCat(max_args) : absl::StrCat(min_args, " to ", max_args);
      return Fail(offset, absl::StrCat("expected ", want, " argument(s) in call to \"", name,
                                       "\", got ", e->args.size()));
    }
    for (size_t i = 0; i < e->args.size(); ++i) {
      ValueType want = f->args[i];
      // As the engine does, parentheses around a range selector are dropped.
      while (want == ValueType::kMatrix && e->args[i]->kind == Expr::Kind::kParen) {
        e->args[i] = e->args[i]->lhs;
      }
      const Expr& a = *e->args[i];
      bool ok = a.type == want;
      // Prometheus wants the selector itself where a range vector is read.
      if (want == ValueType::kMatrix && a.kind != Expr::Kind::kMatrixSelector) ok = false;
      if (!ok) {
        return Fail(a.offset, absl::StrCat("expected type ", std::string(TypeName(want)),
                                           " in call to function \"", name, "\", got ",
                                           std::string(TypeName(a.type))));
      }
    }
    return e;
  }

  ExprPtr ParseSelector(std::string metric, int offset) {
    auto e = std::make_shared<Expr>();
    e->kind = Expr::Kind::kVectorSelector;
    e->type = ValueType::kVector;
    e->offset = offset;
    e->metric = std::move(metric);
    if (tok_.type != Tok::kLBrace) return e;
    Advance();
    while (!failed() && tok_.type != Tok::kRBrace) {
      if (tok_.type != Tok::kIdent || tok_.text.find(':') != std::string_view::npos) {
        return Fail(tok_.begin, absl::StrCat("unexpected ", std::string(TokName(tok_)),
                                             " in label matching, expected label"));
      }
      Matcher m;
      m.name = std::string(tok_.text);
      int name_offset = tok_.begin;
      Advance();
      switch (tok_.type) {
        case Tok::kAssign:
          m.op = Matcher::Op::kEq;
          break;
        case Tok::kNeq:
          m.op = Matcher::Op::kNeq;
          break;
        case Tok::kEqlRegex:
          m.op = Matcher::Op::kRe;
          break;
        case Tok::kNeqRegex:
          m.op = Matcher::Op::kNre;
          break;
        default:
          return Fail(tok_.begin, absl::StrCat("unexpected ", std::string(TokName(tok_)),
                                               " in label matching, expected label matching "
                                               "operator"));
      }
      Advance();
      if (failed()) return nullptr;
      if (tok_.type != Tok::kString) {
        return Fail(tok_.begin, absl::StrCat("unexpected ", std::string(TokName(tok_)),
                                             " in label matching, expected string"));
      }
      m.value = tok_.str;
      int value_offset = tok_.begin;
      Advance();
      if (m.op == Matcher::Op::kRe || m.op == Matcher::Op::kNre) {
        RE2::Options opts;
        opts.set_log_errors(false);
        RE2 plain(m.value, opts);  // for an error message about the user's text
        if (!plain.ok()) {
          return Fail(value_offset, absl::StrCat("invalid regular expression: ", plain.error()));
        }
        auto re = std::make_shared<RE2>(absl::StrCat("^(?:", m.value, ")$"), opts);
        if (!re->ok()) {
          return Fail(value_offset, absl::StrCat("invalid regular expression: ", re->error()));
        }
        m.re = std::move(re);
      }
      if (m.name == "__name__") return Fail(name_offset, "unsupported: matcher on __name__");
      e->matchers.push_back(std::move(m));
      if (failed()) return nullptr;
      if (tok_.type == Tok::kComma) {
        Advance();
      } else if (tok_.type != Tok::kRBrace) {
        return Fail(tok_.begin, absl::StrCat("unexpected ", std::string(TokName(tok_)),
                                             " in label matching, expected \",\" or \"}\""));
      }
    }
    if (!Expect(Tok::kRBrace, "\"}\"")) return nullptr;
    return e;
  }

  // Range, offset and @ after a primary expression.
  ExprPtr ParsePostfix(ExprPtr e) {
    bool offset_seen = false;
    while (e != nullptr && !failed()) {
      if (tok_.type == Tok::kLBracket) {
        int offset = tok_.begin;
        Advance();
        if (failed()) return nullptr;
        if (tok_.type == Tok::kColon) return Fail(offset, "unsupported: subquery");
        if (tok_.type != Tok::kDuration) {
          if (tok_.type == Tok::kNumber)
            return Fail(tok_.begin, "missing unit character in duration");
          return Fail(tok_.begin, absl::StrCat("unexpected ", std::string(TokName(tok_)),
                                               ", expected duration"));
        }
        int64_t range = tok_.dur_ms;
        Advance();
        if (tok_.type == Tok::kColon) return Fail(offset, "unsupported: subquery");
        if (!Expect(Tok::kRBracket, "\"]\"")) return nullptr;
        if (e->kind != Expr::Kind::kVectorSelector) {
          return Fail(offset, "ranges only allowed for vector selectors");
        }
        if (offset_seen) return Fail(offset, "no offset modifiers allowed before range");
        if (range <= 0) return Fail(offset, "range must be greater than 0");
        auto m = std::make_shared<Expr>(*e);
        m->kind = Expr::Kind::kMatrixSelector;
        m->type = ValueType::kMatrix;
        m->range_ms = range;
        e = std::move(m);
      } else if (IsKeyword("offset")) {
        int offset = tok_.begin;
        Advance();
        bool neg = false;
        if (tok_.type == Tok::kSub || tok_.type == Tok::kAdd) {
          neg = tok_.type == Tok::kSub;
          Advance();
        }
        if (failed()) return nullptr;
        if (tok_.type != Tok::kDuration) {
          return Fail(tok_.begin, absl::StrCat("unexpected ", std::string(TokName(tok_)),
                                               ", expected duration"));
        }
        int64_t d = tok_.dur_ms;
        Advance();
        if (e->kind != Expr::Kind::kVectorSelector && e->kind != Expr::Kind::kMatrixSelector) {
          return Fail(offset,
                      "offset modifier must be preceded by an instant vector selector or range "
                      "vector selector");
        }
        if (offset_seen) return Fail(offset, "offset may not be set multiple times");
        offset_seen = true;
        auto m = std::make_shared<Expr>(*e);
        m->offset_ms = neg ? -d : d;
        e = std::move(m);
      } else if (tok_.type == Tok::kAt) {
        return Fail(tok_.begin, "unsupported: @ modifier");
      } else {
        break;
      }
    }
    return failed() ? nullptr : e;
  }

  std::string_view text_;
  Lexer lex_;
  Token tok_;
  absl::Status err_;
  int depth_ = 0;  // ParseExpr calls in progress
};

void CollectReach(const Expr& e, std::vector<Reach>* out) {
  if (e.kind == Expr::Kind::kVectorSelector || e.kind == Expr::Kind::kMatrixSelector) {
    int64_t ms =
        (e.kind == Expr::Kind::kMatrixSelector ? e.range_ms : kLookbackDeltaMs) + e.offset_ms;
    for (Reach& r : *out) {
      if (r.metric == e.metric) {
        r.ms = std::max(r.ms, ms);
        return;
      }
    }
    out->push_back(Reach{e.metric, ms});
    return;
  }
  for (const ExprPtr& a : e.args) CollectReach(*a, out);
  if (e.lhs != nullptr) CollectReach(*e.lhs, out);
  if (e.rhs != nullptr) CollectReach(*e.rhs, out);
}

}  // namespace

absl::StatusOr<ExprPtr> Parse(std::string_view text) { return Parser(text).Run(); }

ValueType TypeOf(const Expr& e) { return e.type; }

std::vector<Reach> MetricReach(const Expr& e) {
  std::vector<Reach> out;
  CollectReach(e, &out);
  return out;
}

}  // namespace novapulse::promql
