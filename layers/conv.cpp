// Conv2d layer and its autograd binding.
#include "layers/conv.h"

#include <sstream>

#include "layers/init.h"
#include "tensor/autograd.h"

namespace sx::nn {

Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dParams& p) {
  Tensor y = kernels::conv2d_forward(x, weight, bias, p);
  const bool nx = x.requires_grad(), nw = weight.requires_grad(), nb = bias.defined() && bias.requires_grad();
  if (!GradMode::is_enabled() || !(nx || nw || nb)) return y;
  const Shape xs = x.shape(), ws = weight.shape();
  // Saved for backward: the values only (detached), never the history.
  const Tensor xd = nw ? x.detach() : Tensor(), wd = nx ? weight.detach() : Tensor();
  std::vector<Tensor> inputs{x, weight};
  if (bias.defined()) inputs.push_back(bias);
  const size_t n_in = inputs.size();
  return attach_grad(y, "conv2d", std::move(inputs), [=](const Tensor& g) {
    std::vector<Tensor> r(n_in);
    if (nx) r[0] = kernels::conv2d_backward_input(g, wd, xs, p);
    if (nw) r[1] = kernels::conv2d_backward_weight(g, xd, ws, p);
    if (nb) r[2] = kernels::conv2d_backward_bias(g);
    return r;
  });
}

Conv2d::Conv2d(int64_t in_channels, int64_t out_channels, int64_t kernel_size, int64_t stride, int64_t padding,
               int64_t dilation, int64_t groups, bool bias, Generator* gen)
    : Conv2d(Conv2dOptions{in_channels, out_channels, kernel_size, kernel_size,
                           Conv2dParams{stride, stride, padding, padding, dilation, dilation, groups}, bias},
             gen) {}

Conv2d::Conv2d(const Conv2dOptions& o, Generator* gen) : Module("Conv2d"), opt_(o) {
  SX_CHECK(o.in_channels >= 1 && o.out_channels >= 1, "Conv2d: channels must be >= 1, got in ", o.in_channels,
           ", out ", o.out_channels);
  SX_CHECK(o.params.groups >= 1 && o.in_channels % o.params.groups == 0 && o.out_channels % o.params.groups == 0,
           "Conv2d: in (", o.in_channels, ") and out (", o.out_channels, ") channels must be divisible by groups ",
           o.params.groups);
  SX_CHECK(o.kernel_h >= 1 && o.kernel_w >= 1, "Conv2d: kernel must be >= 1, got ", o.kernel_h, "x", o.kernel_w);
  Generator& g = gen ? *gen : init::default_generator();
  const Shape ws{o.out_channels, o.in_channels / o.params.groups, o.kernel_h, o.kernel_w};
  if (o.default_init) {
    weight = register_parameter("weight", init::default_weight(ws, g));
    if (o.bias) bias = register_parameter("bias", init::default_bias(o.out_channels, init::fan_in(ws), g));
  } else {
    weight = register_parameter("weight", Tensor::zeros(ws));
    if (o.bias) bias = register_parameter("bias", Tensor::zeros({o.out_channels}));
  }
}

void Conv2d::reset_parameters(Generator& gen) {
  NoGradGuard ng;
  weight.copy_(init::default_weight(weight.shape(), gen));
  if (bias.defined()) bias.copy_(init::default_bias(bias.size(0), init::fan_in(weight.shape()), gen));
}

Tensor Conv2d::forward(const Tensor& x) { return conv2d(x, weight, bias, opt_.params); }

std::string Conv2d::extra_repr() const {
  std::ostringstream os;
  const auto& p = opt_.params;
  os << opt_.in_channels << ", " << opt_.out_channels << ", kernel_size=(" << opt_.kernel_h << ", " << opt_.kernel_w
     << "), stride=(" << p.stride_h << ", " << p.stride_w << ")";
  if (p.pad_h || p.pad_w) os << ", padding=(" << p.pad_h << ", " << p.pad_w << ")";
  if (p.dil_h != 1 || p.dil_w != 1) os << ", dilation=(" << p.dil_h << ", " << p.dil_w << ")";
  if (p.groups != 1) os << ", groups=" << p.groups;
  if (!opt_.bias) os << ", bias=False";
  return os.str();
}

}  // namespace sx::nn
