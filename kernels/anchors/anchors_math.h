// One anchor of a level: location (y, x) from the flat index, plus the shift. Shared by the CPU
// loop and the CUDA kernel. torchvision adds the integer shift to the float32 base anchor.
#pragma once
#include <cstdint>

#include "tensor/host_device.h"

namespace sx::kernels::anchormath {

// i: flat anchor index in [0, gh * gw * A); base: [A, 4]; out: 4 floats.
HOST_DEVICE void anchor(int64_t i, const float* base, int64_t A, int64_t grid_w, int64_t stride_h,
                        int64_t stride_w, float* out) {
  const int64_t a = i % A;
  const int64_t loc = i / A;
  const int64_t y = loc / grid_w, x = loc - y * grid_w;
  const float sx = static_cast<float>(static_cast<int32_t>(x * stride_w));
  const float sy = static_cast<float>(static_cast<int32_t>(y * stride_h));
  out[0] = sx + base[4 * a + 0];
  out[1] = sy + base[4 * a + 1];
  out[2] = sx + base[4 * a + 2];
  out[3] = sy + base[4 * a + 3];
}

}  // namespace sx::kernels::anchormath
