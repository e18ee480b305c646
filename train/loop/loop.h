// The one training loop. Every model trains through it: the classifier (train/tasks/cls_train.h), the
// detectors (train/tasks/det_train.h) and the models and distributed trainer still to come. A Task says
// what is particular to a model: how a batch is made and what its losses are, how the model is
// validated, which checkpoint is the best, and what the run records. The loop does everything
// else, the same way for every task.
//
// One step, in order:
//   lr = schedule(step) -> task.step(): forward and the loss terms -> one host read of the total
//   and of every term together (the step's only host sync: NaN check, progress line, epoch means)
//   -> non-finite total? stop naming the step, or skip the step (nan_policy "skip", at most
//   max_nan_skips) -> backward -> clipping by value (clip_value > 0), then by global norm
//   (clip_norm > 0) -> optimizer step ->
//   gradients dropped -> step += 1
// After each step (the hooks, in this order): a periodic checkpoint (every ckpt_every steps); the
// stop signal (SIGINT/SIGTERM, train/loop/signals.h: checkpoint, exit code 130/143); max_steps
// (checkpoint and return). At each epoch end: precise BN (train/loop/precise_bn.h: BatchNorm statistics
// recomputed with the epoch's final weights, before anything evaluates or saves them), validation
// (every val_every epochs and after the last), the best and last checkpoints, and the run files.
//
// The run folder (out_dir):
//   ckpt-<step>.safetensors (last K), last.safetensors, best.safetensors   (train/loop/checkpoint.h)
//   metrics.json  the latest validation, the best so far, the config, the per-epoch history (atomic)
//   history.csv   epoch,step,train_loss,<loss terms>,lr,seconds,<the task's validation columns>
//   train.log     one line per event, appended (a resumed run continues it)
//   loss.png      the training loss and the task's validation metric per epoch
// Data parallelism (LoopConfig::group, docs/distributed.md) enters here and nowhere else: identical
// initial weights (broadcast from rank 0), gradient buckets all-reduced during backward, losses
// averaged across the ranks before the NaN check (so every rank takes the same decision), stop
// signals agreed on (SIGINT on any rank: rank 0 checkpoints once, all stop), rank-0 writes. A rank
// whose step throws tells the others (ProcessGroup::report_failure), which stop naming it.
// Validation is sharded by the task (each rank predicts its strided share of the validation batches,
// the predictions are gathered, every rank computes the metrics of the whole set: those of one
// process); rank 0 records them. A resumed run
// must have the world size of the checkpoint (metadata "world_size"); another one is refused.
// ZeRO-1 (LoopConfig::zero = 1, train/loop/zero.h): around the optimizer step each rank drops the
// gradients it does not own, steps its shard, and the parameters are broadcast from their owners;
// saves gather the whole optimizer state first.
//
// With resume the loop continues from out_dir/last.safetensors (weights, optimizer state, RNG
// state, position in the epoch, best so far) and history.csv. A task's batches are a function of
// (seed, epoch, position), so on the CPU a resumed run is bit-identical to an uninterrupted one.
//
// The cost probe (cost_probe.h): with probe_steps > 0 the first steps of the call are timed and the
// estimate printed (and logged); on CUDA a batch that would not fit is refused there. With dry_run
// the loop returns after the probe and writes nothing.
//
// The learning-rate schedule spans epochs x steps_per_epoch() steps; max_steps only stops the run
// early (a resumed run continues the same schedule).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/json.h"
#include "layers/module.h"
#include "tensor/device.h"
#include "tensor/dist/process_group.h"
#include "tensor/errors.h"
#include "tensor/tensor.h"
#include "train/loop/checkpoint.h"
#include "train/loop/cost_probe.h"

