// Conv2d: the layer and its differentiable functional form.
//
// conv2d() runs kernels/conv2d (cuDNN on CUDA, im2col + BLAS on the CPU) and attaches one
// autograd node whose backward calls conv2d_backward_input / _weight / _bias for the inputs that
// need a gradient. Weight init follows torch.nn.Conv2d.reset_parameters (kaiming_uniform with
// a = sqrt(5), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias), drawn from an
// sx::Generator; models re-initialise as they like (ResNet: kaiming_normal fan_out).
#pragma once
#include <cstdint>

#include "kernels/conv2d/conv2d.h"
#include "layers/module.h"
#include "tensor/random.h"

namespace sx::nn {

using kernels::Conv2dParams;

// bias may be undefined.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dParams& p);

struct Conv2dOptions {
  int64_t in_channels = 0, out_channels = 0;
  int64_t kernel_h = 1, kernel_w = 1;
  Conv2dParams params;
  bool bias = true;
  // false: weight and bias start at zero and the caller initialises them (models that re-draw
  // every weight, like ResNet, skip the default draw this way).
  bool default_init = true;
};

class Conv2d : public Module {
 public:
  // Square kernel/stride/padding/dilation (the common case).
  Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, int64_t stride = 1,
         int64_t padding = 0, int64_t dilation = 1, int64_t groups = 1, bool bias = true,
         Generator* gen = nullptr);
  explicit Conv2d(const Conv2dOptions& o, Generator* gen = nullptr);

  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  // Re-draws weight and bias like torch's default init.
  void reset_parameters(Generator& gen);

  const Conv2dOptions& options() const { return opt_; }
  Tensor weight;  // [out, in/groups, kh, kw]
  Tensor bias;    // [out] or undefined

 private:
  Conv2dOptions opt_;
};

}  // namespace sx::nn
