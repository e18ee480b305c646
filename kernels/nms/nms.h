// Non-maximum suppression, torchvision semantics.
//
// nms(boxes [N, 4], scores [N], iou_threshold) -> int64 [K]: the indices of the kept boxes in
// decreasing score order. Greedy: visit boxes by decreasing score; a box is kept unless a box kept
// before it overlaps it with IoU > iou_threshold (strictly). Ties in score are visited in increasing
// index order (a stable descending sort, like torchvision) and NaN scores sort first (torch.sort's
// NaN-is-largest rule). The IoU is torchvision's CPU formula in the box dtype:
//   inter = max(0, min(x2) - max(x1)) * max(0, min(y2) - max(y1)),  iou = inter / (area_i + area_j - inter)
// so a box with a NaN coordinate (NaN area), an inverted box (x2 < x1: no positive overlap) and two
// zero-area boxes (0 / 0) never suppress anything (for iou_threshold >= 0); nothing crashes.
//
// batched_nms(boxes, scores, idxs, thr): NMS within each category idxs[i] (int64): one greedy pass
// over all boxes in score order in which a box is only tested against kept boxes of its own
// category, so the result is exactly per-category NMS (torchvision's _batched_nms_vanilla, in the
// order above). Not torchvision's coordinate trick (shift every box by idxs[i] * (max coordinate +
// 1), one NMS): with negative coordinates the shift is negative and categories collide, and at
// large coordinates the shifted boxes are rounded, changing IoUs (issue 15.6).
//
// nms_with_options: the detection post-processing pipeline in one call, per category when idxs is
// defined: drop scores <= score_threshold (when set), sort, keep the pre_nms_top_k best (when > 0),
// greedy NMS, stop after max_output kept boxes (when > 0).
//
// Algorithms (NmsAlgo):
//   CPU Naive: torchvision's loop: for each kept box, scan every later box, O(N^2) IoUs.
//   CPU Fast:  the same greedy decisions, but each candidate is tested only against kept boxes that
//              share a cell of a uniform grid (boxes with positive overlap always share a cell), so
//              sparse scenes cost O(N * local density). Exact: same kept set and order. It falls
//              back to the naive loop when iou_threshold < 0 or a coordinate is not finite.
//   CUDA Naive: the classic GPU NMS: a bitmask kernel (one 64-bit word per box per block of 64
//              boxes), then the mask is copied to the host and reduced there in a sequential loop.
//   CUDA Fast: the same bitmask kernel, but the keep reduction runs on the device in one block,
//              so no mask crosses PCIe and nms_padded() needs no host sync at all.
// Empty input (N = 0) returns an empty int64 tensor on the input's device.
#pragma once
#include <optional>
#include <utility>

#include "tensor/tensor.h"

namespace sx::kernels {

enum class NmsAlgo { Naive, Fast };

struct NmsOptions {
  double iou_threshold = 0.5;
  std::optional<double> score_threshold;  // keep candidates with score > this
  int64_t pre_nms_top_k = -1;             // <= 0: all candidates
  int64_t max_output = -1;                // <= 0: no limit
  NmsAlgo algo = NmsAlgo::Fast;
};

Tensor nms(const Tensor& boxes, const Tensor& scores, double iou_threshold,
           NmsAlgo algo = NmsAlgo::Fast);
Tensor batched_nms(const Tensor& boxes, const Tensor& scores, const Tensor& idxs,
                   double iou_threshold, NmsAlgo algo = NmsAlgo::Fast);
// idxs may be undefined (one category).
Tensor nms_with_options(const Tensor& boxes, const Tensor& scores, const Tensor& idxs,
                        const NmsOptions& options);
// Sync-free form (what a CUDA pipeline should call): returns (keep [N] int64 holding the kept
// indices first and -1 after them, count [1] int64), both on the input's device. On CUDA with
// NmsAlgo::Fast nothing waits for the GPU; nms()/batched_nms() read count once to size their result.
std::pair<Tensor, Tensor> nms_padded(const Tensor& boxes, const Tensor& scores, const Tensor& idxs,
                                     const NmsOptions& options);

// The backend functions (tensor/dispatch.h); the op functions above check the arguments first.
struct NmsBackend {
  std::pair<Tensor, Tensor> (*nms_padded)(const Tensor& boxes, const Tensor& scores,
                                          const Tensor& idxs, const NmsOptions& options);
  static const NmsBackend cpu, cuda;
};

}  // namespace sx::kernels
