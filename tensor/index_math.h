// Addressing shared by the CPU loops and CUDA kernels of the indexing ops (index.h).
//
// Every indexing kernel walks one "iteration shape" in row-major order with a linear counter i and
// needs, for i, the storage offsets of up to three operands (their strides may be anything:
// transposed, sliced, or 0 for a broadcast operand). IndexGeom holds the shape and the three
// stride vectors; offsets() decodes i into the offsets with one div/mod per dim (64-bit, since
// tensors may exceed 2^31 elements). For gather/scatter the operand addressed *through the index*
// gets stride 0 along `dim`, and the kernel adds index_value * dim_stride itself.
#pragma once
#include <cstdint>

#include "tensor/host_device.h"

namespace sx::detail {

constexpr int kIndexMaxDims = 16;

struct IndexGeom {
  int ndim = 0;
  int64_t size[kIndexMaxDims] = {};
  int64_t stride[3][kIndexMaxDims] = {};

  HOST_DEVICE void offsets(int64_t i, int64_t& o0, int64_t& o1, int64_t& o2) const {
    o0 = o1 = o2 = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      const int64_t s = size[d];
      const int64_t q = i / s;
      const int64_t c = i - q * s;
      o0 += c * stride[0][d];
      o1 += c * stride[1][d];
      o2 += c * stride[2][d];
      i = q;
    }
  }
  // Row-major coordinates of linear index i (for nonzero).
  HOST_DEVICE void coords(int64_t i, int64_t* out) const {
    for (int d = ndim - 1; d >= 0; --d) {
      const int64_t s = size[d];
      const int64_t q = i / s;
      out[d] = i - q * s;
      i = q;
    }
  }
};

HOST_DEVICE bool index_in_range(int64_t idx, int64_t n) { return idx >= 0 && idx < n; }

// Non-zero test used by nonzero and by masks (bool/uint8 masks, any numeric tensor).
template <class T>
HOST_DEVICE bool is_nonzero(T v) {
  return v != T(0);
}

}  // namespace sx::detail
