// The spinexr command line: one program, one subcommand per file (train/cli/cmd_*.cpp).
//
// A subcommand registers itself with a static Registrar; main() dispatches on argv[1]. Options are
// declared with their defaults so that `spinexr CMD --help` lists every option and its default.
// Subcommands throw on error; main() catches, prints one line "spinexr CMD: error: ..." and exits 1.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace sx::cli {

class Args {
 public:
  Args(std::string command, std::string summary) : command_(std::move(command)), summary_(std::move(summary)) {}
  // Declare options before parse(). Flags take no value; options take one (--name VALUE or --name=VALUE).
  Args& flag(const std::string& name, const std::string& help);
  Args& option(const std::string& name, const std::string& default_value, const std::string& help);
  Args& required(const std::string& name, const std::string& help);
  // Positional arguments ("FILE..."): collected in order.
  Args& positional(const std::string& name, const std::string& help, bool many = false);
  // Parses argv (without the program and command names). Returns false when --help was printed.
  // Throws ValueError on an unknown option, a missing value or a missing required option.
  bool parse(int argc, char** argv);

  bool has(const std::string& name) const;  // flag given, or option given explicitly
  std::string get(const std::string& name) const;
  int64_t get_int(const std::string& name) const;     // throws ValueError naming the option
  double get_double(const std::string& name) const;
  bool get_flag(const std::string& name) const { return has(name); }
  // Replaces an option's default after parse() (a preset: train/app/cli/presets.h). A value given on
  // the command line still wins, and has() stays false. ValueError for an undeclared option or a flag.
  void set_default(const std::string& name, const std::string& value);
  const std::vector<std::string>& positionals() const { return positional_values_; }
  std::string usage() const;

 private:
  struct Opt {
    std::string name, def, help;
    bool is_flag = false, is_required = false;
  };
  std::string command_, summary_;
  std::vector<Opt> opts_;
  std::vector<std::pair<std::string, std::string>> pos_decl_;
  bool pos_many_ = false;
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_values_;
  const Opt* find(const std::string& name) const;
};

using CommandFn = std::function<int(int argc, char** argv)>;
struct Command {
  std::string name, summary;
  CommandFn run;
};
std::map<std::string, Command>& registry();

struct Registrar {
  Registrar(const std::string& name, const std::string& summary, CommandFn fn) {
    registry()[name] = Command{name, summary, std::move(fn)};
  }
};

}  // namespace sx::cli
