// Conv2d dispatch: shape checks, empty inputs, and the choice of backend from the device.
#include "kernels/conv2d/conv2d.h"

#include "kernels/conv2d/conv2d_math.h"
#include "tensor/dispatch.h"

namespace sx::kernels {

Shape conv2d_output_shape(const Shape& x, const Shape& w, const Conv2dParams& p) {
  SX_CHECK(x.size() == 4, "conv2d: input must be [N, C, H, W], got ", shape_str(x));
  SX_CHECK(w.size() == 4, "conv2d: weight must be [K, C/groups, R, S], got ", shape_str(w));
  SX_CHECK(p.groups >= 1, "conv2d: groups must be >= 1, got ", p.groups);
  SX_CHECK(p.stride_h >= 1 && p.stride_w >= 1, "conv2d: stride must be >= 1, got (", p.stride_h, ", ",
           p.stride_w, ")");
  SX_CHECK(p.dil_h >= 1 && p.dil_w >= 1, "conv2d: dilation must be >= 1, got (", p.dil_h, ", ", p.dil_w, ")");
  SX_CHECK(p.pad_h >= 0 && p.pad_w >= 0, "conv2d: padding must be >= 0, got (", p.pad_h, ", ", p.pad_w, ")");
  SX_CHECK(x[1] % p.groups == 0 && w[0] % p.groups == 0, "conv2d: channels (in ", x[1], ", out ", w[0],
           ") must be divisible by groups ", p.groups);
  SX_CHECK(w[1] * p.groups == x[1], "conv2d: weight ", shape_str(w), " expects ", w[1] * p.groups,
           " input channels (groups ", p.groups, "), input is ", shape_str(x));
  SX_CHECK(w[2] >= 1 && w[3] >= 1, "conv2d: kernel must be at least 1x1, weight ", shape_str(w));
  int64_t P = conv_math::out_size(x[2], w[2], p.stride_h, p.pad_h, p.dil_h);
  int64_t Q = conv_math::out_size(x[3], w[3], p.stride_w, p.pad_w, p.dil_w);
  SX_CHECK(P >= 1 && Q >= 1, "conv2d: input ", shape_str(x), " is too small for kernel ", shape_str(w),
           " (dilation ", p.dil_h, "x", p.dil_w, ", padding ", p.pad_h, "x", p.pad_w, "): output would be ",
           P, "x", Q);
  return {x[0], w[0], P, Q};
}

static void check_pair(const Tensor& a, const Tensor& b, const char* what) {
  SX_CHECK(a.dtype() == b.dtype(), "conv2d: ", what, " dtypes differ: ", dtype_name(a.dtype()), " vs ",
           dtype_name(b.dtype()));
  SX_CHECK(a.device() == b.device(), "conv2d: ", what, " devices differ: ", a.device().str(), " vs ",
           b.device().str());
}

Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p) {
  check_pair(x, w, "input/weight");
  Shape out = conv2d_output_shape(x.shape(), w.shape(), p);
  if (b.defined()) {
    check_pair(x, b, "input/bias");
    SX_CHECK(b.dim() == 1 && b.size(0) == w.size(0), "conv2d: bias must be [", w.size(0), "], got ",
             shape_str(b.shape()));
  }
  if (shape_numel(out) == 0) return Tensor::zeros(out, x.dtype(), x.device());
  return backend<Conv2dBackend>(x.device(), "conv2d").conv2d_forward(x, w, b, p);
}

Tensor conv2d_backward_input(const Tensor& grad_out, const Tensor& w, const Shape& input_shape,
                             const Conv2dParams& p) {
  check_pair(grad_out, w, "grad_out/weight");
  Shape out = conv2d_output_shape(input_shape, w.shape(), p);
  SX_CHECK(grad_out.shape() == out, "conv2d_backward_input: grad_out must be ", shape_str(out), ", got ",
           shape_str(grad_out.shape()));
  if (shape_numel(input_shape) == 0 || shape_numel(out) == 0)
    return Tensor::zeros(input_shape, grad_out.dtype(), grad_out.device());
  return backend<Conv2dBackend>(grad_out.device(), "conv2d")
      .conv2d_backward_input(grad_out, w, input_shape, p);
}

Tensor conv2d_backward_weight(const Tensor& grad_out, const Tensor& x, const Shape& weight_shape,
                              const Conv2dParams& p) {
  check_pair(grad_out, x, "grad_out/input");
  Shape out = conv2d_output_shape(x.shape(), weight_shape, p);
  SX_CHECK(grad_out.shape() == out, "conv2d_backward_weight: grad_out must be ", shape_str(out), ", got ",
           shape_str(grad_out.shape()));
  if (shape_numel(out) == 0 || x.numel() == 0 || shape_numel(weight_shape) == 0)
    return Tensor::zeros(weight_shape, x.dtype(), x.device());
  return backend<Conv2dBackend>(x.device(), "conv2d")
      .conv2d_backward_weight(grad_out, x, weight_shape, p);
}

Tensor conv2d_backward_bias(const Tensor& grad_out) {
  SX_CHECK(grad_out.dim() == 4, "conv2d_backward_bias: grad_out must be [N, K, P, Q], got ",
           shape_str(grad_out.shape()));
  if (grad_out.numel() == 0) return Tensor::zeros({grad_out.size(1)}, grad_out.dtype(), grad_out.device());
  return backend<Conv2dBackend>(grad_out.device(), "conv2d").conv2d_backward_bias(grad_out);
}

}  // namespace sx::kernels
