// CUDA twins of the optimizer updates: one grid-stride kernel per parameter tensor applying the
// per-element rule of optim_math.h (the very arithmetic the CPU loop in optim.cpp runs). Each
// element is independent, so the kernel is a plain map; the scalars (step size, bias corrections)
// are folded on the host once per tensor. A multi-tensor "foreach" launch would save launch
// overhead for models with many small tensors; one launch per tensor keeps the code obvious.
#include <cmath>

#include "tensor/cuda_context.h"
#include "train/optim.h"
#include "train/optim_math.h"

namespace sx::optim::detail {
namespace {

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

void sgd_step_cuda(const Tensor& p, const Tensor& g, const Tensor& buf, const SgdArgs& a) {
  const int64_t n = p.numel();
  if (n == 0) return;
  const int dev = p.device().index;
  cuda::set_device(dev);
  SX_DISPATCH_FLOAT(p.dtype(), "sgd", [&] {
    using T = scalar_t;
    SgdScalars<T> s{T(a.lr), T(a.momentum), T(1.0 - a.dampening), T(a.weight_decay),
                    a.nesterov, a.first_step, a.momentum != 0.0, a.weight_decay != 0.0};
    sgd_kernel<T><<<cuda::blocks_for(n), 256, 0, cuda::current_stream(dev)>>>(
        p.data<T>(), g.data<T>(), buf.defined() ? buf.data<T>() : nullptr, n, s);
    SX_CUDA_CHECK_LAUNCH();
  });
}

void adamw_step_cuda(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, const AdamWArgs& a) {
  const int64_t n = p.numel();
  if (n == 0) return;
  const int dev = p.device().index;
  cuda::set_device(dev);
  SX_DISPATCH_FLOAT(p.dtype(), "adamw", [&] {
    using T = scalar_t;
    double bc1 = 1.0 - std::pow(a.beta1, static_cast<double>(a.step));
    double bc2 = 1.0 - std::pow(a.beta2, static_cast<double>(a.step));
    AdamWScalars<T> s{T(1.0 - a.lr * a.weight_decay), T(a.beta1), T(1.0 - a.beta1), T(a.beta2), T(1.0 - a.beta2),
                      T(a.lr / bc1), T(std::sqrt(bc2)), T(a.eps)};
    adamw_kernel<T><<<cuda::blocks_for(n), 256, 0, cuda::current_stream(dev)>>>(
        p.data<T>(), g.data<T>(), m.data<T>(), v.data<T>(), n, s);
    SX_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace sx::optim::detail
