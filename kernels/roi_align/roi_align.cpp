// Argument checks, device dispatch and the multi-level (FPN) wrappers of roi_align.h.
#include "kernels/roi_align/roi_align.h"

#include <cmath>

#include "kernels/box_ops/checks.h"
#include "tensor/dispatch.h"

namespace sx::kernels {
namespace {

void check_params(const RoiAlignParams& p, const char* op) {
  SX_CHECK(p.pooled_h > 0 && p.pooled_w > 0, op, ": output size must be positive, got ", p.pooled_h,
           "x", p.pooled_w);
}

void check_rois(const Tensor& rois, const char* op) {
  detail::check_float(rois, op, "rois");
  SX_CHECK(rois.dim() == 2 && rois.size(1) == 5, op, ": rois must be [K, 5], got ",
           shape_str(rois.shape()));
}

void check_levels(const Tensor& levels, const Tensor& rois, const char* op) {
  SX_CHECK(levels.defined() && levels.dtype() == DType::Int64 && levels.dim() == 1 &&
               levels.size(0) == rois.size(0),
           op, ": levels must be int64 [", rois.size(0), "]");
  detail::check_same_device(levels, rois, op);
}

}  // namespace

Tensor roi_align_forward(const Tensor& input, const Tensor& rois, const RoiAlignParams& p,
                         RoiAlignAlgo algo) {
  detail::check_float(input, "roi_align", "input");
  SX_CHECK(input.dim() == 4, "roi_align: input must be [N, C, H, W], got ", shape_str(input.shape()));
  check_rois(rois, "roi_align");
  check_params(p, "roi_align");
  detail::check_same_device(input, rois, "roi_align");
  detail::check_same_dtype(input, rois, "roi_align");
  Tensor x = input.contiguous(), r = rois.contiguous();
  Tensor out = Tensor::empty({r.size(0), x.size(1), p.pooled_h, p.pooled_w}, x.dtype(), x.device());
  if (out.numel() == 0) return out;
  backend<RoiAlignBackend>(x.device(), "roi_align")
      .roi_align_forward_into(x, r, Tensor(), 0, p, algo, out);
  return out;
}

Tensor roi_align_backward(const Tensor& grad_out, const Tensor& rois, const Shape& input_shape,
                          const RoiAlignParams& p, bool deterministic, RoiAlignAlgo algo) {
  detail::check_float(grad_out, "roi_align_backward", "grad_out");
  check_rois(rois, "roi_align_backward");
  check_params(p, "roi_align_backward");
  SX_CHECK(input_shape.size() == 4, "roi_align_backward: input_shape must be [N, C, H, W], got ",
           shape_str(input_shape));
  const Shape want = {rois.size(0), input_shape[1], p.pooled_h, p.pooled_w};
  SX_CHECK(grad_out.shape() == want, "roi_align_backward: grad_out must be ", shape_str(want),
           ", got ", shape_str(grad_out.shape()));
  detail::check_same_device(grad_out, rois, "roi_align_backward");
  detail::check_same_dtype(grad_out, rois, "roi_align_backward");
  Tensor g = grad_out.contiguous(), r = rois.contiguous();
  Tensor gi = Tensor::zeros(input_shape, g.dtype(), g.device());
  if (g.numel() == 0 || gi.numel() == 0) return gi;
  backend<RoiAlignBackend>(g.device(), "roi_align_backward")
      .roi_align_backward_into(g, r, Tensor(), 0, p, deterministic, algo, gi);
  return gi;
}

Tensor fpn_levels(const Tensor& rois, int64_t k_min, int64_t k_max, double s0, int64_t k0, double eps) {
  check_rois(rois, "fpn_levels");
  SX_CHECK(k_min <= k_max, "fpn_levels: k_min ", k_min, " > k_max ", k_max);
  Tensor r = rois.contiguous();
  return backend<RoiAlignBackend>(r.device(), "fpn_levels")
      .fpn_levels(r, k_min, k_max, s0, k0, eps);
}

double infer_fpn_scale(int64_t feature_size, int64_t image_size) {
  SX_CHECK(feature_size > 0 && image_size > 0, "infer_fpn_scale: sizes must be positive, got ",
           feature_size, " and ", image_size);
  // torchvision: 2 ** float(torch.tensor(approx_scale).log2().round()), in float32; round is
  // half-to-even like std::nearbyint.
  const float approx = static_cast<float>(double(feature_size) / double(image_size));
  return std::exp2(static_cast<double>(std::nearbyint(std::log2(approx))));
}

Tensor multilevel_roi_align_forward(const std::vector<Tensor>& features, const Tensor& rois,
                                    const Tensor& levels, const std::vector<double>& scales,
                                    const RoiAlignParams& p, RoiAlignAlgo algo) {
  SX_CHECK(!features.empty(), "multilevel_roi_align: no feature maps");
  SX_CHECK(scales.size() == features.size(), "multilevel_roi_align: ", features.size(),
           " feature maps but ", scales.size(), " scales");
  check_rois(rois, "multilevel_roi_align");
  check_params(p, "multilevel_roi_align");
  check_levels(levels, rois, "multilevel_roi_align");
  const Tensor& f0 = features[0];
  for (size_t l = 0; l < features.size(); ++l) {
    const Tensor& f = features[l];
    detail::check_float(f, "multilevel_roi_align", "feature");
    SX_CHECK(f.dim() == 4 && f.size(0) == f0.size(0) && f.size(1) == f0.size(1),
             "multilevel_roi_align: feature ", l, " must be [", f0.size(0), ", ", f0.size(1),
             ", H, W], got ", shape_str(f.shape()));
    detail::check_same_device(f, rois, "multilevel_roi_align");
    detail::check_same_dtype(f, rois, "multilevel_roi_align");
  }
  Tensor r = rois.contiguous(), lv = levels.contiguous();
  Tensor out = Tensor::zeros({r.size(0), f0.size(1), p.pooled_h, p.pooled_w}, f0.dtype(), f0.device());
  if (out.numel() == 0) return out;
  for (size_t l = 0; l < features.size(); ++l) {
    RoiAlignParams pl = p;
    pl.spatial_scale = scales[l];
    Tensor x = features[l].contiguous();
    if (x.numel() == 0) continue;
    backend<RoiAlignBackend>(x.device(), "roi_align")
        .roi_align_forward_into(x, r, lv, static_cast<int64_t>(l), pl, algo, out);
  }
  return out;
}

std::vector<Tensor> multilevel_roi_align_backward(const Tensor& grad_out, const Tensor& rois,
                                                  const Tensor& levels,
                                                  const std::vector<Shape>& feature_shapes,
                                                  const std::vector<double>& scales,
                                                  const RoiAlignParams& p, bool deterministic,
                                                  RoiAlignAlgo algo) {
  SX_CHECK(scales.size() == feature_shapes.size(), "multilevel_roi_align_backward: ",
           feature_shapes.size(), " feature shapes but ", scales.size(), " scales");
  check_rois(rois, "multilevel_roi_align_backward");
  check_levels(levels, rois, "multilevel_roi_align_backward");
  detail::check_float(grad_out, "multilevel_roi_align_backward", "grad_out");
  detail::check_same_device(grad_out, rois, "multilevel_roi_align_backward");
  Tensor g = grad_out.contiguous(), r = rois.contiguous(), lv = levels.contiguous();
  std::vector<Tensor> grads;
  for (size_t l = 0; l < feature_shapes.size(); ++l) {
    SX_CHECK(feature_shapes[l].size() == 4, "multilevel_roi_align_backward: feature shape ", l,
             " must be [N, C, H, W], got ", shape_str(feature_shapes[l]));
    Tensor gi = Tensor::zeros(feature_shapes[l], g.dtype(), g.device());
    if (g.numel() > 0 && gi.numel() > 0) {
      RoiAlignParams pl = p;
      pl.spatial_scale = scales[l];
      backend<RoiAlignBackend>(g.device(), "roi_align_backward")
          .roi_align_backward_into(g, r, lv, static_cast<int64_t>(l), pl, deterministic, algo, gi);
    }
    grads.push_back(gi);
  }
  return grads;
}

}  // namespace sx::kernels
