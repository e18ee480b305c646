// The benchmarks' synthetic inputs shared by several programs (bench_detection, bench_labs), with
// the same distributions as scripts/bench_torchvision_ops.py.
#pragma once
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace sx::bench {

// Boxes [n, 4] (x1, y1, x2, y2): centres uniform in [0, 1024)^2, width/height uniform in [16, 128).
inline Tensor make_boxes(int64_t n, uint64_t seed) {
  Generator g(seed);
  Tensor b = Tensor::empty({n, 4});
  float* p = b.data<float>();
  for (int64_t i = 0; i < n; ++i) {
    const double cx = g.uniform() * 1024, cy = g.uniform() * 1024;
    const double w = 16 + g.uniform() * 112, h = 16 + g.uniform() * 112;
    p[4 * i] = float(cx - w / 2);
    p[4 * i + 1] = float(cy - h / 2);
    p[4 * i + 2] = float(cx + w / 2);
    p[4 * i + 3] = float(cy + h / 2);
  }
  return b;
}

// float32 values uniform in [shift, shift + scale).
inline Tensor make_uniform(const Shape& s, uint64_t seed, double scale = 1.0, double shift = 0.0) {
  Generator g(seed);
  Tensor t = Tensor::empty(s);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = float(g.uniform() * scale + shift);
  return t;
}

}  // namespace sx::bench
