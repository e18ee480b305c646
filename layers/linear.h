// Linear: y = x W^T + b over the last dim of x [*, in] -> [*, out] (torch.nn.Linear), built on the
// differentiable matmul/add of tensor/ops.h. Init like torch: U(-1/sqrt(in), 1/sqrt(in)) for
// weight and bias (kaiming_uniform with a = sqrt(5)).
#pragma once
#include "layers/module.h"
#include "tensor/random.h"

namespace sx::nn {

// bias may be undefined.
Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias);

class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  void reset_parameters(Generator& gen);
  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }

  Tensor weight;  // [out, in]
  Tensor bias;    // [out] or undefined

 private:
  int64_t in_, out_;
};

}  // namespace sx::nn
