// Nearest upsampling on CUDA over the CPU's index math (upsample_math.h).
// Forward: one thread per output element. Backward: one thread per output element adding its
// gradient to its source with atomicAdd (several outputs copy one input).
#include "kernels/upsample/upsample.h"
#include "kernels/upsample/upsample_math.h"
#include "tensor/cuda_context.h"

namespace sx::kernels::cuda {

using namespace upsample_math;

namespace {

template <class T>
__global__ void up_fwd(const T* x, T* y, int64_t total, int64_t H, int64_t W, int64_t OH, int64_t OW, float sh,
                       float sw) {
  for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < total; t += (int64_t)gridDim.x * blockDim.x) {
    const int64_t j = t % OW, i = (t / OW) % OH, pl = t / (OH * OW);
    y[t] = x[(pl * H + nearest_src(i, H, OH, sh)) * W + nearest_src(j, W, OW, sw)];
  }
}

template <class T>
__global__ void up_bwd(const T* g, T* dx, int64_t total, int64_t H, int64_t W, int64_t OH, int64_t OW, float sh,
                       float sw) {
  for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < total; t += (int64_t)gridDim.x * blockDim.x) {
    const int64_t j = t % OW, i = (t / OW) % OH, pl = t / (OH * OW);
    atomicAdd(dx + (pl * H + nearest_src(i, H, OH, sh)) * W + nearest_src(j, W, OW, sw), g[t]);
  }
}

}  // namespace

Tensor upsample_nearest2d_forward(const Tensor& x_, int64_t OH, int64_t OW, double scale_h, double scale_w) {
  const int dev = x_.device().index;
  sx::cuda::set_device(dev);
  cudaStream_t st = sx::cuda::current_stream(dev);
  Tensor x = x_.contiguous();
  const int64_t H = x.size(2), W = x.size(3);
  Tensor y = Tensor::empty({x.size(0), x.size(1), OH, OW}, x.dtype(), x.device());
  const int64_t total = y.numel();
  SX_DISPATCH_FLOAT(x.dtype(), "upsample_nearest2d", [&] {
    up_fwd<scalar_t><<<sx::cuda::blocks_for(total), 256, 0, st>>>(x.data<scalar_t>(), y.data<scalar_t>(), total, H, W,
                                                                  OH, OW, nearest_scale(H, OH, scale_h),
                                                                  nearest_scale(W, OW, scale_w));
    SX_CUDA_CHECK_LAUNCH();
  });
  return y;
}

Tensor upsample_nearest2d_backward(const Tensor& grad_out, const Shape& input_shape, double scale_h, double scale_w) {
  const int dev = grad_out.device().index;
  sx::cuda::set_device(dev);
  cudaStream_t st = sx::cuda::current_stream(dev);
  Tensor g = grad_out.contiguous();
  const int64_t H = input_shape[2], W = input_shape[3], OH = g.size(2), OW = g.size(3);
  Tensor dx = Tensor::zeros(input_shape, g.dtype(), g.device());
  const int64_t total = g.numel();
  SX_DISPATCH_FLOAT(g.dtype(), "upsample_nearest2d_backward", [&] {
    up_bwd<scalar_t><<<sx::cuda::blocks_for(total), 256, 0, st>>>(g.data<scalar_t>(), dx.data<scalar_t>(), total, H, W,
                                                                  OH, OW, nearest_scale(H, OH, scale_h),
                                                                  nearest_scale(W, OW, scale_w));
    SX_CUDA_CHECK_LAUNCH();
  });
  return dx;
}

}  // namespace sx::kernels::cuda

namespace sx::kernels {
const UpsampleBackend UpsampleBackend::cuda = {
    cuda::upsample_nearest2d_forward,
    cuda::upsample_nearest2d_backward};
}  // namespace sx::kernels
