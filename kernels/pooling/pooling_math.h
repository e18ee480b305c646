// Window arithmetic of max pooling and adaptive average pooling, shared by the CPU loops and the
// CUDA kernels.
#pragma once
#include <cstdint>

#include "tensor/host_device.h"

namespace sx::kernels::pool_math {

// torch's pooling_output_shape: floor (or ceil) division, and with ceil_mode the last window must
// start inside the input or the left padding.
HOST_DEVICE int64_t max_pool_out_size(int64_t in, int64_t k, int64_t pad, int64_t stride, int64_t dil, bool ceil_mode) {
  int64_t num = in + 2 * pad - dil * (k - 1) - 1 + (ceil_mode ? stride - 1 : 0);
  int64_t out = (num >= 0 ? num / stride : -((-num + stride - 1) / stride)) + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

// The better of (v, i) and the current (best, best_i): larger value wins, the first NaN wins and
// stays, ties keep the earlier index (scan order). best_i < 0 means "nothing yet".
template <class T>
HOST_DEVICE bool max_takes(T v, T best, int64_t best_i) {
  return best_i < 0 || (!(best != best) && (v > best || v != v));
}

// Adaptive pooling cell [start, end) of output i along an axis of length `in` split into `out`.
HOST_DEVICE int64_t adaptive_start(int64_t i, int64_t in, int64_t out) { return (i * in) / out; }
HOST_DEVICE int64_t adaptive_end(int64_t i, int64_t in, int64_t out) { return ((i + 1) * in + out - 1) / out; }

}  // namespace sx::kernels::pool_math
