// Pooling dispatch: shape checks, empty inputs, backend choice.
#include "kernels/pooling/pooling.h"

#include "kernels/pooling/pooling_math.h"
#include "tensor/dispatch.h"

namespace sx::kernels {

namespace {
void check_input(const Tensor& x, const char* op) {
  SX_CHECK(x.dim() == 4, op, ": input must be [N, C, H, W], got ", shape_str(x.shape()));
  SX_CHECK(x.dtype() == DType::Float32 || x.dtype() == DType::Float64, op, ": expected float32 or float64, got ",
           dtype_name(x.dtype()));
}
}  // namespace

Shape max_pool2d_output_shape(const Shape& x, const MaxPool2dParams& p) {
  SX_CHECK(x.size() == 4, "max_pool2d: input must be [N, C, H, W], got ", shape_str(x));
  SX_CHECK(p.kernel_h >= 1 && p.kernel_w >= 1, "max_pool2d: kernel must be >= 1, got ", p.kernel_h, "x", p.kernel_w);
  SX_CHECK(p.stride_h >= 1 && p.stride_w >= 1, "max_pool2d: stride must be >= 1, got ", p.stride_h, "x", p.stride_w);
  SX_CHECK(p.dil_h >= 1 && p.dil_w >= 1, "max_pool2d: dilation must be >= 1, got ", p.dil_h, "x", p.dil_w);
  SX_CHECK(p.pad_h >= 0 && p.pad_w >= 0 && p.pad_h * 2 <= p.kernel_h && p.pad_w * 2 <= p.kernel_w,
           "max_pool2d: padding must be in [0, kernel/2], got ", p.pad_h, "x", p.pad_w, " for kernel ", p.kernel_h,
           "x", p.kernel_w);
  int64_t P = pool_math::max_pool_out_size(x[2], p.kernel_h, p.pad_h, p.stride_h, p.dil_h, p.ceil_mode);
  int64_t Q = pool_math::max_pool_out_size(x[3], p.kernel_w, p.pad_w, p.stride_w, p.dil_w, p.ceil_mode);
  SX_CHECK(P >= 1 && Q >= 1, "max_pool2d: input ", shape_str(x), " is too small: output would be ", P, "x", Q);
  return {x[0], x[1], P, Q};
}

std::pair<Tensor, Tensor> max_pool2d_forward(const Tensor& x, const MaxPool2dParams& p) {
  check_input(x, "max_pool2d");
  Shape out = max_pool2d_output_shape(x.shape(), p);
  if (shape_numel(out) == 0)
    return {Tensor::empty(out, x.dtype(), x.device()), Tensor::empty(out, DType::Int64, x.device())};
  return backend<PoolingBackend>(x.device(), "max_pool2d").max_pool2d_forward(x, p);
}

Tensor max_pool2d_backward(const Tensor& grad_out, const Tensor& indices, const Shape& input_shape) {
  SX_CHECK(input_shape.size() == 4, "max_pool2d_backward: input shape must be [N, C, H, W], got ",
           shape_str(input_shape));
  SX_CHECK(grad_out.dim() == 4 && grad_out.shape() == indices.shape() && grad_out.size(0) == input_shape[0] &&
               grad_out.size(1) == input_shape[1],
           "max_pool2d_backward: grad_out ", shape_str(grad_out.shape()), " and indices ", shape_str(indices.shape()),
           " do not fit input ", shape_str(input_shape));
  SX_CHECK(indices.dtype() == DType::Int64, "max_pool2d_backward: indices must be int64, got ",
           dtype_name(indices.dtype()));
  if (grad_out.numel() == 0) return Tensor::zeros(input_shape, grad_out.dtype(), grad_out.device());
  return backend<PoolingBackend>(grad_out.device(), "max_pool2d_backward")
      .max_pool2d_backward(grad_out, indices, input_shape);
}

Tensor adaptive_avg_pool2d_forward(const Tensor& x, int64_t out_h, int64_t out_w) {
  check_input(x, "adaptive_avg_pool2d");
  SX_CHECK(out_h >= 1 && out_w >= 1, "adaptive_avg_pool2d: output size must be >= 1, got ", out_h, "x", out_w);
  SX_CHECK(x.size(2) >= 1 && x.size(3) >= 1, "adaptive_avg_pool2d: empty spatial input ", shape_str(x.shape()));
  if (x.numel() == 0) return Tensor::empty({x.size(0), x.size(1), out_h, out_w}, x.dtype(), x.device());
  return backend<PoolingBackend>(x.device(), "adaptive_avg_pool2d")
      .adaptive_avg_pool2d_forward(x, out_h, out_w);
}

Tensor adaptive_avg_pool2d_backward(const Tensor& grad_out, const Shape& input_shape) {
  SX_CHECK(input_shape.size() == 4 && grad_out.dim() == 4 && grad_out.size(0) == input_shape[0] &&
               grad_out.size(1) == input_shape[1],
           "adaptive_avg_pool2d_backward: grad_out ", shape_str(grad_out.shape()), " does not fit input ",
           shape_str(input_shape));
  if (grad_out.numel() == 0 || shape_numel(input_shape) == 0)
    return Tensor::zeros(input_shape, grad_out.dtype(), grad_out.device());
  return backend<PoolingBackend>(grad_out.device(), "adaptive_avg_pool2d_backward")
      .adaptive_avg_pool2d_backward(grad_out, input_shape);
}

}  // namespace sx::kernels
