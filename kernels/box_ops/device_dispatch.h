// Run-time dispatch from a tensor's device to the cpu:: or cuda:: twin of a detection kernel.
//
//   SX_DEVICE_DISPATCH(t.is_cuda(), "box_iou", be::pairwise(a, b, op));
//
// returns the expression evaluated with `be` bound to sx::kernels::cpu or sx::kernels::cuda. The
// CPU backend is always compiled; a build without CUDA throws sx::NotBuiltError for CUDA tensors.
#pragma once
#include "tensor/errors.h"
#include "tensor/tensor.h"

#ifdef SX_WITH_CUDA
#define SX_DEVICE_DISPATCH(is_cuda, opname, ...)  \
  do {                                            \
    if (is_cuda) {                                \
      namespace be = ::sx::kernels::cuda;         \
      return __VA_ARGS__;                         \
    } else {                                      \
      namespace be = ::sx::kernels::cpu;          \
      return __VA_ARGS__;                         \
    }                                             \
  } while (0)
#else
#define SX_DEVICE_DISPATCH(is_cuda, opname, ...)                                               \
  do {                                                                                         \
    if (is_cuda)                                                                               \
      SX_THROW(NotBuiltError, opname, ": got a CUDA tensor but spinexr was built without CUDA"); \
    namespace be = ::sx::kernels::cpu;                                                         \
    return __VA_ARGS__;                                                                        \
  } while (0)
#endif

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
