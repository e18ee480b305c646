// Kernel lab, RoIAlign forward: v2 (the pre_calc table, one thread) is written here; v1, v3 and v4
// are the product's CPU paths, called as they are. See roi_align_lab.h and docs/labs.md.
#include "kernels/labs/roi_align_lab.h"

#include <vector>

#include "kernels/box_ops/checks.h"
#include "kernels/labs/one_thread.h"
#include "kernels/roi_align/roi_align_math.h"
#include "tensor/dispatch.h"

namespace sx::kernels::labs {
namespace {

// ---- v2: one table of bilinear taps per RoI, reused for every channel ----------------------
// Step over v1: v1 evaluates geometry -> sample position -> bilinear (clamps, floor, 4 offsets,
// 4 weights) for every sample of every channel: C times the same numbers. Here they are computed
// once per RoI into `table` (PH * PW * grid_h * grid_w entries, a few KB) and the channel loop
// only does 4 loads and 4 multiply-adds per sample. The summation order per output is v1's, so the
// results are bit-identical to v1.
template <class T>
void precalc_forward(const T* in, const T* r, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                     const RoiAlignParams& p, T* o) {
  const int64_t PH = p.pooled_h, PW = p.pooled_w;
  std::vector<roimath::Bilinear<T>> table;
  for (int64_t k = 0; k < K; ++k) {
    const T b = r[5 * k];
    SX_CHECK(!(b == b) || (b >= 0 && b < static_cast<T>(N)), "roi_align_v2_precalc: RoI ", k,
             " has batch index ", b, " but the input has ", N, " images");
    const auto g = roimath::geometry(r + 5 * k, N, static_cast<T>(p.spatial_scale), PH, PW,
                                     p.sampling_ratio, p.aligned);
    T* ok = o + k * C * PH * PW;
    if (g.batch < 0) {  // non-finite RoI: zeros, like the product
      for (int64_t i = 0; i < C * PH * PW; ++i) ok[i] = 0;
      continue;
    }
    table.clear();
    for (int64_t ph = 0; ph < PH; ++ph)
      for (int64_t pw = 0; pw < PW; ++pw)
        for (int iy = 0; iy < g.grid_h; ++iy)
          for (int ix = 0; ix < g.grid_w; ++ix)
            table.push_back(roimath::bilinear(H, W, roimath::sample_y(g, ph, iy), roimath::sample_x(g, pw, ix)));
    const int64_t S = static_cast<int64_t>(g.grid_h) * g.grid_w;
    for (int64_t c = 0; c < C; ++c) {
      const T* plane = in + (g.batch * C + c) * H * W;
      const roimath::Bilinear<T>* t = table.data();
      for (int64_t bin = 0; bin < PH * PW; ++bin) {
        T acc = 0;
        for (int64_t s = 0; s < S; ++s, ++t)
          if (t->valid) acc += roimath::interpolate(*t, plane);
        ok[c * PH * PW + bin] = acc / g.count;
      }
    }
  }
}

}  // namespace

Tensor roi_align_v1_per_output(const Tensor& input, const Tensor& rois, const RoiAlignParams& p) {
  return roi_align_forward(input, rois, p, RoiAlignAlgo::Naive);
}

Tensor roi_align_v2_precalc(const Tensor& input, const Tensor& rois, const RoiAlignParams& p) {
  const char* op = "roi_align_v2_precalc";
  detail::check_float(input, op, "input");
  detail::check_float(rois, op, "rois");
  detail::check_same_dtype(input, rois, op);
  SX_CHECK(input.dim() == 4, op, ": input must be [N, C, H, W], got ", shape_str(input.shape()));
  SX_CHECK(rois.dim() == 2 && rois.size(1) == 5, op, ": rois must be [K, 5], got ", shape_str(rois.shape()));
  SX_CHECK(p.pooled_h > 0 && p.pooled_w > 0, op, ": output size must be positive, got ", p.pooled_h, "x",
           p.pooled_w);
  SX_CHECK(!input.is_cuda() && !rois.is_cuda(), op, ": the labs run on the CPU only");
  Tensor x = input.contiguous(), r = rois.contiguous();
  Tensor out = Tensor::empty({r.size(0), x.size(1), p.pooled_h, p.pooled_w}, x.dtype());
  if (out.numel() == 0) return out;
  SX_DISPATCH_FLOAT(x.dtype(), op, [&] {
    precalc_forward(x.data<scalar_t>(), r.data<scalar_t>(), x.size(0), x.size(1), x.size(2), x.size(3),
                    r.size(0), p, out.data<scalar_t>());
  });
  return out;
}

// v3: step over v2: the table holds compact taps (32-bit offsets; a sample outside the image is a
// tap of weight 0 at offset 0, so the inner sum is branch-free) and the loop prefetches the pixel
// window of the channel two planes ahead (each channel plane is a different, uncached region of
// the feature map). One thread, to show what that alone buys.
Tensor roi_align_v3_fast_1thread(const Tensor& input, const Tensor& rois, const RoiAlignParams& p) {
  OneThread one;
  return roi_align_forward(input, rois, p, RoiAlignAlgo::Fast);
}

// v4: step over v3: OpenMP threads take whole RoIs (dynamic schedule: RoIs differ in size when
// the sampling grid is adaptive); each writes only its own output rows, so no synchronisation.
Tensor roi_align_v4_fast(const Tensor& input, const Tensor& rois, const RoiAlignParams& p) {
  return roi_align_forward(input, rois, p, RoiAlignAlgo::Fast);
}

const std::vector<RoiAlignVersion>& roi_align_versions() {
  static const std::vector<RoiAlignVersion> v = {
      {"v1_per_output", "every output element recomputes its samples (product Naive)", roi_align_v1_per_output},
      {"v2_precalc", "per-RoI table of bilinear taps reused for all channels", roi_align_v2_precalc},
      {"v3_fast_1thread", "compact branch-free taps + prefetch of the next planes (product Fast, 1 thread)",
       roi_align_v3_fast_1thread},
      {"v4_fast", "+ OpenMP threads over RoIs (product Fast)", roi_align_v4_fast},
  };
  return v;
}

}  // namespace sx::kernels::labs
