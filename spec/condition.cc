#include "spec/condition.h"

#include <re2/re2.h>

#include <algorithm>
#include <cctype>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/str_cat.h"

namespace novapulse::spec {
namespace {

// Deeper nesting than this is refused: a condition is a line or two of YAML.
constexpr int kMaxDepth = 32;

struct Token {
  enum class Kind : uint8_t {
    kEnd,
    kWord,
    kString,
    kNumber,
    kOp,
    kLParen,
    kRParen,
    kLBracket,
    kRBracket,
    kComma
  };
  Kind kind = Kind::kEnd;
  std::string text;  // the word, the operator, or the unescaped string
  double number = 0;
  size_t column = 0;  // 1-based
};

class Parser {
 public:
  Parser(std::string_view text, const FieldResolver& resolve) : text_(text), resolve_(resolve) {}

  absl::StatusOr<Condition> Parse() {
    if (!Next()) return Fail();
    if (tok_.kind == Token::Kind::kEnd) return Error(tok_.column, "empty condition");
    Condition c;
    if (!Or(&c, 0)) return Fail();
    if (tok_.kind != Token::Kind::kEnd) {
      return Error(tok_.column, Cat("unexpected ", Shown(tok_), " (want 'and', 'or' or the end)"));
    }
    return c;
  }

 private:
  absl::Status Fail() const { return absl::InvalidArgumentError(error_); }
  absl::Status Error(size_t column, std::string_view message) {
    error_ = Cat(column, ": ", message);
    return Fail();
  }
  bool Set(size_t column, std::string_view message) {
    if (error_.empty()) error_ = Cat(column, ": ", message);
    return false;
  }

  static std::string Shown(const Token& t) {
    switch (t.kind) {
      case Token::Kind::kEnd:
        return "end of condition";
      case Token::Kind::kString:
        return Cat("string \"", t.text, "\"");
      default:
        return Cat("'", t.text, "'");
    }
  }

