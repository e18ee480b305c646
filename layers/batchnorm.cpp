// BatchNorm2d / FrozenBatchNorm2d and the autograd bindings of the batch-norm kernels.
#include "layers/batchnorm.h"

#include <sstream>

#include "kernels/batchnorm/batchnorm.h"
#include "tensor/autograd.h"
#include "tensor/ops.h"

namespace sx::nn {

namespace {

// y = x * scale[c] + shift[c], differentiable in all three.
Tensor channel_affine(const Tensor& x, const Tensor& scale, const Tensor& shift) {
  Tensor y = kernels::channel_affine_forward(x, scale, shift);
  const bool nx = x.requires_grad(), ns = scale.requires_grad(), nt = shift.requires_grad();
  if (!GradMode::is_enabled() || !(nx || ns || nt)) return y;
  // x is needed only for the scale's gradient (sum of g * x): a frozen BatchNorm (scale and shift
  // buffers) saves nothing of it. Without x, g stands in for it: same shape, and the kernels read x
  // only for the scale's sum, which is then not asked for.
  const Tensor xd = ns ? x.detach() : Tensor();
  const Tensor sd = scale.detach();
  return attach_grad(y, "channel_affine", {x, scale, shift}, [=](const Tensor& g) {
    auto r = kernels::channel_affine_backward(g, ns ? xd : g, sd, nx, ns, nt);
    return std::vector<Tensor>{r.grad_input, r.grad_scale, r.grad_shift};
  });
}

}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor running_mean, Tensor running_var,
                  bool training, double momentum, double eps) {
  SX_CHECK(x.dim() >= 2, "batch_norm: input must be [N, C, ...], got ", shape_str(x.shape()));
  if (!training) {
    SX_CHECK(running_mean.defined() && running_var.defined(),
             "batch_norm: evaluation mode needs running statistics");
    // scale = weight / sqrt(running_var + eps), shift = bias - running_mean * scale (tiny [C] ops, so
    // gradients reach weight and bias when they require them).
    Tensor inv = div(Tensor::ones({x.size(1)}, x.dtype(), x.device()), sqrt(add(running_var, eps)));
    Tensor scale = weight.defined() ? mul(weight, inv) : inv;
    Tensor shift = neg(mul(running_mean, scale));
    if (bias.defined()) shift = add(shift, bias);
    return channel_affine(x, scale, shift);
  }
  Tensor rm = running_mean, rv = running_var;
  kernels::BatchNormTrainResult fr;
  {
    NoGradGuard ng;  // the running-statistics update is not part of the graph
    fr = kernels::batch_norm_train_forward(x, weight, bias, rm, rv, momentum, eps);
  }
  const bool nx = x.requires_grad(), nw = weight.defined() && weight.requires_grad(),
             nb = bias.defined() && bias.requires_grad();
  if (!GradMode::is_enabled() || !(nx || nw || nb)) return fr.y;
  const Tensor xd = x.detach(), wd = weight.defined() ? weight.detach() : Tensor();
  const Tensor sm = fr.save_mean, si = fr.save_invstd;
  return attach_grad(fr.y, "batch_norm", {x, weight, bias}, [=](const Tensor& g) {
    auto r = kernels::batch_norm_train_backward(g, xd, wd, sm, si);
    return std::vector<Tensor>{nx ? r.grad_input : Tensor(), nw ? r.grad_weight : Tensor(),
                               nb ? r.grad_bias : Tensor()};
  });
}

BatchNorm2d::BatchNorm2d(int64_t num_features, double eps, double momentum, bool affine, bool track_running_stats)
    : Module("BatchNorm2d"),
      num_features_(num_features),
      eps_(eps),
      momentum_(momentum),
      track_running_stats_(track_running_stats) {
  SX_CHECK(num_features >= 1, "BatchNorm2d: num_features must be >= 1, got ", num_features);
  if (affine) {
    weight = register_parameter("weight", Tensor::ones({num_features}));
    bias = register_parameter("bias", Tensor::zeros({num_features}));
  }
  if (track_running_stats) {
    running_mean = register_buffer("running_mean", Tensor::zeros({num_features}));
    running_var = register_buffer("running_var", Tensor::ones({num_features}));
    num_batches_tracked = register_buffer("num_batches_tracked", Tensor::zeros({}, DType::Int64));
  }
}

void BatchNorm2d::set_momentum(double m) {
  SX_CHECK(m >= 0.0 && m <= 1.0, "BatchNorm2d: momentum must be in [0, 1], got ", m);
  momentum_ = m;
}

void BatchNorm2d::reset_running_stats() {
  if (!track_running_stats_) return;
  NoGradGuard ng;
  running_mean.zero_();
  running_var.fill_(1.0);
  num_batches_tracked.zero_();
}

Tensor BatchNorm2d::forward(const Tensor& x) {
  SX_CHECK(x.dim() == 4, "BatchNorm2d: input must be [N, C, H, W], got ", shape_str(x.shape()));
  SX_CHECK(x.size(1) == num_features_, "BatchNorm2d: expected ", num_features_, " channels, got input ",
           shape_str(x.shape()));
  if (is_training() && track_running_stats_) {
    NoGradGuard ng;
    Tensor nbt = num_batches_tracked;
    if (nbt.device().is_cpu()) {
      nbt.data<int64_t>()[0] += 1;
    } else {
      add_(nbt, Tensor::ones({}, DType::Int64, nbt.device()));  // stays on the device, no sync
    }
  }
  if (is_training() || !track_running_stats_) {
    // Batch statistics; the running ones are updated when tracked and training.
    const bool update = is_training() && track_running_stats_;
    if (is_training() && sync_group_ && sync_group_->size() > 1)
      return sync_batch_norm(x, weight, bias, update ? running_mean : Tensor(), update ? running_var : Tensor(),
                             momentum_, eps_, *sync_group_);
    return batch_norm(x, weight, bias, update ? running_mean : Tensor(), update ? running_var : Tensor(), true,
                      momentum_, eps_);
  }
  return batch_norm(x, weight, bias, running_mean, running_var, false, momentum_, eps_);
}

std::string BatchNorm2d::extra_repr() const {
  std::ostringstream os;
  os << num_features_ << ", eps=" << eps_ << ", momentum=" << momentum_;
  return os.str();
}

FrozenBatchNorm2d::FrozenBatchNorm2d(int64_t num_features, double eps)
    : Module("FrozenBatchNorm2d"), num_features_(num_features), eps_(eps) {
  SX_CHECK(num_features >= 1, "FrozenBatchNorm2d: num_features must be >= 1, got ", num_features);
  weight = register_buffer("weight", Tensor::ones({num_features}));
  bias = register_buffer("bias", Tensor::zeros({num_features}));
  running_mean = register_buffer("running_mean", Tensor::zeros({num_features}));
  running_var = register_buffer("running_var", Tensor::ones({num_features}));
}

Tensor FrozenBatchNorm2d::forward(const Tensor& x) {
  SX_CHECK(x.dim() == 4 && x.size(1) == num_features_, "FrozenBatchNorm2d: expected [N, ", num_features_,
           ", H, W], got ", shape_str(x.shape()));
  return batch_norm(x, weight, bias, running_mean, running_var, false, 0.0, eps_);
}

bool FrozenBatchNorm2d::ignores_state_key(const std::string& local_name) const {
  return local_name == "num_batches_tracked";
}

std::string FrozenBatchNorm2d::extra_repr() const {
  std::ostringstream os;
  os << num_features_ << ", eps=" << eps_;
  return os.str();
}

}  // namespace sx::nn
