// Index math of 2-D convolution shared by the CPU im2col loops, the naive reference and any GPU
// code: the input position that kernel tap (r, s) of output (p, q) reads.
#pragma once
#include <cstdint>

#include "tensor/host_device.h"

namespace sx::kernels::conv_math {

// Output extent along one axis (floor division); may be <= 0 for impossible shapes.
HOST_DEVICE int64_t out_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad, int64_t dil) {
  return (in + 2 * pad - dil * (kernel - 1) - 1) / stride + 1;
}
// Input coordinate read by output coordinate o at tap k.
HOST_DEVICE int64_t in_coord(int64_t o, int64_t k, int64_t stride, int64_t pad, int64_t dil) {
  return o * stride - pad + k * dil;
}
// First output coordinate o with in_coord(o, k) >= 0, and one past the last with in_coord < in:
// the range of o whose tap k lands inside the input (used to split im2col rows into a zero
// prefix, a copied middle and a zero suffix without a branch per element).
HOST_DEVICE int64_t first_valid(int64_t k, int64_t stride, int64_t pad, int64_t dil) {
  int64_t need = pad - k * dil;  // o * stride >= need
  if (need <= 0) return 0;
  return (need + stride - 1) / stride;
}
HOST_DEVICE int64_t end_valid(int64_t in, int64_t k, int64_t stride, int64_t pad, int64_t dil,
                              int64_t out) {
  // o * stride - pad + k * dil <= in - 1  ->  o <= (in - 1 + pad - k * dil) / stride
  int64_t num = in - 1 + pad - k * dil;
  if (num < 0) return 0;
  int64_t e = num / stride + 1;
  return e < out ? e : out;
}

}  // namespace sx::kernels::conv_math
