// CPU RoIAlign over the shared math in roi_align_math.h.
//
// Naive: one output element at a time, every bilinear sample recomputed for each of the C channels
// (what a CUDA thread does).
// Fast: the sample positions and weights of one RoI depend only on the RoI, not on the channel, so
// they are computed once into a table (ph, pw, iy, ix) -> (4 offsets, 4 weights) and reused for
// all C channels (torchvision's pre_calc). Forward: RoIs are independent, so OpenMP threads take
// whole RoIs. Backward: two RoIs may touch the same input pixel, so threads take fixed channel
// ranges instead (each channel plane of grad_input has a single writer): deterministic without
// atomics, in one parallel region.
#include <omp.h>

#include <algorithm>

#include <vector>

#include "kernels/roi_align/roi_align.h"
#include "kernels/roi_align/roi_align_math.h"

namespace sx::kernels::cpu {
namespace {

using roimath::Bilinear;
using roimath::RoiGeom;

// A compact table entry: 32-bit plane offsets (a plane has < 2^31 pixels, checked by the caller)
// and weights; samples outside the image get weight 0 at offset 0, so the forward sum is
// branch-free (0 * x adds nothing for finite x, as in torchvision's CPU pre_calc).
template <class T>
struct Tap {
  int32_t p1, p2, p3, p4;
  T w1, w2, w3, w4;
  bool valid;
};

// The pixel window a RoI's taps touch in one plane, for software prefetching: each channel plane
// is a different, usually uncached, region of a large feature map, so the loop is bound by
// memory latency unless the rows of the next channels are requested ahead.
struct Window {
  int64_t r0 = 1, r1 = 0, c0 = 0, c1 = 0;  // rows [r0, r1], cols [c0, c1]; empty when r0 > r1
};

template <class T>
void prefetch_window(const T* plane, const Window& w, int64_t W, int rw) {
  constexpr int64_t kLine = 64 / sizeof(T);
  for (int64_t r = w.r0; r <= w.r1; ++r) {
    const T* row = plane + r * W;
    for (int64_t c = w.c0; c <= w.c1; c += kLine) __builtin_prefetch(row + c, rw, 3);
    __builtin_prefetch(row + w.c1, rw, 3);
  }
}

template <class T>
void precalc(const RoiGeom<T>& g, int64_t H, int64_t W, int64_t PH, int64_t PW, std::vector<Tap<T>>& table,
             Window& win) {
  table.clear();
  win = Window{H, -1, W, -1};
  table.reserve(static_cast<size_t>(PH * PW * g.grid_h * g.grid_w));
  for (int64_t ph = 0; ph < PH; ++ph)
    for (int64_t pw = 0; pw < PW; ++pw)
      for (int iy = 0; iy < g.grid_h; ++iy) {
        const T y = roimath::sample_y(g, ph, iy);
        for (int ix = 0; ix < g.grid_w; ++ix) {
          const Bilinear<T> b = roimath::bilinear(H, W, y, roimath::sample_x(g, pw, ix));
          table.push_back(Tap<T>{static_cast<int32_t>(b.p1), static_cast<int32_t>(b.p2),
                                 static_cast<int32_t>(b.p3), static_cast<int32_t>(b.p4), b.w1, b.w2,
                                 b.w3, b.w4, b.valid});
          if (b.valid) {
            win.r0 = std::min(win.r0, b.p1 / W);
            win.r1 = std::max(win.r1, b.p4 / W);
            win.c0 = std::min(win.c0, b.p1 % W);
            win.c1 = std::max(win.c1, b.p4 % W);
          }
        }
      }
}

bool on_level(const int64_t* levels, int64_t level, int64_t k) { return !levels || levels[k] == level; }


template <class T>
void check_batch_indices(const T* r, int64_t K, int64_t N, const int64_t* lv, int64_t level,
                         const char* op) {
  for (int64_t k = 0; k < K; ++k) {
    const T b = r[5 * k];
    SX_CHECK(!(b == b) || (b >= 0 && b < static_cast<T>(N)) || !on_level(lv, level, k), op,
             ": RoI ", k, " has batch index ", b, " but the input has ", N, " images");
  }
}

template <class T>
void forward_impl(const T* in, const T* r, const int64_t* lv, int64_t level, int64_t N, int64_t C,
                  int64_t H, int64_t W, int64_t K, const RoiAlignParams& p, RoiAlignAlgo algo, T* o) {
  const int64_t PH = p.pooled_h, PW = p.pooled_w;
  const T scale = static_cast<T>(p.spatial_scale);
  check_batch_indices(r, K, N, lv, level, "roi_align");
  SX_CHECK(H * W < (int64_t(1) << 31), "roi_align: a feature plane of ", H, "x", W, " pixels is too large");
  if (algo == RoiAlignAlgo::Naive) {
    for (int64_t k = 0; k < K; ++k) {
      if (!on_level(lv, level, k)) continue;
      const auto g = roimath::geometry(r + 5 * k, N, scale, PH, PW, p.sampling_ratio, p.aligned);
      for (int64_t c = 0; c < C; ++c) {
        T* oc = o + (k * C + c) * PH * PW;
        if (g.batch < 0) {
          for (int64_t i = 0; i < PH * PW; ++i) oc[i] = 0;
          continue;
        }
        const T* plane = in + (g.batch * C + c) * H * W;
        for (int64_t ph = 0; ph < PH; ++ph)
          for (int64_t pw = 0; pw < PW; ++pw) oc[ph * PW + pw] = roimath::pool_bin(g, plane, H, W, ph, pw);
      }
    }
    return;
  }
  const bool par = K * C * PH * PW > 8192;
#pragma omp parallel if (par)
  {
    std::vector<Tap<T>> table;
    Window win;
#pragma omp for schedule(dynamic, 1)
    for (int64_t k = 0; k < K; ++k) {
      if (!on_level(lv, level, k)) continue;
      const auto g = roimath::geometry(r + 5 * k, N, scale, PH, PW, p.sampling_ratio, p.aligned);
      T* ok = o + k * C * PH * PW;
      if (g.batch < 0) {
        for (int64_t i = 0; i < C * PH * PW; ++i) ok[i] = 0;
        continue;
      }
      precalc(g, H, W, PH, PW, table, win);
      const int64_t S = static_cast<int64_t>(g.grid_h) * g.grid_w;
      const T* planes = in + g.batch * C * H * W;
      for (int64_t c = 0; c < 2 && c < C; ++c) prefetch_window(planes + c * H * W, win, W, 0);
      for (int64_t c = 0; c < C; ++c) {
        const T* plane = planes + c * H * W;
        if (c + 2 < C) prefetch_window(plane + 2 * H * W, win, W, 0);
        T* oc = ok + c * PH * PW;
        const Tap<T>* t = table.data();
        for (int64_t bin = 0; bin < PH * PW; ++bin) {
          T acc = 0;
          for (int64_t s = 0; s < S; ++s, ++t)
            acc += t->w1 * plane[t->p1] + t->w2 * plane[t->p2] + t->w3 * plane[t->p3] + t->w4 * plane[t->p4];
          oc[bin] = acc / g.count;
        }
      }
    }
  }
}

// torchvision: g_i = grad * w_i / count, added to the four neighbours.
template <class B, class T>
inline void scatter(const B& t, T g, T count, T* plane) {
  plane[t.p1] += g * t.w1 / count;
  plane[t.p2] += g * t.w2 / count;
  plane[t.p3] += g * t.w3 / count;
  plane[t.p4] += g * t.w4 / count;
}

template <class T>
void backward_impl(const T* go, const T* r, const int64_t* lv, int64_t level, int64_t N, int64_t C,
                   int64_t H, int64_t W, int64_t K, const RoiAlignParams& p, RoiAlignAlgo algo, T* gi) {
  const int64_t PH = p.pooled_h, PW = p.pooled_w;
  const T scale = static_cast<T>(p.spatial_scale);
  check_batch_indices(r, K, N, lv, level, "roi_align_backward");
  SX_CHECK(H * W < (int64_t(1) << 31), "roi_align_backward: a feature plane of ", H, "x", W, " pixels is too large");
  if (algo == RoiAlignAlgo::Naive) {
    for (int64_t k = 0; k < K; ++k) {
      if (!on_level(lv, level, k)) continue;
      const auto g = roimath::geometry(r + 5 * k, N, scale, PH, PW, p.sampling_ratio, p.aligned);
      if (g.batch < 0) continue;
      for (int64_t c = 0; c < C; ++c) {
        T* plane = gi + (g.batch * C + c) * H * W;
        for (int64_t ph = 0; ph < PH; ++ph)
          for (int64_t pw = 0; pw < PW; ++pw) {
            const T gv = go[((k * C + c) * PH + ph) * PW + pw];
            for (int iy = 0; iy < g.grid_h; ++iy) {
              const T y = roimath::sample_y(g, ph, iy);
              for (int ix = 0; ix < g.grid_w; ++ix) {
                const auto t = roimath::bilinear(H, W, y, roimath::sample_x(g, pw, ix));
                if (t.valid) scatter(t, gv, g.count, plane);
              }
            }
          }
      }
    }
    return;
  }
  // One parallel region; thread t owns a fixed range of channels for every RoI (each thread
  // recomputes the small per-RoI tables), so no two threads write the same grad_input plane and
  // the summation order is the sequential one: deterministic, and no barrier per RoI.
  const bool par = K * C * PH * PW > 8192;
#pragma omp parallel if (par)
  {
    const int nth = omp_get_num_threads(), tid = omp_get_thread_num();
    const int64_t c0 = C * tid / nth, c1 = C * (tid + 1) / nth;
    std::vector<Tap<T>> table;
    Window win;
    for (int64_t k = 0; k < K && c0 < c1; ++k) {
      if (!on_level(lv, level, k)) continue;
      const auto g = roimath::geometry(r + 5 * k, N, scale, PH, PW, p.sampling_ratio, p.aligned);
      if (g.batch < 0) continue;
      precalc(g, H, W, PH, PW, table, win);
      const int64_t S = static_cast<int64_t>(g.grid_h) * g.grid_w;
      for (int64_t c = c0; c < c1; ++c) {
        T* plane = gi + (g.batch * C + c) * H * W;
        if (c + 2 < c1) prefetch_window(plane + 2 * H * W, win, W, 1);
        const T* gk = go + (k * C + c) * PH * PW;
        const Tap<T>* t = table.data();
        for (int64_t bin = 0; bin < PH * PW; ++bin) {
          const T gv = gk[bin];
          for (int64_t s = 0; s < S; ++s, ++t)
            if (t->valid) scatter(*t, gv, g.count, plane);
        }
      }
    }
  }
}

}  // namespace

void roi_align_forward_into(const Tensor& input, const Tensor& rois, const Tensor& levels,
                            int64_t level, const RoiAlignParams& p, RoiAlignAlgo algo, Tensor& out) {
  const int64_t* lv = levels.defined() ? levels.data<int64_t>() : nullptr;
  SX_DISPATCH_FLOAT(input.dtype(), "roi_align", [&] {
    forward_impl(input.data<scalar_t>(), rois.data<scalar_t>(), lv, level, input.size(0),
                 input.size(1), input.size(2), input.size(3), rois.size(0), p, algo,
                 out.data<scalar_t>());
  });
}

void roi_align_backward_into(const Tensor& grad_out, const Tensor& rois, const Tensor& levels,
                             int64_t level, const RoiAlignParams& p, bool /*deterministic*/,
                             RoiAlignAlgo algo, Tensor& grad_input) {
  const int64_t* lv = levels.defined() ? levels.data<int64_t>() : nullptr;
  SX_DISPATCH_FLOAT(grad_input.dtype(), "roi_align_backward", [&] {
    backward_impl(grad_out.data<scalar_t>(), rois.data<scalar_t>(), lv, level, grad_input.size(0),
                  grad_input.size(1), grad_input.size(2), grad_input.size(3), rois.size(0), p, algo,
                  grad_input.data<scalar_t>());
  });
}

Tensor fpn_levels(const Tensor& rois, int64_t k_min, int64_t k_max, double s0, int64_t k0, double eps) {
  const int64_t K = rois.size(0);
  Tensor out = Tensor::empty({K}, DType::Int64);
  int64_t* o = out.data<int64_t>();
  SX_DISPATCH_FLOAT(rois.dtype(), "fpn_levels", [&] {
    const scalar_t* r = rois.data<scalar_t>();
    for (int64_t k = 0; k < K; ++k) o[k] = roimath::fpn_level(r + 5 * k, k_min, k_max, s0, k0, eps);
  });
  return out;
}

}  // namespace sx::kernels::cpu

namespace sx::kernels {
const RoiAlignBackend RoiAlignBackend::cpu = {
    cpu::roi_align_forward_into,
    cpu::roi_align_backward_into,
    cpu::fpn_levels};
}  // namespace sx::kernels
