// Kernel lab, NMS: the versions from naive to fast, side by side (docs/labs.md tells the story,
// bench/bench_labs.cpp times them, tests/kernels/test_labs.cpp checks they all keep the same boxes).
//
// Every version makes the same greedy decisions as kernels/nms (visit boxes by decreasing score,
// ties by increasing index, NaN first; keep a box unless a kept box has IoU > threshold with it),
// with the same IoU arithmetic (nms_math.h: suppresses), so all return the identical int64 [K]
// kept indices. Only the order of the work changes:
//   v1 argmax   : no sort; repeatedly scan for the best remaining box, keep it, scan again to
//                 suppress its overlaps. O(N * K) scans for K kept boxes.
//   v2 sort     : sort once, then one greedy sweep with a `suppressed` flag per box. This IS the
//                 product's NmsAlgo::Naive (kernels/nms/nms_cpu.cpp greedy_naive, torchvision's
//                 CPU loop): the lab calls it rather than copying it.
//   v3 bitmask  : sort once; compute every "i suppresses j" bit up front, rows of 64-bit words
//                 (independent rows: parallel), then a sequential reduction over 64-box groups.
//                 The CUDA kernel's structure (nms_cuda.cu) on the CPU, over its own pieces
//                 (nms_math.h: mask_word, resolve_group).
//   v4 grid     : the product's NmsAlgo::Fast: kept boxes binned into a uniform grid; a candidate
//                 meets only kept boxes in its cells. O(N * local density).
// Single class for v1/v2/v4 here (batched NMS: docs/labs.md); v3 also takes categories and
// max_output because tests/kernels/test_nms.cpp drives the CUDA pieces through it.
#pragma once
#include <vector>

#include "kernels/nms/nms.h"
#include "tensor/tensor.h"

namespace sx::kernels::labs {

Tensor nms_v1_argmax(const Tensor& boxes, const Tensor& scores, double iou_threshold);
Tensor nms_v2_sort_sweep(const Tensor& boxes, const Tensor& scores, double iou_threshold);
// idxs (int64 [N], optional): categories (batched NMS); max_output <= 0: no limit.
Tensor nms_v3_bitmask(const Tensor& boxes, const Tensor& scores, double iou_threshold,
                      const Tensor& idxs = Tensor(), int64_t max_output = -1);
Tensor nms_v4_grid(const Tensor& boxes, const Tensor& scores, double iou_threshold);

// The versions in order, for the benchmark and the tests. max_n: the largest N the benchmark
// gives it (v3's mask is N * N / 8 bytes: 312 MB at 50k).
struct NmsVersion {
  const char* name;  // "v1_argmax" ...
  const char* step;  // one line: what this version changes
  Tensor (*fn)(const Tensor& boxes, const Tensor& scores, double iou_threshold);
  int64_t max_n;
};
const std::vector<NmsVersion>& nms_versions();

}  // namespace sx::kernels::labs
