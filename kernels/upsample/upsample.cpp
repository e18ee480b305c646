// Nearest upsampling: dispatch (checks, empty inputs, backend) and the CPU loops.
// CPU: OpenMP over (n, c) planes; the source row index is computed once per output row and the
// column indices once per call.
#include "kernels/upsample/upsample.h"

#include <vector>

#include "kernels/upsample/upsample_math.h"
#include "tensor/dispatch.h"

namespace sx::kernels {

using namespace upsample_math;

Tensor upsample_nearest2d_forward(const Tensor& x, int64_t out_h, int64_t out_w, double scale_h, double scale_w) {
  SX_CHECK(x.dim() == 4, "upsample_nearest2d: input must be [N, C, H, W], got ", shape_str(x.shape()));
  SX_CHECK(out_h >= 1 && out_w >= 1, "upsample_nearest2d: output size must be >= 1, got ", out_h, "x", out_w);
  SX_CHECK(x.dtype() == DType::Float32 || x.dtype() == DType::Float64,
           "upsample_nearest2d: expected float32 or float64, got ", dtype_name(x.dtype()));
  if (x.numel() == 0) {
    SX_CHECK(x.size(0) == 0 || x.size(1) == 0, "upsample_nearest2d: empty spatial input ", shape_str(x.shape()));
    return Tensor::empty({x.size(0), x.size(1), out_h, out_w}, x.dtype(), x.device());
  }
  return backend<UpsampleBackend>(x.device(), "upsample_nearest2d")
      .upsample_nearest2d_forward(x, out_h, out_w, scale_h, scale_w);
}

Tensor upsample_nearest2d_backward(const Tensor& grad_out, const Shape& input_shape, double scale_h, double scale_w) {
  SX_CHECK(input_shape.size() == 4 && grad_out.dim() == 4 && grad_out.size(0) == input_shape[0] &&
               grad_out.size(1) == input_shape[1],
           "upsample_nearest2d_backward: grad_out ", shape_str(grad_out.shape()), " does not fit input ",
           shape_str(input_shape));
  if (grad_out.numel() == 0 || shape_numel(input_shape) == 0)
    return Tensor::zeros(input_shape, grad_out.dtype(), grad_out.device());
  return backend<UpsampleBackend>(grad_out.device(), "upsample_nearest2d_backward")
      .upsample_nearest2d_backward(grad_out, input_shape, scale_h, scale_w);
}

namespace cpu {

static std::vector<int64_t> src_indices(int64_t in, int64_t out, double scale) {
  std::vector<int64_t> v(out);
  const float s = nearest_scale(in, out, scale);
  for (int64_t i = 0; i < out; ++i) v[i] = nearest_src(i, in, out, s);
  return v;
}

template <class T>
static void fwd(const T* xp, T* yp, int64_t planes, int64_t H, int64_t W, int64_t OH, int64_t OW,
                const std::vector<int64_t>& hs, const std::vector<int64_t>& ws) {
#pragma omp parallel for schedule(static)
  for (int64_t pl = 0; pl < planes; ++pl) {
    for (int64_t i = 0; i < OH; ++i) {
      const T* row = xp + (pl * H + hs[i]) * W;
      T* o = yp + (pl * OH + i) * OW;
      for (int64_t j = 0; j < OW; ++j) o[j] = row[ws[j]];
    }
  }
}

template <class T>
static void bwd(const T* gp, T* dp, int64_t planes, int64_t H, int64_t W, int64_t OH, int64_t OW,
                const std::vector<int64_t>& hs, const std::vector<int64_t>& ws) {
#pragma omp parallel for schedule(static)
  for (int64_t pl = 0; pl < planes; ++pl) {
    for (int64_t i = 0; i < OH; ++i) {
      T* row = dp + (pl * H + hs[i]) * W;
      const T* gi = gp + (pl * OH + i) * OW;
      for (int64_t j = 0; j < OW; ++j) row[ws[j]] += gi[j];
    }
  }
}

Tensor upsample_nearest2d_forward(const Tensor& x_, int64_t OH, int64_t OW, double scale_h, double scale_w) {
  Tensor x = x_.contiguous();
  const int64_t H = x.size(2), W = x.size(3);
  Tensor y = Tensor::empty({x.size(0), x.size(1), OH, OW}, x.dtype(), x.device());
  auto hs = src_indices(H, OH, scale_h), ws = src_indices(W, OW, scale_w);
  SX_DISPATCH_FLOAT(x.dtype(), "upsample_nearest2d", [&] {
    fwd<scalar_t>(x.data<scalar_t>(), y.data<scalar_t>(), x.size(0) * x.size(1), H, W, OH, OW, hs, ws);
  });
  return y;
}

Tensor upsample_nearest2d_backward(const Tensor& grad_out, const Shape& input_shape, double scale_h, double scale_w) {
  Tensor g = grad_out.contiguous();
  const int64_t H = input_shape[2], W = input_shape[3], OH = g.size(2), OW = g.size(3);
  Tensor dx = Tensor::zeros(input_shape, g.dtype(), g.device());
  auto hs = src_indices(H, OH, scale_h), ws = src_indices(W, OW, scale_w);
  SX_DISPATCH_FLOAT(g.dtype(), "upsample_nearest2d_backward", [&] {
    bwd<scalar_t>(g.data<scalar_t>(), dx.data<scalar_t>(), input_shape[0] * input_shape[1], H, W, OH, OW, hs, ws);
  });
  return dx;
}

}  // namespace cpu

}  // namespace sx::kernels

namespace sx::kernels {
const UpsampleBackend UpsampleBackend::cpu = {
    cpu::upsample_nearest2d_forward,
    cpu::upsample_nearest2d_backward};
}  // namespace sx::kernels
