// Batch normalisation over the channel dim of x [N, C, *] (any trailing spatial dims, incl. none).
//
// Training (batch statistics), per channel c over the M = N * prod(spatial) values:
//   mean_c = sum x / M,  var_c = sum (x - mean_c)^2 / M  (biased, used to normalise)
//   invstd_c = 1 / sqrt(var_c + eps)
//   y = (x - mean_c) * invstd_c * weight_c + bias_c
//   running_mean = (1 - momentum) * running_mean + momentum * mean_c
//   running_var  = (1 - momentum) * running_var  + momentum * var_c * M / (M - 1)   (unbiased, like torch)
// Evaluation (running statistics): y = x * scale_c + shift_c with
//   scale_c = weight_c / sqrt(running_var_c + eps), shift_c = bias_c - running_mean_c * scale_c.
// Backward of training mode (xhat = (x - mean) * invstd, g = dL/dy):
//   dbias_c = sum g,  dweight_c = sum g * xhat,
//   dx = weight_c * invstd_c / M * (M * g - dbias_c - xhat * dweight_c).
// Backward of the per-channel affine map (evaluation mode / frozen BN):
//   dx = g * scale_c,  dscale_c = sum g * x,  dshift_c = sum g.
// weight/bias may be undefined (affine=False): treated as 1 and 0.
// CPU loops (batchnorm_cpu.cpp) and CUDA kernels (batchnorm_cuda.cu) share batchnorm_math.h.
#pragma once
#include "tensor/tensor.h"

namespace sx::kernels {

struct BatchNormTrainResult {
  Tensor y;
  Tensor save_mean;    // [C], in x's dtype
  Tensor save_invstd;  // [C]
};
// Updates running_mean/running_var in place when they are defined (M must be > 1 then).
BatchNormTrainResult batch_norm_train_forward(const Tensor& x, const Tensor& weight,
                                              const Tensor& bias, Tensor running_mean,
                                              Tensor running_var, double momentum, double eps);
struct BatchNormBackwardResult {
  Tensor grad_input, grad_weight, grad_bias;  // weight/bias grads undefined when weight undefined
};
BatchNormBackwardResult batch_norm_train_backward(const Tensor& grad_out, const Tensor& x,
                                                  const Tensor& weight, const Tensor& save_mean,
                                                  const Tensor& save_invstd);

// y = x * scale[c] + shift[c]   (scale, shift: [C])
Tensor channel_affine_forward(const Tensor& x, const Tensor& scale, const Tensor& shift);
struct ChannelAffineBackwardResult {
  Tensor grad_input, grad_scale, grad_shift;
};
// need_* false skips that reduction (result undefined).
ChannelAffineBackwardResult channel_affine_backward(const Tensor& grad_out, const Tensor& x,
                                                    const Tensor& scale, bool need_input,
                                                    bool need_scale, bool need_shift);

// x viewed as [N, C, S], S = the product of the spatial dims (1 for [N, C]); both backends loop
// over this geometry.
struct BnGeometry {
  int64_t N, C, S;
};
inline BnGeometry bn_geometry(const Tensor& x) {
  BnGeometry g{x.size(0), x.size(1), 1};
  for (int64_t d = 2; d < x.dim(); ++d) g.S *= x.size(d);
  return g;
}

// The backend functions (tensor/dispatch.h); the op functions above check the arguments first.
struct BatchNormBackend {
  BatchNormTrainResult (*batch_norm_train_forward)(const Tensor& x, const Tensor& weight,
                                                   const Tensor& bias, Tensor running_mean,
                                                   Tensor running_var, double momentum, double eps);
  BatchNormBackwardResult (*batch_norm_train_backward)(const Tensor& grad_out, const Tensor& x,
                                                       const Tensor& weight,
                                                       const Tensor& save_mean,
                                                       const Tensor& save_invstd);
  Tensor (*channel_affine_forward)(const Tensor& x, const Tensor& scale, const Tensor& shift);
  ChannelAffineBackwardResult (*channel_affine_backward)(const Tensor& grad_out, const Tensor& x,
                                                         const Tensor& scale, bool need_input,
                                                         bool need_scale, bool need_shift);
  static const BatchNormBackend cpu, cuda;
};

}  // namespace sx::kernels
