// Sparse R-CNN's iterative head (Sun et al. 2021, "Sparse R-CNN: End-to-End Object Detection with
// Learnable Proposals"), with the authors' module structure and state-dict names
// (PeizeSun/SparseR-CNN, projects/SparseRCNN/sparsercnn/head.py):
//
//   DynamicHead "head"               head_series.{0..5}: six RCNNHeads (each its own weights)
//   RCNNHead                          one refinement stage, for B images x N proposals of D dims:
//     roi = RoIAlign(features P2..P5, current boxes)    7x7, sampling 2, aligned (ROIAlignV2),
//                                                      FPN level mapper (canonical 224 at level 4)
//     x   = norm1(x + self_attn(x, x, x))              attention among one image's N proposals
//     x   = norm2(x + inst_interact(x, roi))           the dynamic instance interaction
//     x   = norm3(x + linear2(relu(linear1(x))))       feed-forward D -> 2048 -> D
//     logits = class_logits(cls_module(x))             cls_module: (Linear D->D no bias, LN, ReLU) x 1
//     deltas = bboxes_delta(reg_module(x))             reg_module: the same x 3
//     boxes' = apply_box_deltas(deltas, boxes)         weights (2, 2, 1, 1), dw/dh clamped at log(1e5/16)
//   DynamicConv "inst_interact"       the proposal feature x [D] generates two 1x1 "layers":
//     params = dynamic_layer(x)                        Linear D -> 2 D Dd, split into W1 [D, Dd], W2 [Dd, D]
//     f = relu(norm1(roi [S, D] @ W1))                 S = 7 x 7 RoI positions, LN over Dd
//     f = relu(norm2(f @ W2))                          LN over D
//     out = relu(norm3(out_layer(flatten(f))))         Linear S D -> D
//
// The state-dict names (head.py's attribute names; nn.ModuleList indices for the towers):
//   self_attn.{in_proj_weight, in_proj_bias, out_proj.weight, out_proj.bias}
//   inst_interact.{dynamic_layer, norm1, norm2, out_layer, norm3}.{weight, bias}
//   linear1, linear2, norm1, norm2, norm3 .{weight, bias}
//   cls_module.{0: Linear (weight only), 1: LayerNorm}   reg_module.{0, 1, 3, 4, 6, 7}
//   class_logits.{weight, bias}   bboxes_delta.{weight, bias}
// (indices 2, 5, 8 are the ReLUs: no parameters.) Dropout is 0 (the authors' default): none here.
//
// Initialisation as the authors' DynamicHead._reset_parameters: every parameter of more than one
// dimension xavier_uniform; biases keep their layer's default (Linear's uniform, LayerNorm 0,
// attention 0); class_logits.bias = -log((1 - prior) / prior), prior 0.01 (focal loss).
#pragma once
#include <cmath>
#include <memory>
#include <utility>
#include <vector>

#include "kernels/box_ops/box_ops.h"
#include "layers/layers.h"
#include "tensor/random.h"

namespace sx::models {

struct SparseRcnnHeadConfig {
  int64_t hidden_dim = 256;  // D: the FPN's channels
  int64_t dim_feedforward = 2048;
  int64_t nhead = 8;         // attention heads
  int64_t dim_dynamic = 64;  // Dd
  int64_t num_cls = 1;       // Linear + LN + ReLU blocks before class_logits
  int64_t num_reg = 3;       // ... before bboxes_delta
  int64_t pooler_resolution = 7;
  int64_t sampling_ratio = 2;
  kernels::BoxCoderWeights bbox_weights = {2.0, 2.0, 1.0, 1.0};
  double scale_clamp = std::log(100000.0 / 16.0);
  double prior_probability = 0.01;
};

// Detectron2's Box2BoxTransform.apply_deltas (the math of kernels::decode_boxes) composed from
// differentiable ops, so the loss reaches the deltas and, at the first stage, the learned proposal
// boxes. deltas [M, 4], boxes [M, 4] (x1, y1, x2, y2) -> [M, 4].
Tensor apply_box_deltas(const Tensor& deltas, const Tensor& boxes, const kernels::BoxCoderWeights& weights,
                        double scale_clamp);

class DynamicConv : public nn::Module {
 public:
  DynamicConv(const SparseRcnnHeadConfig& cfg, Generator& gen);
  // proposal features [M, D], RoI features [M, S, D] (S = resolution^2) -> [M, D].
  Tensor forward_pair(const Tensor& pro_features, const Tensor& roi_features);

  std::shared_ptr<nn::Linear> dynamic_layer;
  std::shared_ptr<nn::LayerNorm> norm1, norm2;
  std::shared_ptr<nn::Linear> out_layer;
  std::shared_ptr<nn::LayerNorm> norm3;

 private:
  int64_t hidden_, dynamic_;
};

// One stage's outputs for B images x N proposals.
struct SparseRcnnStage {
  Tensor logits;    // [B, N, C]
  Tensor boxes;     // [B, N, 4] absolute (x1, y1, x2, y2) in the padded batch's pixels
  Tensor features;  // [B, N, D] the proposal features passed to the next stage
};

class RCNNHead : public nn::Module {
 public:
  RCNNHead(const SparseRcnnHeadConfig& cfg, int64_t num_classes, Generator& gen);
  // features: the FPN levels P2..P5 ([B, D, H_l, W_l]); boxes [B, N, 4]; pro_features [B, N, D];
  // image_sizes (h, w) per image (the RoI level mapper's scales).
  SparseRcnnStage forward_stage(const std::vector<Tensor>& features, const Tensor& boxes, const Tensor& pro_features,
                                const std::vector<std::pair<int64_t, int64_t>>& image_sizes);
  // The part after the RoI pooling (tests gradcheck it): roi [B N, S, D] -> the stage's outputs.
  SparseRcnnStage forward_pooled(const Tensor& roi_features, const Tensor& boxes, const Tensor& pro_features);

  std::shared_ptr<nn::MultiheadAttention> self_attn;
  std::shared_ptr<DynamicConv> inst_interact;
  std::shared_ptr<nn::Linear> linear1, linear2;
  std::shared_ptr<nn::LayerNorm> norm1, norm2, norm3;
  std::shared_ptr<nn::Sequential> cls_module, reg_module;
  std::shared_ptr<nn::Linear> class_logits, bboxes_delta;

 private:
  SparseRcnnHeadConfig cfg_;
};

// The stages; its constructor applies the authors' initialisation (top of this file) to all of them.
class DynamicHead : public nn::Module {
 public:
  DynamicHead(const SparseRcnnHeadConfig& cfg, int64_t num_classes, int64_t num_heads, Generator& gen);
  // Runs the stages from the initial boxes [B, N, 4] and features [B, N, D]; the boxes given to the
  // next stage are detached (as the authors': each stage learns its own refinement).
  std::vector<SparseRcnnStage> forward_stages(const std::vector<Tensor>& features, const Tensor& init_boxes,
                                              const Tensor& init_features,
                                              const std::vector<std::pair<int64_t, int64_t>>& image_sizes);
  std::shared_ptr<nn::Module> head_series;  // children "0".."num_heads-1"
  std::vector<std::shared_ptr<RCNNHead>> heads;
};

}  // namespace sx::models
