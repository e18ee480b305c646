// Per-element math of the counter-based generator (shared by CPU loops and CUDA kernels).
#pragma once
#include <cmath>
#include <cstdint>

#include "tensor/host_device.h"

namespace sx::rng {

// SplitMix64 finaliser: a bijective mix of 64 bits.
HOST_DEVICE uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
// 64 random bits for counter c of stream `seed`.
HOST_DEVICE uint64_t bits(uint64_t seed, uint64_t c) {
  return mix64(mix64(seed + 0x9e3779b97f4a7c15ULL) ^ (c * 0xd1b54a32d192ed03ULL + 0x632be59bd9b4e019ULL));
}
// Uniform double in [0, 1) from the top 53 bits.
HOST_DEVICE double uniform(uint64_t seed, uint64_t c) {
  return static_cast<double>(bits(seed, c) >> 11) * (1.0 / 9007199254740992.0);
}
// Standard normal from two uniforms (Box-Muller, cosine branch); uses counters 2c and 2c+1.
HOST_DEVICE double normal(uint64_t seed, uint64_t c) {
  double u1 = uniform(seed, 2 * c);
  double u2 = uniform(seed, 2 * c + 1);
  if (u1 < 1e-300) u1 = 1e-300;
  return ::sqrt(-2.0 * ::log(u1)) * ::cos(6.283185307179586476925 * u2);
}

}  // namespace sx::rng
