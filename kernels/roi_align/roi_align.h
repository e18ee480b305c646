// RoIAlign (He et al., Mask R-CNN), torchvision.ops.roi_align semantics, forward and backward.
//
// input [N, C, H, W] (NCHW, float32/float64), rois [K, 5] rows (batch_index, x1, y1, x2, y2) in image
// coordinates; output [K, C, pooled_h, pooled_w]. For RoI k the box is scaled by spatial_scale and,
// when `aligned`, shifted by -0.5 so that pixel centres sit at integer + 0.5 (the half-pixel fix;
// torchvision's aligned=True). Without `aligned` the box is at least 1 x 1. The box is split into
// pooled_h x pooled_w bins; each bin averages a grid of gh x gw bilinear samples at the centres of
// a regular sub-grid, with gh = sampling_ratio when > 0, else the adaptive ceil(roi_h / pooled_h)
// (likewise gw). A sample outside [-1, H] x [-1, W] contributes 0; samples in [-1, 0] are clamped to
// 0 and samples beyond the last row/column use it (torchvision's border rule), so RoIs crossing the
// image border are handled exactly like torchvision. The average divides by gh * gw.
//
// backward: grad_input [N, C, H, W] = sum over outputs of grad_out * bilinear weight / count,
// scattered to the four neighbours of every sample.
//   CPU: deterministic (sequential order per channel).
//   CUDA: atomicAdd per contribution (fast, order-dependent rounding), or with `deterministic` a
//     fixed-point accumulation: a first pass computes S = sum |grad_out| (fixed-order reduction),
//     every contribution is rounded to an int64 multiple of 2^-e with 2^-e ~ S / 2^62, and added
//     with integer atomics, which are associative: the result is bit-identical run to run. The
//     absolute error is below (number of contributions) * S * 2^-63, far under float32 rounding
//     for any realistic gradient; a non-finite grad_out makes the whole result NaN.
//
// Edge cases: K = 0 gives [0, C, ph, pw] (and a zero gradient); a RoI with a non-finite coordinate
// or an out-of-range batch index produces zeros and no gradient (the CPU throws ValueError for an
// out-of-range batch index instead); the adaptive sampling grid is capped at 512 per axis per bin
// (only RoIs wider than 512 * pooled feature pixels differ from torchvision).
//
// Multi-level (FPN) RoIAlign, torchvision's MultiScaleRoIAlign:
//   fpn_levels(rois, k_min, k_max): LevelMapper, level = floor(k0 + log2(sqrt(area) / s0) + eps)
//     clamped to [k_min, k_max], returned minus k_min (int64 [K]), with k0 = 4, s0 = 224, eps = 1e-6,
//     computed in the RoIs' dtype like torchvision (a NaN box goes to level 0).
//   infer_fpn_scale(feature_h, image_h): 2^round(log2(feature_h / image_h)) (float32, as torchvision).
//   multilevel forward/backward: each RoI is pooled from its level's feature map with that level's
//     scale; the kernels run once per level over all RoIs, skipping those of other levels, so no
//     gather/scatter of RoIs and no host sync is needed.
#pragma once
#include <vector>

#include "tensor/tensor.h"

namespace sx::kernels {

struct RoiAlignParams {
  int64_t pooled_h = 7;
  int64_t pooled_w = 7;
  double spatial_scale = 1.0;
  int64_t sampling_ratio = -1;  // <= 0: adaptive
  bool aligned = false;
};

// Naive: every output element recomputes its bilinear samples (the textbook loop; what the CUDA
// kernel does per thread). Fast (CPU): the sample positions and weights of a RoI are computed once
// and reused for all C channels; RoIs (forward) or channels (backward) run on OpenMP threads.
// On CUDA both run the one-thread-per-output kernel.
enum class RoiAlignAlgo { Naive, Fast };

Tensor roi_align_forward(const Tensor& input, const Tensor& rois, const RoiAlignParams& p,
                         RoiAlignAlgo algo = RoiAlignAlgo::Fast);
Tensor roi_align_backward(const Tensor& grad_out, const Tensor& rois, const Shape& input_shape,
                          const RoiAlignParams& p, bool deterministic = false,
                          RoiAlignAlgo algo = RoiAlignAlgo::Fast);

// FPN level assignment (torchvision LevelMapper); returns int64 [K] in [0, k_max - k_min].
Tensor fpn_levels(const Tensor& rois, int64_t k_min, int64_t k_max, double canonical_scale = 224.0,
                  int64_t canonical_level = 4, double eps = 1e-6);
// torchvision's _infer_scale for one feature map: 2^round(log2(feature_size / image_size)).
double infer_fpn_scale(int64_t feature_size, int64_t image_size);

// features[l]: [N, C, H_l, W_l]; levels: int64 [K] from fpn_levels; scales[l]: spatial scale of
// level l (p.spatial_scale is ignored). Output [K, C, ph, pw].
Tensor multilevel_roi_align_forward(const std::vector<Tensor>& features, const Tensor& rois,
                                    const Tensor& levels, const std::vector<double>& scales,
                                    const RoiAlignParams& p, RoiAlignAlgo algo = RoiAlignAlgo::Fast);
std::vector<Tensor> multilevel_roi_align_backward(const Tensor& grad_out, const Tensor& rois,
                                                  const Tensor& levels,
                                                  const std::vector<Shape>& feature_shapes,
                                                  const std::vector<double>& scales,
                                                  const RoiAlignParams& p, bool deterministic = false,
                                                  RoiAlignAlgo algo = RoiAlignAlgo::Fast);

// The backend functions (tensor/dispatch.h); the op functions above check the arguments first.
// They fill the rows of `out` (forward) / accumulate into `grad_input` (backward, which the caller
// zeroes) for the RoIs whose levels[k] == level, or all RoIs when levels is undefined.
struct RoiAlignBackend {
  void (*roi_align_forward_into)(const Tensor& input, const Tensor& rois, const Tensor& levels,
                                 int64_t level, const RoiAlignParams& p, RoiAlignAlgo algo,
                                 Tensor& out);
  void (*roi_align_backward_into)(const Tensor& grad_out, const Tensor& rois, const Tensor& levels,
                                  int64_t level, const RoiAlignParams& p, bool deterministic,
                                  RoiAlignAlgo algo, Tensor& grad_input);
  Tensor (*fpn_levels)(const Tensor& rois, int64_t k_min, int64_t k_max, double s0, int64_t k0,
                       double eps);
  static const RoiAlignBackend cpu, cuda;
};

}  // namespace sx::kernels
