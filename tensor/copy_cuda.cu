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
#include "tensor/sync_stats.h"

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

// dst and src on the same CUDA device.
void copy_on_device(const Tensor& dst, const Tensor& src) {
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
      copy_on_device(dst.reshape({n}), src.reshape({n}));
      return;
    }
    Tensor se = src.expand(dst.shape());
    for (int64_t i = 0; i < dst.size(0); ++i) copy_on_device(dst.select(0, i), se.select(0, i));
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

// The CUDA backend of Tensor::copy_: dst or src (or both) on a CUDA device.
void copy_cuda(const Tensor& dst, const Tensor& src) {
  const Device dd = dst.device(), sd = src.device();
  if (dd.is_cuda() && sd.is_cuda() && dd == sd) {
    copy_on_device(dst, src);
    return;
  }
  if (dd.is_cuda() && sd.is_cuda()) {
    // Across GPUs: stage through a contiguous same-dtype buffer on the destination device. The
    // two streams are ordered with events, without a host wait: the destination stream waits
    // until the source's producer is done, and the source stream waits until the peer copy is
    // done before anything it runs later (a new tensor reusing `s`'s block when it returns to the
    // source device's pool) can overwrite the buffer being read.
    Tensor s = src.contiguous();
    Tensor tmp = Tensor::empty(s.shape(), s.dtype(), dd);
    cudaStream_t ss = cuda::current_stream(sd.index), ds = cuda::current_stream(dd.index);
    cudaEvent_t produced = nullptr, copied = nullptr;
    cuda::set_device(sd.index);
    SX_CUDA_CHECK(cudaEventCreateWithFlags(&produced, cudaEventDisableTiming));
    SX_CUDA_CHECK(cudaEventRecord(produced, ss));
    cuda::set_device(dd.index);
    SX_CUDA_CHECK(cudaStreamWaitEvent(ds, produced, 0));
    SX_CUDA_CHECK(cudaMemcpyPeerAsync(tmp.data_ptr(), dd.index, s.data_ptr(), sd.index,
                                      s.numel() * s.element_size(), ds));
    SX_CUDA_CHECK(cudaEventCreateWithFlags(&copied, cudaEventDisableTiming));
    SX_CUDA_CHECK(cudaEventRecord(copied, ds));
    SX_CUDA_CHECK(cudaStreamWaitEvent(ss, copied, 0));
    // Destroying a recorded event is allowed: its resources are released once it completes.
    cudaEventDestroy(produced);
    cudaEventDestroy(copied);
    copy_on_device(dst, tmp);
    return;
  }
  if (dd.is_cuda()) {
    // Host -> device: a contiguous host buffer of the source's dtype and shape, one memcpy, then a
    // device-side cast/broadcast/stride copy when needed.
    Tensor s = src.contiguous();
    const size_t bytes = s.numel() * s.element_size();
    cuda::set_device(dd.index);
    if (s.dtype() == dst.dtype() && s.shape() == dst.shape() && dst.is_contiguous()) {
      SX_CUDA_CHECK(cudaMemcpyAsync(dst.data_ptr(), s.data_ptr(), bytes, cudaMemcpyHostToDevice,
                                    cuda::current_stream(dd.index)));
      // From pageable memory the copy is staged before cudaMemcpyAsync returns; from pinned memory
      // it is truly asynchronous, and the pinned pool (allocator.cpp) reuses a dropped buffer only
      // after an event shows the stream has moved past this copy. No host sync either way.
      return;
    }
    Tensor tmp = Tensor::empty(s.shape(), s.dtype(), dd);
    SX_CUDA_CHECK(cudaMemcpyAsync(tmp.data_ptr(), s.data_ptr(), bytes, cudaMemcpyHostToDevice,
                                  cuda::current_stream(dd.index)));
    copy_on_device(dst, tmp);  // s is pageable, so it was staged before the memcpy returned
    return;
  }
  // Device -> host: copy the source contiguously on the device, one memcpy, then cast on the host.
  // This is an explicit synchronisation point (the caller asked for the values on the host).
  Tensor s = src.contiguous();
  const size_t bytes = s.numel() * s.element_size();
  count_device_to_host_copy();
  cuda::set_device(sd.index);
  if (s.dtype() == dst.dtype() && s.shape() == dst.shape() && dst.is_contiguous()) {
    SX_CUDA_CHECK(cudaMemcpyAsync(dst.data_ptr(), s.data_ptr(), bytes, cudaMemcpyDeviceToHost,
                                  cuda::current_stream(sd.index)));
    cuda::synchronize(sd.index);
    return;
  }
  Tensor tmp = Tensor::empty(s.shape(), s.dtype(), Device::cpu());
  SX_CUDA_CHECK(cudaMemcpyAsync(tmp.data_ptr(), s.data_ptr(), bytes, cudaMemcpyDeviceToHost,
                                cuda::current_stream(sd.index)));
  cuda::synchronize(sd.index);
  CopyBackend::cpu.copy(dst, tmp);
}

const CopyBackend CopyBackend::cuda = {copy_cuda, fill_cuda};

}  // namespace sx::detail
