#include "train/app/cli/cli.h"

#include <cerrno>
#include <cstdlib>
#include <iostream>
#include <sstream>

#include "tensor/errors.h"

namespace sx::cli {

std::map<std::string, Command>& registry() {
  static std::map<std::string, Command> r;
  return r;
}

Args& Args::flag(const std::string& name, const std::string& help) {
  opts_.push_back({name, "", help, true, false});
  return *this;
}
Args& Args::option(const std::string& name, const std::string& def, const std::string& help) {
  opts_.push_back({name, def, help, false, false});
  return *this;
}
Args& Args::required(const std::string& name, const std::string& help) {
  opts_.push_back({name, "", help, false, true});
  return *this;
}
Args& Args::positional(const std::string& name, const std::string& help, bool many) {
  pos_decl_.push_back({name, help});
  pos_many_ = pos_many_ || many;
  return *this;
}

const Args::Opt* Args::find(const std::string& name) const {
  for (const auto& o : opts_)
    if (o.name == name) return &o;
  return nullptr;
}

void Args::set_default(const std::string& name, const std::string& value) {
  for (auto& o : opts_)
    if (o.name == name) {
      if (o.is_flag) SX_THROW(ValueError, "internal: --", name, " is a flag and has no default value");
      o.def = value;
      return;
    }
  SX_THROW(ValueError, "internal: option --", name, " was not declared");
}

std::string Args::usage() const {
  std::ostringstream os;
  os << "usage: spinexr " << command_ << " [options]";
  for (const auto& p : pos_decl_) os << " " << p.first;
  os << "\n\n" << summary_ << "\n";
  if (!pos_decl_.empty()) {
    os << "\narguments:\n";
    for (const auto& p : pos_decl_) os << "  " << p.first << "\n      " << p.second << "\n";
  }
  os << "\noptions:\n";
  for (const auto& o : opts_) {
    os << "  --" << o.name << (o.is_flag ? "" : " VALUE");
    if (o.is_required) os << "   (required)";
    else if (!o.is_flag) os << "   (default: " << (o.def.empty() ? "none" : o.def) << ")";
    os << "\n      " << o.help << "\n";
  }
  os << "  --help\n      print this help and exit\n";
  return os.str();
}

bool Args::parse(int argc, char** argv) {
  for (int i = 0; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::cout << usage();
      return false;
    }
    if (a.rfind("--", 0) == 0) {
      std::string name = a.substr(2), value;
      bool has_value = false;
      auto eq = name.find('=');
      if (eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
        has_value = true;
      }
      const Opt* o = find(name);
      if (!o) SX_THROW(ValueError, "unknown option --", name, " (see spinexr ", command_, " --help)");
      if (o->is_flag) {
        if (has_value) SX_THROW(ValueError, "option --", name, " takes no value");
        values_[name] = "1";
        continue;
      }
      if (!has_value) {
        if (i + 1 >= argc) SX_THROW(ValueError, "option --", name, " needs a value");
        value = argv[++i];
      }
      values_[name] = value;
    } else {
      if (pos_decl_.empty() || (!pos_many_ && positional_values_.size() >= pos_decl_.size()))
        SX_THROW(ValueError, "unexpected argument '", a, "' (see spinexr ", command_, " --help)");
      positional_values_.push_back(a);
    }
  }
  for (const auto& o : opts_)
    if (o.is_required && !values_.count(o.name))
      SX_THROW(ValueError, "missing required option --", o.name, " (see spinexr ", command_, " --help)");
  return true;
}

bool Args::has(const std::string& name) const { return values_.count(name) > 0; }

std::string Args::get(const std::string& name) const {
  auto it = values_.find(name);
  if (it != values_.end()) return it->second;
  const Opt* o = find(name);
  if (!o) SX_THROW(ValueError, "internal: option --", name, " was not declared");
  return o->def;
}

int64_t Args::get_int(const std::string& name) const {
  std::string s = get(name);
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || errno == ERANGE)
    SX_THROW(ValueError, "option --", name, ": expected an integer, got '", s, "'");
  return v;
}

double Args::get_double(const std::string& name) const {
  std::string s = get(name);
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (s.empty() || *end != '\0' || errno == ERANGE)
    SX_THROW(ValueError, "option --", name, ": expected a number, got '", s, "'");
  return v;
}

}  // namespace sx::cli
