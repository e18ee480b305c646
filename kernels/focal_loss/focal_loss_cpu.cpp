// CPU sigmoid focal loss over focal_loss_math.h: one fused pass over [N, C] for the forward and
// one for the backward.
//
// Algorithm. Both passes walk the logits in blocks of whole rows (about kBlockElems elements, so a
// block's logits and codes stay in L1/L2). Per block:
//   1. expand the row targets into one float code per element (+1 positive, 0 negative, -1
//      ignored row): a few stores per row, and the only place the int64 targets are read;
//   2. one flat loop over the block's elements calling focalmath::loss / dloss_dx. For float that
//      loop is straight-line arithmetic (polynomial exp and log1p, one division, bit-level selects,
//      no calls, no branches), so `omp simd` vectorises it; the row structure is gone, so C = 7
//      costs no remainder loop per row.
// Forward Sum/Mean: each block's sum is accumulated in float64 (a simd reduction) and the block
// sums are added in block order, so the result does not depend on the number of threads.
// Threads: OpenMP over blocks (static schedule) once the tensor is large enough to pay for it.
// gamma is a template parameter: 2, 1 and 0 multiply; any other gamma calls pow (that loop stays
// scalar, still fused).
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/focal_loss/focal_loss.h"
#include "kernels/focal_loss/focal_loss_math.h"

namespace sx::kernels::cpu {
namespace {

constexpr int64_t kBlockElems = 4096;     // elements per block (whole rows, at least one row)
constexpr int64_t kParallelMin = 32768;   // below this many elements one thread does it all

int64_t rows_per_block(int64_t C) { return std::max<int64_t>(1, kBlockElems / C); }

// Step 1: the codes of rows [n0, n1) into code[(n - n0) * C + c].
template <class T>
void fill_codes(const int64_t* __restrict t, int64_t n0, int64_t n1, int64_t C, T* __restrict code) {
  for (int64_t n = n0; n < n1; ++n, code += C) {
    const int64_t tn = t[n];
    const T base = tn < 0 ? T(-1) : T(0);
    for (int64_t c = 0; c < C; ++c) code[c] = base;
    if (tn >= 0 && tn < C) code[tn] = T(1);
  }
}

template <int G, class T>
void forward_impl(const T* __restrict x, const int64_t* __restrict t, int64_t N, int64_t C,
                  const FocalLossParams& p, T* __restrict out) {
  const focalmath::Consts<T> k0 = focalmath::make_consts<T>(p.alpha, p.gamma);
  const bool reduce = p.reduction != FocalReduction::None;
  const T inv_norm = static_cast<T>(1.0 / p.normalizer);
  const int64_t R = rows_per_block(C), blocks = (N + R - 1) / R;
  std::vector<double> block_sum(reduce ? blocks : 0);
#pragma omp parallel if (N * C >= kParallelMin)
  {
    const focalmath::Consts<T> k = k0;  // a private copy: registers, not loads through a pointer
    std::vector<T> codes(static_cast<size_t>(R * C));
    T* __restrict code = codes.data();
#pragma omp for schedule(static)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t n0 = b * R, n1 = std::min(N, n0 + R), m = (n1 - n0) * C;
      fill_codes(t, n0, n1, C, code);
      const T* __restrict xb = x + n0 * C;
      if (reduce) {
        double acc = 0;
#pragma omp simd reduction(+ : acc)
        for (int64_t i = 0; i < m; ++i) acc += static_cast<double>(focalmath::loss<G>(xb[i], code[i], k));
        block_sum[b] = acc;
      } else {
        T* __restrict ob = out + n0 * C;
#pragma omp simd
        for (int64_t i = 0; i < m; ++i) ob[i] = focalmath::loss<G>(xb[i], code[i], k) * inv_norm;
      }
    }
  }
  if (reduce) {
    double s = 0;
    for (double v : block_sum) s += v;
    if (p.reduction == FocalReduction::Mean) s /= static_cast<double>(N * C);
    out[0] = static_cast<T>(s / p.normalizer);
  }
}

template <int G, class T>
void backward_impl(const T* __restrict g, const T* __restrict x, const int64_t* __restrict t, int64_t N,
                   int64_t C, const FocalLossParams& p, T* __restrict gx) {
  const focalmath::Consts<T> k0 = focalmath::make_consts<T>(p.alpha, p.gamma);
  const bool reduce = p.reduction != FocalReduction::None;
  double f = 1.0 / p.normalizer;
  if (p.reduction == FocalReduction::Mean) f /= static_cast<double>(N * C);
  // d total / d loss_i: g[0] * f for Sum/Mean (one scalar), g[i] * f for None.
  const T scale = reduce ? static_cast<T>(static_cast<double>(g[0]) * f) : static_cast<T>(f);
  const int64_t R = rows_per_block(C), blocks = (N + R - 1) / R;
#pragma omp parallel if (N * C >= kParallelMin)
  {
    const focalmath::Consts<T> k = k0;  // a private copy: registers, not loads through a pointer
    std::vector<T> codes(static_cast<size_t>(R * C));
    T* __restrict code = codes.data();
#pragma omp for schedule(static)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t n0 = b * R, n1 = std::min(N, n0 + R), m = (n1 - n0) * C;
      fill_codes(t, n0, n1, C, code);
      const T* __restrict xb = x + n0 * C;
      T* __restrict ob = gx + n0 * C;
      if (reduce) {
#pragma omp simd
        for (int64_t i = 0; i < m; ++i) ob[i] = scale * focalmath::dloss_dx<G>(xb[i], code[i], k);
      } else {
        const T* __restrict gb = g + n0 * C;
#pragma omp simd
        for (int64_t i = 0; i < m; ++i) ob[i] = gb[i] * scale * focalmath::dloss_dx<G>(xb[i], code[i], k);
      }
    }
  }
}

}  // namespace

Tensor sigmoid_focal_loss_forward(const Tensor& logits, const Tensor& targets, const FocalLossParams& p) {
  const int64_t N = logits.size(0), C = logits.size(1);
  const bool none = p.reduction == FocalReduction::None;
  Tensor out = none ? Tensor::empty({N, C}, logits.dtype()) : Tensor::empty({}, logits.dtype());
  if (N * C == 0) {
    if (!none) out.fill_(p.reduction == FocalReduction::Sum ? 0.0 : NAN);  // Mean of nothing: 0 / 0
    return out;
  }
  SX_DISPATCH_FLOAT(logits.dtype(), "sigmoid_focal_loss", [&] {
    const auto* x = logits.data<scalar_t>();
    const auto* t = targets.data<int64_t>();
    scalar_t* o = out.data<scalar_t>();
    switch (focalmath::gamma_kind(p.gamma)) {
      case 0: forward_impl<0>(x, t, N, C, p, o); break;
      case 1: forward_impl<1>(x, t, N, C, p, o); break;
      case 2: forward_impl<2>(x, t, N, C, p, o); break;
      default: forward_impl<-1>(x, t, N, C, p, o); break;
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

namespace sx::kernels {
const FocalLossBackend FocalLossBackend::cpu = {
    cpu::sigmoid_focal_loss_forward,
    cpu::sigmoid_focal_loss_backward};
}  // namespace sx::kernels
