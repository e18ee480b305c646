// CUDA sigmoid focal loss over focal_loss_math.h, one kernel per direction.
//
// Forward: a grid-stride loop computes each element's loss. With reduction None it is written out;
// otherwise each thread sums in float64, each block reduces in shared memory and writes its partial,
// and the last block to finish (a ticket taken with atomicAdd after a __threadfence) adds the
// partials in block order and writes the scalar. The grid size depends only on N * C, so the
// result is deterministic and one launch does the whole reduction (no second kernel, no host sync).
// Backward: one thread per element; for Sum/Mean the incoming scalar gradient is read on the device.
// Both kernels are templated on the gamma kind G (2, 1, 0 multiply, -1 calls pow), like the CPU
// loops, and compute each element with focalmath::loss / dloss_dx from the element's target code.
#include "kernels/focal_loss/focal_loss.h"
#include "kernels/focal_loss/focal_loss_math.h"
#include "tensor/cuda_context.h"

namespace sx::kernels::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxBlocks = 1024;

template <int G, class T>
__global__ void forward_kernel(const T* x, const int64_t* t, int64_t N, int64_t C, focalmath::Consts<T> k,
                               int mode /*0 none, 1 sum, 2 mean*/, double normalizer, T* out,
                               double* partial, unsigned int* ticket) {
  __shared__ double red[kThreads];
  __shared__ bool last;
  const int64_t total = N * C;
  double acc = 0;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
       i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t n = i / C, c = i - n * C;
    const T l = focalmath::loss<G>(x[i], focalmath::target_code<T>(t[n], c), k);
    if (mode == 0) out[i] = static_cast<T>(l / normalizer);
    else acc += static_cast<double>(l);
  }
  if (mode == 0) return;
  red[threadIdx.x] = acc;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s /= 2) {
    if (threadIdx.x < s) red[threadIdx.x] += red[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    partial[blockIdx.x] = red[0];
    __threadfence();
    last = atomicAdd(ticket, 1u) == gridDim.x - 1;
  }
  __syncthreads();
  if (!last) return;
  // The last block: add the partials in block order (fixed order -> deterministic).
  double s = 0;
  for (unsigned b = threadIdx.x; b < gridDim.x; b += blockDim.x) s += ((volatile double*)partial)[b];
  red[threadIdx.x] = s;
  __syncthreads();
  for (int st = blockDim.x / 2; st > 0; st /= 2) {
    if (threadIdx.x < st) red[threadIdx.x] += red[threadIdx.x + st];
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    double v = red[0];
    if (mode == 2) v /= static_cast<double>(total);
    out[0] = static_cast<T>(v / normalizer);
    *ticket = 0;
  }
}

template <int G, class T>
__global__ void backward_kernel(const T* g, const T* x, const int64_t* t, int64_t N, int64_t C,
                                focalmath::Consts<T> k, bool reduce, double factor, T* gx) {
  const int64_t total = N * C;
  const T sg = reduce ? static_cast<T>(static_cast<double>(g[0]) * factor) : T(0);
  const T f = static_cast<T>(factor);
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < total;
       i += (int64_t)gridDim.x * blockDim.x) {
    const int64_t n = i / C, c = i - n * C;
    const T d = focalmath::dloss_dx<G>(x[i], focalmath::target_code<T>(t[n], c), k);
    gx[i] = reduce ? sg * d : g[i] * f * d;
  }
}

}  // namespace

Tensor sigmoid_focal_loss_forward(const Tensor& logits, const Tensor& targets, const FocalLossParams& p) {
  const int64_t N = logits.size(0), C = logits.size(1);
  const Device d = logits.device();
  const bool none = p.reduction == FocalReduction::None;
  Tensor out = none ? Tensor::empty({N, C}, logits.dtype(), d) : Tensor::empty({}, logits.dtype(), d);
  const int dev = d.index;
  sx::cuda::set_device(dev);
  if (N * C == 0) {
    if (!none) out.fill_(p.reduction == FocalReduction::Sum ? 0.0 : NAN);
    return out;
  }
  const unsigned blocks = std::min<unsigned>(sx::cuda::blocks_for(N * C, kThreads), kMaxBlocks);
  Tensor partial = Tensor::empty({static_cast<int64_t>(blocks)}, DType::Float64, d);
  Tensor ticket = Tensor::zeros({1}, DType::Int32, d);
  const int mode = none ? 0 : (p.reduction == FocalReduction::Sum ? 1 : 2);
  SX_DISPATCH_FLOAT(logits.dtype(), "sigmoid_focal_loss", [&] {
    const auto k = focalmath::make_consts<scalar_t>(p.alpha, p.gamma);
    auto launch = [&](auto kernel) {
      kernel<<<blocks, kThreads, 0, sx::cuda::current_stream(dev)>>>(
          logits.data<scalar_t>(), targets.data<int64_t>(), N, C, k, mode, p.normalizer,
          out.data<scalar_t>(), partial.data<double>(), reinterpret_cast<unsigned int*>(ticket.data<int32_t>()));
      SX_CUDA_CHECK_LAUNCH();
    };
    switch (focalmath::gamma_kind(p.gamma)) {
      case 0: launch(forward_kernel<0, scalar_t>); break;
      case 1: launch(forward_kernel<1, scalar_t>); break;
      case 2: launch(forward_kernel<2, scalar_t>); break;
      default: launch(forward_kernel<-1, scalar_t>); break;
    }
  });
  return out;
}

Tensor sigmoid_focal_loss_backward(const Tensor& grad_out, const Tensor& logits, const Tensor& targets,
                                   const FocalLossParams& p) {
  const int64_t N = logits.size(0), C = logits.size(1);
  Tensor gx = Tensor::empty({N, C}, logits.dtype(), logits.device());
  if (N * C == 0) return gx;
  const int dev = logits.device().index;
  sx::cuda::set_device(dev);
  const bool reduce = p.reduction != FocalReduction::None;
  double factor = 1.0 / p.normalizer;
  if (p.reduction == FocalReduction::Mean) factor /= static_cast<double>(N * C);
  SX_DISPATCH_FLOAT(logits.dtype(), "sigmoid_focal_loss_backward", [&] {
    const auto k = focalmath::make_consts<scalar_t>(p.alpha, p.gamma);
    auto launch = [&](auto kernel) {
      kernel<<<sx::cuda::blocks_for(N * C, kThreads), kThreads, 0, sx::cuda::current_stream(dev)>>>(
          grad_out.data<scalar_t>(), logits.data<scalar_t>(), targets.data<int64_t>(), N, C, k, reduce,
          factor, gx.data<scalar_t>());
      SX_CUDA_CHECK_LAUNCH();
    };
    switch (focalmath::gamma_kind(p.gamma)) {
      case 0: launch(backward_kernel<0, scalar_t>); break;
      case 1: launch(backward_kernel<1, scalar_t>); break;
      case 2: launch(backward_kernel<2, scalar_t>); break;
      default: launch(backward_kernel<-1, scalar_t>); break;
    }
  });
  return gx;
}

}  // namespace sx::kernels::cuda

namespace sx::kernels {
const FocalLossBackend FocalLossBackend::cuda = {
    cuda::sigmoid_focal_loss_forward,
    cuda::sigmoid_focal_loss_backward};
}  // namespace sx::kernels
