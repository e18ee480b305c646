// Seeded random numbers that are the same on every run, on the CPU and on CUDA.
//
// The generator is counter-based: value i of a draw is a pure function of (seed, offset + i)
// (SplitMix64 finalisers, HOST_DEVICE in random_math.h). So a draw is reproducible, independent of
// thread count, and a CUDA draw yields the very same numbers as the CPU draw for the same state.
// Each draw advances the offset by the number of values it used.
#pragma once
#include <cstdint>

namespace sx {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  // Reserve n counters; returns the first.
  uint64_t advance(uint64_t n) {
    uint64_t o = offset_;
    offset_ += n;
    return o;
  }
  void set_state(uint64_t seed, uint64_t offset) {
    seed_ = seed;
    offset_ = offset;
  }
  // Scalar draws on the host (data augmentation, sampling).
  double uniform();                     // [0, 1)
  double normal();                      // N(0, 1)
  int64_t randint(int64_t lo, int64_t hi);  // [lo, hi)

 private:
  uint64_t seed_;
  uint64_t offset_ = 0;
};

}  // namespace sx
