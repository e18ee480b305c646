// MaxPool2d and AdaptiveAvgPool2d, layers and differentiable functional forms
// (kernels in kernels/pooling).
#pragma once
#include "kernels/pooling/pooling.h"
#include "layers/module.h"

namespace sx::nn {

using kernels::MaxPool2dParams;

Tensor max_pool2d(const Tensor& x, const MaxPool2dParams& p);
Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w);

class MaxPool2d : public Module {
 public:
  // stride < 0 means stride = kernel_size (torch's default).
  MaxPool2d(int64_t kernel_size, int64_t stride = -1, int64_t padding = 0, int64_t dilation = 1,
            bool ceil_mode = false);
  explicit MaxPool2d(const MaxPool2dParams& p);
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  const MaxPool2dParams& params() const { return p_; }

 private:
  MaxPool2dParams p_;
};

class AdaptiveAvgPool2d : public Module {
 public:
  AdaptiveAvgPool2d(int64_t out_h, int64_t out_w);
  explicit AdaptiveAvgPool2d(int64_t out = 1) : AdaptiveAvgPool2d(out, out) {}
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

 private:
  int64_t out_h_, out_w_;
};

}  // namespace sx::nn
