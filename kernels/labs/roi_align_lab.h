// Kernel lab, RoIAlign forward: the versions from naive to fast, side by side (docs/labs.md tells
// the story, bench/bench_labs.cpp times them, tests/kernels/test_labs.cpp checks they agree).
//
// All versions compute kernels/roi_align's forward (torchvision semantics) from the same
// per-sample math (roi_align_math.h: geometry, sample_y/x, bilinear, interpolate); only the order
// of the work and what is reused change:
//   v1 per_output : every output element (k, c, ph, pw) recomputes its bilinear samples: positions,
//                   neighbours and weights are recomputed C times per RoI. The product's
//                   RoiAlignAlgo::Naive (what one CUDA thread does), called as it is.
//   v2 precalc    : the samples of a RoI depend on the RoI, not on the channel: compute the table
//                   (ph, pw, iy, ix) -> 4 offsets + 4 weights once per RoI, reuse it for all C
//                   channels (torchvision's CPU pre_calc). Written here, single thread.
//   v3 fast_1t    : the product's RoiAlignAlgo::Fast on one thread: compact taps (32-bit offsets,
//                   weight 0 for a sample outside the image, so the inner sum has no branch) and a
//                   software prefetch of the next channels' pixel windows.
//   v4 fast       : the same with OpenMP threads over RoIs (RoIs write disjoint outputs).
// Backward (no lab version): the per-output RoiAlignAlgo::Naive and the pre_calc Fast with threads over
// channel ranges are both in roi_align_cpu.cpp; bench_labs times them too.
#pragma once
#include <vector>

#include "kernels/roi_align/roi_align.h"
#include "tensor/tensor.h"

namespace sx::kernels::labs {

Tensor roi_align_v1_per_output(const Tensor& input, const Tensor& rois, const RoiAlignParams& p);
Tensor roi_align_v2_precalc(const Tensor& input, const Tensor& rois, const RoiAlignParams& p);
Tensor roi_align_v3_fast_1thread(const Tensor& input, const Tensor& rois, const RoiAlignParams& p);
Tensor roi_align_v4_fast(const Tensor& input, const Tensor& rois, const RoiAlignParams& p);

struct RoiAlignVersion {
  const char* name;
  const char* step;
  Tensor (*fn)(const Tensor& input, const Tensor& rois, const RoiAlignParams& p);
};
const std::vector<RoiAlignVersion>& roi_align_versions();

}  // namespace sx::kernels::labs
