// What both detectors (RetinaNet, Faster R-CNN) share: the batched image list, the per-image
// targets and detections, the DetectionModel interface the trainer and the pipeline talk to, the
// common options (backbone, anchors, post-processing) and small post-processing helpers.
//
// Coordinates: boxes are [n, 4] float32 (x1, y1, x2, y2) in pixels of the image *as it sits in the
// batch* (after the loader's resize, before padding), x right, y down, like torchvision.
// Labels are int64 class indices 0 .. num_classes-1 (the 7 VinDr classes in the paper's order);
// there is no background index (RetinaNet has sigmoid outputs per class; Faster R-CNN's box
// predictor adds its own background column internally, so its class k is label k here).
//
// Pixel values: the models take images as the loader gives them (float32, grey or RGB in [0, 1],
// [B, C, H, W]) and normalise inside with options.image_mean / image_std (torchvision's
// GeneralizedRCNNTransform normalisation; it does not resize: the loader already did).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "layers/module.h"
#include "models/resnet.h"
#include "tensor/tensor.h"

namespace sx::models {

// A batch of images padded to a common size, plus each image's own (unpadded) size.
struct ImageList {
  Tensor tensor;                                        // [B, C, H, W]
  std::vector<std::pair<int64_t, int64_t>> image_sizes;  // (height, width) per image, <= (H, W)
  int64_t batch() const { return static_cast<int64_t>(image_sizes.size()); }
};

// Ground truth for one image: boxes [n, 4] float32, labels [n] int64 (n may be 0: a normal image).
struct ImageTargets {
  Tensor boxes;
  Tensor labels;
};

// One image's detections, score-descending: boxes [k, 4] float32, scores [k] float32, labels [k] int64.
struct Detections {
  Tensor boxes;
  Tensor scores;
  Tensor labels;
  int64_t size() const { return boxes.defined() ? boxes.size(0) : 0; }
};

// Options shared by both detectors. Model-specific settings live in each model's config, which
// starts from these.
struct DetectorOptions {
  std::string arch = "resnet50";  // resnet18 | resnet34 | resnet50 | resnet101
  int64_t in_channels = 3;        // 1 for grey radiographs, 3 for RGB (torchvision weights)
  int64_t num_classes = 7;
  models::NormKind norm = models::NormKind::FrozenBatchNorm;  // torchvision's detection default
  int trainable_layers = 3;       // ResNet stages left trainable (0..5), torchvision's default 3
  int64_t fpn_channels = 256;     // FPN out_channels (256 in torchvision)
  // Anchors: one tuple of sizes per FPN level, one tuple of aspect ratios (h/w) per level.
  // Empty = the model's torchvision default.
  std::vector<std::vector<double>> anchor_sizes;
  std::vector<std::vector<double>> aspect_ratios;
  // Normalisation applied inside the model (per channel; a single value broadcasts).
  std::vector<double> image_mean = {0.485, 0.456, 0.406};
  std::vector<double> image_std = {0.229, 0.224, 0.225};
  // Post-processing (torchvision's names; defaults are each model's, set by the model config).
  double score_thresh = 0.05;
  double nms_thresh = 0.5;
  int64_t detections_per_img = 300;
  uint64_t seed = 0;  // weight init
};

// String round trip of the options, for checkpoint metadata (so `predict` can rebuild a model
// from a checkpoint alone). Keys: "det.arch", "det.in_channels", ... Unknown keys are ignored;
// missing keys keep the defaults.
std::map<std::string, std::string> detector_options_to_metadata(const DetectorOptions& o);
DetectorOptions detector_options_from_metadata(const std::map<std::string, std::string>& m,
                                               DetectorOptions defaults = {});

// Factories (what train/det_train.cpp calls for --model NAME):
//   models/retinanet.h    std::shared_ptr<RetinaNet>  make_retinanet(const DetectorOptions&)
//   models/faster_rcnn.h  std::shared_ptr<FasterRCNN> make_faster_rcnn(const DetectorOptions&)
// train/det_train.h make_detector(name, options) dispatches on the name, and
// train/predict.h load_detector_checkpoint(checkpoint, device) rebuilds a model from a checkpoint's metadata alone
// ("det.model" = model_name(), plus detector_options_to_metadata()).
//
// The interface the trainer (train/det_train.h), evaluation and `predict` use. A model is an
// nn::Module (parameters, state_dict with torchvision's names, train/eval, to(device)).
class DetectionModel : public nn::Module {
 public:
  explicit DetectionModel(std::string type_name) : nn::Module(std::move(type_name)) {}

  // Training losses for a batch (grad mode on, model in train mode). targets.size() == images.batch().
  // Keys are torchvision's: RetinaNet {"classification", "bbox_regression"}; Faster R-CNN
  // {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg"}. The trainer
  // minimises their sum. Each value is a scalar tensor on the model's device.
  virtual std::map<std::string, Tensor> losses(const ImageList& images,
                                               const std::vector<ImageTargets>& targets) = 0;
  // Inference (call under NoGradGuard with the model in eval mode): one Detections per image, in
  // the image's own coordinates (image_sizes), on the model's device.
  virtual std::vector<Detections> detect(const ImageList& images) = 0;

  // "retinanet" | "faster_rcnn"
  virtual std::string model_name() const = 0;
  virtual const DetectorOptions& options() const = 0;
  int64_t num_classes() const { return options().num_classes; }

