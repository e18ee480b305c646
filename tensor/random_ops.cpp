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
#include "tensor/dispatch.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tensor/random_ops.h"

namespace sx {
namespace {

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

// The CPU backend: fills the contiguous `out` (bernoulli: from the contiguous p).
void rand_cpu(const Tensor& out, uint64_t seed, uint64_t first) {
  SX_DISPATCH_FLOAT(out.dtype(), "rand", [&] { rand_loop(out.data<scalar_t>(), out.numel(), seed, first); });
}
void randn_cpu(const Tensor& out, uint64_t seed, uint64_t base) {
  SX_DISPATCH_FLOAT(out.dtype(), "randn", [&] { randn_loop(out.data<scalar_t>(), out.numel(), seed, base); });
}
void randint_cpu(const Tensor& out, uint64_t seed, uint64_t first, int64_t low, uint64_t range) {
  SX_DISPATCH_ALL(out.dtype(), "randint",
                  [&] { randint_loop(out.data<scalar_t>(), out.numel(), seed, first, low, range); });
}
void bernoulli_cpu(const Tensor& out, const Tensor& p, uint64_t seed, uint64_t first) {
  SX_DISPATCH_FLOAT(p.dtype(), "bernoulli",
                    [&] { bernoulli_loop(p.data<scalar_t>(), out.data<scalar_t>(), out.numel(), seed, first); });
}

}  // namespace

const detail::RandomBackend detail::RandomBackend::cpu = {rand_cpu, randn_cpu, randint_cpu, bernoulli_cpu};

Tensor rand(const Shape& shape, Generator& gen, DType dtype, Device device) {
  SX_CHECK(dtype == DType::Float32 || dtype == DType::Float64, "rand: expected float32 or float64, got ",
           dtype_name(dtype));
  Tensor out = Tensor::empty(shape, dtype, device);
  const int64_t n = out.numel();
  const uint64_t seed = gen.seed(), first = gen.advance(static_cast<uint64_t>(n));
  if (n == 0) return out;
  backend<detail::RandomBackend>(device, "rand").rand(out, seed, first);
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
  backend<detail::RandomBackend>(device, "randn").randn(out, seed, base);
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
  backend<detail::RandomBackend>(device, "randint").randint(out, seed, first, low, range);
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
  backend<detail::RandomBackend>(p.device(), "bernoulli").bernoulli(out, pc, seed, first);
  return out;
}

}  // namespace sx
