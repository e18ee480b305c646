// Random tensor factories: rand, randn, randint, bernoulli (CPU loops + dispatch to CUDA).
//
// A draw reserves its counters from the Generator on the host (Generator::advance), then every
// element is computed independently from (seed, counter) with the shared math in random_ops_math.h.
// So the values depend only on the generator state and the element's position -- not on the thread
// count, not on the device: the CUDA kernels produce the CPU's values. The CPU loops run in parallel
// with OpenMP for that reason without any change in results.
// random_ops_math.h comes first: random_math.h calls log/cos/sqrt unqualified, and inside
// namespace sx those names would otherwise resolve to the Tensor ops declared in ops.h.
#include "tensor/random_ops_math.h"
// (keep the line above first)
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tensor/random_ops.h"

namespace sx {
namespace {

#ifndef SX_WITH_CUDA
[[noreturn]] void no_cuda(const char* op) {
  SX_THROW(NotBuiltError, op, ": CUDA tensor requested but spinexr was built without CUDA");
}
#endif

template <class T>
void rand_loop(T* p, int64_t n, uint64_t seed, uint64_t first) {
#pragma omp parallel for if (n > 65536)
  for (int64_t i = 0; i < n; ++i) p[i] = rng::uniform_value<T>(seed, first + static_cast<uint64_t>(i));
}
template <class T>
void randn_loop(T* p, int64_t n, uint64_t seed, uint64_t base) {
#pragma omp parallel for if (n > 16384)
  for (int64_t i = 0; i < n; ++i) p[i] = static_cast<T>(rng::normal(seed, base + static_cast<uint64_t>(i)));
}
template <class T>
void randint_loop(T* p, int64_t n, uint64_t seed, uint64_t first, int64_t low, uint64_t range) {
#pragma omp parallel for if (n > 65536)
  for (int64_t i = 0; i < n; ++i)
    p[i] = static_cast<T>(rng::randint_value(seed, first + static_cast<uint64_t>(i), low, range));
}
template <class T>
void bernoulli_loop(const T* pp, T* o, int64_t n, uint64_t seed, uint64_t first) {
#pragma omp parallel for if (n > 65536)
  for (int64_t i = 0; i < n; ++i)
    o[i] = rng::bernoulli_value(seed, first + static_cast<uint64_t>(i), static_cast<double>(pp[i])) ? T(1) : T(0);
}

}  // namespace

Tensor rand(const Shape& shape, Generator& gen, DType dtype, Device device) {
  SX_CHECK(dtype == DType::Float32 || dtype == DType::Float64, "rand: expected float32 or float64, got ",
           dtype_name(dtype));
  Tensor out = Tensor::empty(shape, dtype, device);
  const int64_t n = out.numel();
  const uint64_t seed = gen.seed(), first = gen.advance(static_cast<uint64_t>(n));
  if (n == 0) return out;
  if (device.is_cuda()) {
#ifdef SX_WITH_CUDA
    detail::rand_cuda(out, seed, first);
    return out;
#else
    no_cuda("rand");
#endif
  }
  SX_DISPATCH_FLOAT(dtype, "rand", [&] { rand_loop(out.data<scalar_t>(), n, seed, first); });
  return out;
}

Tensor randn(const Shape& shape, Generator& gen, DType dtype, Device device) {
  SX_CHECK(dtype == DType::Float32 || dtype == DType::Float64, "randn: expected float32 or float64, got ",
           dtype_name(dtype));
  Tensor out = Tensor::empty(shape, dtype, device);
  const int64_t n = out.numel();
  const uint64_t seed = gen.seed();
  const uint64_t first = gen.advance(2 * static_cast<uint64_t>(n) + (gen.offset() & 1));
  const uint64_t base = rng::normal_base(first);
  if (n == 0) return out;
  if (device.is_cuda()) {
#ifdef SX_WITH_CUDA
    detail::randn_cuda(out, seed, base);
    return out;
#else
    no_cuda("randn");
#endif
  }
  SX_DISPATCH_FLOAT(dtype, "randn", [&] { randn_loop(out.data<scalar_t>(), n, seed, base); });
  return out;
}

Tensor randint(int64_t low, int64_t high, const Shape& shape, Generator& gen, DType dtype, Device device) {
  SX_CHECK(high > low, "randint: empty range [", low, ", ", high, ")");
  SX_CHECK(dtype != DType::Bool && dtype != DType::Float16 && dtype != DType::BFloat16,
           "randint: unsupported dtype ", dtype_name(dtype));
  const uint64_t range = static_cast<uint64_t>(high) - static_cast<uint64_t>(low);
  Tensor out = Tensor::empty(shape, dtype, device);
  const int64_t n = out.numel();
  const uint64_t seed = gen.seed(), first = gen.advance(static_cast<uint64_t>(n));
  if (n == 0) return out;
  if (device.is_cuda()) {
#ifdef SX_WITH_CUDA
    detail::randint_cuda(out, seed, first, low, range);
    return out;
#else
    no_cuda("randint");
#endif
  }
  SX_DISPATCH_ALL(dtype, "randint", [&] { randint_loop(out.data<scalar_t>(), n, seed, first, low, range); });
  return out;
}

Tensor bernoulli(const Tensor& p, Generator& gen) {
  SX_CHECK(p.defined(), "bernoulli: undefined tensor");
  SX_CHECK(p.dtype() == DType::Float32 || p.dtype() == DType::Float64,
           "bernoulli: probabilities must be float32 or float64, got ", dtype_name(p.dtype()));
  Tensor pc = p.detach().contiguous();
  Tensor out = Tensor::empty(p.shape(), p.dtype(), p.device());
  const int64_t n = out.numel();
  const uint64_t seed = gen.seed(), first = gen.advance(static_cast<uint64_t>(n));
  if (n == 0) return out;
  if (p.is_cuda()) {
#ifdef SX_WITH_CUDA
    detail::bernoulli_cuda(out, pc, seed, first);
    return out;
#else
    no_cuda("bernoulli");
#endif
  }
  SX_DISPATCH_FLOAT(p.dtype(), "bernoulli", [&] { bernoulli_loop(pc.data<scalar_t>(), out.data<scalar_t>(), n, seed, first); });
  return out;
}

}  // namespace sx
