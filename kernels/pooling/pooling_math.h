// Window arithmetic of max pooling and adaptive average pooling, shared by the CPU loops and the
// CUDA kernels.
#pragma once
#include <cstdint>
#include <limits>

#include "tensor/host_device.h"

namespace sx::kernels::pool_math {

// torch's pooling_output_shape: floor (or ceil) division, and with ceil_mode the last window must
// start inside the input or the left padding.
HOST_DEVICE int64_t max_pool_out_size(int64_t in, int64_t k, int64_t pad, int64_t stride, int64_t dil, bool ceil_mode) {
  int64_t num = in + 2 * pad - dil * (k - 1) - 1 + (ceil_mode ? stride - 1 : 0);
  int64_t out = (num >= 0 ? num / stride : -((-num + stride - 1) / stride)) + 1;
  if (ceil_mode && (out - 1) * stride >= in + pad) --out;
  return out;
}

// The better of (v, i) and the current (best, best_i): larger value wins, the first NaN wins and
// stays, ties keep the earlier index (scan order). best_i < 0 means "nothing yet".
template <class T>
HOST_DEVICE bool max_takes(T v, T best, int64_t best_i) {
  return best_i < 0 || (!(best != best) && (v > best || v != v));
}

// Adaptive pooling cell [start, end) of output i along an axis of length `in` split into `out`.
HOST_DEVICE int64_t adaptive_start(int64_t i, int64_t in, int64_t out) { return (i * in) / out; }
HOST_DEVICE int64_t adaptive_end(int64_t i, int64_t in, int64_t out) { return ((i + 1) * in + out - 1) / out; }

// Max-pool window scan for one output: the window starts at input row h0 / column w0 (already shifted
// by the padding), has kh x kw taps spaced dh / dw apart, and taps outside the H x W plane are
// skipped. Writes the window's maximum (max_takes rules) and its flat index h * W + w in the plane;
// a window with no valid tap yields -inf and index 0.
template <class T>
HOST_DEVICE void max_pool_window(const T* in, int64_t H, int64_t W, int64_t h0, int64_t w0, int64_t kh, int64_t kw,
                                 int64_t dh, int64_t dw, T* best_out, int64_t* idx_out) {
  T best = -std::numeric_limits<T>::infinity();
  int64_t bi = -1;
  for (int64_t i = 0; i < kh; ++i) {
    const int64_t h = h0 + i * dh;
    if (h < 0 || h >= H) continue;
    for (int64_t j = 0; j < kw; ++j) {
      const int64_t w = w0 + j * dw;
      if (w < 0 || w >= W) continue;
      const T v = in[h * W + w];
      if (max_takes(v, best, bi)) {
        best = v;
        bi = h * W + w;
      }
    }
  }
  *best_out = best;
  *idx_out = bi < 0 ? 0 : bi;
}

// The same scan for a window known to lie inside the plane (no tap checked against the borders),
// with the same rules; the comparison is written without branches so that the compiler can use
// conditional moves. Gives the value and index max_pool_window gives for such a window.
// KH / KW > 0 fix the window size at compile time (the loops unroll: ResNet's 3x3); 0 reads kh / kw.
template <int KH = 0, int KW = 0, class T>
HOST_DEVICE void max_pool_window_inside(const T* in, int64_t W, int64_t h0, int64_t w0, int64_t kh, int64_t kw,
                                        int64_t dh, int64_t dw, T* best_out, int64_t* idx_out) {
  if (KH > 0) kh = KH;
  if (KW > 0) kw = KW;
  int bi = 0;  // tap number in scan order
  T best = in[h0 * W + w0];  // the first tap always takes (max_takes with best_i < 0)
  for (int64_t i = 0; i < kh; ++i) {
    const T* row = in + (h0 + i * dh) * W + w0;
    for (int64_t j = 0; j < kw; ++j) {
      const T v = row[j * dw];
      const bool take = !(best != best) && (v > best || v != v);  // max_takes with best_i >= 0
      best = take ? v : best;
      bi = take ? static_cast<int>(i * kw + j) : bi;
    }
  }
  const int64_t bh = bi / kw, bw = bi - bh * kw;
  *best_out = best;
  *idx_out = (h0 + bh * dh) * W + w0 + bw * dw;
}

// Outputs [lo, hi) along one axis whose whole window (k taps, stride s, padding pad, dilation d)
// lies inside an axis of length n (out outputs in all).
HOST_DEVICE void max_pool_inside_range(int64_t n, int64_t k, int64_t s, int64_t pad, int64_t d, int64_t out,
                                       int64_t& lo, int64_t& hi) {
  lo = (pad + s - 1) / s;  // o * s - pad >= 0
  if (lo > out) lo = out;
  const int64_t num = n - 1 + pad - (k - 1) * d;  // o * s - pad + (k - 1) * d <= n - 1
  hi = num < 0 ? 0 : num / s + 1;
  if (hi > out) hi = out;
  if (hi < lo) hi = lo;
}

// Mean of the adaptive cell [h0, h1) x [w0, w1) of a plane with row length W (row-major sum order).
template <class T>
HOST_DEVICE T adaptive_cell_mean(const T* in, int64_t W, int64_t h0, int64_t h1, int64_t w0, int64_t w1) {
  T s = 0;
  for (int64_t h = h0; h < h1; ++h)
    for (int64_t w = w0; w < w1; ++w) s += in[h * W + w];
  return s / static_cast<T>((h1 - h0) * (w1 - w0));
}

}  // namespace sx::kernels::pool_math
