// 2-D pooling over x [N, C, H, W].
//
// Max pooling (torch.nn.MaxPool2d semantics): window kh x kw, stride, padding (implicit -inf,
// pad <= kernel/2), dilation, ceil_mode. Output size
//   P = floor_or_ceil((H + 2*ph - dh*(kh-1) - 1) / sh) + 1, and with ceil_mode the last window must
//   start inside the input or the left padding (torch's rule).
// The forward also returns, per output, the flat index h*W + w of the maximum within its (n, c)
// plane (Int64, first maximum in scan order; NaN propagates like torch). The backward scatters
// grad_out into those positions (+=, windows may overlap).
//
// Adaptive average pooling to (OH, OW): output cell (i, j) averages rows
//   [floor(i*H/OH), ceil((i+1)*H/OH)) and columns [floor(j*W/OW), ceil((j+1)*W/OW)).
// The backward spreads each output gradient evenly over its cell.
// CPU loops and CUDA kernels share pooling_math.h.
#pragma once
#include <utility>

#include "tensor/tensor.h"

namespace sx::kernels {

struct MaxPool2dParams {
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dil_h = 1, dil_w = 1;
  bool ceil_mode = false;
};

Shape max_pool2d_output_shape(const Shape& x, const MaxPool2dParams& p);
// Returns (y, indices).
std::pair<Tensor, Tensor> max_pool2d_forward(const Tensor& x, const MaxPool2dParams& p);
Tensor max_pool2d_backward(const Tensor& grad_out, const Tensor& indices, const Shape& input_shape);

Tensor adaptive_avg_pool2d_forward(const Tensor& x, int64_t out_h, int64_t out_w);
Tensor adaptive_avg_pool2d_backward(const Tensor& grad_out, const Shape& input_shape);

// The backend functions (tensor/dispatch.h); the op functions above check the arguments first.
struct PoolingBackend {
  std::pair<Tensor, Tensor> (*max_pool2d_forward)(const Tensor& x, const MaxPool2dParams& p);
  Tensor (*max_pool2d_backward)(const Tensor& grad_out, const Tensor& indices,
                                const Shape& input_shape);
  Tensor (*adaptive_avg_pool2d_forward)(const Tensor& x, int64_t out_h, int64_t out_w);
  Tensor (*adaptive_avg_pool2d_backward)(const Tensor& grad_out, const Shape& input_shape);
  static const PoolingBackend cpu, cuda;
};

}  // namespace sx::kernels