  // Reads the next token into tok_.
  bool Next() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_]))) ++pos_;
    tok_ = Token{};
    tok_.column = pos_ + 1;
    if (pos_ >= text_.size()) return true;
    const char c = text_[pos_];
    auto single = [&](Token::Kind kind) {
      tok_.kind = kind;
      tok_.text = std::string(1, c);
      ++pos_;
      return true;
    };
    switch (c) {
      case '(':
        return single(Token::Kind::kLParen);
      case ')':
        return single(Token::Kind::kRParen);
      case '[':
        return single(Token::Kind::kLBracket);
      case ']':
        return single(Token::Kind::kRBracket);
      case ',':
        return single(Token::Kind::kComma);
      case '"':
        return String();
      default:
        break;
    }
    for (std::string_view op : {"==", "!=", "<=", ">=", "=~", "!~", "<", ">"}) {
      if (text_.substr(pos_).starts_with(op)) {
        tok_.kind = Token::Kind::kOp;
        tok_.text = std::string(op);
        pos_ += op.size();
        return true;
      }
    }
    if (c == '-' || c == '+' || c == '.' || std::isdigit(static_cast<unsigned char>(c))) {
      size_t end = pos_ + 1;
      while (end < text_.size() && (std::isalnum(static_cast<unsigned char>(text_[end])) ||
                                    text_[end] == '.' || text_[end] == '_' ||
                                    ((text_[end] == '-' || text_[end] == '+') &&
                                     (text_[end - 1] == 'e' || text_[end - 1] == 'E')))) {
        ++end;
      }
      const std::string_view word = text_.substr(pos_, end - pos_);
      if (!absl::SimpleAtod(Av(word), &tok_.number) || !std::isfinite(tok_.number)) {
        return Set(tok_.column, Cat("bad number '", word, "'"));
      }
      tok_.kind = Token::Kind::kNumber;
      tok_.text = std::string(word);
      pos_ = end;
      return true;
    }
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t end = pos_ + 1;
      while (end < text_.size() &&
             (std::isalnum(static_cast<unsigned char>(text_[end])) || text_[end] == '_')) {
        ++end;
      }
      tok_.kind = Token::Kind::kWord;
      tok_.text = std::string(text_.substr(pos_, end - pos_));
      pos_ = end;
      return true;
    }
    return Set(tok_.column, Cat("unexpected character '", std::string_view(&c, 1), "'"));
  }

  bool String() {
    ++pos_;  // the opening quote
    std::string out;
    while (pos_ < text_.size() && text_[pos_] != '"') {
      if (text_[pos_] == '\\') {
        if (pos_ + 1 >= text_.size() || (text_[pos_ + 1] != '"' && text_[pos_ + 1] != '\\')) {
          return Set(pos_ + 1, "bad escape in string (only \\\" and \\\\)");
        }
        ++pos_;
      }
      out += text_[pos_++];
    }
    if (pos_ >= text_.size()) return Set(tok_.column, "unterminated string");
    ++pos_;
    tok_.kind = Token::Kind::kString;
    tok_.text = std::move(out);
    return true;
  }

  bool IsWord(std::string_view word) const {
    return tok_.kind == Token::Kind::kWord && tok_.text == word;
  }

  bool Or(Condition* out, int depth) {
    if (depth > kMaxDepth) return Set(tok_.column, "condition nested too deeply");
    Condition first;
    if (!And(&first, depth)) return false;
    if (!IsWord("or")) {
      *out = std::move(first);
      return true;
    }
    out->op = Condition::Op::kOr;
    out->children.push_back(std::move(first));
    while (IsWord("or")) {
      if (!Next()) return false;
      Condition next;
      if (!And(&next, depth)) return false;
      out->children.push_back(std::move(next));
    }
    return true;
  }

  bool And(Condition* out, int depth) {
    Condition first;
    if (!Unary(&first, depth)) return false;
    if (!IsWord("and")) {
      *out = std::move(first);
      return true;
    }
    out->op = Condition::Op::kAnd;
    out->children.push_back(std::move(first));
    while (IsWord("and")) {
      if (!Next()) return false;
      Condition next;
      if (!Unary(&next, depth)) return false;
      out->children.push_back(std::move(next));
    }
    return true;
  }

  bool Unary(Condition* out, int depth) {
    if (depth > kMaxDepth) return Set(tok_.column, "condition nested too deeply");
    if (IsWord("not")) {
      if (!Next()) return false;
      out->op = Condition::Op::kNot;
      out->children.emplace_back();
      return Unary(&out->children.back(), depth + 1);
    }
    if (tok_.kind == Token::Kind::kLParen) {
      const size_t open = tok_.column;
      if (!Next() || !Or(out, depth + 1)) return false;
      if (tok_.kind != Token::Kind::kRParen) {
        return Set(tok_.column,
                   Cat("expected ')' to close the '(' at column ", open, ", got ", Shown(tok_)));
      }
      return Next();
    }
    return Leaf(out);
  }

  bool Leaf(Condition* out) {
    if (tok_.kind != Token::Kind::kWord || IsWord("and") || IsWord("or") || IsWord("in") ||
        IsWord("exists")) {
      return Set(tok_.column, Cat("expected a field name, 'not' or '(', got ", Shown(tok_)));
    }
    const size_t field_column = tok_.column;
    out->field = resolve_(tok_.text);
    if (out->field < 0) return Set(field_column, Cat("unknown field '", tok_.text, "'"));
    if (!Next()) return false;
    if (IsWord("exists")) {
      out->op = Condition::Op::kExists;
      return Next();
    }
    if (IsWord("in") || IsWord("not")) {
      out->op = IsWord("in") ? Condition::Op::kIn : Condition::Op::kNotIn;
      if (IsWord("not")) {
        if (!Next()) return false;
        if (!IsWord("in"))
          return Set(tok_.column, Cat("expected 'in' after 'not', got ", Shown(tok_)));
      }
      return Next() && List(out);
    }
    if (tok_.kind != Token::Kind::kOp) {
      return Set(tok_.column,
                 Cat("expected an operator (==, !=, <, <=, >, >=, =~, !~, in, not in, exists) "
                     "after the field, got ",
                     Shown(tok_)));
    }
    const std::string op = tok_.text;
    if (!Next()) return false;
    if (op == "=~" || op == "!~") {
      out->op = op == "=~" ? Condition::Op::kMatch : Condition::Op::kNotMatch;
      if (tok_.kind != Token::Kind::kString) {
        return Set(tok_.column, Cat("expected a quoted regular expression, got ", Shown(tok_)));
      }
      auto re = std::make_shared<re2::RE2>(Cat("^(?:", tok_.text, ")$"), re2::RE2::Quiet);
      if (!re->ok()) {
        return Set(tok_.column, Cat("bad regular expression \"", tok_.text, "\": ", re->error()));
      }
      out->regex = std::move(re);
      out->literals.push_back(Literal{Literal::Kind::kString, tok_.text, 0});
      return Next();
    }
    static constexpr std::pair<std::string_view, Condition::Op> kOps[] = {
        {"==", Condition::Op::kEq}, {"!=", Condition::Op::kNe}, {"<", Condition::Op::kLt},
        {"<=", Condition::Op::kLe}, {">", Condition::Op::kGt},  {">=", Condition::Op::kGe}};
    for (const auto& [name, value] : kOps) {
      if (name == op) out->op = value;
    }
    out->literals.emplace_back();
    return LiteralValue(&out->literals.back()) && Next();
  }

  bool List(Condition* out) {
    if (tok_.kind != Token::Kind::kLBracket) {
      return Set(tok_.column, Cat("expected '[' to start the list, got ", Shown(tok_)));
    }
    if (!Next()) return false;
    while (true) {
      out->literals.emplace_back();
      if (!LiteralValue(&out->literals.back()) || !Next()) return false;
      if (tok_.kind == Token::Kind::kRBracket) return Next();
      if (tok_.kind != Token::Kind::kComma) {
        return Set(tok_.column, Cat("expected ',' or ']' in the list, got ", Shown(tok_)));
      }
      if (!Next()) return false;
    }
  }

  // The current token as a literal (does not advance).
  bool LiteralValue(Literal* out) {
    switch (tok_.kind) {
      case Token::Kind::kString:
        out->kind = Literal::Kind::kString;
        out->text = tok_.text;
        return true;
      case Token::Kind::kNumber:
        out->kind = Literal::Kind::kNumber;
        out->number = tok_.number;
        out->text = tok_.text;
        return true;
      case Token::Kind::kWord:
        if (tok_.text == "true" || tok_.text == "false") {
          out->kind = Literal::Kind::kBool;
          out->number = tok_.text == "true" ? 1 : 0;
          out->text = tok_.text;
          return true;
        }
        return Set(tok_.column, Cat("expected a value (a quoted string, a number, true or "
                                    "false), got ",
                                    Shown(tok_), "; strings need double quotes"));
      default:
        return Set(
            tok_.column,
            Cat("expected a value (a quoted string, a number, true or false), got ", Shown(tok_)));
    }
  }

  std::string_view text_;
  const FieldResolver& resolve_;
  size_t pos_ = 0;
  Token tok_;
  std::string error_;
};

}  // namespace

void Condition::Fields(std::vector<int>* out) const {
  if (field >= 0 && std::find(out->begin(), out->end(), field) == out->end()) {
    out->push_back(field);
  }
  for (const Condition& c : children) c.Fields(out);
}

absl::StatusOr<Condition> ParseCondition(std::string_view text, const FieldResolver& resolve) {
  return Parser(text, resolve).Parse();
}

}  // namespace novapulse::spec