  // Optional per-stage timing for the benchmark (seconds of the last call, keyed "backbone",
  // "heads", "loss", "postprocess"; empty when the model does not record them).
  const std::map<std::string, double>& stage_seconds() const { return stage_seconds_; }
  void set_record_stage_times(bool on) { record_stage_times_ = on; }

 protected:
  bool record_stage_times_ = false;
  std::map<std::string, double> stage_seconds_;
};

// ---- anchors and matching (torchvision's AnchorGenerator and Matcher) ---------------------------

// Anchors over FPN levels. Level l has cell anchors for every (ratio, size) pair, ratio-major:
//   h_ratio = sqrt(r), w_ratio = 1 / h_ratio, w = w_ratio * size, h = h_ratio * size,
//   cell = round((-w, -h, w, h) / 2)   (float32, round half to even, as torch.round)
// placed at every grid cell: shift (x * stride_w, y * stride_h) with stride = image size // grid
// size (the padded batch size), location-major then anchor (the heads' output order).
struct AnchorGenerator {
  std::vector<std::vector<double>> sizes;          // per level
  std::vector<std::vector<double>> aspect_ratios;  // per level (one entry broadcasts to all levels)
  int64_t num_levels() const { return static_cast<int64_t>(sizes.size()); }
  int64_t num_anchors_per_location(int64_t level = 0) const;
  // [A, 4] float32 cell anchors of a level (CPU).
  Tensor cell_anchors(int64_t level) const;
  // Anchors of every level for the given feature-map sizes and padded image size, [HWA_l, 4]
  // float32 on `device` (computed on the host, one upload per level).
  std::vector<Tensor> grid_anchors(const std::vector<std::pair<int64_t, int64_t>>& grid_sizes,
                                   std::pair<int64_t, int64_t> image_size, Device device) const;
};
// RetinaNet's defaults: sizes (x, x*2^(1/3), x*2^(2/3)) truncated to int for x in 32..512, ratios 0.5/1/2.
AnchorGenerator retinanet_default_anchors();
// Scales torchvision's RetinaNet sizes by `scale` (e.g. 0.5 for small lesions at small image sizes).
AnchorGenerator retinanet_anchors(double base_size = 32, int64_t num_levels = 5,
                                  std::vector<double> ratios = {0.5, 1.0, 2.0});

// torchvision's Matcher on an IoU matrix [G, A] (G ground-truth boxes, A anchors): per anchor the
// best ground truth's index, or -1 (best IoU < low), or -2 (low <= IoU < high, "between
// thresholds"). allow_low_quality_matches restores, for each ground truth, the anchors that have
// its highest IoU (ties included) to their own best match. G == 0 gives all -1. Int64 [A], on the
// matrix's device (pure tensor ops, no host sync).
constexpr int64_t kBelowLowThreshold = -1;
constexpr int64_t kBetweenThresholds = -2;
Tensor match_boxes(const Tensor& iou, double high, double low, bool allow_low_quality_matches);

// ---- helpers -------------------------------------------------------------------------------------

// Stacks [C, h_i, w_i] images into [B, C, H, W] zero-padded at the bottom/right, with H and W
// rounded up to a multiple of size_divisible (torchvision's batch_images, 32). All images must
// share C, dtype and device. An empty list is refused (ValueError).
ImageList batch_images(const std::vector<Tensor>& images, int64_t size_divisible = 32);
// Wraps an already batched [B, C, H, W] tensor whose images all have the full size (H, W).
ImageList image_list_from_batch(const Tensor& batch);

// (x - mean[c]) / std[c] per channel; mean/std of size 1 broadcast. Differentiable.
Tensor normalize_images(const Tensor& x, const std::vector<double>& mean, const std::vector<double>& std);

// Moves targets/detections between devices.
std::vector<ImageTargets> targets_to(const std::vector<ImageTargets>& t, Device d);
Detections detections_to(const Detections& d, Device dev);

// Empty detections (correctly typed: [0,4] f32, [0] f32, [0] i64) on a device.
Detections empty_detections(Device d);

// Scales boxes from the network's input size (h_in, w_in) to an original size (h_out, w_out)
// (torchvision's transform.postprocess / resize_boxes).
Tensor resize_boxes(const Tensor& boxes, std::pair<int64_t, int64_t> from, std::pair<int64_t, int64_t> to);

// Per-class (batched) NMS of scored boxes then keeping the best `max_det`: returns kept indices
// (int64, score-descending): kernels/nms batched_nms (exact per-class NMS).
Tensor batched_nms_keep(const Tensor& boxes, const Tensor& scores, const Tensor& labels, double iou_thresh,
                        int64_t max_det = -1);

// The standard ResNet backbone for a detector from the options (no fc, norm and frozen stages
// applied).
std::shared_ptr<ResNet> make_detection_backbone(const DetectorOptions& o);

// Renames old-format torchvision keys to the current ones (in place on a copy):
//   "*.fpn.inner_blocks.N.weight" -> "*.fpn.inner_blocks.N.0.weight" (also layer_blocks, bias)
//   "head.*_head.conv.{2i}.weight" -> "head.*_head.conv.{i}.0.weight" (RetinaNet v1 checkpoints)
// and adapts backbone.body.conv1.weight to in_channels (models/resnet.h adapt_resnet_state_dict).
nn::StateDict upgrade_torchvision_detection_keys(const nn::StateDict& sd, int64_t in_channels);

}  // namespace sx::models
