// CUDA twins of the optimizer updates: one grid-stride kernel per parameter tensor applying the
// per-element rule of optim_math.h (the very arithmetic the CPU loop in optim_cpu.cpp runs). Each
// element is independent, so the kernel is a plain map; the scalars (step size, bias corrections)
// are folded on the host once per tensor (optim_math's sgd_scalars / adamw_scalars, as on the CPU).
// A multi-tensor "foreach" launch would save launch overhead for models with many small tensors;
// one launch per tensor keeps the code obvious.
#include "kernels/optim/optim.h"
#include "kernels/optim/optim_math.h"
#include "tensor/cuda_context.h"
#include "tensor/dtype.h"

namespace sx::kernels::cuda {
namespace {
using namespace optim_math;

template <class T>
__global__ void sgd_kernel(T* p, const T* g, T* buf, int64_t n, SgdScalars<T> s) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(blockDim.x) * gridDim.x)
    sgd_update<T>(p[i], g[i], buf ? buf + i : nullptr, s);
}

template <class T>
__global__ void adamw_kernel(T* p, const T* g, T* m, T* v, int64_t n, AdamWScalars<T> s) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(blockDim.x) * gridDim.x)
    adamw_update<T>(p[i], g[i], m[i], v[i], s);
}

}  // namespace

void sgd_step(const Tensor& p, const Tensor& g, const Tensor& buf, const SgdStepArgs& a) {
  const int64_t n = p.numel();
  if (n == 0) return;
  const int dev = p.device().index;
  sx::cuda::set_device(dev);
  SX_DISPATCH_FLOAT(p.dtype(), "sgd", [&] {
    using T = scalar_t;
    sgd_kernel<T><<<sx::cuda::blocks_for(n), 256, 0, sx::cuda::current_stream(dev)>>>(
        p.data<T>(), g.data<T>(), a.momentum != 0.0 ? buf.data<T>() : nullptr, n, sgd_scalars<T>(a));
    SX_CUDA_CHECK_LAUNCH();
  });
}

void adamw_step(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, const AdamWStepArgs& a) {
  const int64_t n = p.numel();
  if (n == 0) return;
  const int dev = p.device().index;
  sx::cuda::set_device(dev);
  SX_DISPATCH_FLOAT(p.dtype(), "adamw", [&] {
    using T = scalar_t;
    adamw_kernel<T><<<sx::cuda::blocks_for(n), 256, 0, sx::cuda::current_stream(dev)>>>(
        p.data<T>(), g.data<T>(), m.data<T>(), v.data<T>(), n, adamw_scalars<T>(a));
    SX_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace sx::kernels::cuda

namespace sx::kernels {
const OptimBackend OptimBackend::cuda = {cuda::sgd_step, cuda::adamw_step};
}  // namespace sx::kernels
