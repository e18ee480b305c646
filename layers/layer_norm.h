// LayerNorm over the last dim (torch.nn.LayerNorm(normalized_shape=D), Ba et al. 2016), the
// normalisation of transformer blocks (Sparse R-CNN's dynamic head, multi-head attention outputs).
//
// x [..., D]: each row of D values is normalised by its own mean and biased variance,
//   y = (x - mean) / sqrt(var + eps) * weight + bias,   weight [D] (=1), bias [D] (=0)
// The same in training and evaluation (no running statistics). State-dict names weight and bias,
// as torch's. Composed from differentiable ops (mean, sub, mul, sqrt, div, add): the rows are
// short (D = 256 in Sparse R-CNN) and few (a few hundred per image), so a fused kernel would not
// pay for itself; the registry's layer_norm entry gradchecks the composition.
#pragma once
#include "layers/module.h"

namespace sx::nn {

// Functional form; weight and bias [D] may be undefined (no affine part).
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps = 1e-5);

class LayerNorm : public Module {
 public:
  explicit LayerNorm(int64_t normalized_shape, double eps = 1e-5, bool elementwise_affine = true);
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  int64_t normalized_shape() const { return d_; }
  double eps() const { return eps_; }

  Tensor weight, bias;  // [D] parameters (undefined when !elementwise_affine)

 private:
  int64_t d_;
  double eps_;
};

}  // namespace sx::nn
