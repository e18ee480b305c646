// Differentiable RoIAlign, the autograd binding of kernels/roi_align (gradient to the feature
// maps; RoIs get none, as in torchvision).
//
// roi_align: torchvision.ops.roi_align; the forward and backward are the kernels of roi_align.h.
// multiscale_roi_align: torchvision.ops.MultiScaleRoIAlign for RoIs [K, 5] (batch index first):
//   the scale of level l is inferred as 2^round(log2(H_l / max image height)), the levels span
//   k_min = -log2(scale_0) .. k_max = -log2(scale_last), every RoI goes to its LevelMapper level
//   (canonical size 224 at level 4, eps 1e-6), and is pooled there. With one feature map the
//   mapper is skipped, as in torchvision.
#pragma once
#include <utility>
#include <vector>

#include "kernels/roi_align/roi_align.h"
#include "tensor/tensor.h"

namespace sx::nn {

using kernels::RoiAlignParams;

Tensor roi_align(const Tensor& input, const Tensor& rois, const kernels::RoiAlignParams& params,
                 bool deterministic_backward = false);
inline Tensor roi_align(const Tensor& input, const Tensor& rois, int64_t output_h, int64_t output_w,
                        double spatial_scale = 1.0, int64_t sampling_ratio = -1, bool aligned = false) {
  kernels::RoiAlignParams p;
  p.pooled_h = output_h;
  p.pooled_w = output_w;
  p.spatial_scale = spatial_scale;
  p.sampling_ratio = sampling_ratio;
  p.aligned = aligned;
  return roi_align(input, rois, p);
}

struct MultiScaleRoiAlignOptions {
  int64_t output_h = 7, output_w = 7;
  int64_t sampling_ratio = 2;
  int64_t canonical_scale = 224;
  int64_t canonical_level = 4;
  bool aligned = false;
  bool deterministic_backward = false;
};

// features: one [N, C, H_l, W_l] map per level, finest first; rois [K, 5]; image_sizes: (h, w) of
// each image in the batch (before padding), as torchvision's image_shapes. Output [K, C, oh, ow].
Tensor multiscale_roi_align(const std::vector<Tensor>& features, const Tensor& rois,
                            const std::vector<std::pair<int64_t, int64_t>>& image_sizes,
                            const MultiScaleRoiAlignOptions& options = {});

// The scales and level range multiscale_roi_align infers (exposed for tests and for callers
// that want to cache them).
struct FpnSetup {
  std::vector<double> scales;
  int64_t k_min = 0, k_max = 0;
};
FpnSetup infer_fpn_setup(const std::vector<Tensor>& features,
                         const std::vector<std::pair<int64_t, int64_t>>& image_sizes);

}  // namespace sx::nn
