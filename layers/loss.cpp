// Loss functions composed from differentiable ops (the gradients come from autograd), and the
// autograd nodes of the fused focal and GIoU losses over their kernels.
#include "layers/loss.h"

#include "kernels/box_ops/giou_loss.h"
#include "tensor/autograd.h"
#include "tensor/ops.h"

namespace sx::nn {

namespace {

Tensor reduce(const Tensor& l, Reduction r) {
  switch (r) {
    case Reduction::None: return l;
    case Reduction::Sum: return sum(l);
    case Reduction::Mean: return mean(l);
  }
  return l;
}

void check_same(const Tensor& a, const Tensor& b, const char* op) {
  SX_CHECK(a.shape() == b.shape(), op, ": input ", shape_str(a.shape()), " and target ", shape_str(b.shape()),
           " must have the same shape");
}

}  // namespace

Tensor binary_cross_entropy_with_logits(const Tensor& x, const Tensor& t, const Tensor& pos_weight,
                                        Reduction reduction, const Tensor& weight) {
  check_same(x, t, "binary_cross_entropy_with_logits");
  // softplus(-x) = log(1 + exp(-x)), computed without overflow by softplus's linear branch.
  Tensor sp = softplus(neg(x));
  Tensor l;
  if (pos_weight.defined()) {
    Tensor lw = add(mul(sub(pos_weight, 1.0), t), 1.0);  // 1 + (pw - 1) * t
    l = add(mul(rsub(1.0, t), x), mul(lw, sp));
  } else {
    l = add(mul(rsub(1.0, t), x), sp);
  }
  if (weight.defined()) l = mul(l, weight);
  return reduce(l, reduction);
}

Tensor cross_entropy(const Tensor& logits, const Tensor& target, Reduction reduction, const Tensor& weight,
                     int64_t ignore_index, double label_smoothing) {
  SX_CHECK(logits.dim() >= 2, "cross_entropy: logits must be [N, C, ...], got ", shape_str(logits.shape()));
  SX_CHECK(target.dtype() == DType::Int64, "cross_entropy: target must hold int64 class indices, got ",
           dtype_name(target.dtype()));
  Shape ts = logits.shape();
  ts.erase(ts.begin() + 1);
  SX_CHECK(target.shape() == ts, "cross_entropy: target must be ", shape_str(ts), " for logits ",
           shape_str(logits.shape()), ", got ", shape_str(target.shape()));
  SX_CHECK(label_smoothing >= 0.0 && label_smoothing <= 1.0, "cross_entropy: label_smoothing must be in [0, 1], got ",
           label_smoothing);
  const int64_t C = logits.size(1);
  if (weight.defined())
    SX_CHECK(weight.dim() == 1 && weight.size(0) == C, "cross_entropy: weight must be [", C, "], got ",
             shape_str(weight.shape()));
  Tensor valid = ne(target, static_cast<double>(ignore_index));  // Bool
  Tensor safe = where(valid, target, Tensor::zeros(target.shape(), DType::Int64, target.device()));
  {
    // Out-of-range classes are an error (torch raises too); checked on the host for CPU tensors.
    if (target.device().is_cpu() && target.numel() > 0) {
      Tensor sc = safe.contiguous();
      const int64_t* p = sc.data<int64_t>();
      for (int64_t i = 0; i < sc.numel(); ++i)
        SX_CHECK(p[i] >= 0 && p[i] < C, "cross_entropy: target ", p[i], " out of range for ", C, " classes");
    }
  }
  Tensor lsm = log_softmax(logits, 1);
  Tensor picked = gather(lsm, 1, safe.unsqueeze(1)).squeeze(1);  // log p(y)
  Tensor validf = valid.to(logits.dtype());
  Tensor wy = validf;  // per-element weight: w[y] * valid
  if (weight.defined()) wy = mul(index_select(weight, 0, safe.flatten()).reshape(target.shape()), validf);
  Tensor l = neg(mul(picked, wy));
  if (label_smoothing > 0.0) {
    Tensor per_class = lsm;
    if (weight.defined()) {
      Shape ws(logits.dim(), 1);
      ws[1] = C;
      per_class = mul(lsm, weight.reshape(ws));
    }
    Tensor smooth = mul(neg(sum(per_class, {1})), validf);
    l = add(mul(l, 1.0 - label_smoothing), mul(smooth, label_smoothing / static_cast<double>(C)));
  }
  switch (reduction) {
    case Reduction::None: return l;
    case Reduction::Sum: return sum(l);
    case Reduction::Mean: return div(sum(l), sum(wy));
  }
  return l;
}

Tensor smooth_l1_loss(const Tensor& input, const Tensor& target, double beta, Reduction reduction) {
  check_same(input, target, "smooth_l1_loss");
  SX_CHECK(beta >= 0.0, "smooth_l1_loss: beta must be >= 0, got ", beta);
  Tensor d = sub(input, target);
  Tensor ad = abs(d);
  if (beta == 0.0) return reduce(ad, reduction);
  Tensor quad = div(mul(mul(d, d), 0.5), beta);
  Tensor lin = sub(ad, 0.5 * beta);
  return reduce(where(lt(ad, beta), quad, lin), reduction);
}

Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction reduction) {
  check_same(input, target, "l1_loss");
  return reduce(abs(sub(input, target)), reduction);
}

Tensor giou_loss(const Tensor& b1, const Tensor& b2, Reduction reduction, double eps) {
  // The fused kernel (kernels/box_ops/giou_loss.h) per pair; the reduction composes on top of it.
  Tensor x1 = b1.detach(), x2 = b2.detach();
  Tensor l = kernels::giou_loss_forward(x1, x2, eps);
  l = attach_grad(l, "giou_loss", {b1, b2}, [x1, x2, eps](const Tensor& g) {
    auto [g1, g2] = kernels::giou_loss_backward(g, x1, x2, eps);
    return std::vector<Tensor>{g1, g2};
  });
  if (reduction == Reduction::Mean && l.numel() == 0) return mul(sum(l), 0.0);
  return reduce(l, reduction);
}

Tensor sigmoid_focal_loss(const Tensor& logits, const Tensor& targets, const FocalLossParams& params) {
  Tensor out = kernels::sigmoid_focal_loss_forward(logits.detach(), targets, params);
  Tensor x = logits.detach(), t = targets.detach();
  return attach_grad(out, "sigmoid_focal_loss", {logits}, [x, t, params](const Tensor& g) {
    return std::vector<Tensor>{kernels::sigmoid_focal_loss_backward(g, x, t, params)};
  });
}

}  // namespace sx::nn
