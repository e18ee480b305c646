// Optimizer updates: one fused, in-place step per parameter tensor, with torch.optim's
// single-tensor semantics (the per-element rules and the scalar folding are in optim_math.h).
//
// sgd_step(param, grad, momentum_buffer, args): SGD with weight decay, momentum (with dampening)
//   and Nesterov momentum. momentum_buffer is undefined when momentum is 0; on the parameter's
//   first step (args.first_step) the buffer is written (a copy of the decayed gradient), not read,
//   so it may hold anything.
// adamw_step(param, grad, exp_avg, exp_avg_sq, args): AdamW (decoupled weight decay, amsgrad off)
//   at step args.step >= 1 (the caller counts steps per parameter).
//
// All tensors: defined, contiguous, same shape, dtype (float32 or float64) and device. The update
// runs on that device (cpu:: OpenMP loop, cuda:: grid-stride kernel) with the very same
// per-element arithmetic, so CPU and CUDA agree to the rounding of the device's sqrt/division.
// The bookkeeping (parameter groups, state, checkpoints) is train/loop/optim.h's.
#pragma once
#include <cstdint>

#include "tensor/tensor.h"

namespace sx::kernels {

struct SgdStepArgs {
  double lr, momentum, dampening, weight_decay;
  bool nesterov, first_step;
};
struct AdamWStepArgs {
  double lr, beta1, beta2, eps, weight_decay;
  int64_t step;
};

void sgd_step(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer, const SgdStepArgs& args);
void adamw_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                const AdamWStepArgs& args);

// The backend functions (tensor/dispatch.h); the op functions above check the arguments first.
struct OptimBackend {
  void (*sgd_step)(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer,
                   const SgdStepArgs& args);
  void (*adamw_step)(const Tensor& param, const Tensor& grad, const Tensor& exp_avg,
                     const Tensor& exp_avg_sq, const AdamWStepArgs& args);
  static const OptimBackend cpu, cuda;
};

}  // namespace sx::kernels
