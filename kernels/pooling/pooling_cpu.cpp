// Pooling on the CPU: every (n, c) plane is independent, so OpenMP splits the planes; within a
// plane each output scans its window (max pooling; windows inside the plane without border checks)
// or cell (adaptive average). The backward
// passes scatter into the plane's input gradient, which only this thread touches.
#include "kernels/pooling/pooling.h"
#include "kernels/pooling/pooling_math.h"

namespace sx::kernels::cpu {

using namespace pool_math;

namespace {

template <class T>
void max_fwd(const T* xp, T* yp, int64_t* ip, int64_t planes, int64_t H, int64_t W, int64_t P, int64_t Q,
             const MaxPool2dParams& p) {
  // Windows inside the plane (all but a border one output wide, for ResNet's 3x3/2 pad 1) skip
  // the per-tap border checks: max_pool_window_inside.
  int64_t plo, phi, qlo, qhi;
  max_pool_inside_range(H, p.kernel_h, p.stride_h, p.pad_h, p.dil_h, P, plo, phi);
  max_pool_inside_range(W, p.kernel_w, p.stride_w, p.pad_w, p.dil_w, Q, qlo, qhi);
  const bool k3x3 = p.kernel_h == 3 && p.kernel_w == 3;
#pragma omp parallel for schedule(static)
  for (int64_t pl = 0; pl < planes; ++pl) {
    const T* in = xp + pl * H * W;
    for (int64_t op = 0; op < P; ++op) {
      const int64_t h0 = op * p.stride_h - p.pad_h;
      const bool row_inside = op >= plo && op < phi;
      for (int64_t oq = 0; oq < Q; ++oq) {
        const int64_t o = (pl * P + op) * Q + oq;
        const int64_t w0 = oq * p.stride_w - p.pad_w;
        if (row_inside && oq >= qlo && oq < qhi) {
          if (k3x3) max_pool_window_inside<3, 3>(in, W, h0, w0, 3, 3, p.dil_h, p.dil_w, yp + o, ip + o);
          else max_pool_window_inside(in, W, h0, w0, p.kernel_h, p.kernel_w, p.dil_h, p.dil_w, yp + o, ip + o);
        } else
          max_pool_window(in, H, W, h0, w0, p.kernel_h, p.kernel_w, p.dil_h, p.dil_w, yp + o, ip + o);
      }
    }
  }
}

template <class T>
void max_bwd(const T* gp, const int64_t* ip, T* dp, int64_t planes, int64_t HW, int64_t PQ) {
#pragma omp parallel for schedule(static)
  for (int64_t pl = 0; pl < planes; ++pl) {
    for (int64_t k = 0; k < PQ; ++k) {
      const int64_t i = ip[pl * PQ + k];
      if (i >= 0 && i < HW) dp[pl * HW + i] += gp[pl * PQ + k];
    }
  }
}

template <class T>
void avg_fwd(const T* xp, T* yp, int64_t planes, int64_t H, int64_t W, int64_t OH, int64_t OW) {
#pragma omp parallel for schedule(static)
  for (int64_t pl = 0; pl < planes; ++pl) {
    const T* in = xp + pl * H * W;
    for (int64_t i = 0; i < OH; ++i) {
      const int64_t h0 = adaptive_start(i, H, OH), h1 = adaptive_end(i, H, OH);
      for (int64_t j = 0; j < OW; ++j) {
        const int64_t w0 = adaptive_start(j, W, OW), w1 = adaptive_end(j, W, OW);
        yp[(pl * OH + i) * OW + j] = adaptive_cell_mean(in, W, h0, h1, w0, w1);
      }
    }
  }
}

template <class T>
void avg_bwd(const T* gp, T* dp, int64_t planes, int64_t H, int64_t W, int64_t OH, int64_t OW) {
#pragma omp parallel for schedule(static)
  for (int64_t pl = 0; pl < planes; ++pl) {
    T* out = dp + pl * H * W;
    for (int64_t i = 0; i < OH; ++i) {
      const int64_t h0 = adaptive_start(i, H, OH), h1 = adaptive_end(i, H, OH);
      for (int64_t j = 0; j < OW; ++j) {
        const int64_t w0 = adaptive_start(j, W, OW), w1 = adaptive_end(j, W, OW);
        const T v = gp[(pl * OH + i) * OW + j] / static_cast<T>((h1 - h0) * (w1 - w0));
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t w = w0; w < w1; ++w) out[h * W + w] += v;
      }
    }
  }
}

}  // namespace

std::pair<Tensor, Tensor> max_pool2d_forward(const Tensor& x_, const MaxPool2dParams& p) {
  Tensor x = x_.contiguous();
  Shape os = max_pool2d_output_shape(x.shape(), p);
  Tensor y = Tensor::empty(os, x.dtype(), x.device());
  Tensor idx = Tensor::empty(os, DType::Int64, x.device());
  SX_DISPATCH_FLOAT(x.dtype(), "max_pool2d", [&] {
    max_fwd<scalar_t>(x.data<scalar_t>(), y.data<scalar_t>(), idx.data<int64_t>(), os[0] * os[1], x.size(2),
                      x.size(3), os[2], os[3], p);
  });
  return {y, idx};
}

Tensor max_pool2d_backward(const Tensor& grad_out, const Tensor& indices, const Shape& input_shape) {
  Tensor g = grad_out.contiguous(), idx = indices.contiguous();
  Tensor dx = Tensor::zeros(input_shape, g.dtype(), g.device());
  SX_DISPATCH_FLOAT(g.dtype(), "max_pool2d_backward", [&] {
    max_bwd<scalar_t>(g.data<scalar_t>(), idx.data<int64_t>(), dx.data<scalar_t>(), input_shape[0] * input_shape[1],
                      input_shape[2] * input_shape[3], g.size(2) * g.size(3));
  });
  return dx;
}

Tensor adaptive_avg_pool2d_forward(const Tensor& x_, int64_t OH, int64_t OW) {
  Tensor x = x_.contiguous();
  Tensor y = Tensor::empty({x.size(0), x.size(1), OH, OW}, x.dtype(), x.device());
  SX_DISPATCH_FLOAT(x.dtype(), "adaptive_avg_pool2d", [&] {
    avg_fwd<scalar_t>(x.data<scalar_t>(), y.data<scalar_t>(), x.size(0) * x.size(1), x.size(2), x.size(3), OH, OW);
  });
  return y;
}

Tensor adaptive_avg_pool2d_backward(const Tensor& grad_out, const Shape& input_shape) {
  Tensor g = grad_out.contiguous();
  Tensor dx = Tensor::zeros(input_shape, g.dtype(), g.device());
  SX_DISPATCH_FLOAT(g.dtype(), "adaptive_avg_pool2d_backward", [&] {
    avg_bwd<scalar_t>(g.data<scalar_t>(), dx.data<scalar_t>(), input_shape[0] * input_shape[1], input_shape[2],
                      input_shape[3], g.size(2), g.size(3));
  });
  return dx;
}

}  // namespace sx::kernels::cpu

namespace sx::kernels {
const PoolingBackend PoolingBackend::cpu = {
    cpu::max_pool2d_forward,
    cpu::max_pool2d_backward,
    cpu::adaptive_avg_pool2d_forward,
    cpu::adaptive_avg_pool2d_backward};
}  // namespace sx::kernels
