// Training checkpoints: everything needed to continue a run exactly, in one safetensors file.
//
// Tensors:
//   model.<state-dict name>       parameters and persistent buffers (torchvision names)
//   optim.<i>.<key>               optimizer state (optim.h: momentum_buffer, exp_avg, ...)
// __metadata__ (safetensors' string map, i.e. a JSON object of strings):
//   format = "spinexr-checkpoint-1"
//   epoch, step, batch_in_epoch   where the run stands: `step` optimizer steps are done; the next
//                                 batch is batch `batch_in_epoch` of epoch `epoch` (the data position)
//   rng.<name>.seed/.offset       every counter-based generator the run uses (tensor/random.h)
//   best_metric, best_step        the best validation value so far
//   epoch_loss_sum/_count         the running training loss of the unfinished epoch
//   optimizer.*, scheduler.*      hyper-parameters (for reference and resume checks)
//   config.*                      what the caller adds (architecture, image size, ...)
// Model-only weight files (safetensors without the "model." prefix, e.g. converted torchvision
// weights) are read by load_model_weights() too.
//
// Saving is atomic (io/safetensors.h writes through a temporary file, fsync and rename), so a kill
// at any moment leaves either the previous checkpoint or the new one. CheckpointManager names the
// files ckpt-<step>.safetensors in a run folder, keeps the last K of them, and points
// last.safetensors and best.safetensors at the right ones with hard links (replaced atomically by
// link-to-temporary + rename; a plain copy where the file system has no hard links).
#pragma once
#include <cmath>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "layers/module.h"
#include "tensor/random.h"
#include "train/loop/optim.h"
#include "train/loop/scheduler.h"

namespace sx::train {

inline constexpr const char* kCheckpointFormat = "spinexr-checkpoint-1";

struct TrainState {
  int64_t epoch = 0;
  int64_t step = 0;
  int64_t batch_in_epoch = 0;
  double best_metric = -1e300;  // higher is better; -1e300 = none yet
  int64_t best_step = -1;
  // Tie-break of the best: the validation loss there (lower is better; +inf = none yet). An
  // AUROC of 1.0 is reached early and then ties; the loss still tells calibrated from not.
  double best_loss = HUGE_VAL;
  double epoch_loss_sum = 0;  // running training loss of the current epoch (for its mean)
  int64_t epoch_loss_count = 0;
  std::map<std::string, Generator> rngs;  // named generators (data order, augmentation, dropout)
};

using Metadata = std::map<std::string, std::string>;

// Writes a checkpoint atomically. opt and sched may be null (evaluation snapshots).
void save_checkpoint(const std::string& path, const nn::Module& model, const optim::Optimizer* opt,
                     const optim::LRScheduler* sched, const TrainState& state, const Metadata& config = {});

struct LoadedCheckpoint {
  TrainState state;
  Metadata metadata;       // the whole __metadata__ map
  nn::LoadReport report;   // of the model's load_state_dict
};

// Restores model (strict), optimizer state (when opt is non-null) and the training state.
// Throws IOError for a file that is not a spinexr checkpoint and ValueError when the model or the
// optimizer does not fit it (the message carries the load report).
LoadedCheckpoint load_checkpoint(const std::string& path, nn::Module& model, optim::Optimizer* opt);

// Loads model weights from a training checkpoint ("model." prefix) or a plain weights file.
// Non-strict loading returns the report (missing / unexpected / mis-shaped keys) instead of throwing.
// `adapt` may rewrite the state dict before loading (e.g. fold RGB conv1 weights to one channel).
using StateDictAdapter = std::function<nn::StateDict(const nn::StateDict&)>;
nn::LoadReport load_model_weights(const std::string& path, nn::Module& model, bool strict = true,
                                  const StateDictAdapter& adapt = nullptr);
// The metadata of a file without loading its tensors into a model.
Metadata read_checkpoint_metadata(const std::string& path);

class CheckpointManager {
 public:
  // keep_last >= 1: how many ckpt-*.safetensors to keep (best and last are hard links and survive).
  // The folder is created by the first save.
  CheckpointManager(std::string dir, int keep_last = 3);
  // Saves ckpt-<step>.safetensors, points last.safetensors at it, and also best.safetensors when
  // is_best. Returns the path written.
  std::string save(const nn::Module& model, const optim::Optimizer* opt, const optim::LRScheduler* sched,
                   const TrainState& state, const Metadata& config, bool is_best);
  std::string last_path() const { return dir_ + "/last.safetensors"; }
  std::string best_path() const { return dir_ + "/best.safetensors"; }
  // The ckpt-*.safetensors files present, oldest step first.
  std::vector<std::string> list() const;

 private:
  void point(const std::string& target, const std::string& link_name);
  std::string dir_;
  int keep_last_;
};

// Whether a file exists and is a regular file.
bool file_exists(const std::string& path);

}  // namespace sx::train
