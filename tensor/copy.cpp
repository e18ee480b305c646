// CPU strided copy with casting, and the device-crossing logic of Tensor::copy_.
#include "tensor/copy.h"

#include <cstring>

#include "tensor/autograd.h"
#include "tensor/cast_math.h"
#include "tensor/strided.h"
#include "tensor/sync_stats.h"
#ifdef SX_WITH_CUDA
#include "tensor/cuda_context.h"
#endif

namespace sx::detail {

namespace {

// Walks dst in row-major order; dst may be non-contiguous too. Dims beyond kMaxDims are handled by
// the general odometer loop below, so the CPU path has no dimension limit.
template <class D, class S>
void copy_loop(const Tensor& dst, const Tensor& src) {
  const int64_t n = dst.numel();
  D* dp = static_cast<D*>(dst.data_ptr());
  const S* sp = static_cast<const S*>(src.data_ptr());
  if (dst.is_contiguous() && src.is_contiguous() && src.shape() == dst.shape()) {
#pragma omp parallel for if (n > (1 << 16))
    for (int64_t i = 0; i < n; ++i) dp[i] = cast_value<D>(sp[i]);
    return;
  }
  const int64_t nd = dst.dim();
  const int64_t lead = nd - src.dim();
  std::vector<int64_t> sstr(nd, 0);
  for (int64_t d = 0; d < nd; ++d) {
    int64_t sd = d - lead;
    sstr[d] = (sd < 0 || src.size(sd) == 1) ? 0 : src.stride(sd);
  }
  // Parallelise over the outermost dimension; each thread runs an odometer over the rest.
  const int64_t outer = nd > 0 ? dst.size(0) : 1;
  const int64_t inner = outer > 0 ? n / outer : 0;
#pragma omp parallel for if (n > (1 << 16))
  for (int64_t o = 0; o < outer; ++o) {
    std::vector<int64_t> idx(nd, 0);
    if (nd > 0) idx[0] = o;
    int64_t doff = nd > 0 ? o * dst.stride(0) : 0, soff = nd > 0 ? o * sstr[0] : 0;
    for (int64_t i = 0; i < inner; ++i) {
      dp[doff] = cast_value<D>(sp[soff]);
      for (int64_t d = nd - 1; d >= 1; --d) {
        if (++idx[d] < dst.size(d)) {
          doff += dst.stride(d);
          soff += sstr[d];
          break;
        }
        doff -= (dst.size(d) - 1) * dst.stride(d);
        soff -= (dst.size(d) - 1) * sstr[d];
        idx[d] = 0;
      }
    }
  }
}

}  // namespace

void copy_cpu(const Tensor& dst, const Tensor& src) {
  if (dst.numel() == 0) return;
  SX_DISPATCH_ALL(dst.dtype(), "copy", [&] {
    using D = scalar_t;
    SX_DISPATCH_ALL(src.dtype(), "copy", [&] { copy_loop<D, scalar_t>(dst, src); });
  });
}

namespace {
template <class T>
void fill_loop(const Tensor& dst, double value) {
  T v = cast_value<T>(value);
  if (dst.is_contiguous()) {
    T* p = static_cast<T*>(dst.data_ptr());
    const int64_t n = dst.numel();
#pragma omp parallel for if (n > (1 << 16))
    for (int64_t i = 0; i < n; ++i) p[i] = v;
  } else {
    Tensor one = Tensor::empty({}, dst.dtype());
    *static_cast<T*>(one.data_ptr()) = v;
    copy_loop<T, T>(dst, one);
  }
}
}  // namespace

void fill_cpu(const Tensor& dst, double value) {
  if (dst.numel() == 0) return;
  SX_DISPATCH_ALL(dst.dtype(), "fill_", [&] { fill_loop<scalar_t>(dst, value); });
}

}  // namespace sx::detail

