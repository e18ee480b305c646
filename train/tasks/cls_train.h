// Stage 1: the image classifier (normal vs abnormal) as a task of the one training loop
// (train/loop/loop.h: the step, the hooks, resume and the run folder are described there), its
// predictions and its metrics.
//
// The classifier sees data through ClsBatchSource, a small interface whose order and augmentation
// are a pure function of (seed, epoch, position): that is what makes `--resume` exact. An adapter
// over the io/ loader is in cls_data.h; tests use an in-memory source.
//
// What the task adds to the loop: the loss is BCE with logits (pos_weight); the validation is the
// AUROC (bootstrap CI, Youden threshold, ECE) of the validation source, optionally with temperature
// scaling fitted on it; best.safetensors is the highest validation AUROC, ties (AUROC saturates at
// 1.0 early) going to the lower validation loss. Its checkpoints record config.val_threshold (the
// Youden threshold of the latest validation, which eval-cls --threshold val applies) and
// config.temperature. history.csv's validation columns: val_loss, val_auroc.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "io/json.h"
#include "layers/module.h"
#include "tensor/device.h"
#include "tensor/random.h"
#include "tensor/tensor.h"
#include "train/loop/checkpoint.h"
#include "train/loop/loop.h"
#include "train/eval/metrics.h"

namespace sx::train {

struct ClsBatch {
  Tensor images;  // [N, C, H, W] float32 (CPU, possibly pinned)
  Tensor labels;  // [N] float32, 0 normal / 1 abnormal
  std::vector<std::string> ids;
};

class ClsBatchSource {
 public:
  virtual ~ClsBatchSource() = default;
  virtual int64_t num_batches() const = 0;  // per epoch
  virtual int64_t num_samples() const = 0;  // per epoch
  // Positions the source at batch `first_batch` of epoch `epoch` (0-based).
  virtual void start_epoch(int64_t epoch, int64_t first_batch) = 0;
  // The next batch of the epoch; false at its end.
  virtual bool next(ClsBatch& batch) = 0;
  // From the next start_epoch on, only the batches rank, rank + count, rank + 2 count, ... of each
  // epoch's batches (no wrap-around: sharded validation, every sample once across the ranks, each
  // batch the one a single process would make); num_batches() counts them. (1 of 1: all.)
  virtual void shard(int rank, int count) = 0;
};

// The classifier's settings: the loop's (train/loop/loop.h) and the classification loss's.
struct ClsTrainConfig : LoopConfig {
  double pos_weight = 1.0;          // BCE positive weight
  int64_t bootstrap = 1000;         // bootstrap resamples for the validation AUROC CI (0: none)
  // Temperature scaling fitted on the validation logits at each validation (metrics::fit_temperature);
  // stored in the checkpoint's metadata as config.temperature, which eval-cls/eval/predict apply.
  bool calibrate_temperature = false;
  // (precise_bn_batches: the batches come from the `bn_source` given to fit.)
};

struct EpochRecord {
  int64_t epoch = 0, step = 0;
  double train_loss = 0, val_loss = 0, val_auroc = 0, lr = 0, seconds = 0;
};

struct ClsTrainResult : RunOutcome {
  double best_auroc = -1;
  std::vector<EpochRecord> history;
};

// Per-sample predictions of a classifier over a source.
struct ClsPredictions {
  std::vector<std::string> ids;
  std::vector<double> logits;  // the model's raw logit
  std::vector<double> probs;   // sigmoid(logit / temperature)
  std::vector<int> labels;
  double mean_loss = 0;        // BCE of the probabilities over the samples
  double temperature = 1.0;    // the temperature the probabilities were computed with
};
// `temperature` divides the logits before the sigmoid (1: the model as trained).
ClsPredictions predict_cls(nn::Module& model, ClsBatchSource& source, Device device, bool progress = false,
                           double temperature = 1.0);
// Sharded validation: `source` yields this rank's batches r, r + W, ... (ClsBatchSource::shard with
// the group's rank and size); every rank's are gathered and put back in the order of the whole
// source (global batch g came from rank g mod W), so every rank gets the predictions one process
// makes over the whole source (temperature 1). `here` receives the images this rank ran.
ClsPredictions predict_cls_sharded(nn::Module& model, ClsBatchSource& source, Device device,
                                   dist::ProcessGroup& group, int64_t& here);
// The calibration temperature a classifier checkpoint records (config.temperature), 1 when none.
// Throws IOError naming the file when the value is not a positive finite number.
double checkpoint_temperature(const std::string& ckpt_path);

// An ensemble of classifiers as the VinDr-SpineXR authors combine theirs: the mean of the members'
// logits, then the sigmoid, p = sigmoid(mean_i logit(p_i)), where a temperature-calibrated member
// contributes its calibrated logit z_i / T_i. The members must cover the same images in the same
// order with the same labels (ValueError otherwise). The result's `logits` are the mean logits
// (temperature 1) and mean_loss the BCE of the ensemble's probabilities. One member: returned as is.
ClsPredictions ensemble_cls_predictions(const std::vector<ClsPredictions>& members);

// AUROC with bootstrap CI, Youden threshold and the metrics at that threshold. `threshold` < 0:
// choose by Youden's J; otherwise use the given one (e.g. the threshold chosen on validation).
struct ClsMetrics {
  int64_t n = 0, positives = 0;
  double auroc = 0;
  metrics::BootstrapCI ci;
  double threshold = 0.5;
  std::string threshold_source;  // "youden" or "given"
  metrics::BinaryMetrics at_threshold;
  double mean_loss = 0;
  metrics::Calibration calibration;  // 15 bins (metrics::calibration)
};
ClsMetrics compute_cls_metrics(const ClsPredictions& p, int64_t bootstrap, uint64_t seed, double threshold = -1);
// The metrics (and optional extra fields as strings) as a JSON object; write_cls_metrics_json
// writes it atomically.
io::Json cls_metrics_json(const ClsMetrics& m, const Metadata& extra = {});
void write_cls_metrics_json(const std::string& path, const ClsMetrics& m, const Metadata& extra = {});
// The reliability diagram of a calibration (plot::render_reliability) with its ECE in the legend.
void write_calibration_png(const std::string& path, const metrics::Calibration& c, const std::string& what);
// ROC curves of several classifiers in one plot (e.g. an ensemble's members, thin, and the ensemble,
// last and thick), each labelled "<name> AUC 0.xxx".
struct RocEntry {
  std::string name;
  const ClsPredictions* preds = nullptr;
  double auroc = 0;
};
void write_roc_curves_png(const std::string& path, const std::vector<RocEntry>& curves, const std::string& title);

class ClsTrainer {
 public:
  ClsTrainer(nn::Module& model, ClsTrainConfig cfg);
  // Trains; with resume, continues from out_dir/last.safetensors (which must exist). The best
  // checkpoint is the one with the highest validation AUROC, ties going to the lower validation loss.
  // `bn_source` (training images) feeds precise BN when cfg.precise_bn_batches > 0.
  ClsTrainResult fit(ClsBatchSource& train, ClsBatchSource* val, bool resume = false,
                     ClsBatchSource* bn_source = nullptr);

 private:
  nn::Module& model_;
  ClsTrainConfig cfg_;
};

// Binary cross-entropy with logits for the classifier: logits [N, 1] or [N], labels [N].
Tensor cls_loss(const Tensor& logits, const Tensor& labels, double pos_weight);

}  // namespace sx::train
