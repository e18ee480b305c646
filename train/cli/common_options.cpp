#include "train/cli/common_options.h"

#include <omp.h>

#include <filesystem>

#include "tensor/errors.h"

namespace sx::cli {

Args& add_run_options(Args& args, const std::string& quiet_help) {
  return args.option("device", "cpu", "cpu | cuda | cuda:N")
      .option("threads", "0", "CPU threads (0: OpenMP's default)")
      .option("workers", "2", "data loading threads")
      .flag("skip-bad-rows", "skip (and count) bad annotation rows instead of stopping")
      .flag("quiet", quiet_help);
}

void apply_threads_option(const Args& args) {
  if (args.get_int("threads") > 0) omp_set_num_threads(static_cast<int>(args.get_int("threads")));
}

void check_eval_split(const std::string& split) {
  SX_CHECK(split == "test" || split == "train", "--split must be test or train, got '", split, "'");
}

std::string eval_out_dir(const Args& args, const std::string& ckpt, const std::string& folder_name) {
  std::string out = args.get("out");
  if (out.empty()) {
    std::filesystem::path p(ckpt);
    out = (p.has_parent_path() ? p.parent_path() : std::filesystem::path(".")).string() + "/" + folder_name;
  }
  std::filesystem::create_directories(out);
  return out;
}

}  // namespace sx::cli
