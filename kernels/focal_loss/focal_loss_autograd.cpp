// Autograd glue for the sigmoid focal loss: a thin node calling the fused backward kernel.
#include "kernels/focal_loss/focal_loss.h"
#include "tensor/autograd.h"

namespace sx {

Tensor sigmoid_focal_loss(const Tensor& logits, const Tensor& targets,
                          const kernels::FocalLossParams& params) {
  Tensor out = kernels::sigmoid_focal_loss_forward(logits.detach(), targets, params);
  Tensor x = logits.detach(), t = targets.detach();
  return attach_grad(out, "sigmoid_focal_loss", {logits}, [x, t, params](const Tensor& g) {
    return std::vector<Tensor>{kernels::sigmoid_focal_loss_backward(g, x, t, params)};
  });
}

}  // namespace sx
