// spinexr: the command-line program. Dispatches to the registered subcommands.
#include <exception>
#include <iostream>

#include "train/app/cli/cli.h"

int main(int argc, char** argv) {
  auto& reg = sx::cli::registry();
  auto print_help = [&] {
    std::cout << "usage: spinexr COMMAND [options]   (spinexr COMMAND --help for its options)\n\n"
                 "commands:\n";
    for (const auto& [name, c] : reg) std::cout << "  " << name << std::string(name.size() < 12 ? 12 - name.size() : 1, ' ') << c.summary << "\n";
  };
  if (argc < 2) {
    print_help();
    return 2;
  }
  std::string cmd = argv[1];
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    print_help();
    return 0;
  }
  auto it = reg.find(cmd);
  if (it == reg.end()) {
    std::cerr << "spinexr: error: unknown command '" << cmd << "' (spinexr --help lists them)\n";
    return 2;
  }
  try {
    return it->second.run(argc - 2, argv + 2);
  } catch (const std::exception& e) {
    std::cerr << "spinexr " << cmd << ": error: " << e.what() << "\n";
    return 1;
  }
}
