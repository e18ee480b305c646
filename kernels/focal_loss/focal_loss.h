// Sigmoid focal loss (Lin et al., RetinaNet), forward and backward, each one fused pass.
//
// logits [N, C] (float32/float64), targets int64 [N], one class index per row:
//   0 <= t < C : positive for class t, negative for the other C - 1 classes;
//   t >= C     : background (conventionally t = C): negative for all C classes;
//   t < 0      : ignored (conventionally -1): the row contributes no loss and gets zero gradient.
// Per element, with y = 1 for the positive class and 0 otherwise, and s = y ? -x : x:
//   loss = alpha_t * softplus(s) * sigmoid(s)^gamma,   alpha_t = y ? alpha : 1 - alpha
// which is torchvision.ops.sigmoid_focal_loss (ce * (1 - p_t)^gamma with ce = BCE-with-logits and
// 1 - p_t = sigmoid(s)), written with softplus/sigmoid forms that are exact for any |x| (no
// 1 - sigmoid cancellation, no log(0)). alpha < 0 disables the alpha weighting (as torchvision).
// d loss / ds = alpha_t * sigmoid(s)^gamma * (sigmoid(s) + gamma * softplus(s) * sigmoid(-s)),
// and d/dx = -d/ds for y = 1, +d/ds otherwise.
//
// Reduction: None -> [N, C]; Sum -> scalar; Mean -> sum / (N * C) (ignored rows count as zeros, as
// torchvision's mean over all elements). Every result is then divided by `normalizer` (e.g. the
// number of positive anchors, as RetinaNet: sum / max(1, num_foreground)).
// Sums are accumulated in float64 in a fixed order (CPU: per block of rows, added in block order,
// independent of the number of threads; CUDA: per-block partials summed by the last block), so
// results are deterministic.
// N = 0: None gives [0, C]; Sum gives 0; Mean gives NaN (0/0, like torch's mean of nothing).
// The differentiable form is layers/loss.h nn::sigmoid_focal_loss.
#pragma once
#include "tensor/tensor.h"

namespace sx::kernels {

enum class FocalReduction { None, Sum, Mean };

struct FocalLossParams {
  double alpha = 0.25;
  double gamma = 2.0;
  FocalReduction reduction = FocalReduction::Sum;
  double normalizer = 1.0;
};

Tensor sigmoid_focal_loss_forward(const Tensor& logits, const Tensor& targets, const FocalLossParams& p);
// grad_out: [N, C] for None, a one-element tensor otherwise (read on the device, no sync).
Tensor sigmoid_focal_loss_backward(const Tensor& grad_out, const Tensor& logits, const Tensor& targets,
                                   const FocalLossParams& p);

// The backend functions (tensor/dispatch.h); the op functions above check the arguments first.
struct FocalLossBackend {
  Tensor (*sigmoid_focal_loss_forward)(const Tensor& logits, const Tensor& targets,
                                       const FocalLossParams& p);
  Tensor (*sigmoid_focal_loss_backward)(const Tensor& grad_out, const Tensor& logits,
                                        const Tensor& targets, const FocalLossParams& p);
  static const FocalLossBackend cpu, cuda;
};

}  // namespace sx::kernels
