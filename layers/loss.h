// Loss functions, built on differentiable ops (tensor/ops.h), numerically stable.
//
// binary_cross_entropy_with_logits (torch's): per element, with x the logit, t the target in [0,1],
// pw the positive weight (broadcast over the last dim, like torch's pos_weight):
//   l = (1 - t) * x + (1 + (pw - 1) * t) * softplus(-x),   softplus(-x) = log1p(exp(-|x|)) + max(-x, 0)
//   times the optional per-element weight.
// cross_entropy: logits [N, C] (or [N, C, d...]), target int64 class indices [N] ([N, d...]);
//   l_n = -w[y_n] * log_softmax(x_n)[y_n] (log-sum-exp form); targets equal to ignore_index
//   contribute nothing; Mean divides by the sum of the weights of the non-ignored targets.
//   label_smoothing eps mixes in the uniform distribution like torch.
// smooth_l1_loss (torch's, beta): |d| < beta ? 0.5 d^2 / beta : |d| - 0.5 beta; beta == 0 is L1.
// l1_loss: |input - target|.
// giou_loss (torchvision.ops.generalized_box_iou_loss): boxes [..., 4] as (x1, y1, x2, y2),
//   1 - GIoU, with eps in the divisions: the autograd binding of kernels/box_ops/giou_loss (fused
//   per-pair forward and explicit backward, math in giou_loss_math.h), reductions on top.
// sigmoid_focal_loss (torchvision.ops.sigmoid_focal_loss, RetinaNet's classification loss): the
//   autograd binding of kernels/focal_loss (fused forward and backward; formula, target coding
//   and reductions documented there).
// Reductions: None (per element), Mean, Sum. Mean of an empty input is 0 for the box losses
// (like torchvision's detection code divides by max(1, n)) -- documented per function below.
#pragma once
#include "kernels/focal_loss/focal_loss.h"
#include "tensor/tensor.h"

namespace sx::nn {

enum class Reduction { None, Mean, Sum };

// pos_weight and weight may be undefined. Mean over zero elements returns NaN like torch.
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& target,
                                        const Tensor& pos_weight = Tensor(),
                                        Reduction reduction = Reduction::Mean,
                                        const Tensor& weight = Tensor());

// weight: [C] class weights or undefined.
Tensor cross_entropy(const Tensor& logits, const Tensor& target, Reduction reduction = Reduction::Mean,
                     const Tensor& weight = Tensor(), int64_t ignore_index = -100,
                     double label_smoothing = 0.0);

Tensor smooth_l1_loss(const Tensor& input, const Tensor& target, double beta = 1.0,
                      Reduction reduction = Reduction::Mean);

Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction reduction = Reduction::Mean);

// Mean over zero boxes returns 0 (a differentiable zero), not NaN.
Tensor giou_loss(const Tensor& boxes1, const Tensor& boxes2, Reduction reduction = Reduction::None,
                 double eps = 1e-7);

using kernels::FocalLossParams;
using kernels::FocalReduction;

// logits [N, C], targets int64 [N] (class, >= C background, < 0 ignored). Gradient to the logits.
Tensor sigmoid_focal_loss(const Tensor& logits, const Tensor& targets, const FocalLossParams& params = {});

}  // namespace sx::nn
