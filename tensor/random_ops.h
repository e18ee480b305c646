// Internal: CUDA launchers of the random tensor factories (random_ops.cpp dispatches to them).
// Each fills a contiguous tensor; element i uses counter `first + i` (randn: pair `base + i`).
#pragma once
#include <cstdint>

#include "tensor/tensor.h"

namespace sx::detail {
#ifdef SX_WITH_CUDA
void rand_cuda(const Tensor& out, uint64_t seed, uint64_t first);
void randn_cuda(const Tensor& out, uint64_t seed, uint64_t base);
void randint_cuda(const Tensor& out, uint64_t seed, uint64_t first, int64_t lo, uint64_t range);
void bernoulli_cuda(const Tensor& out, const Tensor& p, uint64_t seed, uint64_t first);
#endif
}  // namespace sx::detail
