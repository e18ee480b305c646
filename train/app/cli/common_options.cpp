#include "train/app/cli/common_options.h"

#include <omp.h>

#include <cstdio>
#include <filesystem>

#include "layers/batchnorm.h"
#include "tensor/errors.h"
#ifdef SX_WITH_CUDA
#include "tensor/cuda_context.h"
#endif

namespace sx::cli {

Args& add_run_options(Args& args, const std::string& quiet_help) {
  args.option("device", "cpu", "cpu | cuda | cuda:N")
      .option("threads", "0", "CPU threads (0: OpenMP's default)")
      .option("workers", "2", "data loading threads")
      .flag("skip-bad-rows", "skip (and count) bad annotation rows instead of stopping");
  return add_allow_missing_option(args).flag("quiet", quiet_help);
}

Args& add_allow_missing_option(Args& args, const std::string& where) {
  return args.flag("allow-missing", "leave out listed images whose file is absent (a partial download) instead of\n"
                                    "      stopping; the full list goes to " + where + "/missing.txt either way");
}

void check_missing_images(const io::Dataset& ds, const std::string& dir, const Args& args) {
  if (ds.missing().empty()) return;
  std::filesystem::create_directories(dir);
  print_missing_note(io::check_missing_images(ds, dir + "/missing.txt", args.get_flag("allow-missing")), dir);
}

void print_missing_note(const std::string& note, const std::string& dir) {
  if (note.empty()) return;
  std::printf("note: %s; left out (--allow-missing), full list in %s/missing.txt\n", note.c_str(), dir.c_str());
  std::fflush(stdout);
}

void apply_threads_option(const Args& args) {
  if (args.get_int("threads") > 0) omp_set_num_threads(static_cast<int>(args.get_int("threads")));
}

Args& add_precision_options(Args& args) {
  return args
      .option("precision", "tf32",
              "fp32 | tf32: float32 convolutions and matmuls on CUDA use TF32 tensor cores (tf32, PyTorch's cuDNN "
              "default) or full float32 FMA (fp32); the CPU always computes in float32")
      .flag("cudnn-benchmark",
            "time cuDNN's convolution algorithms once per new input shape (like torch.backends.cudnn.benchmark); "
            "default: cuDNN's heuristic choice, better when shapes change every batch");
}

void apply_precision_options(const Args& args) {
  const std::string prec = args.get("precision");
  SX_CHECK(prec == "fp32" || prec == "tf32", "--precision must be fp32 or tf32, got '", prec, "'");
#ifdef SX_WITH_CUDA
  sx::cuda::set_allow_tf32(prec == "tf32");
  sx::cuda::set_cudnn_benchmark(args.get_flag("cudnn-benchmark"));
#endif
}

Args& add_cost_probe_options(Args& args) {
  return args
      .option("probe-steps", "5",
              "time the first N steps and print the estimated time per epoch and for the run, and the peak\n"
              "      memory against the device's (0: off; on CUDA a batch that would not fit is refused)")
      .flag("dry-run", "stop after the cost probe, writing nothing");
}

void apply_cost_probe_options(const Args& args, train::LoopConfig& cfg) {
  cfg.probe_steps = args.get_int("probe-steps");
  cfg.dry_run = args.get_flag("dry-run");
}

Args& add_dist_options(Args& args) {
  return args
      .option("dist", "auto",
              "auto | off: data-parallel training when started by mpirun/srun (one process per GPU, or per\n"
              "      CPU share), gradients averaged across the ranks; off: this process trains alone")
      .option("dist-timeout", "300",
              "seconds a rank waits in a collective before it stops with an error naming the cause (a rank\n"
              "      that died or hangs)")
      .option("zero", "0",
              "0 | 1: with several ranks, 1 shards the optimizer state across them (ZeRO stage 1: each rank\n"
              "      keeps and updates its part, parameters broadcast after the step; checkpoints hold it all)")
      .flag("sync-bn",
            "with several ranks, BatchNorm normalises with the statistics of all ranks' batches together\n"
            "      (torch's SyncBatchNorm); without it each rank uses its own batch's. One rank: no change");
}

void apply_sync_bn(const Args& args, dist::ProcessGroup& group, nn::Module& model, train::Metadata& config,
                   const std::string& who) {
  if (!args.get_flag("sync-bn")) return;
  const int layers = nn::convert_sync_batchnorm(model, group);
  config["sync_bn"] = "1";
  if (group.rank() != 0) return;
  if (layers == 0)
    std::fprintf(stderr, "%s: --sync-bn has no effect: the model has no BatchNorm layer (the detectors' default "
                 "--norm frozen has no statistics to synchronise; --norm batchnorm trains BatchNorm)\n", who.c_str());
  else if (group.size() == 1)
    std::fprintf(stderr, "%s: --sync-bn with one rank: BatchNorm as usual\n", who.c_str());
  else
    std::fprintf(stderr, "%s: --sync-bn: %d BatchNorm layers normalise with the statistics of all %d ranks\n",
                 who.c_str(), layers, group.size());
}

std::shared_ptr<dist::ProcessGroup> start_dist(const Args& args, Device& device) {
  auto g = dist::init_process_group(args.get("dist"), args.get_double("dist-timeout"), device);
  device = dist::rank_device(*g, device);
  return g;
}

void apply_dist(const dist::ProcessGroup& group, io::LoaderOptions& train_loader, train::Metadata& config, double lr,
                const std::string& who) {
  if (group.size() == 1) return;
  train_loader.shard_rank = group.rank();
  train_loader.shard_count = group.size();
  config["world_size"] = std::to_string(group.size());
  config["batch_per_rank"] = std::to_string(train_loader.batch_size);
  if (group.rank() != 0) return;
  std::fprintf(stderr,
               "%s: data parallel on %d ranks (%s): %d images per rank x %d = effective batch %d; lr %g as given "
               "(no automatic linear scaling: scale it with the effective batch yourself)\n",
               who.c_str(), group.size(), group.backend().c_str(), train_loader.batch_size, group.size(),
               train_loader.batch_size * group.size(), lr);
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
