// ArgParser: the small command-line parser every novapulse command uses.
// Flags take "--flag value" or "--flag=value"; "--" ends flags; -h/--help
// prints the command's usage and stops. Errors name the flag and exit 2.
//
//   ArgParser args(argc, argv, kUsage);
//   while (args.Next()) {
//     if (args.Is("--threads")) n = args.Int(1, 64);
//     else if (args.IsPositional()) files.push_back(args.Positional());
//     else return args.UnknownFlag();
//     if (args.failed()) return args.exit_code();
//   }
//   if (args.help()) return 0;
#ifndef NOVAPULSE_BASE_CLI_H_
#define NOVAPULSE_BASE_CLI_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace novapulse {

class ArgParser {
 public:
  ArgParser(int argc, char** argv, std::string_view usage);

  // Advances to the next argument; false when done (or after --help/error).
  bool Next();
  bool Is(std::string_view flag) const { return !positional_ && name_ == flag; }
  // A flag that takes no value: "--flag=x" is a usage error.
  bool IsSwitch(std::string_view flag);
  bool IsPositional() const { return positional_; }
  std::string_view Positional() const { return current_; }

  // The flag's value; on a missing value records the error and returns "".
  std::string Value();
  int64_t Int(int64_t min, int64_t max);
  double Double(double min, double max);

  int UnknownFlag();
  int Fail(std::string_view message);
  bool failed() const { return failed_; }
  bool help() const { return help_; }
  int exit_code() const { return failed_ ? 2 : 0; }

 private:
  int argc_;
  char** argv_;
  std::string_view usage_;
  std::string command_;
  int pos_ = 1;
  bool positional_ = false;
  bool only_positional_ = false;
  std::string_view current_;
  std::string_view name_;
  std::string_view inline_value_;
  bool has_inline_value_ = false;
  bool failed_ = false;
  bool help_ = false;
};

}  // namespace novapulse

#endif  // NOVAPULSE_BASE_CLI_H_
