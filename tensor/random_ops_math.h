// Per-element math of the random tensor factories (rand, randn, randint, bernoulli), shared by the
// CPU loops (random_ops.cpp) and the CUDA kernels (random_ops_cuda.cu) on top of the counter-based
// generator in random_math.h. Element i of a draw is a pure function of (seed, first counter + i),
// so the CUDA values equal the CPU values for the same generator state: bit for bit for uniform,
// randint and bernoulli (integer arithmetic and exact power-of-two scaling); for randn up to the
// last-ulp differences between the CUDA and host libm's log/cos/sqrt.
//
// Counter use per value: rand, randint, bernoulli take one counter each; randn takes two
// (Box-Muller, random_math.h's normal(seed, c) reads counters 2c and 2c+1), so a randn draw of n
// values reserves 2n counters from an even start (see normal_base()).
#pragma once
#include <cstdint>

#include "tensor/random_math.h"

namespace sx::rng {

// Uniform in [0, 1) at the type's resolution: float32 from 24 bits (so it never rounds up to 1.0f),
// float64 from 53 bits.
template <class T>
HOST_DEVICE T uniform_value(uint64_t seed, uint64_t c);
template <>
HOST_DEVICE float uniform_value<float>(uint64_t seed, uint64_t c) {
  return static_cast<float>(bits(seed, c) >> 40) * (1.0f / 16777216.0f);
}
template <>
HOST_DEVICE double uniform_value<double>(uint64_t seed, uint64_t c) {
  return uniform(seed, c);
}

// Integer in [lo, lo + range), range >= 1 (the modulo bias is below range / 2^64).
HOST_DEVICE int64_t randint_value(uint64_t seed, uint64_t c, int64_t lo, uint64_t range) {
  return lo + static_cast<int64_t>(bits(seed, c) % range);
}

// 1 with probability p, else 0.
HOST_DEVICE bool bernoulli_value(uint64_t seed, uint64_t c, double p) { return uniform(seed, c) < p; }

// For a normal draw reserved at counters [first, first + 2n + (first & 1)): the index c of its first
// Box-Muller pair (counters 2c, 2c+1 are inside the reservation).
HOST_DEVICE uint64_t normal_base(uint64_t first) { return (first + 1) / 2; }

}  // namespace sx::rng
