// CUDA matcher over matcher_math.h: one thread per anchor for the column maxima (reads of a warp
// are coalesced along a row of quality [G, A]), one block per ground truth for the row maxima, one
// thread per anchor for the low-quality restore.
#include "kernels/matcher/matcher.h"
#include "kernels/matcher/matcher_math.h"
#include "tensor/cuda_context.h"

namespace sx::kernels::cuda {
namespace {

constexpr int kThreads = 256;

template <class T>
__global__ void column_kernel(const T* q, int64_t G, int64_t A, double low, double high, int64_t* out,
                              int64_t* all) {
  for (int64_t a = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; a < A;
       a += (int64_t)gridDim.x * blockDim.x) {
    if (G == 0) {
      out[a] = kMatchBelowLow;
      continue;
    }
    T best;
    int64_t bi;
    matchmath::column_max(q, G, A, a, &best, &bi);
    all[a] = bi;
    out[a] = matchmath::classify(best, bi, low, high);
  }
}

// One block per row g: max with torch.max's NaN rule (order-independent: any NaN -> NaN).
template <class T>
__global__ void row_max_kernel(const T* q, int64_t A, T* hq) {
  __shared__ T red[kThreads];
  __shared__ bool nan_seen;
  if (threadIdx.x == 0) nan_seen = false;
  __syncthreads();
  const T* row = q + blockIdx.x * A;
  T b = -INFINITY;
  bool nan = false;
  for (int64_t a = threadIdx.x; a < A; a += blockDim.x) {
    const T v = row[a];
    if (v != v) nan = true;
    else if (v > b) b = v;
  }
  if (nan) nan_seen = true;
  red[threadIdx.x] = b;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s /= 2) {
    if (threadIdx.x < s && red[threadIdx.x + s] > red[threadIdx.x]) red[threadIdx.x] = red[threadIdx.x + s];
    __syncthreads();
  }
  if (threadIdx.x == 0) hq[blockIdx.x] = nan_seen ? T(NAN) : red[0];
}

template <class T>
__global__ void low_quality_kernel(const T* q, const T* hq, int64_t G, int64_t A, const int64_t* all,
                                   int64_t* out) {
  for (int64_t a = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; a < A;
       a += (int64_t)gridDim.x * blockDim.x)
    if (matchmath::is_low_quality_best(q, hq, G, A, a)) out[a] = all[a];
}

}  // namespace

Tensor match_anchors(const Tensor& quality, const MatcherParams& p) {
  const int64_t G = quality.size(0), A = quality.size(1);
  const Device d = quality.device();
  Tensor out = Tensor::empty({A}, DType::Int64, d);
  if (A == 0) return out;
  const int dev = d.index;
  sx::cuda::set_device(dev);
  cudaStream_t stream = sx::cuda::current_stream(dev);
  Tensor all = Tensor::empty({A}, DType::Int64, d);
  SX_DISPATCH_FLOAT(quality.dtype(), "match_anchors", [&] {
    const scalar_t* q = quality.data<scalar_t>();
    column_kernel<<<sx::cuda::blocks_for(A, kThreads), kThreads, 0, stream>>>(
        q, G, A, p.low_threshold, p.high_threshold, out.data<int64_t>(), all.data<int64_t>());
    SX_CUDA_CHECK_LAUNCH();
    if (p.allow_low_quality_matches && G > 0) {
      Tensor hq = Tensor::empty({G}, quality.dtype(), d);
      row_max_kernel<<<static_cast<unsigned>(G), kThreads, 0, stream>>>(q, A, hq.data<scalar_t>());
      SX_CUDA_CHECK_LAUNCH();
      low_quality_kernel<<<sx::cuda::blocks_for(A, kThreads), kThreads, 0, stream>>>(
          q, hq.data<scalar_t>(), G, A, all.data<int64_t>(), out.data<int64_t>());
      SX_CUDA_CHECK_LAUNCH();
    }
  });
  return out;
}

}  // namespace sx::kernels::cuda

namespace sx::kernels {
const MatcherBackend MatcherBackend::cuda = {cuda::match_anchors};
}  // namespace sx::kernels
