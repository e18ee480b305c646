// CUDA kernels of the reductions (sum, max/min with indices) and of softmax, over the [A, R, B]
// layout of reduce.h.
//
// Algorithm:
//   - Row reductions (B == 1): one thread block per (row, chunk). Each thread folds every
//     blockDim-th element of its chunk into a private accumulator (coalesced reads), then the block
//     combines the per-thread accumulators with a tree in shared memory (log2(blockDim) steps).
//     With many rows a chunk is the whole row (one pass). With few long rows (a sum over
//     everything) a row is split into C chunks so that enough blocks run: pass 1 writes C partial
//     accumulators per row, pass 2 reduces those with the same kernel.
//   - Column reductions (B > 1, e.g. over dim 0 of [N, C]): one thread per output (a, b) walks r;
//     neighbouring threads read neighbouring b, so reads stay coalesced. reduce.cpp routes a column
//     reduction with fewer than 2048 outputs through a transposed copy to the row kernel instead.
//   - softmax: rows of length R (B == 1) get a block each: a block max, a block sum of exp(x - max),
//     then the write (exp recomputed: cheaper than storing and re-reading); lines with B > 1 get a
//     thread each (three passes over r).
// Accumulators and combine rules (double for float sums, first-occurrence ties for arg-reductions)
// are reduce_math.h; the softmax formulas softmax_math.h. All launches use the device's current
// stream; no host synchronisation.
#include <cuda_runtime.h>

#include <algorithm>
#include <type_traits>

#include "tensor/cuda_context.h"
#include "tensor/elementwise_dispatch.h"
#include "tensor/elementwise_math.h"
#include "tensor/reduce.h"
#include "tensor/reduce_math.h"
#include "tensor/softmax_math.h"

namespace sx::red {
namespace {

constexpr int kMaxThreads = 256;

// Block size for rows of length R: a power of two from 32 to 256, no larger than needed.
int threads_for(int64_t R) {
  int t = 32;
  while (t < kMaxThreads && t < R) t *= 2;
  return t;
}

// Tree combine of one accumulator per thread; the result is returned to thread 0.
template <class Op>
__device__ typename Op::acc_t block_combine(const Op& op, typename Op::acc_t acc) {
  using acc_t = typename Op::acc_t;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  acc_t* sh = reinterpret_cast<acc_t*>(smem_raw);
  sh[threadIdx.x] = acc;
  __syncthreads();
  for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) sh[threadIdx.x] = op.combine(sh[threadIdx.x], sh[threadIdx.x + s]);
    __syncthreads();
  }
  acc_t r = sh[0];
  __syncthreads();  // sh may be reused by the caller's next iteration
  return r;
}

// Block (a, c) reduces r in [c*chunk, min(R, (c+1)*chunk)) of row a and writes output a*C + c.
template <class Op>
__global__ void k_rows(Op op, int64_t A, int64_t R, int64_t C, int64_t chunk) {
  for (int64_t blk = blockIdx.x; blk < A * C; blk += gridDim.x) {
    const int64_t a = blk / C, c = blk - (blk / C) * C;
    const int64_t r0 = c * chunk;
    const int64_t r1 = r0 + chunk < R ? r0 + chunk : R;
    typename Op::acc_t acc = op.identity();
    for (int64_t r = r0 + threadIdx.x; r < r1; r += blockDim.x) acc = op.combine(acc, op.load(a * R + r, r));
    acc = block_combine(op, acc);
    if (threadIdx.x == 0) op.write(blk, acc);
  }
}

template <class Op>
__global__ void k_cols(Op op, int64_t A, int64_t R, int64_t B) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < A * B; t += stride) {
    const int64_t a = t / B, b = t - (t / B) * B;
    typename Op::acc_t acc = op.identity();
    for (int64_t r = 0; r < R; ++r) acc = op.combine(acc, op.load((a * R + r) * B + b, r));
    op.write(t, acc);
  }
}

unsigned grid_for(int64_t blocks) {
  return static_cast<unsigned>(std::max<int64_t>(1, std::min<int64_t>(blocks, 65535LL * 32)));
}

