// Internal: the backends of the random tensor factories (random_ops.cpp dispatches to them).
// Each fills a contiguous tensor; element i uses counter `first + i` (randn: pair `base + i`).
#pragma once
#include <cstdint>

#include "tensor/tensor.h"

namespace sx::detail {
// The backend functions (tensor/dispatch.h): random_ops.cpp defines the CPU table, random_ops_cuda.cu
// the CUDA one.
struct RandomBackend {
  void (*rand)(const Tensor& out, uint64_t seed, uint64_t first);
  void (*randn)(const Tensor& out, uint64_t seed, uint64_t base);
  void (*randint)(const Tensor& out, uint64_t seed, uint64_t first, int64_t lo, uint64_t range);
  void (*bernoulli)(const Tensor& out, const Tensor& p, uint64_t seed, uint64_t first);
  static const RandomBackend cpu, cuda;
};
}  // namespace sx::detail
