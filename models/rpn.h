// Region Proposal Network (Ren et al. 2015, "Faster R-CNN"), torchvision's
// models/detection/rpn.py (v1) structure and state-dict names:
//
//   head.conv.0.0   3x3 conv C -> C + ReLU (shared by every FPN level), N(0, 0.01), bias 0
//   head.cls_logits 1x1 conv C -> A      objectness logit per anchor
//   head.bbox_pred  1x1 conv C -> 4A     box deltas per anchor (BoxCoder weights 1, 1, 1, 1)
//
// Outputs are flattened like torchvision's concat_box_prediction_layers: per level
// [N, A, H, W] -> [N, H*W*A] (location-major, anchor inner, the AnchorGenerator's order), levels
// concatenated.
//
// Proposals (filter_proposals), per image, without gradient:
//   1. per level the pre_nms_top_n highest objectness logits (topk),
//   2. decode the deltas against their anchors, clip to the image (its unpadded size), drop boxes
//      smaller than min_size (1e-3) and those with sigmoid score < score_thresh (0),
//   3. NMS (0.7) within each level, keep the post_nms_top_n best (score-descending).
//   Train/test top-n: 2000/2000 and 1000/1000 (fasterrcnn_resnet50_fpn's defaults).
//
// Losses (training):
//   anchors matched to the ground truth by IoU: >= 0.7 foreground, < 0.3 background, between
//   ignored, and each ground-truth box keeps its best anchors (allow_low_quality_matches);
//   256 anchors sampled per image, at most half foreground (BalancedPositiveNegativeSampler);
//   loss_objectness = mean BCE-with-logits over the sampled anchors;
//   loss_rpn_box_reg = smooth L1 (beta 1/9) summed over the sampled foreground anchors divided
//   by the number of sampled anchors. An image without ground truth has only background anchors.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "layers/layers.h"
#include "models/anchors.h"
#include "models/detection_model.h"
#include "tensor/random.h"

namespace sx::models {

// torchvision's BalancedPositiveNegativeSampler for one image. labels: int64 [n] with values >= 1
// positive, 0 negative, < 0 ignored (any device; read once to the host). Draws at most
// batch_size * positive_fraction positives, fills the rest with negatives, each chosen uniformly
// without replacement from `gen`. Returns (positive indices, negative indices) as host vectors,
// in the order drawn.
std::pair<std::vector<int64_t>, std::vector<int64_t>> sample_pos_neg(const Tensor& labels, int64_t batch_size,
                                                                     double positive_fraction, Generator& gen);

struct RpnConfig {
  int64_t pre_nms_top_n_train = 2000, pre_nms_top_n_test = 1000;
  int64_t post_nms_top_n_train = 2000, post_nms_top_n_test = 1000;
  double nms_thresh = 0.7;
  double fg_iou_thresh = 0.7, bg_iou_thresh = 0.3;
  int64_t batch_size_per_image = 256;
  double positive_fraction = 0.5;
  double score_thresh = 0.0;
  double min_size = 1e-3;
  double smooth_l1_beta = 1.0 / 9.0;
};

class RPNHead : public nn::Module {
 public:
  RPNHead(int64_t in_channels, int64_t num_anchors, Generator& gen);
  // Per level: objectness [N, A, H, W] and deltas [N, 4A, H, W].
  std::pair<std::vector<Tensor>, std::vector<Tensor>> forward_levels(const std::vector<Tensor>& features);

  std::shared_ptr<nn::Sequential> conv;
  std::shared_ptr<nn::Conv2d> conv0, cls_logits, bbox_pred;
  int64_t num_anchors;
};

class RegionProposalNetwork : public nn::Module {
 public:
  RegionProposalNetwork(int64_t in_channels, AnchorGenerator anchors, const RpnConfig& cfg, Generator& init_gen,
                        uint64_t sample_seed);

  struct Output {
    std::vector<Tensor> proposals;  // per image [P_i, 4] (score-descending, no gradient)
    std::vector<Tensor> scores;     // per image [P_i] sigmoid objectness
    // What entered the NMS of step 3, per image (after steps 1-2): boxes [Q_i, 4], sigmoid scores
    // [Q_i] and FPN level [Q_i] int64 (the NMS runs within each level). For tools (`spinexr explain rpn`).
    std::vector<Tensor> pre_nms_boxes, pre_nms_scores, pre_nms_levels;
    std::map<std::string, Tensor> losses;  // training only: loss_objectness, loss_rpn_box_reg
  };
  // features: the FPN levels (one per anchor level). targets non-null: also compute the losses
  // (and use the training top-n when the module is in training mode).
  Output forward(const ImageList& images, const std::vector<Tensor>& features,
                 const std::vector<ImageTargets>* targets = nullptr);

  const AnchorGenerator& anchor_generator() const { return anchors_; }
  const RpnConfig& config() const { return cfg_; }
  Generator& sample_generator() { return gen_; }

  std::shared_ptr<RPNHead> head;

 private:
  AnchorGenerator anchors_;
  RpnConfig cfg_;
  Generator gen_;
};

}  // namespace sx::models
