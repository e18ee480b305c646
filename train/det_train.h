// The training loop for the detectors (RetinaNet, Faster R-CNN), and detector inference over a
// dataset. Used by `spinexr train-det`, `spinexr demo` and the evaluation/predict commands.
//
// Data: io::Dataset + io::DataLoader (io/dataset.h), whose batch order and augmentation (horizontal
// flip, random scale, repeat-factor sampling) are pure functions of (seed, epoch, position): so a
// resumed run sees the same batches. The loader is asked for [0, 1] pixels (mean 0, std 1): the
// models normalise inside (models/image_list.h).
//
// One step, in order:
//   lr = schedule(step) -> model.losses(images, targets) -> total = sum of the losses -> total.item()
//   (the one sync per step: NaN check, progress line) -> non-finite? stop naming the step, or skip
//   (nan_policy) -> backward -> optional clipping by global norm -> optimizer step -> drop gradients
// At step boundaries: periodic checkpoints, and SIGINT/SIGTERM (train/signals.h) write a checkpoint
// and return 130/143. At the end of each epoch: validation (mAP with the paper's protocol, when a
// validation set is given), best and last checkpoints, metrics.json, history.csv, train.log.
//
// Checkpoints are train/checkpoint.h files whose metadata also holds "det.model" and the detector
// options (detector_options_to_metadata), so train/predict.h load_detector_checkpoint() rebuilds the
// model from the file alone.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/dataset.h"
#include "models/detection_model.h"
#include "train/checkpoint.h"
#include "train/det_eval.h"

namespace sx::train {

// "retinanet" | "faster_rcnn" (ValueError otherwise, or when the build lacks the model).
std::shared_ptr<models::DetectionModel> make_detector(const std::string& name, const models::DetectorOptions& o);
// The metadata train-det stores: "det.model" plus the detector options.
Metadata detector_metadata(const models::DetectionModel& m);
// (train/predict.h load_detector_checkpoint() rebuilds a detector from such a checkpoint.)

// Batch -> model inputs: the image list with each image's resized, unpadded size; the targets.
models::ImageList to_image_list(const io::Batch& b, Device device);
std::vector<models::ImageTargets> to_targets(const io::Batch& b, Device device);

struct DetTrainConfig {
  int64_t epochs = 12;
  double lr = 0.01;
  std::string optimizer = "sgd";  // sgd | adamw
  double momentum = 0.9;
  double weight_decay = 1e-4;
  bool no_decay_norm_bias = true;
  std::string schedule = "cosine";  // cosine | multistep | constant
  int64_t warmup_steps = 100;
  std::string milestones = "0.67,0.89";
  double clip_norm = 0;             // 0: no clipping
  int64_t val_every = 1;            // validate every N epochs (and after the last); needs a val set
  int64_t ckpt_every = 0;           // also checkpoint every N steps
  int keep_last = 2;
  std::string nan_policy = "stop";  // stop | skip
  int64_t max_nan_skips = 20;
  int64_t max_steps = 0;            // > 0: stop (with a checkpoint) after this many steps in total
  // Precise BN (train/precise_bn.h): at each epoch end, before validating and checkpointing,
  // recompute trainable BatchNorm statistics over this many training batches (0: off; frozen BN
  // has no running statistics to refresh, so it costs nothing there).
  int64_t precise_bn_batches = 0;
  uint64_t seed = 0;
  Device device = Device::cpu();
  std::string out_dir;
  bool progress = true;
  Metadata config;                  // extra metadata stored in checkpoints (size, data, ...)
  std::vector<std::string> class_names;  // for the validation report (default: the 7 VinDr classes)
};

struct DetEpochRecord {
  int64_t epoch = 0, step = 0;
  double train_loss = 0, lr = 0, seconds = 0;
  std::map<std::string, double> loss_parts;  // mean of each loss term over the epoch
  double val_map50 = -1, val_map_voc50 = -1;  // -1: not validated this epoch
};

struct DetTrainResult {
  int exit_code = 0;  // 0, or 130/143 after SIGINT/SIGTERM
  bool interrupted = false;
  int64_t steps = 0, epochs_done = 0, nan_skipped = 0;
  double best_map50 = -1;
  double seconds = 0;
  std::vector<double> step_losses;
  std::vector<DetEpochRecord> history;
};

// A data view: a dataset, the indices to draw from, and the loader's options.
struct DetData {
  const io::Dataset* dataset = nullptr;
  std::vector<int64_t> pool;
  io::LoaderOptions loader;
};

class DetTrainer {
 public:
  DetTrainer(models::DetectionModel& model, DetTrainConfig cfg);
  // Trains; with resume, continues from out_dir/last.safetensors (which must exist).
  DetTrainResult fit(const DetData& train, const DetData* val, bool resume = false);

 private:
  models::DetectionModel& model_;
  DetTrainConfig cfg_;
};

// Detections of one image in its original pixel coordinates, with its ground truth.
struct DetPrediction {
  std::string image_id;
  int image_label = 0;  // 1 abnormal
  int orig_width = 0, orig_height = 0;
  std::vector<eval::EvalBox> gt;
  std::vector<eval::EvalBox> dets;  // score-descending
};

// Runs the detector (eval mode, no grad) over a data view in its pool order without augmentation
// (the loader options' augment is forced off, sampling sequential), mapping boxes back to original
// pixels (undoing the resize). Optionally limits to `limit` images (< 0: all).
std::vector<DetPrediction> predict_detections(models::DetectionModel& model, const DetData& data, Device device,
                                              bool progress = false, int64_t limit = -1);

// EvalBox lists -> the evaluation's input (no decision rule).
std::vector<eval::ImageEval> to_image_evals(const std::vector<DetPrediction>& preds);

// The loader options train-det uses: longest side `size`, [0, 1] pixels (mean 0, std 1),
// `channels`, flip probability, random scale range, repeat-factor sampling when rfs_threshold > 0.
io::LoaderOptions detection_loader_options(int size, int channels, int batch, bool augment, double hflip,
                                           double scale_min, double scale_max, double rfs_threshold,
                                           uint64_t seed, int workers);

}  // namespace sx::train
