// Command-line glue shared by the evaluation commands (eval-cls, eval-det, eval): the options they
// all end with (--device --threads --workers --skip-bad-rows --quiet), the --split check and the
// default output folder next to the checkpoint.
#pragma once
#include <string>

#include "io/dataset.h"
#include "train/app/cli/cli.h"
#include "train/loop/loop.h"

namespace sx::cli {

// Declares --device (cpu), --threads (0), --workers (2), --skip-bad-rows, --allow-missing and
// --quiet (help `quiet_help`), in that order.
Args& add_run_options(Args& args, const std::string& quiet_help = "no progress bar");
// Declares --allow-missing: listed images whose file is absent (a partial download) are left out
// instead of stopping the command; the list goes to `where`/missing.txt either way.
Args& add_allow_missing_option(Args& args, const std::string& where = "OUT");
// After io::Dataset::open with allow_missing: with images missing, writes the full list to
// DIR/missing.txt and throws (one line: how many, the first few, the list), or with
// --allow-missing prints that line as a note.
void check_missing_images(const io::Dataset& ds, const std::string& dir, const Args& args);
// The note open_cls_data returns (when not empty) on stdout.
void print_missing_note(const std::string& note, const std::string& dir);
// After parsing: --threads > 0 sets OpenMP's thread count.
void apply_threads_option(const Args& args);
// Declares --precision (tf32) and --cudnn-benchmark: how float32 convolutions and matmuls run on CUDA.
Args& add_precision_options(Args& args);
// After parsing: applies them (ValueError for an unknown --precision). No effect on the CPU, which
// always computes in full float32.
void apply_precision_options(const Args& args);
// Declares --probe-steps (5) and --dry-run: the training commands' cost probe (train/loop/cost_probe.h).
Args& add_cost_probe_options(Args& args);
// Reads them into the loop's settings (a dry run with --probe-steps 0 is refused by the loop).
void apply_cost_probe_options(const Args& args, train::LoopConfig& cfg);
// Declares --dist (auto), --dist-timeout (300), --zero and --sync-bn: data-parallel training
// (docs/distributed.md).
Args& add_dist_options(Args& args);
// --sync-bn: every BatchNorm2d of `model` synchronises its statistics across the ranks
// (nn::convert_sync_batchnorm; every rank calls this at the same point), recorded as config sync_bn.
// Rank 0 says what it did; a model without BatchNorm2d (a detector with the default frozen norm)
// gets one line saying the option has no effect.
void apply_sync_bn(const Args& args, dist::ProcessGroup& group, nn::Module& model, train::Metadata& config,
                   const std::string& who);
// Starts the process group (tensor/dist/process_group.h) for --device; with several ranks and a CUDA
// device, `device` becomes cuda:LOCAL_RANK (one process per GPU).
std::shared_ptr<dist::ProcessGroup> start_dist(const Args& args, Device& device);
// With several ranks: shards the training loader (io::shard_batches), records world_size and
// batch_per_rank in `config`, and prints (rank 0) the effective batch and the learning-rate rule.
void apply_dist(const dist::ProcessGroup& group, io::LoaderOptions& train_loader, train::Metadata& config, double lr,
                const std::string& who);
// ValueError unless the split is "test" or "train".
void check_eval_split(const std::string& split);
// --out, or when it is empty <checkpoint folder>/<folder_name> ("." when the checkpoint path has no
// folder); the folder is created.
std::string eval_out_dir(const Args& args, const std::string& ckpt, const std::string& folder_name);

}  // namespace sx::cli
