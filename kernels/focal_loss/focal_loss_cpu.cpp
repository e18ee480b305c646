// CPU sigmoid focal loss over focal_loss_math.h: one pass over [N, C] for the forward (loss and,
// for Sum/Mean, a float64 sum per thread chunk, added in thread order) and one for the backward.
// Each pass works on blocks of rows: first the target-independent terms of the block's logits in
// a branch-free loop (vectorised: exp and log1p are polynomials for float), then the cheap
// target-dependent arithmetic.
#include <omp.h>

#include <algorithm>
#include <vector>

#include "kernels/focal_loss/focal_loss.h"
#include "kernels/focal_loss/focal_loss_math.h"

namespace sx::kernels::cpu {
namespace {

constexpr int64_t kRows = 256;  // rows per block of precomputed terms

// e, log1p(e), 1 / (1 + e) of m consecutive logits. float: two branch-free loops the compiler
// vectorises (the clamp of |x| and the polynomials are kept apart: GCC does not if-convert the
// clamp next to the float->int conversion of the exponent under its default trapping-math rules).
inline void block_terms(const float* x, int64_t m, std::vector<focalmath::XTerms<float>>& out,
                        std::vector<float>& a) {
  out.resize(static_cast<size_t>(m));
  a.resize(static_cast<size_t>(m));
  float* ap = a.data();
  focalmath::XTerms<float>* o = out.data();
#pragma omp simd
  for (int64_t i = 0; i < m; ++i) ap[i] = focalmath::clamped_abs(x[i]);
#pragma omp simd
  for (int64_t i = 0; i < m; ++i) o[i] = focalmath::x_terms_from_abs(ap[i]);
}
inline void block_terms(const double* x, int64_t m, std::vector<focalmath::XTerms<double>>& out,
                        std::vector<double>&) {
  out.resize(static_cast<size_t>(m));
  for (int64_t i = 0; i < m; ++i) out[i] = focalmath::x_terms(x[i]);
}

template <int G, class T>
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
    std::vector<focalmath::XTerms<T>> terms;
    std::vector<T> scratch;
    for (int64_t n0 = lo; n0 < hi; n0 += kRows) {
      const int64_t n1 = std::min(hi, n0 + kRows), m = (n1 - n0) * C;
      block_terms(x + n0 * C, m, terms, scratch);
      for (int64_t n = n0; n < n1; ++n) {
        const int64_t tn = t[n];
        const T* xr = x + n * C;
        const focalmath::XTerms<T>* tr = terms.data() + (n - n0) * C;
        for (int64_t c = 0; c < C; ++c) {
          const T l = tn < 0 ? T(0)
                             : focalmath::loss_yk<G>(xr[c], tr[c], tn == c ? T(1) : T(0), alpha, gamma);
          if (reduce) acc += static_cast<double>(l);
          else out_elem[n * C + c] = static_cast<T>(static_cast<double>(l) / p.normalizer);
        }
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

template <int G, class T>
void backward_impl(const T* g, const T* x, const int64_t* t, int64_t N, int64_t C,
                   const FocalLossParams& p, T* gx) {
  const T alpha = T(p.alpha), gamma = T(p.gamma);
  const bool reduce = p.reduction != FocalReduction::None;
  double f = 1.0 / p.normalizer;
  if (p.reduction == FocalReduction::Mean) f /= static_cast<double>(N * C);
  const T scalar_g = reduce ? static_cast<T>(g[0] * f) : T(0);
  const T factor = static_cast<T>(f);
  const bool par = N * C > 32768;
  const int64_t blocks = (N + kRows - 1) / kRows;
#pragma omp parallel if (par)
  {
    std::vector<focalmath::XTerms<T>> terms;
    std::vector<T> scratch;
#pragma omp for schedule(static)
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t n0 = blk * kRows, n1 = std::min(N, n0 + kRows), m = (n1 - n0) * C;
      block_terms(x + n0 * C, m, terms, scratch);
      for (int64_t n = n0; n < n1; ++n) {
        const int64_t tn = t[n];
        for (int64_t c = 0; c < C; ++c) {
          const int64_t i = n * C + c;
          if (tn < 0) {
            gx[i] = T(0);
            continue;
          }
          const T d = focalmath::dloss_yk<G>(x[i], terms[i - n0 * C], tn == c ? T(1) : T(0), alpha, gamma);
          gx[i] = reduce ? scalar_g * d : g[i] * factor * d;
        }
      }
    }
  }
}

}  // namespace

Tensor sigmoid_focal_loss_forward(const Tensor& logits, const Tensor& targets, const FocalLossParams& p) {
  const int64_t N = logits.size(0), C = logits.size(1);
  Tensor out = p.reduction == FocalReduction::None ? Tensor::empty({N, C}, logits.dtype())
                                                   : Tensor::empty({}, logits.dtype());
  SX_DISPATCH_FLOAT(logits.dtype(), "sigmoid_focal_loss", [&] {
    const auto* x = logits.data<scalar_t>();
    const auto* t = targets.data<int64_t>();
    scalar_t* o = out.data<scalar_t>();
    switch (focalmath::gamma_kind(p.gamma)) {
      case 0: forward_impl<0>(x, t, N, C, p, o, o); break;
      case 1: forward_impl<1>(x, t, N, C, p, o, o); break;
      case 2: forward_impl<2>(x, t, N, C, p, o, o); break;
      default: forward_impl<-1>(x, t, N, C, p, o, o); break;
    }
  });
  return out;
}

Tensor sigmoid_focal_loss_backward(const Tensor& grad_out, const Tensor& logits, const Tensor& targets,
                                   const FocalLossParams& p) {
  const int64_t N = logits.size(0), C = logits.size(1);
  Tensor gx = Tensor::empty({N, C}, logits.dtype());
  if (N * C == 0) return gx;
  SX_DISPATCH_FLOAT(logits.dtype(), "sigmoid_focal_loss_backward", [&] {
    const auto* g = grad_out.data<scalar_t>();
    const auto* x = logits.data<scalar_t>();
    const auto* t = targets.data<int64_t>();
    scalar_t* o = gx.data<scalar_t>();
    switch (focalmath::gamma_kind(p.gamma)) {
      case 0: backward_impl<0>(g, x, t, N, C, p, o); break;
      case 1: backward_impl<1>(g, x, t, N, C, p, o); break;
      case 2: backward_impl<2>(g, x, t, N, C, p, o); break;
      default: backward_impl<-1>(g, x, t, N, C, p, o); break;
    }
  });
  return gx;
}

}  // namespace sx::kernels::cpu
