// Pooling on CUDA over the same window math as the CPU loops (pooling_math.h).
// Forward: one thread per output element (grid-stride), scanning its window/cell.
// Backward: one thread per output element scattering into the input gradient with atomicAdd
// (max-pool windows and adaptive cells may overlap, so several outputs can hit one input).
#include "kernels/pooling/pooling.h"
#include "kernels/pooling/pooling_math.h"
#include "tensor/cuda_context.h"

namespace sx::kernels::cuda {

using namespace pool_math;

namespace {

template <class T>
__global__ void max_pool_fwd(const T* x, T* y, int64_t* idx, int64_t total, int64_t H, int64_t W, int64_t P, int64_t Q,
                             MaxPool2dParams p) {
  for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < total; t += (int64_t)gridDim.x * blockDim.x) {
    const int64_t oq = t % Q, op = (t / Q) % P, pl = t / (P * Q);
    const T* in = x + pl * H * W;
    max_pool_window(in, H, W, op * p.stride_h - p.pad_h, oq * p.stride_w - p.pad_w, p.kernel_h, p.kernel_w, p.dil_h,
                    p.dil_w, y + t, idx + t);
  }
}

template <class T>
__global__ void max_pool_bwd(const T* g, const int64_t* idx, T* dx, int64_t total, int64_t HW, int64_t PQ) {
  for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < total; t += (int64_t)gridDim.x * blockDim.x) {
    const int64_t pl = t / PQ, i = idx[t];
    if (i >= 0 && i < HW) atomicAdd(dx + pl * HW + i, g[t]);
  }
}

template <class T>
__global__ void adaptive_fwd(const T* x, T* y, int64_t total, int64_t H, int64_t W, int64_t OH, int64_t OW) {
  for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < total; t += (int64_t)gridDim.x * blockDim.x) {
    const int64_t j = t % OW, i = (t / OW) % OH, pl = t / (OH * OW);
    const int64_t h0 = adaptive_start(i, H, OH), h1 = adaptive_end(i, H, OH);
    const int64_t w0 = adaptive_start(j, W, OW), w1 = adaptive_end(j, W, OW);
    const T* in = x + pl * H * W;
    y[t] = adaptive_cell_mean(in, W, h0, h1, w0, w1);
  }
}

template <class T>
__global__ void adaptive_bwd(const T* g, T* dx, int64_t total, int64_t H, int64_t W, int64_t OH, int64_t OW) {
  for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < total; t += (int64_t)gridDim.x * blockDim.x) {
    const int64_t j = t % OW, i = (t / OW) % OH, pl = t / (OH * OW);
    const int64_t h0 = adaptive_start(i, H, OH), h1 = adaptive_end(i, H, OH);
    const int64_t w0 = adaptive_start(j, W, OW), w1 = adaptive_end(j, W, OW);
    const T v = g[t] / static_cast<T>((h1 - h0) * (w1 - w0));
    T* out = dx + pl * H * W;
    for (int64_t h = h0; h < h1; ++h)
      for (int64_t w = w0; w < w1; ++w) atomicAdd(out + h * W + w, v);
  }
}

}  // namespace

std::pair<Tensor, Tensor> max_pool2d_forward(const Tensor& x_, const MaxPool2dParams& p) {
  const int dev = x_.device().index;
  sx::cuda::set_device(dev);
  cudaStream_t st = sx::cuda::current_stream(dev);
  Tensor x = x_.contiguous();
  Shape os = max_pool2d_output_shape(x.shape(), p);
  Tensor y = Tensor::empty(os, x.dtype(), x.device());
  Tensor idx = Tensor::empty(os, DType::Int64, x.device());
  const int64_t total = y.numel();
  SX_DISPATCH_FLOAT(x.dtype(), "max_pool2d", [&] {
    max_pool_fwd<scalar_t><<<sx::cuda::blocks_for(total), 256, 0, st>>>(
        x.data<scalar_t>(), y.data<scalar_t>(), idx.data<int64_t>(), total, x.size(2), x.size(3), os[2], os[3], p);
    SX_CUDA_CHECK_LAUNCH();
  });
  return {y, idx};
}

Tensor max_pool2d_backward(const Tensor& grad_out, const Tensor& indices, const Shape& input_shape) {
  const int dev = grad_out.device().index;
  sx::cuda::set_device(dev);
  cudaStream_t st = sx::cuda::current_stream(dev);
  Tensor g = grad_out.contiguous(), idx = indices.contiguous();
  Tensor dx = Tensor::zeros(input_shape, g.dtype(), g.device());
  const int64_t total = g.numel();
  SX_DISPATCH_FLOAT(g.dtype(), "max_pool2d_backward", [&] {
    max_pool_bwd<scalar_t><<<sx::cuda::blocks_for(total), 256, 0, st>>>(
        g.data<scalar_t>(), idx.data<int64_t>(), dx.data<scalar_t>(), total, input_shape[2] * input_shape[3],
        g.size(2) * g.size(3));
    SX_CUDA_CHECK_LAUNCH();
  });
  return dx;
}

Tensor adaptive_avg_pool2d_forward(const Tensor& x_, int64_t OH, int64_t OW) {
  const int dev = x_.device().index;
  sx::cuda::set_device(dev);
  cudaStream_t st = sx::cuda::current_stream(dev);
  Tensor x = x_.contiguous();
  Tensor y = Tensor::empty({x.size(0), x.size(1), OH, OW}, x.dtype(), x.device());
  const int64_t total = y.numel();
  SX_DISPATCH_FLOAT(x.dtype(), "adaptive_avg_pool2d", [&] {
    adaptive_fwd<scalar_t><<<sx::cuda::blocks_for(total), 256, 0, st>>>(x.data<scalar_t>(), y.data<scalar_t>(), total,
                                                                        x.size(2), x.size(3), OH, OW);
    SX_CUDA_CHECK_LAUNCH();
  });
  return y;
}

Tensor adaptive_avg_pool2d_backward(const Tensor& grad_out, const Shape& input_shape) {
  const int dev = grad_out.device().index;
  sx::cuda::set_device(dev);
  cudaStream_t st = sx::cuda::current_stream(dev);
  Tensor g = grad_out.contiguous();
  Tensor dx = Tensor::zeros(input_shape, g.dtype(), g.device());
  const int64_t total = g.numel();
  SX_DISPATCH_FLOAT(g.dtype(), "adaptive_avg_pool2d_backward", [&] {
    adaptive_bwd<scalar_t><<<sx::cuda::blocks_for(total), 256, 0, st>>>(
        g.data<scalar_t>(), dx.data<scalar_t>(), total, input_shape[2], input_shape[3], g.size(2), g.size(3));
    SX_CUDA_CHECK_LAUNCH();
  });
  return dx;
}

}  // namespace sx::kernels::cuda

namespace sx::kernels {
const PoolingBackend PoolingBackend::cuda = {
    cuda::max_pool2d_forward,
    cuda::max_pool2d_backward,
    cuda::adaptive_avg_pool2d_forward,
    cuda::adaptive_avg_pool2d_backward};
}  // namespace sx::kernels
