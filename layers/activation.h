// ReLU and Dropout modules (the math is in tensor/ops.h: relu, bernoulli, mul).
#pragma once
#include "layers/module.h"
#include "tensor/random.h"

namespace sx::nn {

class ReLU : public Module {
 public:
  ReLU() : Module("ReLU") {}
  Tensor forward(const Tensor& x) override;
};

// Inverted dropout: in training, each element is zeroed with probability p and the survivors are
// scaled by 1/(1-p); identity in eval mode or when p == 0. p == 1 gives zeros.
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen);

class Dropout : public Module {
 public:
  // The module owns its Generator (seeded here) so that a checkpoint can save/restore its state.
  explicit Dropout(double p = 0.5, uint64_t seed = 0);
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  double p() const { return p_; }
  Generator& generator() { return gen_; }

 private:
  double p_;
  Generator gen_;
};

}  // namespace sx::nn
