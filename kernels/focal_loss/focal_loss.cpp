// Argument checks and device dispatch for focal_loss.h.
#include "kernels/focal_loss/focal_loss.h"

#include "kernels/box_ops/checks.h"
#include "tensor/dispatch.h"

namespace sx::kernels {
namespace {
void check_inputs(const Tensor& logits, const Tensor& targets, const FocalLossParams& p, const char* op) {
  detail::check_float(logits, op, "logits");
  SX_CHECK(logits.dim() == 2, op, ": logits must be [N, C], got ", shape_str(logits.shape()));
  SX_CHECK(targets.defined() && targets.dtype() == DType::Int64, op, ": targets must be int64");
  SX_CHECK(targets.dim() == 1 && targets.size(0) == logits.size(0), op, ": targets must be [",
           logits.size(0), "], got ", shape_str(targets.shape()));
  detail::check_same_device(logits, targets, op);
  SX_CHECK(p.gamma >= 0, op, ": gamma must be >= 0, got ", p.gamma);
  SX_CHECK(p.normalizer > 0, op, ": normalizer must be > 0, got ", p.normalizer);
}
}  // namespace

Tensor sigmoid_focal_loss_forward(const Tensor& logits, const Tensor& targets, const FocalLossParams& p) {
  check_inputs(logits, targets, p, "sigmoid_focal_loss");
  Tensor x = logits.contiguous(), t = targets.contiguous();
  return backend<FocalLossBackend>(x.device(), "sigmoid_focal_loss")
      .sigmoid_focal_loss_forward(x, t, p);
}

Tensor sigmoid_focal_loss_backward(const Tensor& grad_out, const Tensor& logits, const Tensor& targets,
                                   const FocalLossParams& p) {
  check_inputs(logits, targets, p, "sigmoid_focal_loss_backward");
  detail::check_float(grad_out, "sigmoid_focal_loss_backward", "grad_out");
  detail::check_same_dtype(grad_out, logits, "sigmoid_focal_loss_backward");
  detail::check_same_device(grad_out, logits, "sigmoid_focal_loss_backward");
  if (p.reduction == FocalReduction::None)
    SX_CHECK(grad_out.shape() == logits.shape(), "sigmoid_focal_loss_backward: grad_out must be ",
             shape_str(logits.shape()), ", got ", shape_str(grad_out.shape()));
  else
    SX_CHECK(grad_out.numel() == 1, "sigmoid_focal_loss_backward: grad_out must hold one element, got ",
             shape_str(grad_out.shape()));
  Tensor g = grad_out.contiguous(), x = logits.contiguous(), t = targets.contiguous();
  return backend<FocalLossBackend>(x.device(), "sigmoid_focal_loss_backward")
      .sigmoid_focal_loss_backward(g, x, t, p);
}

}  // namespace sx::kernels
