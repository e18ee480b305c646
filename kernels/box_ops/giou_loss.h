// GIoU loss of paired boxes (torchvision.ops.generalized_box_iou_loss), forward and explicit
// backward, one fused pass each (the loss of Sparse R-CNN / DETR box regression).
//
// boxes1, boxes2 [..., 4] (x1, y1, x2, y2), the same shape, float32 or float64, one device.
// forward -> [...] per pair: 1 - GIoU with eps in the two divisions (formula in giou_loss_math.h).
// backward(grad [...]) -> {d/d boxes1, d/d boxes2}, each [..., 4]: written fresh, not accumulated.
// The reductions (mean, sum) and the autograd node live in layers/loss.cpp (nn::giou_loss).
// Empty inputs give empty outputs. Degenerate boxes follow the formula (like torchvision, no clamp).
#pragma once
#include <utility>

#include "tensor/tensor.h"

namespace sx::kernels {

Tensor giou_loss_forward(const Tensor& boxes1, const Tensor& boxes2, double eps = 1e-7);
std::pair<Tensor, Tensor> giou_loss_backward(const Tensor& grad, const Tensor& boxes1, const Tensor& boxes2,
                                             double eps = 1e-7);

// The backend functions (tensor/dispatch.h): inputs checked, contiguous, [N, 4] and grad [N].
struct GiouLossBackend {
  Tensor (*forward)(const Tensor& boxes1, const Tensor& boxes2, double eps);
  std::pair<Tensor, Tensor> (*backward)(const Tensor& grad, const Tensor& boxes1, const Tensor& boxes2,
                                        double eps);
  static const GiouLossBackend cpu, cuda;
};

}  // namespace sx::kernels
