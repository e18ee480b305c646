// Kernel lab, sigmoid focal loss: v2 (one fused scalar pass) is written here; v3 and v4 are the
// product kernel, called as it is. See focal_loss_lab.h and docs/labs.md.
#include "kernels/labs/focal_loss_lab.h"

#include <cmath>

#include "kernels/box_ops/checks.h"
#include "kernels/focal_loss/focal_loss_math.h"
#include "kernels/labs/one_thread.h"
#include "tensor/dispatch.h"

namespace sx::kernels::labs {
namespace {

// ---- v2: one fused pass, loss and gradient together ------------------------------------------
// Step over v1: no intermediate tensors and no autograd graph. Each logit is read once; its
// exp and log1p (inside focalmath::elem) serve both the loss and the derivative, which is the
// closed form d loss / dx, not a chain of a dozen backward nodes. The row's target is turned into
// the element's code (+1 positive, 0 negative, -1 ignored) on the fly. Plain scalar loop: the
// per-element choice of code keeps GCC from vectorising it (v3's step).
template <int G, class T>
void fused(const T* x, const int64_t* t, int64_t N, int64_t C, const FocalLossParams& p, T* loss_out,
           T* gx) {
  const focalmath::Consts<T> k = focalmath::make_consts<T>(p.alpha, p.gamma);
  const bool reduce = p.reduction != FocalReduction::None;
  double f = 1.0 / p.normalizer;  // d total / d loss_i
  if (p.reduction == FocalReduction::Mean) f /= static_cast<double>(N * C);
  const T inv_norm = static_cast<T>(1.0 / p.normalizer), scale = static_cast<T>(f);
  double acc = 0;
  for (int64_t n = 0; n < N; ++n) {
    const int64_t tn = t[n];
    for (int64_t c = 0; c < C; ++c) {
      const int64_t i = n * C + c;
      const T code = focalmath::target_code<T>(tn, c);
      const T l = focalmath::loss<G>(x[i], code, k);
      if (reduce) acc += static_cast<double>(l);
      else loss_out[i] = l * inv_norm;
      gx[i] = scale * focalmath::dloss_dx<G>(x[i], code, k);
    }
  }
  if (reduce) {
    if (p.reduction == FocalReduction::Mean) acc /= static_cast<double>(N * C);
    loss_out[0] = static_cast<T>(acc / p.normalizer);
  }
}

}  // namespace

FocalResult focal_v2_fused(const Tensor& logits, const Tensor& targets, const FocalLossParams& p) {
  const char* op = "focal_v2_fused";
  detail::check_float(logits, op, "logits");
  SX_CHECK(logits.dim() == 2, op, ": logits must be [N, C], got ", shape_str(logits.shape()));
  SX_CHECK(targets.defined() && targets.dtype() == DType::Int64 && targets.dim() == 1 &&
               targets.size(0) == logits.size(0),
           op, ": targets must be int64 [", logits.size(0), "]");
  SX_CHECK(p.gamma >= 0 && p.normalizer > 0, op, ": need gamma >= 0 and normalizer > 0, got ", p.gamma,
           " and ", p.normalizer);
  SX_CHECK(!logits.is_cuda() && !targets.is_cuda(), op, ": the labs run on the CPU only");
  const int64_t N = logits.size(0), C = logits.size(1);
  const bool none = p.reduction == FocalReduction::None;
  Tensor x = logits.contiguous(), t = targets.contiguous();
  FocalResult r{none ? Tensor::empty({N, C}, x.dtype()) : Tensor::empty({}, x.dtype()),
                Tensor::empty({N, C}, x.dtype())};
  if (N * C == 0) {  // the product's empty results: Sum 0, Mean 0 / 0
    if (!none) r.loss.fill_(p.reduction == FocalReduction::Sum ? 0.0 : NAN);
    return r;
  }
  SX_DISPATCH_FLOAT(x.dtype(), op, [&] {
    const scalar_t* xp = x.data<scalar_t>();
    const int64_t* tp = t.data<int64_t>();
    scalar_t* lp = r.loss.data<scalar_t>();
    scalar_t* gp = r.grad.data<scalar_t>();
    switch (focalmath::gamma_kind(p.gamma)) {
      case 0: fused<0>(xp, tp, N, C, p, lp, gp); break;
      case 1: fused<1>(xp, tp, N, C, p, lp, gp); break;
      case 2: fused<2>(xp, tp, N, C, p, lp, gp); break;
      default: fused<-1>(xp, tp, N, C, p, lp, gp); break;
    }
  });
  return r;
}

// v4: the product's forward pass, then its backward pass with an upstream gradient of 1.
FocalResult focal_v4_simd(const Tensor& logits, const Tensor& targets, const FocalLossParams& p) {
  FocalResult r;
  r.loss = sigmoid_focal_loss_forward(logits, targets, p);
  const Tensor one = p.reduction == FocalReduction::None ? Tensor::ones(logits.shape(), logits.dtype())
                                                         : Tensor::scalar(1.0, logits.dtype());
  r.grad = sigmoid_focal_loss_backward(one, logits, targets, p);
  return r;
}

// v3: step over v2: the targets of a block of rows are expanded into one float code per element
// first, so the element loop is straight-line arithmetic (polynomial exp/log1p, bit-level selects,
// no calls, no branches) that `omp simd` turns into vector code (4 floats per SSE instruction on
// the default x86-64 target the project builds for).
FocalResult focal_v3_simd_1thread(const Tensor& logits, const Tensor& targets, const FocalLossParams& p) {
  OneThread one;
  return focal_v4_simd(logits, targets, p);
}

const std::vector<FocalVersion>& focal_versions() {
  static const std::vector<FocalVersion> v = {
      {"v2_fused", "one scalar pass: loss and closed-form gradient from one exp and one log1p", focal_v2_fused},
      {"v3_simd_1thread", "branch-free element loop over expanded target codes, vectorised (product, 1 thread)",
       focal_v3_simd_1thread},
      {"v4_simd", "+ OpenMP threads over blocks of rows (product)", focal_v4_simd},
  };
  return v;
}

}  // namespace sx::kernels::labs
