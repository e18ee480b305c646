// 2-D convolution (cross-correlation, like torch.nn.functional.conv2d), forward and backward.
//
//   x [N, C, H, W], w [K, C/groups, R, S], b [K] (optional) -> y [N, K, P, Q]
//   P = (H + 2*pad_h - dil_h*(R-1) - 1) / stride_h + 1   (floor), Q likewise.
//   y[n,k,p,q] = b[k] + sum_{c in group(k), r, s} w[k,c,r,s] * x[n, c, p*sh - ph + r*dh, q*sw - pw + s*dw]
// (out-of-range input positions read as zero).
//
// Backends (chosen from the tensors' device at run time):
//   CPU  - oneDNN (float32, conv2d_dnnl.cpp) and im2col + OpenBLAS GEMM (the reference, and
//          float64; conv2d_cpu.cpp), chosen by cpu_conv_algo().
//   CUDA - cuDNN legacy API; algorithms found once per shape and cached (conv2d_cuda.cpp).
// Inputs may be non-contiguous (they are made contiguous). float32 and float64.
// Empty batches (N == 0) give empty outputs of the right shape; K == 0 likewise.
#pragma once
#include <cstdint>

#include "tensor/tensor.h"

namespace sx::kernels {

struct Conv2dParams {
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dil_h = 1, dil_w = 1;
  int64_t groups = 1;
};

// Output shape for the input/weight shapes; throws ValueError naming the shapes when they do not
// fit together (channel mismatch, non-positive output size, bad groups).
Shape conv2d_output_shape(const Shape& x, const Shape& w, const Conv2dParams& p);

// y = conv(x, w) + b  (b may be an undefined Tensor).
Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p);
// dL/dx given dL/dy.
Tensor conv2d_backward_input(const Tensor& grad_out, const Tensor& w, const Shape& input_shape,
                             const Conv2dParams& p);
// dL/dw given dL/dy and x.
Tensor conv2d_backward_weight(const Tensor& grad_out, const Tensor& x, const Shape& weight_shape,
                              const Conv2dParams& p);
// dL/db = sum of dL/dy over N, P, Q -> [K].
Tensor conv2d_backward_bias(const Tensor& grad_out);

namespace cpu {
// Tuning knobs of the im2col path (conv2d_cpu.cpp explains the tiles):
// the hard cap on the per-thread im2col buffer, in values (default 4M; tests set it tiny to force
// bands of single output rows),
int64_t& im2col_chunk_elements();
// the size a tile's column matrix aims at (default 256K values, 1 MB: fits the L2 cache),
int64_t& im2col_cache_elements();
// the fewest columns (output positions) a tile aims at (default 384; small images are grouped),
int64_t& im2col_min_columns();
// whether a batch of >= 2 images is split over OpenMP threads with single-threaded BLAS (default)
// or every GEMM runs on BLAS's own threads.
bool& conv_batch_split();
// Which algorithm runs float32 convolutions on the CPU. Auto (the default): oneDNN, except the
// data gradient of a layer with fewer than 16 input channels per group (a stem, where oneDNN's
// kernel is slower than im2col's; training never needs it for the stem). Im2col / OneDNN force one
// of them for every float32 case. float64 always runs on im2col (oneDNN has no float64
// convolution).
enum class CpuConvAlgo { Auto, Im2col, OneDNN };
CpuConvAlgo& cpu_conv_algo();
}  // namespace cpu

// The backend functions (tensor/dispatch.h); the op functions above check the arguments first.
struct Conv2dBackend {
  Tensor (*conv2d_forward)(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dParams& p);
  Tensor (*conv2d_backward_input)(const Tensor& grad_out, const Tensor& w, const Shape& input_shape,
                                  const Conv2dParams& p);
  Tensor (*conv2d_backward_weight)(const Tensor& grad_out, const Tensor& x,
                                   const Shape& weight_shape, const Conv2dParams& p);
  Tensor (*conv2d_backward_bias)(const Tensor& grad_out);
  static const Conv2dBackend cpu, cuda;
};

}  // namespace sx::kernels