namespace sx::train {

// The settings every task shares (the command line's training options).
struct LoopConfig {
  std::string who = "train";  // prefix of errors and the name in messages ("train", "train-det")
  int64_t epochs = 10;
  double lr = 0.01;
  std::string optimizer = "sgd";  // sgd | adamw
  double momentum = 0.9;
  bool nesterov = false;
  double weight_decay = 1e-4;
  bool no_decay_norm_bias = true;  // weight decay 0 on 1-D tensors (biases, norm weights)
  std::string schedule = "cosine";  // cosine | multistep | constant
  int64_t warmup_steps = 0;
  std::string milestones = "0.67,0.89";
  double clip_norm = 0;             // clip gradients to this global 2-norm (0: off)
  double clip_value = 0;            // clip each gradient element to [-v, v] (0: off; before clip_norm)
  int64_t val_every = 1;            // validate every N epochs (and after the last)
  int64_t ckpt_every = 0;           // also checkpoint every N steps (0: epoch ends only)
  int keep_last = 3;
  std::string nan_policy = "stop";  // stop | skip
  int64_t max_nan_skips = 20;       // skip: stop after this many skipped steps
  int64_t max_steps = 0;            // > 0: stop (with a checkpoint) after this many steps in total
  int64_t precise_bn_batches = 0;   // 0: off
  uint64_t seed = 0;                // the run's seed (the tasks use it; the loop draws nothing)
  Device device = Device::cpu();
  std::string out_dir;
  bool progress = true;             // progress bar and epoch lines on stderr
  Metadata config;                  // the caller's settings, shown in the log's start line
  // The cost probe (train/loop/cost_probe.h): time the first probe_steps steps of this call and
  // print the estimated time per epoch and for the run, and the peak memory (0: off). dry_run
  // stops right after the probe (no checkpoint, no run folder, nothing written). probe_max_scale:
  // the data's largest random scale (CUDA: the batch check allows for the biggest batches).
  int64_t probe_steps = 0;
  bool dry_run = false;
  double probe_max_scale = 1.0;
  // Data parallelism (docs/distributed.md): the process group of the run (null or one rank: a
  // single process). With several ranks each runs this loop on its shard of every epoch (the task's
  // loader shards, io::shard_batches); the loop broadcasts rank 0's weights at the start, averages
  // the gradients in buckets of dist_bucket_bytes launched during backward (tensor/dist/bucketer.h),
  // averages the logged losses, agrees on stopping, and writes files and progress on rank 0 only.
  std::shared_ptr<dist::ProcessGroup> group;
  int64_t dist_bucket_bytes = 25LL << 20;
  int zero = 0;  // 1: ZeRO stage 1, the optimizer state sharded across the ranks (train/loop/zero.h)
};

// What a task's step returns: the loss to minimise and its named terms (recorded as epoch means).
struct StepLoss {
  Tensor total;                                       // a scalar
  std::vector<std::pair<std::string, Tensor>> terms;  // scalars; may be empty
  int64_t images = 0;                                 // batch size (for the img/s figure)
};

// One validation, as the task reports it.
struct Validation {
  bool scored = false;       // a metric was computed (false: none could be, e.g. one class only)
  double metric = NAN;       // higher is better
  double loss = NAN;         // tie-break between equal metrics, lower is better (NaN: no tie-break)
  bool best_anyway = false;  // unscored, but this epoch becomes best.safetensors (follows the latest)
  std::map<std::string, double> values;  // the history's validation columns (TaskInfo::val_columns)
  io::Json json;             // metrics.json "val" (when scored)
  std::string summary;       // appended to the epoch's log line (when scored)
  std::vector<std::string> notes;  // lines for train.log
  Metadata checkpoint;       // metadata every checkpoint records from now on (e.g. a threshold)
  int64_t images_here = 0;   // images this rank ran through the model (several ranks: its shard)
};

// One epoch in the run's history.
struct EpochLog {
  int64_t epoch = 0, step = 0;
  double train_loss = 0, lr = 0, seconds = 0;
  std::map<std::string, double> terms;  // mean of each loss term over the epoch's steps
  std::map<std::string, double> val;    // validation columns; NaN: not validated that epoch
  double get(const std::string& key) const;  // a validation column, NaN when absent
};

// What a task records, fixed for the run.
struct TaskInfo {
  std::string label;                     // in the start line before the epochs ("" or the model's name)
  std::string metric_name;               // "AUROC", "mAP@0.5": log lines, the plot's axis
  std::string metric_column;             // the validation column plotted ("val_auroc")
  std::vector<std::string> val_columns;  // history.csv / metrics.json validation columns, in order
  std::string plot_title = "Training";
  size_t plot_min_points = 1;            // loss.png is drawn from this many epochs on
  std::vector<std::string> resumed_metadata;  // checkpoint metadata keys a resumed run carries on
};

class Task {
 public:
  virtual ~Task() = default;
  virtual nn::Module& model() = 0;
  virtual TaskInfo info() const = 0;
  // The checkpoint metadata at the start (the model's description and the caller's config);
  // metrics.json shows it as "config".
  virtual Metadata checkpoint_metadata() const = 0;

  // Training data. The epoch length the schedule uses.
  virtual int64_t steps_per_epoch() = 0;
  // Positions the data at batch `first_batch` of (0-based) `epoch`; returns the batches left in it.
  virtual int64_t start_epoch(int64_t epoch, int64_t first_batch) = 0;
  // Loads the next batch of the epoch; false at its end.
  virtual bool next_batch() = 0;
  // The forward pass and losses of the loaded batch (the model is in training mode).
  virtual StepLoss step() = 0;

  // Precise BN: training batches of `epoch` from its start, each run through the model in training
  // mode by bn_forward (false when the epoch has no more).
  virtual void start_bn(int64_t epoch) = 0;
  virtual bool bn_forward() = 0;

  // Validation, when the task has a validation set.
  virtual bool can_validate() const = 0;
  virtual Validation validate() = 0;
  // metrics.json: the leading fields (e.g. the model's name) and the "best" object.
  virtual io::Json metrics_head() const { return io::Json::object(); }
  virtual io::Json best_json(const TrainState& st) const = 0;
};

// How a run ended: shared by the loop's result and the tasks' own result types.
struct RunOutcome {
  int exit_code = 0;  // 0, or 130/143 after SIGINT/SIGTERM
  bool interrupted = false;
  int64_t steps = 0;  // optimizer steps done in total
  int64_t epochs_done = 0, nan_skipped = 0;
  double seconds = 0;
  std::vector<double> step_losses;  // the loss of every step this call ran (skipped ones as they were)
  bool probed = false;              // the cost probe ran (cost holds its estimate)
  bool dry_run = false;             // stopped after the probe (LoopConfig::dry_run)
  CostEstimate cost;
  int64_t optimizer_state_numel = 0;  // elements of this rank's optimizer state at the end (ZeRO-1: its shard)
  int64_t val_images_here = 0;        // images the last validation ran through the model on this rank
};

struct LoopResult : RunOutcome {
  double best_metric = NAN;  // the best validation metric; NaN: none
  std::vector<EpochLog> history;
};

// A non-finite loss in "stop" mode.
struct NonFiniteLossError : ValueError {
  using ValueError::ValueError;
};

// The checks of the loop's settings, each a ValueError starting "<who>: ".
void check_loop_config(const LoopConfig& cfg);

// Trains `task` for cfg.epochs; with resume, continues from out_dir/last.safetensors (which must exist).
LoopResult train_loop(Task& task, const LoopConfig& cfg, bool resume = false);

}  // namespace sx::train
