// Source index of nearest-neighbour upsampling, shared by the CPU loops and the CUDA kernels.
// Mirrors PyTorch's nearest_idx: identity when sizes match, a shift for exact 2x, otherwise
// min(floor(dst * scale), in - 1) in float arithmetic (scale = in / out, or 1 / scale_factor).
#pragma once
#include <cmath>
#include <cstdint>

#include "tensor/host_device.h"

namespace sx::kernels::upsample_math {

HOST_DEVICE float nearest_scale(int64_t in, int64_t out, double scale) {
  return scale > 0 ? static_cast<float>(1.0 / scale) : static_cast<float>(in) / static_cast<float>(out);
}
HOST_DEVICE int64_t nearest_src(int64_t dst, int64_t in, int64_t out, float scale) {
  if (in == out) return dst;
  if (out == 2 * in) return dst >> 1;
  int64_t s = static_cast<int64_t>(floorf(static_cast<float>(dst) * scale));
  return s < in - 1 ? s : in - 1;
}

}  // namespace sx::kernels::upsample_math
