// Global-norm gradient clipping; see clip.h. Built on the device-generic ops of tensor/ops.h, so
// the same code runs on the CPU and on CUDA (sum of squares per tensor in float64, stacked, one
// item() at the end).
#include "train/loop/clip.h"

#include <cmath>

#include "tensor/autograd.h"
#include "tensor/errors.h"
#include "tensor/ops.h"

namespace sx::optim {

double grad_norm(const std::vector<Tensor>& params) {
  NoGradGuard ng;
  std::vector<Tensor> sq;
  for (const auto& p : params) {
    Tensor g = p.grad();
    if (!g.defined() || g.numel() == 0) continue;
    Tensor gd = g.detach().to(DType::Float64);
    sq.push_back(sum(mul(gd, gd)));
  }
  if (sq.empty()) return 0.0;
  if (sq.size() > 1) {
    // Tensors may sit on different devices only in unusual setups; bring them together.
    Device d = sq.front().device();
    for (auto& s : sq)
      if (s.device() != d) s = s.to(d);
  }
  return std::sqrt(sum(stack(sq, 0)).item());
}

ClipResult clip_grad_norm(const std::vector<Tensor>& params, double max_norm, bool error_if_nonfinite) {
  SX_CHECK(max_norm > 0 && std::isfinite(max_norm), "clip_grad_norm: max_norm must be positive and finite, got ",
           max_norm);
  ClipResult r;
  r.total_norm = grad_norm(params);
  if (!std::isfinite(r.total_norm)) {
    SX_CHECK(!error_if_nonfinite, "clip_grad_norm: the total gradient norm is ", r.total_norm);
    return r;
  }
  double coef = max_norm / (r.total_norm + 1e-6);
  if (coef < 1.0) {
    NoGradGuard ng;
    for (const auto& p : params) {
      Tensor g = p.grad();
      if (!g.defined()) continue;
      mul_(g, coef);
    }
    r.coef = coef;
    r.clipped = true;
  }
  return r;
}

void clip_grad_value(const std::vector<Tensor>& params, double clip_value) {
  SX_CHECK(clip_value > 0 && std::isfinite(clip_value), "clip_grad_value: the value must be positive and finite, got ",
           clip_value);
  NoGradGuard ng;
  for (const auto& p : params) {
    Tensor g = p.grad();
    if (g.defined()) g.copy_(clamp(g, -clip_value, clip_value));
  }
}

}  // namespace sx::optim
