// CUDA strided copy with casting, and fill.
//
// One thread per destination element (grid-stride loop, 64-bit indices). Each thread turns its
// linear row-major index into a storage offset for the destination and the (possibly broadcast,
// stride-0) source with StridedMeta, then converts with the same cast_value the CPU loop uses.
// A fully contiguous same-shape copy skips the index arithmetic.
#include "tensor/autograd.h"
#include "tensor/cast_math.h"
#include "tensor/copy.h"
#include "tensor/cuda_context.h"
#include "tensor/strided.h"

namespace sx::detail {

namespace {

template <class D, class S>
__global__ void copy_contig_kernel(D* __restrict__ dst, const S* __restrict__ src, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    dst[i] = cast_value<D>(src[i]);
}

template <class D, class S>
__global__ void copy_strided_kernel(D* dst, StridedMeta dm, const S* src, StridedMeta sm, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    dst[dm.offset_of(i)] = cast_value<D>(src[sm.offset_of(i)]);
}

template <class D>
__global__ void fill_kernel(D* dst, StridedMeta dm, D v, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x)
    dst[dm.offset_of(i)] = v;
}

}  // namespace

void copy_cuda(const Tensor& dst, const Tensor& src) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  const int dev = dst.device().index;
  cuda::set_device(dev);
  cudaStream_t stream = cuda::current_stream(dev);
  const bool contig = dst.is_contiguous() && src.is_contiguous() && src.shape() == dst.shape();
  if (dst.dim() > kMaxDims) {
    // More dims than the strided kernel's index decomposition holds (kMaxDims). Dense: one flat
    // copy. Strided: one copy per index of the outermost dim, each a view with one dim fewer
    // (recursively). Rare (9-d strided views), so a few launches more are fine; the CPU's
    // odometer loop has no limit either.
    NoGradGuard ng;
    if (contig) {
      copy_cuda(dst.reshape({n}), src.reshape({n}));
      return;
    }
    Tensor se = src.expand(dst.shape());
    for (int64_t i = 0; i < dst.size(0); ++i) copy_cuda(dst.select(0, i), se.select(0, i));
    return;
  }
  StridedMeta dm = make_strided_meta(dst), sm = make_strided_meta(src, dst.shape());
  SX_DISPATCH_ALL(dst.dtype(), "copy", [&] {
    using D = scalar_t;
    SX_DISPATCH_ALL(src.dtype(), "copy", [&] {
      using S = scalar_t;
      if (contig)
        copy_contig_kernel<D, S><<<cuda::blocks_for(n), 256, 0, stream>>>(static_cast<D*>(dst.data_ptr()),
                                                                          static_cast<const S*>(src.data_ptr()), n);
      else
        copy_strided_kernel<D, S><<<cuda::blocks_for(n), 256, 0, stream>>>(
            static_cast<D*>(dst.data_ptr()), dm, static_cast<const S*>(src.data_ptr()), sm, n);
      SX_CUDA_CHECK_LAUNCH();
    });
  });
}

void fill_cuda(const Tensor& dst, double value) {
  const int64_t n = dst.numel();
  if (n == 0) return;
  const int dev = dst.device().index;
  cuda::set_device(dev);
  if (dst.dim() > kMaxDims) {  // as in copy_cuda: flatten, or split the outermost dim
    NoGradGuard ng;
    if (dst.is_contiguous()) {
      fill_cuda(dst.reshape({n}), value);
      return;
    }
    for (int64_t i = 0; i < dst.size(0); ++i) fill_cuda(dst.select(0, i), value);
    return;
  }
  StridedMeta dm = make_strided_meta(dst);
  SX_DISPATCH_ALL(dst.dtype(), "fill_", [&] {
    fill_kernel<scalar_t><<<cuda::blocks_for(n), 256, 0, cuda::current_stream(dev)>>>(
        static_cast<scalar_t*>(dst.data_ptr()), dm, cast_value<scalar_t>(value), n);
    SX_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace sx::detail