// How many chunks to split each of A rows of length R into so that about 1024 blocks run.
int64_t chunks_for(int64_t A, int64_t R) {
  if (A >= 512 || R < 8192) return 1;
  int64_t c = (1024 + A - 1) / A;
  c = std::min<int64_t>(c, R / 4096);
  return std::max<int64_t>(c, 1);
}

template <class Op>
void launch_rows(const Op& op, int64_t A, int64_t R, int64_t C, cudaStream_t stream) {
  const int threads = threads_for((R + C - 1) / C);
  const size_t smem = sizeof(typename Op::acc_t) * threads;
  k_rows<<<grid_for(A * C), threads, smem, stream>>>(op, A, R, C, (R + C - 1) / C);
  SX_CUDA_CHECK_LAUNCH();
}

template <class Op>
void launch_cols(const Op& op, int64_t A, int64_t R, int64_t B, cudaStream_t stream) {
  k_cols<<<cuda::blocks_for(A * B, kMaxThreads), kMaxThreads, 0, stream>>>(op, A, R, B);
  SX_CUDA_CHECK_LAUNCH();
}

template <class T> DType dtype_for() { return dtype_of<T>::value; }

// ---- softmax ---------------------------------------------------------------------------------
template <class T>
struct MaxOp {
  using acc_t = T;
  const T* in;
  __device__ T identity() const { return in[0]; }  // any element of the line is a valid start
  __device__ T load(int64_t lin, int64_t) const { return in[lin]; }
  __device__ T combine(T x, T y) const { return softmax_max(x, y); }
};
// The sum of exponentials accumulates like sum(): in double for float (a float sum over a long
// line drifts: 3e-4 relative over 2^21 values), as on the CPU.
template <class T>
struct SumExpOp {
  using acc_t = typename SumAcc<T>::type;
  const T* in;
  T m;
  __device__ acc_t identity() const { return acc_t(0); }
  __device__ acc_t load(int64_t lin, int64_t) const { return softmax_exp(in[lin], m); }
  __device__ acc_t combine(acc_t x, acc_t y) const { return x + y; }
};

template <class T>
__global__ void k_softmax_rows(const T* x, T* y, int64_t A, int64_t R, bool log) {
  for (int64_t a = blockIdx.x; a < A; a += gridDim.x) {
    const T* xr = x + a * R;
    MaxOp<T> mop{xr};
    T m = mop.identity();
    for (int64_t r = threadIdx.x; r < R; r += blockDim.x) m = softmax_max(m, xr[r]);
    m = block_combine(mop, m);
    using Acc = typename SumAcc<T>::type;
    SumExpOp<T> sop{xr, m};
    Acc s = Acc(0);
    for (int64_t r = threadIdx.x; r < R; r += blockDim.x) s += softmax_exp(xr[r], m);
    s = block_combine(sop, s);
    const T k = static_cast<T>(log ? ew::m_log(s) : Acc(1) / s);  // log s or 1/s
    T* yr = y + a * R;
    for (int64_t r = threadIdx.x; r < R; r += blockDim.x)
      yr[r] = log ? log_softmax_value(xr[r], m, k) : softmax_value(softmax_exp(xr[r], m), k);
  }
}

template <class T>
__global__ void k_softmax_cols(const T* x, T* y, int64_t A, int64_t R, int64_t B, bool log) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t t = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < A * B; t += stride) {
    const int64_t a = t / B, b = t - (t / B) * B;
    const T* xl = x + a * R * B + b;
    T* yl = y + a * R * B + b;
    T m = xl[0];
    for (int64_t r = 1; r < R; ++r) m = softmax_max(m, xl[r * B]);
    typename SumAcc<T>::type s = 0;
    for (int64_t r = 0; r < R; ++r) s += softmax_exp(xl[r * B], m);
    const T k = static_cast<T>(log ? ew::m_log(s) : 1 / s);  // log s or 1/s
    for (int64_t r = 0; r < R; ++r)
      yl[r * B] = log ? log_softmax_value(xl[r * B], m, k) : softmax_value(softmax_exp(xl[r * B], m), k);
  }
}

}  // namespace

