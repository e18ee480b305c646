// RetinaNet (Lin et al. 2017, "Focal Loss for Dense Object Detection") with torchvision's
// retinanet_resnet50_fpn (v1) structure and state-dict names, so a converted torchvision
// checkpoint loads unchanged (docs/retinanet.md):
//
//   backbone.body.*                       ResNet C3..C5 (layer2..layer4), FrozenBatchNorm by default
//   backbone.fpn.inner_blocks.{0,1,2}.0.* 1x1 laterals      backbone.fpn.layer_blocks.{0,1,2}.0.* 3x3
//   backbone.fpn.extra_blocks.p6/p7       LastLevelP6P7 from P5 (in == out channels)
//   head.classification_head.conv.{0..3}.0.*   4 x (conv3x3 + ReLU), weights N(0, 0.01), bias 0
//   head.classification_head.cls_logits.*      conv3x3 -> A*K, bias -log((1 - 0.01) / 0.01)
//   head.regression_head.conv.{0..3}.0.*       4 x (conv3x3 + ReLU)
//   head.regression_head.bbox_reg.*            conv3x3 -> A*4, weights N(0, 0.01), bias 0
//
// Levels P3..P7 (strides 8..128), A = 9 anchors per location (3 sizes x 3 ratios).
//
// Training (losses, the focal loss is layers/loss.h sigmoid_focal_loss): anchors matched to ground truth by IoU (>= 0.5 foreground, < 0.4 background,
// between ignored, low-quality matches allowed); classification = sigmoid focal loss (alpha 0.25,
// gamma 2) summed over valid anchors and classes / max(1, #foreground); box regression = L1 between
// the predicted codes and BoxCoder(1, 1, 1, 1) codes of the matched boxes, summed over foreground
// anchors / max(1, #foreground); both averaged over the images of the batch.
//
// Inference (detect): per level, sigmoid scores above score_thresh, the top `topk_candidates`,
// decoded and clipped to the image; then per-class NMS (nms_thresh) over all levels and the best
// detections_per_img.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "models/anchors.h"
#include "models/detection_backbone.h"
#include "models/detection_model.h"
#include "models/fpn.h"

namespace sx::models {

struct RetinaNetConfig {
  DetectorOptions base;  // arch, channels, classes, norm, frozen stages, anchors, thresholds
  double fg_iou_thresh = 0.5;
  double bg_iou_thresh = 0.4;
  int64_t topk_candidates = 1000;
  double prior_probability = 0.01;
  double focal_alpha = 0.25;
  double focal_gamma = 2.0;
  // "l1" (torchvision's default) or "smooth_l1" (beta 1/9, detectron's)
  std::string box_loss = "l1";
};

class RetinaNetClassificationHead : public nn::Module {
 public:
  RetinaNetClassificationHead(int64_t in_channels, int64_t num_anchors, int64_t num_classes,
                              double prior_probability, Generator& gen);
  // Per level [N, C, H, W] -> [N, sum H*W*A, K].
  Tensor forward_levels(const std::vector<Tensor>& x);
  std::shared_ptr<nn::Sequential> conv;
  std::shared_ptr<nn::Conv2d> cls_logits;
  std::vector<std::shared_ptr<nn::Conv2d>> convs;
  int64_t num_anchors, num_classes;
};

class RetinaNetRegressionHead : public nn::Module {
 public:
  RetinaNetRegressionHead(int64_t in_channels, int64_t num_anchors, Generator& gen);
  // Per level [N, C, H, W] -> [N, sum H*W*A, 4].
  Tensor forward_levels(const std::vector<Tensor>& x);
  std::shared_ptr<nn::Sequential> conv;
  std::shared_ptr<nn::Conv2d> bbox_reg;
  std::vector<std::shared_ptr<nn::Conv2d>> convs;
  int64_t num_anchors;
};

class RetinaNetHead : public nn::Module {
 public:
  RetinaNetHead(int64_t in_channels, int64_t num_anchors, int64_t num_classes, double prior_probability,
                Generator& gen);
  std::shared_ptr<RetinaNetClassificationHead> classification_head;
  std::shared_ptr<RetinaNetRegressionHead> regression_head;
};

class RetinaNet : public DetectionModel {
 public:
  explicit RetinaNet(const RetinaNetConfig& cfg);

  std::map<std::string, Tensor> losses(const ImageList& images, const std::vector<ImageTargets>& targets) override;
  std::vector<Detections> detect(const ImageList& images) override;
  std::string model_name() const override { return "retinanet"; }
  const DetectorOptions& options() const override { return cfg_.base; }
  const RetinaNetConfig& config() const { return cfg_; }
  const AnchorGenerator& anchor_generator() const { return anchors_; }

  // The raw network outputs, exposed for tests and tools.
  struct HeadOutputs {
    Tensor cls_logits;       // [N, sum HWA, K]
    Tensor bbox_regression;  // [N, sum HWA, 4]
    std::vector<Tensor> anchors;  // per level [HWA_l, 4] (the same for every image)
    std::vector<int64_t> level_sizes;  // HWA_l
    std::vector<std::pair<int64_t, int64_t>> grid_sizes;  // (H_l, W_l) of each level's feature map
  };
  HeadOutputs forward_heads(const ImageList& images);
  // Post-processing of head outputs (torchvision's postprocess_detections): candidates(), then
  // per-class NMS and the best detections_per_img.
  std::vector<Detections> postprocess(const HeadOutputs& h, const ImageList& images);
  // The boxes that enter NMS for image i: per level the (anchor, class) scores above score_thresh,
  // the top topk_candidates of them, decoded and clipped to the image; levels concatenated (not
  // sorted). Empty detections when no score passes. (`spinexr explain nms` draws them.)
  Detections candidates(const HeadOutputs& h, const ImageList& images, int64_t i);
  // The losses given head outputs (torchvision's compute_loss).
  std::map<std::string, Tensor> compute_loss(const HeadOutputs& h, const std::vector<ImageTargets>& targets);

  std::shared_ptr<BackboneWithFPN> backbone;
  std::shared_ptr<RetinaNetHead> head;

 private:
  RetinaNetConfig cfg_;
  AnchorGenerator anchors_;
  // Anchors of the last (grid sizes, padded image size, device): training batches all have the same
  // padded size, so the host computation and upload happen once, not every step.
  std::string anchor_key_;
  std::vector<Tensor> anchor_cache_;
};

// Fills defaults (torchvision's anchors when none were given) and builds the model.
std::shared_ptr<RetinaNet> make_retinanet(const DetectorOptions& o);
std::shared_ptr<RetinaNet> make_retinanet(const RetinaNetConfig& cfg);

}  // namespace sx::models
