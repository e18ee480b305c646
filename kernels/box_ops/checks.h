// Argument checks shared by the detection kernels (box_ops, nms, matcher, focal_loss, roi_align,
// optim). Their device dispatch goes through tensor/dispatch.h like every other op.
#pragma once
#include "tensor/errors.h"
#include "tensor/tensor.h"

namespace sx::kernels::detail {

inline void check_float(const Tensor& t, const char* op, const char* name) {
  SX_CHECK(t.defined(), op, ": ", name, " is undefined");
  SX_CHECK(t.dtype() == DType::Float32 || t.dtype() == DType::Float64, op, ": ", name,
           " must be float32 or float64, got ", dtype_name(t.dtype()));
}
inline void check_boxes(const Tensor& t, const char* op, const char* name) {
  check_float(t, op, name);
  SX_CHECK(t.dim() == 2 && t.size(1) == 4, op, ": ", name, " must be [N, 4], got ",
           shape_str(t.shape()));
}
inline void check_same_device(const Tensor& a, const Tensor& b, const char* op) {
  SX_CHECK(a.device() == b.device(), op, ": tensors on different devices (", a.device().str(),
           " and ", b.device().str(), ")");
}
inline void check_same_dtype(const Tensor& a, const Tensor& b, const char* op) {
  SX_CHECK(a.dtype() == b.dtype(), op, ": dtypes differ (", dtype_name(a.dtype()), " and ",
           dtype_name(b.dtype()), ")");
}

}  // namespace sx::kernels::detail