namespace sx {

Tensor& Tensor::copy_(const Tensor& src) {
  SX_CHECK(defined() && src.defined(), "copy_: undefined tensor");
  if (requires_grad() && is_leaf() && GradMode::is_enabled())
    SX_THROW(ValueError, "copy_: in-place write into a leaf tensor that requires grad (use NoGradGuard)");
  {
    const Shape &ss = src.shape(), &ds = shape();
    bool ok = ss.size() <= ds.size();
    for (size_t i = 0; ok && i < ss.size(); ++i) {
      int64_t a = ss[ss.size() - 1 - i], b = ds[ds.size() - 1 - i];
      ok = (a == b || a == 1);
    }
    SX_CHECK(ok, "copy_: source of shape ", shape_str(ss), " does not broadcast to ", shape_str(ds));
  }
  if (numel() == 0) return *this;
  storage()->bump_version();
  Device dd = device(), sd = src.device();
  if (dd.is_cpu() && sd.is_cpu()) {
    detail::copy_cpu(*this, src);
    return *this;
  }
#ifdef SX_WITH_CUDA
  if (dd.is_cuda() && sd.is_cuda() && dd == sd) {
    detail::copy_cuda(*this, src);
    return *this;
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
    detail::copy_cuda(*this, tmp);
    return *this;
  }
  if (dd.is_cuda()) {
    // Host -> device: a contiguous host buffer of the source's dtype and shape, one memcpy, then a
    // device-side cast/broadcast/stride copy when needed.
    Tensor s = src.contiguous();
    const size_t bytes = s.numel() * s.element_size();
    cuda::set_device(dd.index);
    if (s.dtype() == dtype() && s.shape() == shape() && is_contiguous()) {
      SX_CUDA_CHECK(cudaMemcpyAsync(data_ptr(), s.data_ptr(), bytes, cudaMemcpyHostToDevice,
                                    cuda::current_stream(dd.index)));
      // From pageable memory the copy is staged before cudaMemcpyAsync returns; from pinned memory
      // it is truly asynchronous, and the pinned pool (allocator.cpp) reuses a dropped buffer only
      // after an event shows the stream has moved past this copy. No host sync either way.
      return *this;
    }
    Tensor tmp = Tensor::empty(s.shape(), s.dtype(), dd);
    SX_CUDA_CHECK(cudaMemcpyAsync(tmp.data_ptr(), s.data_ptr(), bytes, cudaMemcpyHostToDevice,
                                  cuda::current_stream(dd.index)));
    detail::copy_cuda(*this, tmp);  // s is pageable, so it was staged before the memcpy returned
    return *this;
  }
  // Device -> host: copy the source contiguously on the device, one memcpy, then cast on the host.
  // This is an explicit synchronisation point (the caller asked for the values on the host).
  Tensor s = src.contiguous();
  const size_t bytes = s.numel() * s.element_size();
  sx::detail::count_device_to_host_copy();
  cuda::set_device(sd.index);
  if (s.dtype() == dtype() && s.shape() == shape() && is_contiguous()) {
    SX_CUDA_CHECK(cudaMemcpyAsync(data_ptr(), s.data_ptr(), bytes, cudaMemcpyDeviceToHost,
                                  cuda::current_stream(sd.index)));
    cuda::synchronize(sd.index);
    return *this;
  }
  Tensor tmp = Tensor::empty(s.shape(), s.dtype(), Device::cpu());
  SX_CUDA_CHECK(cudaMemcpyAsync(tmp.data_ptr(), s.data_ptr(), bytes, cudaMemcpyDeviceToHost,
                                cuda::current_stream(sd.index)));
  cuda::synchronize(sd.index);
  detail::copy_cpu(*this, tmp);
  return *this;
#else
  SX_THROW(NotBuiltError, "copy_: CUDA tensor (", (dd.is_cuda() ? dd : sd).str(),
           ") but spinexr was built without CUDA");
#endif
}

Tensor& Tensor::fill_(double value) {
  SX_CHECK(defined(), "fill_: undefined tensor");
  if (requires_grad() && is_leaf() && GradMode::is_enabled())
    SX_THROW(ValueError, "fill_: in-place write into a leaf tensor that requires grad (use NoGradGuard)");
  storage()->bump_version();
  if (device().is_cpu()) {
    detail::fill_cpu(*this, value);
    return *this;
  }
#ifdef SX_WITH_CUDA
  detail::fill_cuda(*this, value);
  return *this;
#else
  SX_THROW(NotBuiltError, "fill_: CUDA tensor but spinexr was built without CUDA");
#endif
}

}  // namespace sx
