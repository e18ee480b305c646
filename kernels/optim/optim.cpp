// Argument checks and device dispatch of the optimizer updates (optim.h).
#include "kernels/optim/optim.h"

#include "kernels/box_ops/checks.h"
#include "tensor/dispatch.h"

namespace sx::kernels {
namespace {
// t must match param in shape, dtype and device, and be contiguous (the kernels index it flat).
void check_like(const Tensor& t, const Tensor& param, const char* op, const char* name) {
  SX_CHECK(t.defined(), op, ": ", name, " is undefined");
  SX_CHECK(t.shape() == param.shape(), op, ": ", name, " has shape ", shape_str(t.shape()), ", param ",
           shape_str(param.shape()));
  detail::check_same_dtype(t, param, op);
  detail::check_same_device(t, param, op);
  SX_CHECK(t.is_contiguous(), op, ": ", name, " must be contiguous");
}
void check_param(const Tensor& param, const char* op) {
  detail::check_float(param, op, "param");
  SX_CHECK(param.is_contiguous(), op, ": param must be contiguous");
}
}  // namespace

void sgd_step(const Tensor& param, const Tensor& grad, const Tensor& momentum_buffer, const SgdStepArgs& args) {
  check_param(param, "sgd");
  check_like(grad, param, "sgd", "grad");
  if (args.momentum != 0.0) check_like(momentum_buffer, param, "sgd", "momentum_buffer");
  if (param.numel() == 0) return;
  return backend<OptimBackend>(param.device(), "sgd").sgd_step(param, grad, momentum_buffer, args);
}

void adamw_step(const Tensor& param, const Tensor& grad, const Tensor& exp_avg, const Tensor& exp_avg_sq,
                const AdamWStepArgs& args) {
  check_param(param, "adamw");
  check_like(grad, param, "adamw", "grad");
  check_like(exp_avg, param, "adamw", "exp_avg");
  check_like(exp_avg_sq, param, "adamw", "exp_avg_sq");
  SX_CHECK(args.step >= 1, "adamw: step must be >= 1, got ", args.step);
  if (param.numel() == 0) return;
  return backend<OptimBackend>(param.device(), "adamw")
      .adamw_step(param, grad, exp_avg, exp_avg_sq, args);
}

}  // namespace sx::kernels
