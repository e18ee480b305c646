// CUDA RoIAlign over the shared math in roi_align_math.h.
//
// Forward: one thread per output element (k, c, ph, pw), consecutive threads on consecutive pw, so
// a warp reads neighbouring pixels of one channel plane. RoIs of other FPN levels return at once.
//
// Backward, two modes:
//   atomic: one thread per grad_out element scatters grad * w / count to the four neighbours of each
//     sample with atomicAdd (torchvision's kernel). Fast, but float additions in a run-dependent
//     order: results can differ in the last bits between runs.
//   deterministic (fixed point): pass 1 reduces S = sum |grad_out| in a fixed order (per-block
//     partials, then one block) and picks scale = 2^(62 - ceil(log2 S)); pass 2 is the same scatter,
//     but each contribution is rounded to the int64 llrint(v * scale) and added with the 64-bit
//     integer atomicAdd; integer addition is associative, so the sum does not depend on the order;
//     pass 3 converts acc / scale back to the float type. Every |partial sum| <= S (bilinear weights
//     of a sample sum to 1 and each output divides by its sample count), so nothing overflows.
#include <cmath>

#include "kernels/roi_align/roi_align.h"
#include "kernels/roi_align/roi_align_math.h"
#include "tensor/cuda_context.h"

namespace sx::kernels::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kSumBlocks = 256;

template <class T>
__global__ void forward_kernel(const T* in, const T* rois, const int64_t* levels, int64_t level,
                               int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t PH,
                               int64_t PW, T scale, int64_t sampling, bool aligned, T* out) {
  const int64_t total = K * C * PH * PW;
  for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < total;
       idx += (int64_t)gridDim.x * blockDim.x) {
    const int64_t pw = idx % PW;
    const int64_t ph = (idx / PW) % PH;
    const int64_t c = (idx / (PW * PH)) % C;
    const int64_t k = idx / (PW * PH * C);
    if (levels && levels[k] != level) continue;
    const auto g = roimath::geometry(rois + 5 * k, N, scale, PH, PW, sampling, aligned);
    if (g.batch < 0) {
      out[idx] = T(0);
      continue;
    }
    out[idx] = roimath::pool_bin(g, in + (g.batch * C + c) * H * W, H, W, ph, pw);
  }
}

// Fixed-point accumulator add (two's complement wrap-around is associative).
__device__ __forceinline__ void fx_add(unsigned long long* p, double v, double scale) {
  atomicAdd(p, roimath::to_fixed(v, scale));
}

template <class T, bool kFixed>
__global__ void backward_kernel(const T* go, const T* rois, const int64_t* levels, int64_t level,
                                int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t PH,
                                int64_t PW, T scale, int64_t sampling, bool aligned, T* gi,
                                unsigned long long* acc, const double* fx_scale) {
  const int64_t total = K * C * PH * PW;
  const double fs = kFixed ? *fx_scale : 0.0;
  for (int64_t idx = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; idx < total;
       idx += (int64_t)gridDim.x * blockDim.x) {
    const int64_t pw = idx % PW;
    const int64_t ph = (idx / PW) % PH;
    const int64_t c = (idx / (PW * PH)) % C;
    const int64_t k = idx / (PW * PH * C);
    if (levels && levels[k] != level) continue;
    const auto g = roimath::geometry(rois + 5 * k, N, scale, PH, PW, sampling, aligned);
    if (g.batch < 0) continue;
    const T gv = go[idx];
    const int64_t base = (g.batch * C + c) * H * W;
    for (int iy = 0; iy < g.grid_h; ++iy) {
      const T y = roimath::sample_y(g, ph, iy);
      for (int ix = 0; ix < g.grid_w; ++ix) {
        const auto b = roimath::bilinear(H, W, y, roimath::sample_x(g, pw, ix));
        if (!b.valid) continue;
        const T g1 = gv * b.w1 / g.count, g2 = gv * b.w2 / g.count;
        const T g3 = gv * b.w3 / g.count, g4 = gv * b.w4 / g.count;
        if constexpr (kFixed) {
          fx_add(acc + base + b.p1, g1, fs);
          fx_add(acc + base + b.p2, g2, fs);
          fx_add(acc + base + b.p3, g3, fs);
          fx_add(acc + base + b.p4, g4, fs);
        } else {
          atomicAdd(gi + base + b.p1, g1);
          atomicAdd(gi + base + b.p2, g2);
          atomicAdd(gi + base + b.p3, g3);
          atomicAdd(gi + base + b.p4, g4);
        }
      }
    }
  }
}

