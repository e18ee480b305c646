// Autograd glue for RoIAlign: thin nodes calling the kernels' backward functions.
#include "layers/roi_align.h"

#include <algorithm>
#include <cmath>

#include "tensor/autograd.h"

namespace sx::nn {

Tensor roi_align(const Tensor& input, const Tensor& rois, const kernels::RoiAlignParams& params,
                 bool deterministic_backward) {
  Tensor out = kernels::roi_align_forward(input.detach(), rois.detach(), params);
  const Shape in_shape = input.shape();
  Tensor r = rois.detach();
  return attach_grad(out, "roi_align", {input, rois},
                     [r, in_shape, params, deterministic_backward](const Tensor& g) {
                       return std::vector<Tensor>{
                           kernels::roi_align_backward(g, r, in_shape, params, deterministic_backward),
                           Tensor()};
                     });
}

FpnSetup infer_fpn_setup(const std::vector<Tensor>& features,
                         const std::vector<std::pair<int64_t, int64_t>>& image_sizes) {
  SX_CHECK(!image_sizes.empty(), "multiscale_roi_align: image_sizes is empty");
  SX_CHECK(!features.empty(), "multiscale_roi_align: no feature maps");
  int64_t max_h = 0;
  for (auto& s : image_sizes) max_h = std::max(max_h, s.first);
  FpnSetup setup;
  for (const Tensor& f : features) {
    SX_CHECK(f.dim() == 4, "multiscale_roi_align: features must be [N, C, H, W], got ",
             shape_str(f.shape()));
    setup.scales.push_back(kernels::infer_fpn_scale(f.size(2), max_h));
  }
  // torchvision: int(-log2(scale)) in float32.
  setup.k_min = static_cast<int64_t>(-std::log2(static_cast<float>(setup.scales.front())));
  setup.k_max = static_cast<int64_t>(-std::log2(static_cast<float>(setup.scales.back())));
  return setup;
}

Tensor multiscale_roi_align(const std::vector<Tensor>& features, const Tensor& rois,
                            const std::vector<std::pair<int64_t, int64_t>>& image_sizes,
                            const MultiScaleRoiAlignOptions& o) {
  const FpnSetup setup = infer_fpn_setup(features, image_sizes);
  kernels::RoiAlignParams p;
  p.pooled_h = o.output_h;
  p.pooled_w = o.output_w;
  p.sampling_ratio = o.sampling_ratio;
  p.aligned = o.aligned;
  if (features.size() == 1) {
    p.spatial_scale = setup.scales[0];
    return roi_align(features[0], rois, p, o.deterministic_backward);
  }
  SX_CHECK(setup.k_max - setup.k_min + 1 == static_cast<int64_t>(features.size()),
           "multiscale_roi_align: ", features.size(), " feature maps but the inferred levels span ",
           setup.k_min, "..", setup.k_max);
  Tensor levels = kernels::fpn_levels(rois.detach(), setup.k_min, setup.k_max,
                                      static_cast<double>(o.canonical_scale), o.canonical_level);
  std::vector<Tensor> feats;
  std::vector<Shape> shapes;
  for (const Tensor& f : features) {
    feats.push_back(f.detach());
    shapes.push_back(f.shape());
  }
  Tensor out = kernels::multilevel_roi_align_forward(feats, rois.detach(), levels, setup.scales, p);
  std::vector<Tensor> inputs = features;
  inputs.push_back(rois);
  Tensor r = rois.detach();
  const bool det = o.deterministic_backward;
  const std::vector<double> scales = setup.scales;
  return attach_grad(out, "multiscale_roi_align", inputs,
                     [r, levels, shapes, scales, p, det](const Tensor& g) {
                       std::vector<Tensor> grads =
                           kernels::multilevel_roi_align_backward(g, r, levels, shapes, scales, p, det);
                       grads.push_back(Tensor());
                       return grads;
                     });
}

}  // namespace sx::nn
