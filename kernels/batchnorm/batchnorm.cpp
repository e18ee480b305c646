// BatchNorm dispatch: argument checks, empty inputs, backend choice.
#include "kernels/batchnorm/batchnorm.h"

#include "tensor/dispatch.h"

namespace sx::kernels {

namespace {
void check_vec(const Tensor& v, const Tensor& x, const char* op, const char* name) {
  if (!v.defined()) return;
  SX_CHECK(v.dim() == 1 && v.size(0) == x.size(1), op, ": ", name, " must be [", x.size(1), "], got ",
           shape_str(v.shape()));
  SX_CHECK(v.device() == x.device(), op, ": ", name, " is on ", v.device().str(), ", input on ", x.device().str());
  SX_CHECK(v.dtype() == x.dtype(), op, ": ", name, " is ", dtype_name(v.dtype()), ", input ", dtype_name(x.dtype()));
}
void check_x(const Tensor& x, const char* op) {
  SX_CHECK(x.dim() >= 2, op, ": input must be [N, C, ...], got ", shape_str(x.shape()));
  SX_CHECK(x.dtype() == DType::Float32 || x.dtype() == DType::Float64, op, ": expected float32 or float64, got ",
           dtype_name(x.dtype()));
}
}  // namespace

BatchNormTrainResult batch_norm_train_forward(const Tensor& x, const Tensor& weight, const Tensor& bias,
                                              Tensor running_mean, Tensor running_var, double momentum,
                                              double eps) {
  const char* op = "batch_norm";
  check_x(x, op);
  check_vec(weight, x, op, "weight");
  check_vec(bias, x, op, "bias");
  check_vec(running_mean, x, op, "running_mean");
  check_vec(running_var, x, op, "running_var");
  const int64_t M = x.size(1) == 0 ? 0 : x.numel() / x.size(1);
  SX_CHECK(M > 1 || !running_var.defined() || x.numel() == 0, op,
           ": expected more than 1 value per channel when training, got input ", shape_str(x.shape()));
  if (x.numel() == 0) {
    // Nothing to normalise; statistics are undefined, so the running ones stay as they are.
    return {Tensor::empty(x.shape(), x.dtype(), x.device()),
            Tensor::zeros({x.size(1)}, x.dtype(), x.device()), Tensor::zeros({x.size(1)}, x.dtype(), x.device())};
  }
  return backend<BatchNormBackend>(x.device(), op)
      .batch_norm_train_forward(x, weight, bias, running_mean, running_var, momentum, eps);
}

BatchNormBackwardResult batch_norm_train_backward(const Tensor& grad_out, const Tensor& x, const Tensor& weight,
                                                  const Tensor& save_mean, const Tensor& save_invstd) {
  const char* op = "batch_norm_backward";
  check_x(x, op);
  SX_CHECK(grad_out.shape() == x.shape(), op, ": grad_out ", shape_str(grad_out.shape()), " != input ",
           shape_str(x.shape()));
  check_vec(weight, x, op, "weight");
  check_vec(save_mean, x, op, "save_mean");
  check_vec(save_invstd, x, op, "save_invstd");
  if (x.numel() == 0) {
    BatchNormBackwardResult r;
    r.grad_input = Tensor::zeros(x.shape(), x.dtype(), x.device());
    if (weight.defined()) {
      r.grad_weight = Tensor::zeros({x.size(1)}, x.dtype(), x.device());
      r.grad_bias = Tensor::zeros({x.size(1)}, x.dtype(), x.device());
    }
    return r;
  }
  return backend<BatchNormBackend>(x.device(), op)
      .batch_norm_train_backward(grad_out, x, weight, save_mean, save_invstd);
}

Tensor channel_affine_forward(const Tensor& x, const Tensor& scale, const Tensor& shift) {
  const char* op = "channel_affine";
  check_x(x, op);
  SX_CHECK(scale.defined() && shift.defined(), op, ": scale and shift are required");
  check_vec(scale, x, op, "scale");
  check_vec(shift, x, op, "shift");
  if (x.numel() == 0) return Tensor::empty(x.shape(), x.dtype(), x.device());
  return backend<BatchNormBackend>(x.device(), op).channel_affine_forward(x, scale, shift);
}

ChannelAffineBackwardResult channel_affine_backward(const Tensor& grad_out, const Tensor& x, const Tensor& scale,
                                                    bool need_input, bool need_scale, bool need_shift) {
  const char* op = "channel_affine_backward";
  check_x(x, op);
  SX_CHECK(grad_out.shape() == x.shape(), op, ": grad_out ", shape_str(grad_out.shape()), " != input ",
           shape_str(x.shape()));
  check_vec(scale, x, op, "scale");
  if (x.numel() == 0) {
    ChannelAffineBackwardResult r;
    if (need_input) r.grad_input = Tensor::zeros(x.shape(), x.dtype(), x.device());
    if (need_scale) r.grad_scale = Tensor::zeros({x.size(1)}, x.dtype(), x.device());
    if (need_shift) r.grad_shift = Tensor::zeros({x.size(1)}, x.dtype(), x.device());
    return r;
  }
  return backend<BatchNormBackend>(x.device(), op)
      .channel_affine_backward(grad_out, x, scale, need_input, need_scale, need_shift);
}

}  // namespace sx::kernels
