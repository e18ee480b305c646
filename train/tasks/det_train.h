// Stage 2: the detectors (RetinaNet, Faster R-CNN, Sparse R-CNN) as a task of the one training loop
// (train/loop/loop.h: the step, the hooks, resume and the run folder are described there), and detector
// inference over a dataset. Used by `spinexr train-det`, `spinexr demo` and the evaluation/predict
// commands.
//
// Data: io::Dataset + io::DataLoader (io/dataset.h), whose batch order and augmentation (horizontal
// flip, random scale or AutoAugment v2, repeat-factor sampling) are pure functions of (seed, epoch,
// position): so a resumed run sees the same batches. The loader is asked for [0, 1] pixels (mean 0,
// std 1): the models normalise inside (models/image_list.h).
//
// What the task adds to the loop: the step's loss is the sum of the model's loss terms (recorded
// one by one per epoch); the validation is the mAP@0.5 with the paper's protocol (train/eval/det_eval.h)
// and best.safetensors the highest. Checkpoints hold "det.model" and the detector options
// (detector_metadata), so train/app/predict.h load_detector_checkpoint() rebuilds the model from the
// file alone. history.csv's validation columns: val_map50, val_map_voc50.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/dataset.h"
#include "models/detection_model.h"
#include "train/loop/checkpoint.h"
#include "train/eval/det_eval.h"
#include "train/loop/loop.h"

namespace sx::train {

// "retinanet" | "faster_rcnn" | "sparse_rcnn" (ValueError otherwise, or when the build lacks the model).
std::shared_ptr<models::DetectionModel> make_detector(const std::string& name, const models::DetectorOptions& o);
// False for a detector without anchors (sparse_rcnn: learned proposals), to which --anchor-base and
// the anchor-coverage guard do not apply.
bool detector_uses_anchors(const std::string& name);
// The metadata train-det stores: "det.model" plus the detector options.
Metadata detector_metadata(const models::DetectionModel& m);
// (train/app/predict.h load_detector_checkpoint() rebuilds a detector from such a checkpoint.)

// Batch -> model inputs: the image list with each image's resized, unpadded size; the targets.
models::ImageList to_image_list(const io::Batch& b, Device device);
std::vector<models::ImageTargets> to_targets(const io::Batch& b, Device device);

// The detectors' settings: the loop's (train/loop/loop.h) with the detectors' defaults, and the class
// names of the validation report. (precise_bn_batches: trainable BatchNorm statistics are
// recomputed over the epoch's first training batches; frozen BatchNorm has none to refresh.)
struct DetTrainConfig : LoopConfig {
  DetTrainConfig() {
    who = "train-det";
    epochs = 12;
    warmup_steps = 100;
    keep_last = 2;
  }
  std::vector<std::string> class_names;  // for the validation report (default: the 7 VinDr classes)
};

struct DetEpochRecord {
  int64_t epoch = 0, step = 0;
  double train_loss = 0, lr = 0, seconds = 0;
  std::map<std::string, double> loss_parts;  // mean of each loss term over the epoch
  double val_map50 = -1, val_map_voc50 = -1;  // -1: not validated this epoch
};

struct DetTrainResult : RunOutcome {
  double best_map50 = -1;
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

// predict_detections sharded over the ranks of `group`: each rank runs its batches r, r + W, ... of
// the view (no wrap-around), the predictions are gathered (variable sizes) and put back in the order
// of predict_detections over the whole view, on every rank: the same list one process makes.
// `here` receives the number of images this rank ran.
std::vector<DetPrediction> predict_detections_sharded(models::DetectionModel& model, const DetData& data,
                                                      Device device, dist::ProcessGroup& group, int64_t& here);

// EvalBox lists -> the evaluation's input (no decision rule).
std::vector<eval::ImageEval> to_image_evals(const std::vector<DetPrediction>& preds);

// The loader options train-det uses: longest side `size`, [0, 1] pixels (mean 0, std 1),
// `channels`, flip probability, random scale range, repeat-factor sampling when rfs_threshold > 0.
// With min_size > 0 the shortest side is resized to min_size instead and the longest capped at
// `size` (Detectron2's ResizeShortestEdge(min_size, max_size=size)).
io::LoaderOptions detection_loader_options(int size, int channels, int batch, bool augment, double hflip,
                                           double scale_min, double scale_max, double rfs_threshold,
                                           uint64_t seed, int workers, int min_size = 0);

// train-det's --augment on a training loader's options: "none" (no flip, no random scale),
// "flip-scale" (flip with probability hflip, random scale in [scale_min, scale_max]: the default), or
// "autoaugment-v2" (AutoAugment policy v2 after the resize, io/autoaugment.h, plus the flip, without
// random scale: the VinDr-SpineXR authors' SpineAutoAugmentMapper). Throws ValueError on another mode.
void set_detection_augment(io::LoaderOptions& lo, const std::string& mode, double hflip, double scale_min,
                           double scale_max);

}  // namespace sx::train
