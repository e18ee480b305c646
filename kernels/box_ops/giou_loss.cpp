// Argument checks, [..., 4] -> [N, 4] flattening and device dispatch for giou_loss.h.
#include "kernels/box_ops/giou_loss.h"

#include "kernels/box_ops/checks.h"
#include "tensor/dispatch.h"

namespace sx::kernels {
namespace {

void check_pairs(const Tensor& b1, const Tensor& b2, const char* op) {
  detail::check_float(b1, op, "boxes1");
  detail::check_float(b2, op, "boxes2");
  SX_CHECK(b1.dim() >= 1 && b1.size(-1) == 4, op, ": boxes must be [..., 4], got ", shape_str(b1.shape()));
  SX_CHECK(b1.shape() == b2.shape(), op, ": boxes1 ", shape_str(b1.shape()), " and boxes2 ",
           shape_str(b2.shape()), " must have the same shape");
  detail::check_same_device(b1, b2, op);
  detail::check_same_dtype(b1, b2, op);
}

Shape pair_shape(const Tensor& b) {
  Shape s = b.shape();
  s.pop_back();
  return s;
}

}  // namespace

Tensor giou_loss_forward(const Tensor& boxes1, const Tensor& boxes2, double eps) {
  check_pairs(boxes1, boxes2, "giou_loss");
  const Shape out_shape = pair_shape(boxes1);
  Tensor a = boxes1.contiguous().reshape({-1, 4}), b = boxes2.contiguous().reshape({-1, 4});
  return backend<GiouLossBackend>(a.device(), "giou_loss").forward(a, b, eps).reshape(out_shape);
}

std::pair<Tensor, Tensor> giou_loss_backward(const Tensor& grad, const Tensor& boxes1, const Tensor& boxes2,
                                             double eps) {
  check_pairs(boxes1, boxes2, "giou_loss_backward");
  detail::check_float(grad, "giou_loss_backward", "grad");
  detail::check_same_dtype(grad, boxes1, "giou_loss_backward");
  detail::check_same_device(grad, boxes1, "giou_loss_backward");
  SX_CHECK(grad.shape() == pair_shape(boxes1), "giou_loss_backward: grad must be ",
           shape_str(pair_shape(boxes1)), ", got ", shape_str(grad.shape()));
  Tensor a = boxes1.contiguous().reshape({-1, 4}), b = boxes2.contiguous().reshape({-1, 4});
  Tensor g = grad.contiguous().reshape({-1});
  auto r = backend<GiouLossBackend>(a.device(), "giou_loss_backward").backward(g, a, b, eps);
  return {r.first.reshape(boxes1.shape()), r.second.reshape(boxes2.shape())};
}

}  // namespace sx::kernels
