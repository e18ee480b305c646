// Faster R-CNN's second stage, torchvision's models/detection/roi_heads.py (boxes only) with its
// state-dict names:
//
//   box_roi_pool   MultiScaleRoIAlign over the first `roi_levels` FPN levels (P2..P5), 7x7,
//                  sampling ratio 2, aligned=False, LevelMapper (canonical 224 at level 4)
//   box_head       TwoMLPHead: flatten -> fc6 (C*7*7 -> 1024) -> ReLU -> fc7 (1024 -> 1024) -> ReLU
//   box_predictor  FastRCNNPredictor: cls_score (1024 -> K+1), bbox_pred (1024 -> 4(K+1));
//                  column 0 is the background, column k+1 is detection class k
//
// Training (select_training_samples + fastrcnn_loss): the ground-truth boxes are appended to the
// proposals; proposals matched by IoU (>= 0.5 foreground, below background, no low-quality
// matches); 512 sampled per image with at most 25% foreground, kept in index order; regression
// targets are BoxCoder(10, 10, 5, 5) codes of the matched boxes;
//   loss_classifier = cross entropy over the sampled proposals (mean),
//   loss_box_reg    = smooth L1 (beta 1/9) of the true class's 4 deltas, summed over the
//                     foreground proposals, divided by the number of sampled proposals.
//
// Inference (postprocess_detections), per image: softmax scores, class-specific boxes decoded
// and clipped to the image, background dropped, candidates with score > score_thresh (0.05) and
// width/height >= 1e-2, NMS per class (0.5), the best detections_per_img (100).
#pragma once
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "kernels/box_ops/box_ops.h"
#include "layers/layers.h"
#include "models/detection_model.h"
#include "tensor/random.h"

namespace sx::models {

struct RoIHeadsConfig {
  double fg_iou_thresh = 0.5, bg_iou_thresh = 0.5;
  int64_t batch_size_per_image = 512;
  double positive_fraction = 0.25;
  kernels::BoxCoderWeights box_coder_weights = {10.0, 10.0, 5.0, 5.0};
  int64_t representation_size = 1024;
  int64_t roi_output_size = 7;
  int64_t sampling_ratio = 2;
  int64_t roi_levels = 4;  // FPN levels pooled from (the first ones: '0'..'3' = P2..P5)
  double smooth_l1_beta = 1.0 / 9.0;
  double min_size = 1e-2;
  // score_thresh, nms_thresh and detections_per_img come from DetectorOptions.
};

class TwoMLPHead : public nn::Module {
 public:
  TwoMLPHead(int64_t in_features, int64_t representation_size, Generator& gen);
  Tensor forward(const Tensor& x) override;  // [K, C, 7, 7] -> [K, representation]
  std::shared_ptr<nn::Linear> fc6, fc7;
};

class FastRCNNPredictor : public nn::Module {
 public:
  FastRCNNPredictor(int64_t in_features, int64_t num_classes_with_background, Generator& gen);
  std::pair<Tensor, Tensor> forward_pair(const Tensor& x);  // class logits [K, K+1], deltas [K, 4(K+1)]
  std::shared_ptr<nn::Linear> cls_score, bbox_pred;
};

class RoIHeads : public nn::Module {
 public:
  RoIHeads(int64_t in_channels, int64_t num_classes, const RoIHeadsConfig& cfg, const DetectorOptions& post,
           Generator& init_gen, uint64_t sample_seed);

  struct BoxOutputs {
    Tensor class_logits;    // [K, num_classes + 1]
    Tensor box_regression;  // [K, 4 (num_classes + 1)]
  };
  // Pools the proposals (per image [P_i, 4], concatenated in image order) from the FPN levels and
  // runs the box head and predictor.
  BoxOutputs box_outputs(const std::vector<Tensor>& features, const std::vector<Tensor>& proposals,
                         const std::vector<std::pair<int64_t, int64_t>>& image_sizes);
  // Inference: detections per image (labels 0 .. num_classes-1).
  std::vector<Detections> postprocess(const BoxOutputs& out, const std::vector<Tensor>& proposals,
                                      const std::vector<std::pair<int64_t, int64_t>>& image_sizes);
  // Training: samples the proposals against the targets and returns loss_classifier, loss_box_reg.
  std::map<std::string, Tensor> losses(const std::vector<Tensor>& features, const std::vector<Tensor>& proposals,
                                       const std::vector<std::pair<int64_t, int64_t>>& image_sizes,
                                       const std::vector<ImageTargets>& targets);

  const RoIHeadsConfig& config() const { return cfg_; }
  Generator& sample_generator() { return gen_; }

  std::shared_ptr<TwoMLPHead> box_head;
  std::shared_ptr<FastRCNNPredictor> box_predictor;

 private:
  int64_t num_classes_;
  RoIHeadsConfig cfg_;
  double score_thresh_, nms_thresh_;
  int64_t detections_per_img_;
  Generator gen_;
};

}  // namespace sx::models
