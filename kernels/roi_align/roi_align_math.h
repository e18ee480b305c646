// RoIAlign per-RoI geometry and per-sample bilinear weights, shared by the CPU loops and the CUDA
// kernels. The arithmetic and its order follow torchvision's roi_align kernels (csrc/ops/cpu and
// cuda roi_align_kernel), so float results agree with torchvision to the last bit on the CPU.
#pragma once
#include <math.h>

#include <cstdint>

#include "tensor/host_device.h"

namespace sx::kernels::roimath {

constexpr int kMaxGrid = 512;  // cap on the adaptive sampling grid per bin and axis

template <class T>
struct RoiGeom {
  int64_t batch;  // -1: skip this RoI (non-finite box or bad batch index)
  T start_h, start_w, bin_h, bin_w;
  int grid_h, grid_w;
  T count;
};

template <class T> HOST_DEVICE bool finite(T v) { return v == v && v - v == T(0); }

template <class T>
HOST_DEVICE RoiGeom<T> geometry(const T* roi, int64_t batch_size, T spatial_scale, int64_t pooled_h,
                                int64_t pooled_w, int64_t sampling_ratio, bool aligned) {
  RoiGeom<T> g;
  g.batch = -1;
  g.start_h = g.start_w = g.bin_h = g.bin_w = T(0);
  g.grid_h = g.grid_w = 1;
  g.count = T(1);
  for (int k = 0; k < 5; ++k)
    if (!finite(roi[k])) return g;
  const T b = roi[0];
  if (b < T(0) || b >= T(batch_size)) return g;
  const T offset = aligned ? T(0.5) : T(0);
  const T sw = roi[1] * spatial_scale - offset;
  const T sh = roi[2] * spatial_scale - offset;
  const T ew = roi[3] * spatial_scale - offset;
  const T eh = roi[4] * spatial_scale - offset;
  T rw = ew - sw;
  T rh = eh - sh;
  if (!aligned) {
    rw = rw > T(1) ? rw : T(1);
    rh = rh > T(1) ? rh : T(1);
  }
  g.batch = static_cast<int64_t>(b);
  g.start_h = sh;
  g.start_w = sw;
  g.bin_h = rh / static_cast<T>(pooled_h);
  g.bin_w = rw / static_cast<T>(pooled_w);
  if (sampling_ratio > 0) {
    g.grid_h = g.grid_w = static_cast<int>(sampling_ratio > kMaxGrid ? kMaxGrid : sampling_ratio);
  } else {
    const T gh = ceil(rh / static_cast<T>(pooled_h));
    const T gw = ceil(rw / static_cast<T>(pooled_w));
    // aligned RoIs can be inverted (negative size): ceil < 1 gives an empty grid, count 1, output 0.
    g.grid_h = gh < T(0) ? 0 : (gh > T(kMaxGrid) ? kMaxGrid : static_cast<int>(gh));
    g.grid_w = gw < T(0) ? 0 : (gw > T(kMaxGrid) ? kMaxGrid : static_cast<int>(gw));
  }
  const int c = g.grid_h * g.grid_w;
  g.count = static_cast<T>(c > 1 ? c : 1);
  return g;
}

// Sample coordinates: bin (ph, pw), sub-sample (iy, ix).
template <class T> HOST_DEVICE T sample_y(const RoiGeom<T>& g, int64_t ph, int iy) {
  return g.start_h + static_cast<T>(ph) * g.bin_h +
         static_cast<T>(iy + .5f) * g.bin_h / static_cast<T>(g.grid_h);
}
template <class T> HOST_DEVICE T sample_x(const RoiGeom<T>& g, int64_t pw, int ix) {
  return g.start_w + static_cast<T>(pw) * g.bin_w +
         static_cast<T>(ix + .5f) * g.bin_w / static_cast<T>(g.grid_w);
}

// The four neighbours of a sample (offsets into one H x W plane) and their weights.
// valid == false: the sample lies outside [-1, H] x [-1, W] and contributes nothing.
template <class T>
struct Bilinear {
  int64_t p1, p2, p3, p4;
  T w1, w2, w3, w4;
  bool valid;
};

template <class T>
HOST_DEVICE Bilinear<T> bilinear(int64_t height, int64_t width, T y, T x) {
  Bilinear<T> b;
  if (y < T(-1.0) || y > T(height) || x < T(-1.0) || x > T(width)) {
    b.p1 = b.p2 = b.p3 = b.p4 = 0;
    b.w1 = b.w2 = b.w3 = b.w4 = T(0);
    b.valid = false;
    return b;
  }
  if (y <= T(0)) y = T(0);
  if (x <= T(0)) x = T(0);
  int64_t y_low = static_cast<int64_t>(y), x_low = static_cast<int64_t>(x), y_high, x_high;
  if (y_low >= height - 1) {
    y_high = y_low = height - 1;
    y = static_cast<T>(y_low);
  } else {
    y_high = y_low + 1;
  }
  if (x_low >= width - 1) {
    x_high = x_low = width - 1;
    x = static_cast<T>(x_low);
  } else {
    x_high = x_low + 1;
  }
  const T ly = y - static_cast<T>(y_low), lx = x - static_cast<T>(x_low);
  const T hy = T(1.) - ly, hx = T(1.) - lx;
  b.w1 = hy * hx;
  b.w2 = hy * lx;
  b.w3 = ly * hx;
  b.w4 = ly * lx;
  b.p1 = y_low * width + x_low;
  b.p2 = y_low * width + x_high;
  b.p3 = y_high * width + x_low;
  b.p4 = y_high * width + x_high;
  b.valid = true;
  return b;
}

template <class T> HOST_DEVICE T interpolate(const Bilinear<T>& b, const T* plane) {
  return b.w1 * plane[b.p1] + b.w2 * plane[b.p2] + b.w3 * plane[b.p3] + b.w4 * plane[b.p4];
}

// One output element, computed directly (naive CPU loop and the CUDA forward kernel).
template <class T>
HOST_DEVICE T pool_bin(const RoiGeom<T>& g, const T* plane, int64_t height, int64_t width, int64_t ph,
                       int64_t pw) {
  T acc = T(0);
  for (int iy = 0; iy < g.grid_h; ++iy) {
    const T y = sample_y(g, ph, iy);
    for (int ix = 0; ix < g.grid_w; ++ix) {
      const T x = sample_x(g, pw, ix);
      const Bilinear<T> b = bilinear(height, width, y, x);
      if (b.valid) acc += interpolate(b, plane);
    }
  }
  return acc / g.count;
}

// FPN level of one RoI row (b, x1, y1, x2, y2), torchvision's LevelMapper in the RoIs' dtype:
// floor(k0 + log2(sqrt(area) / s0) + eps) clamped to [k_min, k_max], minus k_min. A NaN (or
// negative-area) box goes to level 0.
HOST_DEVICE float msqrt(float v) { return sqrtf(v); }
HOST_DEVICE double msqrt(double v) { return sqrt(v); }
HOST_DEVICE float mlog2(float v) { return log2f(v); }
HOST_DEVICE double mlog2(double v) { return log2(v); }
HOST_DEVICE float mfloor(float v) { return floorf(v); }
HOST_DEVICE double mfloor(double v) { return floor(v); }

template <class T>
HOST_DEVICE int64_t fpn_level(const T* roi, int64_t k_min, int64_t k_max, double s0, int64_t k0,
                              double eps) {
  const T area = (roi[3] - roi[1]) * (roi[4] - roi[2]);
  const T s = msqrt(area);
  T v = mfloor(static_cast<T>(k0) + mlog2(s / static_cast<T>(s0)) + static_cast<T>(eps));
  if (v != v) return 0;
  if (v < static_cast<T>(k_min)) v = static_cast<T>(k_min);
  if (v > static_cast<T>(k_max)) v = static_cast<T>(k_max);
  return static_cast<int64_t>(v) - k_min;
}

// ---- deterministic (fixed-point) accumulation, used by the CUDA backward ------------------------
// scale = 2^(62 - ceil(log2 S)) for S = sum |grad_out| > 0, so that every partial sum of rounded
// contributions stays below 2^62 in magnitude; 1 when S == 0; 0 (meaning "give NaN") when S is not
// finite. Contributions are added as int64 (two's complement wrap-around is associative, so the
// order of the atomic adds does not change a single bit of the result).
HOST_DEVICE double fixed_point_scale(double abs_sum) {
  if (!(abs_sum - abs_sum == 0.0)) return 0.0;  // inf or NaN
  if (abs_sum <= 0.0) return 1.0;
  return exp2(62.0 - ceil(log2(abs_sum)));
}
HOST_DEVICE unsigned long long to_fixed(double v, double scale) {
  return static_cast<unsigned long long>(llrint(v * scale));
}
HOST_DEVICE double from_fixed(unsigned long long acc, double scale) {
  return static_cast<double>(static_cast<long long>(acc)) / scale;
}

}  // namespace sx::kernels::roimath
