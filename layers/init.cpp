#include "layers/init.h"

#include <cmath>

namespace sx::nn::init {

static Tensor fill_with(const Shape& shape, DType dtype, Generator& gen, bool normal_draw, double a, double b) {
  SX_CHECK(dtype == DType::Float32 || dtype == DType::Float64, "init: expected float32 or float64, got ",
           dtype_name(dtype));
  Tensor t = Tensor::empty(shape, dtype);
  const int64_t n = t.numel();
  if (dtype == DType::Float32) {
    float* p = t.data<float>();
    for (int64_t i = 0; i < n; ++i)
      p[i] = static_cast<float>(normal_draw ? gen.normal() * b : a + (b - a) * gen.uniform());
  } else {
    double* p = t.data<double>();
    for (int64_t i = 0; i < n; ++i) p[i] = normal_draw ? gen.normal() * b : a + (b - a) * gen.uniform();
  }
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

Generator& default_generator() {
  static Generator g(0);
  return g;
}

}  // namespace sx::nn::init