// Pass 1a: per-block partial sums of |x| (fixed grid, fixed order).
template <class T>
__global__ void abs_sum_partial_kernel(const T* x, int64_t n, double* partial) {
  __shared__ double red[kThreads];
  double s = 0;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    s += fabs(static_cast<double>(x[i]));
  red[threadIdx.x] = s;
  __syncthreads();
  for (int st = blockDim.x / 2; st > 0; st /= 2) {
    if (threadIdx.x < st) red[threadIdx.x] += red[threadIdx.x + st];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[blockIdx.x] = red[0];
}

// Pass 1b: one block sums the partials and chooses the power-of-two scale (0 if S is not finite).
__global__ void fixed_scale_kernel(const double* partial, int nparts, double* fx_scale) {
  __shared__ double red[kSumBlocks];
  red[threadIdx.x] = threadIdx.x < nparts ? partial[threadIdx.x] : 0.0;
  __syncthreads();
  for (int st = blockDim.x / 2; st > 0; st /= 2) {
    if (threadIdx.x < st) red[threadIdx.x] += red[threadIdx.x + st];
    __syncthreads();
  }
  if (threadIdx.x == 0) *fx_scale = roimath::fixed_point_scale(red[0]);
}

template <class T>
__global__ void fixed_to_float_kernel(const unsigned long long* acc, int64_t n, const double* fx_scale,
                                      T* gi) {
  const double sc = *fx_scale;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    if (sc == 0.0) {
      gi[i] = T(NAN);
    } else {
      gi[i] += static_cast<T>(roimath::from_fixed(acc[i], sc));
    }
  }
}

template <class T>
__global__ void fpn_levels_kernel(const T* rois, int64_t K, int64_t k_min, int64_t k_max, double s0,
                                  int64_t k0, double eps, int64_t* out) {
  for (int64_t k = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; k < K;
       k += (int64_t)gridDim.x * blockDim.x)
    out[k] = roimath::fpn_level(rois + 5 * k, k_min, k_max, s0, k0, eps);
}

}  // namespace

void roi_align_forward_into(const Tensor& input, const Tensor& rois, const Tensor& levels,
                            int64_t level, const RoiAlignParams& p, RoiAlignAlgo /*algo*/, Tensor& out) {
  const int64_t N = input.size(0), C = input.size(1), H = input.size(2), W = input.size(3);
  const int64_t K = rois.size(0);
  const int dev = input.device().index;
  sx::cuda::set_device(dev);
  const int64_t total = K * C * p.pooled_h * p.pooled_w;
  SX_DISPATCH_FLOAT(input.dtype(), "roi_align", [&] {
    forward_kernel<<<sx::cuda::blocks_for(total, kThreads), kThreads, 0,
                     sx::cuda::current_stream(dev)>>>(
        input.data<scalar_t>(), rois.data<scalar_t>(),
        levels.defined() ? levels.data<int64_t>() : nullptr, level, N, C, H, W, K, p.pooled_h,
        p.pooled_w, static_cast<scalar_t>(p.spatial_scale), p.sampling_ratio, p.aligned,
        out.data<scalar_t>());
    SX_CUDA_CHECK_LAUNCH();
  });
}

