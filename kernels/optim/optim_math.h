// Per-element update rules of the optimizers, written once for the CPU loop (optim_cpu.cpp) and the
// CUDA kernels (optim_cuda.cu). They follow torch.optim's single-tensor implementations step by
// step (same operation order, same scalar folding), so results agree with PyTorch to rounding.
//
// SGD (torch.optim.SGD), with g the gradient and p the parameter:
//   g  = g + weight_decay * p                          (when weight_decay != 0)
//   b  = g                                              (first step: the buffer is a copy of g)
//   b  = momentum * b + (1 - dampening) * g             (later steps)
//   g  = nesterov ? g + momentum * b : b                (when momentum != 0)
//   p  = p - lr * g
// AdamW (torch.optim.AdamW, decoupled weight decay, amsgrad off), at step t >= 1:
//   p  = p * (1 - lr * weight_decay)
//   m  = beta1 * m + (1 - beta1) * g
//   v  = beta2 * v + (1 - beta2) * g * g
//   p  = p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// The scalars (1 - lr*wd, step size, sqrt of the bias correction) are computed once on the host in
// double and passed in the parameter's type, as torch does (sgd_scalars / adamw_scalars below, used
// by both backends).
#pragma once
#include <cmath>

#include "kernels/optim/optim.h"
#include "tensor/host_device.h"

namespace sx::kernels::optim_math {

template <class T>
struct SgdScalars {
  T lr, momentum, one_minus_dampening, weight_decay;
  bool nesterov, first_step, use_momentum, use_weight_decay;
};

template <class T>
SgdScalars<T> sgd_scalars(const SgdStepArgs& a) {
  return {T(a.lr), T(a.momentum), T(1.0 - a.dampening), T(a.weight_decay),
          a.nesterov, a.first_step, a.momentum != 0.0, a.weight_decay != 0.0};
}

template <class T>
HOST_DEVICE void sgd_update(T& p, T g, T* buf, const SgdScalars<T>& s) {
  if (s.use_weight_decay) g = g + s.weight_decay * p;
  if (s.use_momentum) {
    T b = s.first_step ? g : s.momentum * (*buf) + s.one_minus_dampening * g;
    *buf = b;
    g = s.nesterov ? g + s.momentum * b : b;
  }
  p = p - s.lr * g;
}

template <class T>
struct AdamWScalars {
  T decay_factor;          // 1 - lr * weight_decay
  T beta1, one_minus_beta1, beta2, one_minus_beta2;
  T step_size;             // lr / (1 - beta1^t)
  T bias_correction2_sqrt; // sqrt(1 - beta2^t)
  T eps;
};

template <class T>
AdamWScalars<T> adamw_scalars(const AdamWStepArgs& a) {
  double bc1 = 1.0 - std::pow(a.beta1, static_cast<double>(a.step));
  double bc2 = 1.0 - std::pow(a.beta2, static_cast<double>(a.step));
  return {T(1.0 - a.lr * a.weight_decay), T(a.beta1), T(1.0 - a.beta1), T(a.beta2), T(1.0 - a.beta2),
          T(a.lr / bc1), T(std::sqrt(bc2)), T(a.eps)};
}

template <class T>
HOST_DEVICE void adamw_update(T& p, T g, T& m, T& v, const AdamWScalars<T>& s) {
  p = p * s.decay_factor;
  m = s.beta1 * m + s.one_minus_beta1 * g;
  v = s.beta2 * v + s.one_minus_beta2 * (g * g);
  T denom = sqrt(v) / s.bias_correction2_sqrt + s.eps;
  p = p - s.step_size * (m / denom);
}

}  // namespace sx::kernels::optim_math
