#include "base/cli.h"

#include <cstdio>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace novapulse {

ArgParser::ArgParser(int argc, char** argv, std::string_view usage)
    : argc_(argc), argv_(argv), usage_(usage), command_(argc > 0 ? argv[0] : "") {}

bool ArgParser::Next() {
  if (failed_ || help_ || pos_ >= argc_) return false;
  current_ = argv_[pos_++];
  has_inline_value_ = false;
  positional_ = only_positional_ || current_.size() < 2 || current_[0] != '-';
  if (positional_) return true;
  if (current_ == "--") {
    only_positional_ = true;
    return Next();
  }
  name_ = current_;
  if (const size_t eq = current_.find('='); eq != std::string_view::npos && current_[1] == '-') {
    name_ = current_.substr(0, eq);
    inline_value_ = current_.substr(eq + 1);
    has_inline_value_ = true;
  }
  if (name_ == "-h" || name_ == "--help") {
    std::fwrite(usage_.data(), 1, usage_.size(), stdout);
    help_ = true;
    return false;
  }
  return true;
}

bool ArgParser::IsSwitch(std::string_view flag) {
  if (!Is(flag)) return false;
  if (has_inline_value_) Fail(std::string(name_) + " takes no value");
  return true;
}

std::string ArgParser::Value() {
  if (has_inline_value_) return std::string(inline_value_);
  if (pos_ >= argc_) {
    Fail(std::string(name_) + " needs a value");
    return "";
  }
  return argv_[pos_++];
}

int64_t ArgParser::Int(int64_t min, int64_t max) {
  const std::string flag(name_);
  const std::string text = Value();
  if (failed_) return min;
  int64_t v;
  if (!absl::SimpleAtoi(text, &v) || v < min || v > max) {
    Fail(absl::StrCat(flag, ": '", text, "' is not an integer in [", min, ", ", max, "]"));
    return min;
  }
  return v;
}

double ArgParser::Double(double min, double max) {
  const std::string flag(name_);
  const std::string text = Value();
  if (failed_) return min;
  double v;
  if (!absl::SimpleAtod(text, &v) || !(v >= min && v <= max)) {
    Fail(absl::StrCat(flag, ": '", text, "' is not a number in [", min, ", ", max, "]"));
    return min;
  }
  return v;
}

int ArgParser::UnknownFlag() { return Fail("unknown option " + std::string(current_)); }

int ArgParser::Fail(std::string_view message) {
  if (!failed_) {
    std::fprintf(stderr, "novapulse %s: %.*s\nTry 'novapulse %s --help'.\n", command_.c_str(),
                 static_cast<int>(message.size()), message.data(), command_.c_str());
  }
  failed_ = true;
  return 2;
}

}  // namespace novapulse
