// CUDA GIoU loss over giou_loss_math.h: one thread per box pair (grid-stride), forward and
// backward; the per-pair math is the CPU's, only the indexing and the launch are here.
#include "kernels/box_ops/giou_loss.h"
#include "kernels/box_ops/giou_loss_math.h"
#include "tensor/cuda_context.h"

namespace sx::kernels::cuda {
namespace {

template <class T>
__global__ void forward_kernel(const T* a, const T* b, T eps, T* out, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    out[i] = gioumath::loss(a + 4 * i, b + 4 * i, eps);
}

template <class T>
__global__ void backward_kernel(const T* g, const T* a, const T* b, T eps, T* ga, T* gb, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    gioumath::grad(a + 4 * i, b + 4 * i, eps, g[i], ga + 4 * i, gb + 4 * i);
}

}  // namespace

Tensor giou_loss_forward(const Tensor& a, const Tensor& b, double eps) {
  const int64_t n = a.size(0);
  Tensor out = Tensor::empty({n}, a.dtype(), a.device());
  if (n == 0) return out;
  const int dev = a.device().index;
  sx::cuda::set_device(dev);
  SX_DISPATCH_FLOAT(a.dtype(), "giou_loss", [&] {
    forward_kernel<<<sx::cuda::blocks_for(n), 256, 0, sx::cuda::current_stream(dev)>>>(
        a.data<scalar_t>(), b.data<scalar_t>(), static_cast<scalar_t>(eps), out.data<scalar_t>(), n);
    SX_CUDA_CHECK_LAUNCH();
  });
  return out;
}

std::pair<Tensor, Tensor> giou_loss_backward(const Tensor& g, const Tensor& a, const Tensor& b, double eps) {
  const int64_t n = a.size(0);
  Tensor ga = Tensor::empty({n, 4}, a.dtype(), a.device()), gb = Tensor::empty({n, 4}, a.dtype(), a.device());
  if (n == 0) return {ga, gb};
  const int dev = a.device().index;
  sx::cuda::set_device(dev);
  SX_DISPATCH_FLOAT(a.dtype(), "giou_loss_backward", [&] {
    backward_kernel<<<sx::cuda::blocks_for(n), 256, 0, sx::cuda::current_stream(dev)>>>(
        g.data<scalar_t>(), a.data<scalar_t>(), b.data<scalar_t>(), static_cast<scalar_t>(eps),
        ga.data<scalar_t>(), gb.data<scalar_t>(), n);
    SX_CUDA_CHECK_LAUNCH();
  });
  return {ga, gb};
}

}  // namespace sx::kernels::cuda

namespace sx::kernels {
const GiouLossBackend GiouLossBackend::cuda = {cuda::giou_loss_forward, cuda::giou_loss_backward};
}  // namespace sx::kernels
