// Box operations for detection, torchvision semantics. Boxes are [N, 4] (x1, y1, x2, y2), float32
// or float64, on the CPU or a CUDA device; results stay on the input's device.
//
//   box_area(b)                 [N]      (x2 - x1) * (y2 - y1)   (negative for inverted boxes, as torch)
//   box_iou(a, b)               [N, M]   inter / union, inter from the clamped overlap; 0/0 -> NaN
//                                        (two zero-area boxes), like torchvision.ops.box_iou
//   generalized_box_iou(a, b)   [N, M]   iou - (enclosing - union) / enclosing
//   clip_boxes_to_image(b,h,w)  [N, 4]   x clamped to [0, w], y to [0, h]
//   remove_small_boxes(b, s)    [K]      int64 indices (ascending) of boxes with w >= s and h >= s
//   encode_boxes(gt, anchors, w) [N, 4]  BoxCoder.encode_single: (dx, dy, dw, dh) scaled by
//                                        weights (wx, wy, ww, wh), e.g. (10, 10, 5, 5) for the
//                                        Faster R-CNN box head, (1, 1, 1, 1) for the RPN/RetinaNet
//   decode_boxes(codes, anchors, w, clip) [N, 4k]  BoxCoder.decode_single: codes [N, 4k] (k boxes
//                                        per anchor, e.g. one per class), dw/dh clamped above at
//                                        clip = log(1000 / 16) before exp (so no box grows more
//                                        than 62.5x its anchor)
//
// NaN follows torch: the min/max/clamp steps propagate NaN (torch.max/torch.clamp), so a NaN
// coordinate gives a NaN IoU, never a crash or an out-of-bounds read. Empty inputs give empty,
// correctly shaped outputs ([0, M], [N, 0], [0, 4], [0] int64).
// The per-pair and per-box arithmetic is in box_ops_math.h, shared by the CPU loops and CUDA kernels,
// written in the same order of operations as torchvision's tensor code so the CPU results match it
// bit for bit (except exp/log, which may differ in the last ulp).
#pragma once
#include <array>
#include <cmath>

#include "tensor/tensor.h"

namespace sx::kernels {

using BoxCoderWeights = std::array<double, 4>;
// log(1000 / 16): torchvision's default clamp for dw, dh when decoding.
inline double default_bbox_xform_clip() { return std::log(1000.0 / 16.0); }

Tensor box_area(const Tensor& boxes);
Tensor box_iou(const Tensor& boxes1, const Tensor& boxes2);
Tensor generalized_box_iou(const Tensor& boxes1, const Tensor& boxes2);
Tensor clip_boxes_to_image(const Tensor& boxes, int64_t height, int64_t width);
// Int64 indices of the boxes whose width and height are both >= min_size. On CUDA the count is read
// back once to size the result (an explicit, documented sync, like torch.where).
Tensor remove_small_boxes(const Tensor& boxes, double min_size);
Tensor encode_boxes(const Tensor& reference_boxes, const Tensor& proposals,
                    const BoxCoderWeights& weights = {1.0, 1.0, 1.0, 1.0});
Tensor decode_boxes(const Tensor& rel_codes, const Tensor& boxes,
                    const BoxCoderWeights& weights = {1.0, 1.0, 1.0, 1.0},
                    double bbox_xform_clip = default_bbox_xform_clip());

// Which pairwise quantity a matrix kernel computes.
enum class PairwiseBoxOp { IoU, GIoU };

// The backend functions (tensor/dispatch.h): inputs are checked, contiguous and on one device.
struct BoxOpsBackend {
  Tensor (*box_area)(const Tensor& boxes);
  Tensor (*pairwise)(const Tensor& a, const Tensor& b, PairwiseBoxOp op);
  Tensor (*clip_boxes_to_image)(const Tensor& boxes, int64_t height, int64_t width);
  Tensor (*remove_small_boxes)(const Tensor& boxes, double min_size);
  Tensor (*encode_boxes)(const Tensor& reference_boxes, const Tensor& proposals, const BoxCoderWeights& w);
  Tensor (*decode_boxes)(const Tensor& rel_codes, const Tensor& boxes, const BoxCoderWeights& w, double clip);
  static const BoxOpsBackend cpu, cuda;
};

}  // namespace sx::kernels
