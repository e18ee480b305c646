// Gradient clipping, by global norm or by value.
// By global norm (torch.nn.utils.clip_grad_norm_ with the 2-norm):
//   total = sqrt(sum over parameters of sum(g^2)),   coef = max_norm / (total + 1e-6)
//   every gradient is multiplied by coef when coef < 1.
// Parameters without a gradient are ignored. The norm is computed on the gradients' device and read
// back once (one host sync per call; the value is logged anyway).
#pragma once
#include <vector>

#include "tensor/tensor.h"

namespace sx::optim {

struct ClipResult {
  double total_norm = 0;  // before clipping; NaN/Inf when a gradient holds one
  double coef = 1;        // the factor applied (1 when not clipped)
  bool clipped = false;
};

// The global 2-norm of the defined gradients (0 when there is none).
double grad_norm(const std::vector<Tensor>& params);
// Clips in place. max_norm must be > 0. When the norm is not finite the gradients are left as they
// are and, with error_if_nonfinite, a ValueError is thrown.
ClipResult clip_grad_norm(const std::vector<Tensor>& params, double max_norm, bool error_if_nonfinite = false);
// Clips every gradient element to [-clip_value, clip_value] in place (torch.nn.utils.clip_grad_value_,
// Detectron2's CLIP_TYPE "value"). clip_value must be > 0. NaN stays NaN.
void clip_grad_value(const std::vector<Tensor>& params, double clip_value);

}  // namespace sx::optim
