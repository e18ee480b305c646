// Sparse R-CNN's set criterion (Sun et al. 2021; issue 13, part 3): the Hungarian matching of each
// image's proposals to its ground-truth boxes and the losses of the matched set, for every stage of
// the iterative head (deep supervision). How and why, in sparse_rcnn_loss.cpp.
//
// Inputs, per stage: logits [B, N, C] (sigmoid classes, no background column) and boxes [B, N, 4]
// (x1, y1, x2, y2) in the padded batch's pixels, float32 or float64, on the CPU or one CUDA device;
// targets as the other detectors take them (models/detections.h, on the same device); image_sizes
// (height, width) per image exactly as ImageList::image_sizes stores them.
//
// Matching cost, per image, prediction i against target j (no gradient):
//   C = l1_weight * |b_i - g_j|_1 (boxes divided by (w, h, w, h) of the image)
//     + class_weight * (pos - neg)(p_i[label_j])   focal-style cost, p = sigmoid(logit)
//     + giou_weight * (-GIoU(b_i, g_j))              on absolute boxes
// then scipy's linear_sum_assignment (kernels/assignment, rectangular: min(N, M) pairs).
// Losses (weighted, scalars, differentiable w.r.t. logits and boxes), with num_boxes = the batch's
// number of targets clamped to >= 1:
//   loss_ce   = class_weight * sigmoid_focal_loss(all B*N x C logits, one-hot of the matched
//               targets' classes, unmatched rows all background; sum) / num_boxes
//   loss_bbox = l1_weight * sum over matched pairs of the normalised L1 distance / num_boxes
//   loss_giou = giou_weight * sum over matched pairs of (1 - GIoU) / num_boxes
// Device synchronisation: the matcher computes the batch's cost matrix [B * N, M_total] in one go
// and copies it (with the labels' range and two finiteness counts) to the host in ONE device-to-host
// copy per stage, as DETR / Sparse R-CNN do (the assignment runs on the CPU, per image on its
// diagonal block); the losses never wait for the device.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "kernels/assignment/assignment.h"
#include "models/detections.h"
#include "tensor/tensor.h"

namespace sx::models {

// The matching cost's weights are the loss weights (the paper's 2 / 5 / 2), as in the reference.
struct SparseRcnnLossConfig {
  double class_weight = 2.0, l1_weight = 5.0, giou_weight = 2.0;
  double focal_alpha = 0.25, focal_gamma = 2.0;
};

// One stage's predictions for a batch of B images with N proposals and C classes.
struct SetPrediction {
  Tensor logits;  // [B, N, C] float, class logits (sigmoid, no background column)
  Tensor boxes;   // [B, N, 4] float, absolute (x1, y1, x2, y2) in the padded batch's pixel frame
};

// Per image, the matched (prediction index, target index) pairs: rows (prediction indices,
// increasing) and cols, int64 CPU tensors of min(N, M_b) elements (empty for an image without
// targets). No autograd. Non-finite logits or boxes throw ValueError naming the image and proposal
// (a diverged model must stop with a clear message, not train on garbage).
std::vector<kernels::Assignment> sparse_rcnn_match(const SetPrediction& p,
                                                   const std::vector<ImageTargets>& targets,
                                                   const std::vector<std::pair<int64_t, int64_t>>& image_sizes,
                                                   const SparseRcnnLossConfig& cfg = {});

// One stage's weighted losses {"loss_ce", "loss_bbox", "loss_giou"} (scalars of the predictions'
// dtype, on their device, differentiable w.r.t. p.logits and p.boxes), given the matching. Without
// any matched pair loss_bbox and loss_giou are zeros that still backpropagate (zero gradients).
// The matching's indices are checked; labels and finiteness are the matcher's checks (it runs first).
std::map<std::string, Tensor> sparse_rcnn_stage_losses(const SetPrediction& p,
                                                       const std::vector<ImageTargets>& targets,
                                                       const std::vector<std::pair<int64_t, int64_t>>& image_sizes,
                                                       const std::vector<kernels::Assignment>& match,
                                                       const SparseRcnnLossConfig& cfg = {});

// All stages (stages.back() is the last): matches each stage separately and returns "loss_ce",
// "loss_bbox", "loss_giou" for the last stage and "loss_ce_k", "loss_bbox_k", "loss_giou_k" for
// every earlier stage k (Detectron2's naming). The trainer sums every value.
std::map<std::string, Tensor> sparse_rcnn_losses(const std::vector<SetPrediction>& stages,
                                                 const std::vector<ImageTargets>& targets,
                                                 const std::vector<std::pair<int64_t, int64_t>>& image_sizes,
                                                 const SparseRcnnLossConfig& cfg = {});

}  // namespace sx::models