void roi_align_backward_into(const Tensor& grad_out, const Tensor& rois, const Tensor& levels,
                             int64_t level, const RoiAlignParams& p, bool deterministic,
                             RoiAlignAlgo /*algo*/, Tensor& grad_input) {
  const int64_t N = grad_input.size(0), C = grad_input.size(1), H = grad_input.size(2),
                W = grad_input.size(3);
  const int64_t K = rois.size(0);
  const Device d = grad_input.device();
  const int dev = d.index;
  sx::cuda::set_device(dev);
  cudaStream_t stream = sx::cuda::current_stream(dev);
  const int64_t total = K * C * p.pooled_h * p.pooled_w;
  const int64_t* lv = levels.defined() ? levels.data<int64_t>() : nullptr;
  SX_DISPATCH_FLOAT(grad_input.dtype(), "roi_align_backward", [&] {
    if (!deterministic) {
      backward_kernel<scalar_t, false><<<sx::cuda::blocks_for(total, kThreads), kThreads, 0, stream>>>(
          grad_out.data<scalar_t>(), rois.data<scalar_t>(), lv, level, N, C, H, W, K, p.pooled_h,
          p.pooled_w, static_cast<scalar_t>(p.spatial_scale), p.sampling_ratio, p.aligned,
          grad_input.data<scalar_t>(), nullptr, nullptr);
      SX_CUDA_CHECK_LAUNCH();
      return;
    }
    Tensor partial = Tensor::empty({kSumBlocks}, DType::Float64, d);
    Tensor fx_scale = Tensor::empty({1}, DType::Float64, d);
    abs_sum_partial_kernel<<<kSumBlocks, kThreads, 0, stream>>>(grad_out.data<scalar_t>(),
                                                                grad_out.numel(),
                                                                partial.data<double>());
    SX_CUDA_CHECK_LAUNCH();
    fixed_scale_kernel<<<1, kSumBlocks, 0, stream>>>(partial.data<double>(), kSumBlocks,
                                                     fx_scale.data<double>());
    SX_CUDA_CHECK_LAUNCH();
    Tensor acc = Tensor::zeros(grad_input.shape(), DType::Int64, d);
    auto* acc_p = reinterpret_cast<unsigned long long*>(acc.data<int64_t>());
    backward_kernel<scalar_t, true><<<sx::cuda::blocks_for(total, kThreads), kThreads, 0, stream>>>(
        grad_out.data<scalar_t>(), rois.data<scalar_t>(), lv, level, N, C, H, W, K, p.pooled_h,
        p.pooled_w, static_cast<scalar_t>(p.spatial_scale), p.sampling_ratio, p.aligned,
        grad_input.data<scalar_t>(), acc_p, fx_scale.data<double>());
    SX_CUDA_CHECK_LAUNCH();
    fixed_to_float_kernel<<<sx::cuda::blocks_for(acc.numel(), kThreads), kThreads, 0, stream>>>(
        acc_p, acc.numel(), fx_scale.data<double>(), grad_input.data<scalar_t>());
    SX_CUDA_CHECK_LAUNCH();
  });
}

Tensor fpn_levels(const Tensor& rois, int64_t k_min, int64_t k_max, double s0, int64_t k0, double eps) {
  const int64_t K = rois.size(0);
  Tensor out = Tensor::empty({K}, DType::Int64, rois.device());
  if (K == 0) return out;
  const int dev = rois.device().index;
  sx::cuda::set_device(dev);
  SX_DISPATCH_FLOAT(rois.dtype(), "fpn_levels", [&] {
    fpn_levels_kernel<<<sx::cuda::blocks_for(K), 256, 0, sx::cuda::current_stream(dev)>>>(
        rois.data<scalar_t>(), K, k_min, k_max, s0, k0, eps, out.data<int64_t>());
    SX_CUDA_CHECK_LAUNCH();
  });
  return out;
}

}  // namespace sx::kernels::cuda

namespace sx::kernels {
const RoiAlignBackend RoiAlignBackend::cuda = {
    cuda::roi_align_forward_into,
    cuda::roi_align_backward_into,
    cuda::fpn_levels};
}  // namespace sx::kernels
