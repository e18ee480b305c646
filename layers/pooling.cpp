// MaxPool2d / AdaptiveAvgPool2d layers and the autograd bindings of the pooling kernels.
#include "layers/pooling.h"

#include <sstream>

#include "tensor/autograd.h"

namespace sx::nn {

Tensor max_pool2d(const Tensor& x, const MaxPool2dParams& p) {
  auto [y, idx] = kernels::max_pool2d_forward(x, p);
  if (!GradMode::is_enabled() || !x.requires_grad()) return y;
  const Shape xs = x.shape();
  const Tensor id = idx;
  return attach_grad(y, "max_pool2d", {x}, [=](const Tensor& g) {
    return std::vector<Tensor>{kernels::max_pool2d_backward(g, id, xs)};
  });
}

Tensor adaptive_avg_pool2d(const Tensor& x, int64_t out_h, int64_t out_w) {
  Tensor y = kernels::adaptive_avg_pool2d_forward(x, out_h, out_w);
  if (!GradMode::is_enabled() || !x.requires_grad()) return y;
  const Shape xs = x.shape();
  return attach_grad(y, "adaptive_avg_pool2d", {x}, [=](const Tensor& g) {
    return std::vector<Tensor>{kernels::adaptive_avg_pool2d_backward(g, xs)};
  });
}

MaxPool2d::MaxPool2d(int64_t kernel_size, int64_t stride, int64_t padding, int64_t dilation, bool ceil_mode)
    : MaxPool2d(MaxPool2dParams{kernel_size, kernel_size, stride < 0 ? kernel_size : stride,
                                stride < 0 ? kernel_size : stride, padding, padding, dilation, dilation, ceil_mode}) {}

MaxPool2d::MaxPool2d(const MaxPool2dParams& p) : Module("MaxPool2d"), p_(p) {}

Tensor MaxPool2d::forward(const Tensor& x) { return max_pool2d(x, p_); }

std::string MaxPool2d::extra_repr() const {
  std::ostringstream os;
  os << "kernel_size=" << p_.kernel_h << ", stride=" << p_.stride_h << ", padding=" << p_.pad_h
     << ", dilation=" << p_.dil_h << ", ceil_mode=" << (p_.ceil_mode ? "True" : "False");
  return os.str();
}

AdaptiveAvgPool2d::AdaptiveAvgPool2d(int64_t out_h, int64_t out_w)
    : Module("AdaptiveAvgPool2d"), out_h_(out_h), out_w_(out_w) {
  SX_CHECK(out_h >= 1 && out_w >= 1, "AdaptiveAvgPool2d: output size must be >= 1, got ", out_h, "x", out_w);
}

Tensor AdaptiveAvgPool2d::forward(const Tensor& x) { return adaptive_avg_pool2d(x, out_h_, out_w_); }

std::string AdaptiveAvgPool2d::extra_repr() const {
  std::ostringstream os;
  os << "output_size=(" << out_h_ << ", " << out_w_ << ")";
  return os.str();
}

}  // namespace sx::nn
