// CPU strided copy with casting, and the device-crossing logic of Tensor::copy_.
#include "tensor/copy.h"

#include <cstring>

#include "tensor/autograd.h"
#include "tensor/cast_math.h"
#include "tensor/dispatch.h"
#include "tensor/strided.h"

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


const CopyBackend CopyBackend::cpu = {copy_cpu, fill_cpu};

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
  // Both on the CPU: the CPU backend. Anything that involves a CUDA tensor (on one device, across
  // devices, to or from the host): the CUDA backend.
  backend<detail::CopyBackend>(dd.is_cuda() ? dd : sd, "copy_").copy(*this, src);
  return *this;
}

Tensor& Tensor::fill_(double value) {
  SX_CHECK(defined(), "fill_: undefined tensor");
  if (requires_grad() && is_leaf() && GradMode::is_enabled())
    SX_THROW(ValueError, "fill_: in-place write into a leaf tensor that requires grad (use NoGradGuard)");
  storage()->bump_version();
  backend<detail::CopyBackend>(device(), "fill_").fill(*this, value);
  return *this;
}

}  // namespace sx
