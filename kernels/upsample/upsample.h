// Nearest-neighbour upsampling of x [N, C, H, W] to [N, C, OH, OW], like
// torch.nn.functional.interpolate(mode="nearest"):
//   src_h = min(floor(dst_h * scale_h), H - 1), scale_h = H / OH (as float, or 1/scale_factor when
//   a scale factor is given), columns likewise.
// Backward: each input cell receives the sum of the gradients of the outputs that copied it.
// CPU loops and CUDA kernels share upsample_math.h.
#pragma once
#include "tensor/tensor.h"

namespace sx::kernels {

// scale_h/scale_w: the src = floor(dst * scale) factors; pass <= 0 to use H/OH and W/OW.
Tensor upsample_nearest2d_forward(const Tensor& x, int64_t out_h, int64_t out_w,
                                  double scale_h = 0, double scale_w = 0);
Tensor upsample_nearest2d_backward(const Tensor& grad_out, const Shape& input_shape,
                                   double scale_h = 0, double scale_w = 0);

// The backend functions (tensor/dispatch.h); the op functions above check the arguments first.
struct UpsampleBackend {
  Tensor (*upsample_nearest2d_forward)(const Tensor& x, int64_t out_h, int64_t out_w,
                                       double scale_h, double scale_w);
  Tensor (*upsample_nearest2d_backward)(const Tensor& grad_out, const Shape& input_shape,
                                        double scale_h, double scale_w);
  static const UpsampleBackend cpu, cuda;
};

}  // namespace sx::kernels
