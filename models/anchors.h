// The detectors' anchors and anchor matching: thin model-side wrappers over kernels/anchors and
// kernels/matcher (torchvision's AnchorGenerator and Matcher; the semantics are documented there).
// One implementation: these only adapt the API the models and their tests use (per-level anchor
// lists, a one-tuple aspect ratio broadcast to every level, IoU thresholds as plain arguments).
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "kernels/anchors/anchors.h"
#include "kernels/matcher/matcher.h"
#include "tensor/tensor.h"

namespace sx::models {

// Anchors over FPN levels. Level l has cell anchors for every (ratio, size) pair, ratio-major:
//   h_ratio = sqrt(r), w_ratio = 1 / h_ratio, w = w_ratio * size, h = h_ratio * size,
//   cell = round((-w, -h, w, h) / 2)   (float32, round half to even, as torch.round)
// placed at every grid cell: shift (x * stride_w, y * stride_h) with stride = image size // grid
// size (the padded batch size), location-major then anchor (the heads' output order).
// sizes: per level; aspect_ratios: per level, or one tuple broadcast to all levels.
struct AnchorGenerator : kernels::AnchorConfig {
  int64_t num_anchors_per_location(int64_t level = 0) const;
  // [A, 4] float32 cell anchors of a level (CPU): kernels::base_anchors.
  Tensor cell_anchors(int64_t level) const;
  // Anchors of every level for the given feature-map sizes (each non-empty) and padded image size,
  // [HWA_l, 4] float32 on `device`: kernels::generate_anchor_levels.
  std::vector<Tensor> grid_anchors(const std::vector<std::pair<int64_t, int64_t>>& grid_sizes,
                                   std::pair<int64_t, int64_t> image_size, Device device) const;
};
// RetinaNet's defaults: sizes (x, x*2^(1/3), x*2^(2/3)) truncated to int for x in 32..512, ratios 0.5/1/2.
AnchorGenerator retinanet_default_anchors();
// torchvision's RetinaNet sizes from another base size (e.g. 16 for small lesions at small image
// sizes): kernels::retinanet_anchor_config.
AnchorGenerator retinanet_anchors(double base_size = 32, int64_t num_levels = 5,
                                  std::vector<double> ratios = {0.5, 1.0, 2.0});

// torchvision's Matcher on an IoU matrix [G, A] (G ground-truth boxes, A anchors): per anchor the
// best ground truth's index, or -1 (best IoU < low), or -2 (low <= IoU < high, "between
// thresholds"), thresholds compared in the IoU dtype. allow_low_quality_matches restores, for each
// ground truth, the anchors that have its highest IoU (ties included) to their own best match.
// G == 0 gives all -1. Int64 [A], on the matrix's device: kernels::match_anchors.
constexpr int64_t kBelowLowThreshold = kernels::kMatchBelowLow;
constexpr int64_t kBetweenThresholds = kernels::kMatchBetween;
Tensor match_boxes(const Tensor& iou, double high, double low, bool allow_low_quality_matches);

}  // namespace sx::models
