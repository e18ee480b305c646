// Strided addressing shared by CPU loops and CUDA kernels.
//
// A tensor element with multi-index (i0, ..., i{n-1}) lives at offset sum_k ik * stride_k. Kernels
// walk the *output* in row-major order with a linear index; StridedMeta turns that linear index back
// into the operand's storage offset (64-bit throughout, since tensors may exceed 2^31 elements).
#pragma once
#include <cstdint>

#include "tensor/errors.h"
#include "tensor/host_device.h"
#include "tensor/tensor.h"

namespace sx {

constexpr int kMaxDims = 8;

struct StridedMeta {
  int ndim = 0;
  int64_t sizes[kMaxDims] = {};
  int64_t strides[kMaxDims] = {};

  // Storage offset (relative to the tensor's first element) of the linear row-major index i.
  HOST_DEVICE int64_t offset_of(int64_t i) const {
    int64_t off = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      int64_t s = sizes[d];
      int64_t q = i / s;
      off += (i - q * s) * strides[d];
      i = q;
    }
    return off;
  }
};

// Geometry of t viewed with `shape` (t's shape must broadcast to it: stride 0 on stretched dims).
inline StridedMeta make_strided_meta(const Tensor& t, const Shape& shape) {
  SX_CHECK(static_cast<int>(shape.size()) <= kMaxDims, "at most ", kMaxDims, " dims are supported, got ",
           shape.size());
  StridedMeta m;
  m.ndim = static_cast<int>(shape.size());
  const int64_t lead = static_cast<int64_t>(shape.size()) - t.dim();
  for (int d = 0; d < m.ndim; ++d) {
    m.sizes[d] = shape[d];
    int64_t td = d - lead;
    m.strides[d] = (td < 0 || t.size(td) == 1) ? 0 : t.stride(td);
  }
  return m;
}
inline StridedMeta make_strided_meta(const Tensor& t) { return make_strided_meta(t, t.shape()); }

}  // namespace sx
