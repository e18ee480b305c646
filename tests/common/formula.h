// The closed-formula weights and inputs of the torchvision golden fixtures
// (scripts/fixtures/layers_resnet.py v(k, i), reused by models_densenet.py): v(k, i) = 2 u(k, i) - 1
// with u sx's counter-based uniform (tensor/random_math.h), which the scripts reproduce bit-exactly,
// computed in double and rounded to float32 once. fill_formula fills a module's state dict in
// order, entry k with key k, scaled like the scripts' fill_state.
#pragma once
// random_math.h first: its unqualified log/sqrt/cos must not see sx::log(Tensor) from ops.h.
#include "tensor/random_math.h"
// (blank line keeps include sorting from moving it)

#include <cmath>
#include <string>

#include "layers/module.h"
#include "tensor/autograd.h"
#include "tensor/tensor.h"

namespace sx::test {

inline Tensor formula(const Shape& s, int64_t k, double scale = 1.0, double shift = 0.0) {
  Tensor t = Tensor::empty(s, DType::Float32);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i)
    p[i] = static_cast<float>((2.0 * rng::uniform(static_cast<uint64_t>(k), static_cast<uint64_t>(i)) - 1.0) * scale +
                              shift);
  return t;
}

// Conv weights U(+-sqrt(6 / fan_in)); the classifier head (names starting with head_prefix): weight
// U(+-1/sqrt(head_fan_in)), bias U(+-0.1); norm weight 1 + U(+-0.1), running_var 1 + U(+-0.5);
// norm bias and running_mean U(+-0.1); num_batches_tracked 0.
inline void fill_formula(nn::Module& m, const std::string& head_prefix, double head_fan_in) {
  int64_t k = 0;
  NoGradGuard ng;
  for (const auto& [name, t0] : m.state_dict()) {
    Tensor t = t0;
    auto ends = [&](const std::string& suf) {
      return name.size() >= suf.size() && name.compare(name.size() - suf.size(), suf.size(), suf) == 0;
    };
    if (ends("num_batches_tracked")) {
      t.zero_();
      ++k;
      continue;
    }
    double scale = 0.1, shift = 0.0;  // norm bias, running_mean
    if (t.dim() == 4) {
      scale = std::sqrt(6.0 / static_cast<double>(t.size(1) * t.size(2) * t.size(3)));
    } else if (name.rfind(head_prefix, 0) == 0) {
      scale = ends("weight") ? 1.0 / std::sqrt(head_fan_in) : 0.1;
    } else if (ends("running_var")) {
      scale = 0.5, shift = 1.0;
    } else if (ends("weight")) {
      scale = 0.1, shift = 1.0;
    }
    t.copy_(formula(t.shape(), k, scale, shift));
    ++k;
  }
}

}  // namespace sx::test
