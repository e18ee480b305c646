// CPU sigmoid focal loss over focal_loss_math.h: one pass over [N, C] for the forward (loss and,
// for Sum/Mean, a float64 sum per thread chunk, added in thread order) and one for the backward.
#include <omp.h>

#include <vector>

#include "kernels/focal_loss/focal_loss.h"
#include "kernels/focal_loss/focal_loss_math.h"

namespace sx::kernels::cpu {
namespace {

template <class T>
void forward_impl(const T* x, const int64_t* t, int64_t N, int64_t C, const FocalLossParams& p,
                  T* out_elem, T* out_scalar) {
  const T alpha = T(p.alpha), gamma = T(p.gamma);
  const bool reduce = p.reduction != FocalReduction::None;
  const int nt = omp_get_max_threads();
  std::vector<double> partial(nt, 0.0);
  const bool par = N * C > 32768;
#pragma omp parallel num_threads(par ? nt : 1)
  {
    const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
    const int64_t lo = N * tid / nth, hi = N * (tid + 1) / nth;
    double acc = 0;
    for (int64_t n = lo; n < hi; ++n) {
      const int64_t tn = t[n];
      const T* xr = x + n * C;
      for (int64_t c = 0; c < C; ++c) {
        const T l = tn < 0 ? T(0) : focalmath::loss(xr[c], focalmath::positive(tn, c), alpha, gamma);
        if (reduce) acc += static_cast<double>(l);
        else out_elem[n * C + c] = static_cast<T>(static_cast<double>(l) / p.normalizer);
      }
    }
    partial[tid] = acc;
  }
  if (reduce) {
    double s = 0;
    for (double v : partial) s += v;
    if (p.reduction == FocalReduction::Mean) s /= static_cast<double>(N * C);
    *out_scalar = static_cast<T>(s / p.normalizer);
  }
}

template <class T>
void backward_impl(const T* g, const T* x, const int64_t* t, int64_t N, int64_t C,
                   const FocalLossParams& p, T* gx) {
  const T alpha = T(p.alpha), gamma = T(p.gamma);
  const bool reduce = p.reduction != FocalReduction::None;
  double f = 1.0 / p.normalizer;
  if (p.reduction == FocalReduction::Mean) f /= static_cast<double>(N * C);
  const T scalar_g = reduce ? static_cast<T>(g[0] * f) : T(0);
  const T factor = static_cast<T>(f);
  const bool par = N * C > 32768;
#pragma omp parallel for schedule(static) if (par)
  for (int64_t n = 0; n < N; ++n) {
    const int64_t tn = t[n];
    for (int64_t c = 0; c < C; ++c) {
      const int64_t i = n * C + c;
      if (tn < 0) {
        gx[i] = T(0);
        continue;
      }
      const T d = focalmath::dloss_dx(x[i], focalmath::positive(tn, c), alpha, gamma);
      gx[i] = reduce ? scalar_g * d : g[i] * factor * d;
    }
  }
}

}  // namespace

Tensor sigmoid_focal_loss_forward(const Tensor& logits, const Tensor& targets, const FocalLossParams& p) {
  const int64_t N = logits.size(0), C = logits.size(1);
  Tensor out = p.reduction == FocalReduction::None ? Tensor::empty({N, C}, logits.dtype())
                                                   : Tensor::empty({}, logits.dtype());
  SX_DISPATCH_FLOAT(logits.dtype(), "sigmoid_focal_loss", [&] {
    forward_impl(logits.data<scalar_t>(), targets.data<int64_t>(), N, C, p, out.data<scalar_t>(),
                 out.data<scalar_t>());
  });
  return out;
}

Tensor sigmoid_focal_loss_backward(const Tensor& grad_out, const Tensor& logits, const Tensor& targets,
                                   const FocalLossParams& p) {
  const int64_t N = logits.size(0), C = logits.size(1);
  Tensor gx = Tensor::empty({N, C}, logits.dtype());
  if (N * C == 0) return gx;
  SX_DISPATCH_FLOAT(logits.dtype(), "sigmoid_focal_loss_backward", [&] {
    backward_impl(grad_out.data<scalar_t>(), logits.data<scalar_t>(), targets.data<int64_t>(), N, C,
                  p, gx.data<scalar_t>());
  });
  return gx;
}

}  // namespace sx::kernels::cpu