void sum_cuda(const Tensor& x, int64_t A, int64_t R, int64_t B, const Tensor& out) {
  const int dev = x.device().index;
  cuda::set_device(dev);
  cudaStream_t stream = cuda::current_stream(dev);
  auto run = [&](auto tag) {
    using T = typename decltype(tag)::type;
    using Acc = typename SumAcc<T>::type;
    using Out = std::conditional_t<std::is_floating_point<T>::value, T, int64_t>;
    const T* in = x.data<T>();
    Out* o = out.data<Out>();
    if (B > 1) {
      launch_cols(SumOp<T, Acc, Out>{in, o}, A, R, B, stream);
      return;
    }
    const int64_t C = chunks_for(A, R);
    if (C == 1) {
      launch_rows(SumOp<T, Acc, Out>{in, o}, A, R, 1, stream);
      return;
    }
    Tensor part = Tensor::empty({A * C}, dtype_for<Acc>(), x.device());
    Acc* pp = part.data<Acc>();
    launch_rows(SumOp<T, Acc, Acc>{in, pp}, A, R, C, stream);
    launch_rows(SumOp<Acc, Acc, Out>{pp, o}, A, C, 1, stream);
  };
  ew::for_all(x.dtype(), "sum", run);  // the dtype sets of the elementwise ops
}

void arg_cuda(const Tensor& x, int64_t A, int64_t R, int64_t B, bool is_max, const Tensor& values,
              const Tensor& indices) {
  const int dev = x.device().index;
  cuda::set_device(dev);
  cudaStream_t stream = cuda::current_stream(dev);
  int64_t* ip = indices.defined() ? indices.data<int64_t>() : nullptr;
  auto run = [&](auto tag, auto max_tag) {
    using T = typename decltype(tag)::type;
    constexpr bool IsMax = decltype(max_tag)::value;
    const T* in = x.data<T>();
    T* vp = values.defined() ? values.data<T>() : nullptr;
    if (B > 1) {
      launch_cols(ArgOp<T, IsMax>{in, nullptr, vp, ip}, A, R, B, stream);
      return;
    }
    const int64_t C = chunks_for(A, R);
    if (C == 1) {
      launch_rows(ArgOp<T, IsMax>{in, nullptr, vp, ip}, A, R, 1, stream);
      return;
    }
    Tensor pv = Tensor::empty({A * C}, x.dtype(), x.device());
    Tensor pi = Tensor::empty({A * C}, DType::Int64, x.device());
    launch_rows(ArgOp<T, IsMax>{in, nullptr, pv.data<T>(), pi.data<int64_t>()}, A, R, C, stream);
    launch_rows(ArgOp<T, IsMax>{pv.data<T>(), pi.data<int64_t>(), vp, ip}, A, C, 1, stream);
  };
  auto run2 = [&](auto tag) {
    if (is_max) run(tag, std::true_type{});
    else run(tag, std::false_type{});
  };
  ew::for_numeric(x.dtype(), is_max ? "max" : "min", run2);
}

void softmax_cuda(const Tensor& x, int64_t A, int64_t R, int64_t B, bool log, const Tensor& out) {
  const int dev = x.device().index;
  cuda::set_device(dev);
  cudaStream_t stream = cuda::current_stream(dev);
  auto run = [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (B == 1) {
      const int threads = threads_for(R);
      k_softmax_rows<T><<<grid_for(A), threads, std::max(sizeof(T), sizeof(typename SumAcc<T>::type)) * threads, stream>>>(x.data<T>(), out.data<T>(), A, R, log);
    } else {
      k_softmax_cols<T><<<cuda::blocks_for(A * B, kMaxThreads), kMaxThreads, 0, stream>>>(
          x.data<T>(), out.data<T>(), A, R, B, log);
    }
    SX_CUDA_CHECK_LAUNCH();
  };
  if (x.dtype() == DType::Float32) run(Tag<float>{});
  else run(Tag<double>{});
}

const ReduceBackend ReduceBackend::cuda = {sum_cuda, arg_cuda, softmax_cuda};

}  // namespace sx::red
