#include "layers/init.h"

// random_math.h before anything that declares sx::log/sqrt/cos for Tensors.
#include "tensor/random_math.h"

#include <cmath>

namespace sx::nn::init {

// Value i of a draw is a pure function of (seed, first counter + i) (tensor/random_math.h), so the
// loop can run in parallel and still give the same numbers for any thread count.
// Weights are float32, so the normal draws use single-precision Box-Muller (3x cheaper than the
// double version of rng::normal; initialising ResNet-101 draws 44M of them).
static inline float normal_f(uint64_t seed, uint64_t c) {
  float u1 = static_cast<float>(rng::uniform(seed, 2 * c));
  const float u2 = static_cast<float>(rng::uniform(seed, 2 * c + 1));
  if (u1 < 1e-30f) u1 = 1e-30f;
  return std::sqrt(-2.0f * std::log(u1)) * std::cos(6.2831853071795864769f * u2);
}

template <class T>
static void fill_loop(T* p, int64_t n, uint64_t seed, uint64_t first, bool normal_draw, double a, double b) {
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t c = first + static_cast<uint64_t>(i);
    if (normal_draw)
      p[i] = static_cast<T>(sizeof(T) == 4 ? normal_f(seed, c) * b : rng::normal(seed, c) * b);
    else
      p[i] = static_cast<T>(a + (b - a) * rng::uniform(seed, c));
  }
}

static Tensor fill_with(const Shape& shape, DType dtype, Generator& gen, bool normal_draw, double a, double b) {
  SX_CHECK(dtype == DType::Float32 || dtype == DType::Float64, "init: expected float32 or float64, got ",
           dtype_name(dtype));
  Tensor t = Tensor::empty(shape, dtype);
  const int64_t n = t.numel();
  const uint64_t first = gen.advance(static_cast<uint64_t>(n));
  if (dtype == DType::Float32)
    fill_loop(t.data<float>(), n, gen.seed(), first, normal_draw, a, b);
  else
    fill_loop(t.data<double>(), n, gen.seed(), first, normal_draw, a, b);
  return t;
}

Tensor uniform(const Shape& shape, double lo, double hi, Generator& gen, DType dtype) {
  return fill_with(shape, dtype, gen, false, lo, hi);
}
Tensor normal(const Shape& shape, double std, Generator& gen, DType dtype) {
  return fill_with(shape, dtype, gen, true, 0.0, std);
}

static int64_t receptive(const Shape& s) {
  int64_t r = 1;
  for (size_t i = 2; i < s.size(); ++i) r *= s[i];
  return r;
}
int64_t fan_in(const Shape& s) {
  SX_CHECK(s.size() >= 2, "init: fan_in needs at least 2 dims, got ", shape_str(s));
  return s[1] * receptive(s);
}
int64_t fan_out(const Shape& s) {
  SX_CHECK(s.size() >= 2, "init: fan_out needs at least 2 dims, got ", shape_str(s));
  return s[0] * receptive(s);
}

Tensor kaiming_normal_fan_out(const Shape& shape, Generator& gen, DType dtype) {
  const int64_t fo = fan_out(shape);
  return normal(shape, fo > 0 ? std::sqrt(2.0 / static_cast<double>(fo)) : 0.0, gen, dtype);
}

Tensor default_weight(const Shape& shape, Generator& gen, DType dtype) {
  // kaiming_uniform_(a=sqrt(5)): gain = sqrt(2 / (1 + 5)), bound = gain * sqrt(3 / fan_in) = 1/sqrt(fan_in).
  const int64_t fi = fan_in(shape);
  const double bound = fi > 0 ? 1.0 / std::sqrt(static_cast<double>(fi)) : 0.0;
  return uniform(shape, -bound, bound, gen, dtype);
}

Tensor default_bias(int64_t n, int64_t fi, Generator& gen, DType dtype) {
  const double bound = fi > 0 ? 1.0 / std::sqrt(static_cast<double>(fi)) : 0.0;
  return uniform({n}, -bound, bound, gen, dtype);
}

Tensor xavier_uniform(const Shape& shape, Generator& gen, double gain, DType dtype) {
  const int64_t fans = fan_in(shape) + fan_out(shape);
  const double a = fans > 0 ? gain * std::sqrt(6.0 / static_cast<double>(fans)) : 0.0;
  return uniform(shape, -a, a, gen, dtype);
}

Generator& default_generator() {
  static Generator g(0);
  return g;
}

}  // namespace sx::nn::init
