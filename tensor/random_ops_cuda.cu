// CUDA kernels of the random tensor factories: one thread per element (grid-stride loop), each
// evaluating the shared per-element math of random_ops_math.h at its own counter. No generator
// state lives on the device (the host reserved the counters), so the kernels are trivially
// parallel and produce the CPU loops' values (random_ops.cpp).
#include "tensor/cuda_context.h"
#include "tensor/random_ops.h"
#include "tensor/random_ops_math.h"

namespace sx::detail {
namespace {

constexpr int kThreads = 256;

#define SX_GRID_STRIDE_LOOP(i, n) \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)

template <class T>
__global__ void rand_kernel(int64_t n, uint64_t seed, uint64_t first, T* out) {
  SX_GRID_STRIDE_LOOP(i, n) out[i] = rng::uniform_value<T>(seed, first + static_cast<uint64_t>(i));
}
template <class T>
__global__ void randn_kernel(int64_t n, uint64_t seed, uint64_t base, T* out) {
  SX_GRID_STRIDE_LOOP(i, n) out[i] = static_cast<T>(rng::normal(seed, base + static_cast<uint64_t>(i)));
}
template <class T>
__global__ void randint_kernel(int64_t n, uint64_t seed, uint64_t first, int64_t lo, uint64_t range, T* out) {
  SX_GRID_STRIDE_LOOP(i, n) out[i] = static_cast<T>(rng::randint_value(seed, first + static_cast<uint64_t>(i), lo, range));
}
template <class T>
__global__ void bernoulli_kernel(int64_t n, uint64_t seed, uint64_t first, const T* p, T* out) {
  SX_GRID_STRIDE_LOOP(i, n)
    out[i] = rng::bernoulli_value(seed, first + static_cast<uint64_t>(i), static_cast<double>(p[i])) ? T(1) : T(0);
}

cudaStream_t stream_of(const Tensor& t) {
  cuda::set_device(t.device().index);
  return cuda::current_stream(t.device().index);
}

}  // namespace

void rand_cuda(const Tensor& out, uint64_t seed, uint64_t first) {
  cudaStream_t s = stream_of(out);
  const int64_t n = out.numel();
  SX_DISPATCH_FLOAT(out.dtype(), "rand", [&] {
    rand_kernel<scalar_t><<<cuda::blocks_for(n, kThreads), kThreads, 0, s>>>(n, seed, first, out.data<scalar_t>());
    SX_CUDA_CHECK_LAUNCH();
  });
}

void randn_cuda(const Tensor& out, uint64_t seed, uint64_t base) {
  cudaStream_t s = stream_of(out);
  const int64_t n = out.numel();
  SX_DISPATCH_FLOAT(out.dtype(), "randn", [&] {
    randn_kernel<scalar_t><<<cuda::blocks_for(n, kThreads), kThreads, 0, s>>>(n, seed, base, out.data<scalar_t>());
    SX_CUDA_CHECK_LAUNCH();
  });
}

void randint_cuda(const Tensor& out, uint64_t seed, uint64_t first, int64_t lo, uint64_t range) {
  cudaStream_t s = stream_of(out);
  const int64_t n = out.numel();
  SX_DISPATCH_ALL(out.dtype(), "randint", [&] {
    randint_kernel<scalar_t><<<cuda::blocks_for(n, kThreads), kThreads, 0, s>>>(n, seed, first, lo, range,
                                                                                out.data<scalar_t>());
    SX_CUDA_CHECK_LAUNCH();
  });
}

void bernoulli_cuda(const Tensor& out, const Tensor& p, uint64_t seed, uint64_t first) {
  cudaStream_t s = stream_of(out);
  const int64_t n = out.numel();
  SX_DISPATCH_FLOAT(out.dtype(), "bernoulli", [&] {
    bernoulli_kernel<scalar_t><<<cuda::blocks_for(n, kThreads), kThreads, 0, s>>>(n, seed, first, p.data<scalar_t>(),
                                                                                  out.data<scalar_t>());
    SX_CUDA_CHECK_LAUNCH();
  });
}

const RandomBackend RandomBackend::cuda = {rand_cuda, randn_cuda, randint_cuda, bernoulli_cuda};

}  // namespace sx::detail
