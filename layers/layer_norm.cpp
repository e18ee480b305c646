// LayerNorm (layer_norm.h), composed from differentiable ops.
#include "layers/layer_norm.h"

#include <sstream>

#include "tensor/ops.h"

namespace sx::nn {

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps) {
  SX_CHECK(x.defined() && x.dim() >= 1, "layer_norm: input must have at least one dim");
  const int64_t D = x.size(-1);
  for (const Tensor* p : {&weight, &bias})
    if (p->defined())
      SX_CHECK(p->dim() == 1 && p->size(0) == D, "layer_norm: weight and bias must be [", D, "] for input ",
               shape_str(x.shape()), ", got ", shape_str(p->shape()));
  SX_CHECK(eps >= 0, "layer_norm: eps must be >= 0, got ", eps);
  const Tensor d = sub(x, mean(x, {-1}, true));
  const Tensor var = mean(mul(d, d), {-1}, true);  // biased, like torch
  Tensor y = div(d, sqrt(add(var, eps)));
  if (weight.defined()) y = mul(y, weight);
  if (bias.defined()) y = add(y, bias);
  return y;
}

LayerNorm::LayerNorm(int64_t normalized_shape, double eps, bool elementwise_affine)
    : Module("LayerNorm"), d_(normalized_shape), eps_(eps) {
  SX_CHECK(normalized_shape >= 1, "LayerNorm: normalized_shape must be >= 1, got ", normalized_shape);
  if (elementwise_affine) {
    weight = register_parameter("weight", Tensor::ones({d_}));
    bias = register_parameter("bias", Tensor::zeros({d_}));
  }
}

Tensor LayerNorm::forward(const Tensor& x) {
  SX_CHECK(x.dim() >= 1 && x.size(-1) == d_, "LayerNorm(", d_, "): input's last dim must be ", d_, ", got ",
           shape_str(x.shape()));
  return layer_norm(x, weight, bias, eps_);
}

std::string LayerNorm::extra_repr() const {
  std::ostringstream os;
  os << "(" << d_ << ",), eps=" << eps_ << ", elementwise_affine=" << (weight.defined() ? "True" : "False");
  return os.str();
}

}  // namespace sx::nn
