// CUDA kernels of the elementwise ops.
//
// Algorithm: one thread per output element, in a grid-stride loop (the grid is capped by
// blocks_for, so any size works with 64-bit indices). Two kernels per (functor, types):
//   - contiguous: every operand is a dense array of the same length (the iterator merged all
//     dims into one with unit strides), so element i of each is ptr[i]: loads and stores of
//     neighbouring threads are neighbouring addresses (fully coalesced);
//   - strided: the linear index is decomposed over at most kMaxDims dims (sizes and per-operand
//     strides travel by value in a small struct) to get each operand's element offset; a stride
//     of 0 repeats a broadcast value (linear_to_offsets in elementwise_math.h, the same
//     decomposition the CPU loop uses at the start of each row).
// The per-element math is the functor from elementwise_math.h, the same object the CPU loop calls;
// the (op, dtype) -> functor table is elementwise_dispatch.h. Launches go to the device's current
// stream and are checked right away.
#include <cuda_runtime.h>

#include <utility>

#include "tensor/cuda_context.h"
#include "tensor/elementwise.h"
#include "tensor/elementwise_dispatch.h"

namespace sx::ew {
namespace {

constexpr int kThreads = 256;

template <int N>
struct Geometry {
  int ndim;
  int64_t sizes[kMaxDims];
  int64_t strides[N][kMaxDims];
};

template <int N>
struct Ptrs {
  void* p[N];
};

template <class Out, class... In>
struct Kernels {
  static constexpr int N = 1 + sizeof...(In);

  template <class F, size_t... I>
  __device__ static void at_contig(const F& f, const Ptrs<N>& p, int64_t i, std::index_sequence<I...>) {
    static_cast<Out*>(p.p[0])[i] = static_cast<Out>(f(static_cast<const In*>(p.p[I + 1])[i]...));
  }
  template <class F, size_t... I>
  __device__ static void at_offsets(const F& f, const Ptrs<N>& p, const int64_t* off, std::index_sequence<I...>) {
    static_cast<Out*>(p.p[0])[off[0]] =
        static_cast<Out>(f(static_cast<const In*>(p.p[I + 1])[off[I + 1]]...));
  }
};

template <class Out, class F, class... In>
__global__ void k_contig(int64_t n, F f, Ptrs<1 + sizeof...(In)> p) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    Kernels<Out, In...>::at_contig(f, p, i, std::index_sequence_for<In...>{});
}

template <class Out, class F, class... In>
__global__ void k_strided(int64_t n, F f, Ptrs<1 + sizeof...(In)> p, Geometry<1 + sizeof...(In)> g) {
  constexpr int N = 1 + sizeof...(In);
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    int64_t off[N];
    linear_to_offsets<N>(i, g.ndim, g.sizes, g.strides, off);
    Kernels<Out, In...>::at_offsets(f, p, off, std::index_sequence_for<In...>{});
  }
}

struct CudaLauncher {
  const Iter& it;
  template <class F, class OutTag, class... InTags>
  void operator()(const F& f, OutTag, InTags...) const {
    using Out = typename OutTag::type;
    constexpr int N = 1 + sizeof...(InTags);
    const int dev = it.device.index;
    cuda::set_device(dev);
    cudaStream_t stream = cuda::current_stream(dev);
    Ptrs<N> p;
    for (int k = 0; k < N; ++k) p.p[k] = it.ptrs[k];
    const unsigned blocks = cuda::blocks_for(it.numel, kThreads);
    if (it.contiguous) {
      k_contig<Out, F, typename InTags::type...><<<blocks, kThreads, 0, stream>>>(it.numel, f, p);
      SX_CUDA_CHECK_LAUNCH();
      return;
    }
    Geometry<N> g;
    g.ndim = it.ndim;
    for (int d = 0; d < kMaxDims; ++d) {
      g.sizes[d] = it.sizes[d];
      for (int k = 0; k < N; ++k) g.strides[k][d] = it.strides[k][d];
    }
    k_strided<Out, F, typename InTags::type...><<<blocks, kThreads, 0, stream>>>(it.numel, f, p, g);
    SX_CUDA_CHECK_LAUNCH();
  }
};

}  // namespace

void launch_unary_cuda(UOp op, const Params& p, DType dtype, const Iter& it) {
  dispatch_unary(op, p, dtype, CudaLauncher{it});
}
void launch_binary_cuda(BOp op, const Params& p, DType dtype, const Iter& it) {
  dispatch_binary(op, p, dtype, CudaLauncher{it});
}
void launch_ternary_cuda(TOp op, const Params& p, DType dtype, const Iter& it) {
  dispatch_ternary(op, p, dtype, CudaLauncher{it});
}

const ElementwiseBackend ElementwiseBackend::cuda = {launch_unary_cuda, launch_binary_cuda,
                                                     launch_ternary_cuda};

}  // namespace sx::ew
