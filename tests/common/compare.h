// Comparisons shared by the CPU-vs-CUDA parity tests.
#pragma once
#include <algorithm>
#include <cmath>
#include <vector>

#include "tensor/tensor.h"

namespace sx::test {

// ||got - ref|| / ||ref|| over all elements (both copied to the host): the measure for results of
// long reductions, whose summation order differs between the CPU and the GPU.
inline double rel_err(const Tensor& got, const Tensor& ref) {
  const std::vector<double> g = got.cpu().to_vector(), r = ref.cpu().to_vector();
  if (g.size() != r.size()) return INFINITY;
  double num = 0, den = 0;
  for (size_t i = 0; i < r.size(); ++i) {
    num += (g[i] - r[i]) * (g[i] - r[i]);
    den += r[i] * r[i];
  }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-30);
}

}  // namespace sx::test
