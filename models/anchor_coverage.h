// Anchor coverage: how well a detector's anchors can fit the ground-truth boxes of a dataset.
//
// For every ground-truth box (in the pixels of the resized, padded training image) the best IoU
// over the anchors of each FPN level, exactly as the detector places them (kernels/anchors:
// torchvision's grid, stride = padded size // feature size) and as the project measures IoU
// (kernels/box_ops: float32, torchvision's formula). The share of boxes whose best anchor reaches
// IoU 0.5 (the RetinaNet foreground threshold) and 0.4 (its background threshold) tells, before
// any training, whether --size and --anchor-base suit the data: a box no anchor reaches is matched
// only through the low-quality rule, with a poor regression target. Used by `spinexr stats` and by
// the guard of `spinexr train-det` (train/tasks/det_geometry.h), one implementation for both.
//
// Why a few candidates per level and shape suffice (the fast path, checked against the full grid
// in tests/models/test_anchor_coverage.cpp): fix an anchor shape (w_a, h_a). Its IoU with a box is
//   inter / (area_a + area_b - inter),   increasing in inter,
// and inter = ov_x(dx) * ov_y(dy) is the product of the 1-D overlaps, each a function of the
// offset between the anchor's and the box's centres along one axis alone, largest at offset 0 and
// non-increasing in |offset| (an overlap of two segments only shrinks as they slide apart). The
// anchor centres of a level form a product grid {x * stride_w} x {y * stride_h} (the cell anchors
// are symmetric about the origin: round half to even of -v and v). So the best anchor of a shape
// sits, in each axis independently, at the grid coordinate nearest the box centre: one of the two
// grid points around it (clamped to the grid). The fast path evaluates those 2 x 2 points per shape
// with the same float32 arithmetic as box_iou, so it returns the full grid's maximum exactly:
// 4 x A IoUs per level instead of gh x gw x A (for 1,024 px: 36 instead of 193,536 at P3).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "kernels/anchors/anchors.h"

namespace sx::models {

// The anchors a detector places: sizes and ratios per level, and the stride of the first level
// (2^first_level: RetinaNet's P3..P7 start at 8, Faster R-CNN's P2..P6 + pool at 4).
struct AnchorLayout {
  kernels::AnchorConfig anchors;
  int first_level = 3;
  int64_t num_levels() const { return anchors.num_levels(); }
};

// What --anchor-base gives each model (the one place this is decided; the CLI's detector options
// use it too): "retinanet": torchvision's three sizes per level (b, int(b 2^(1/3)), int(b 2^(2/3)))
// x 2^level on P3..P7; "faster_rcnn" (or "faster-rcnn", "frcnn"): one size b 2^level per level on
// P2..P6; ratios 0.5 / 1 / 2. base 0 means torchvision's default, 32. Throws ValueError otherwise.
AnchorLayout detector_anchor_layout(const std::string& model, double base = 0);

// Feature-map sizes (h, w) of the levels for a padded image (h, w): every stride-2 stage of the
// ResNet, the FPN's P6/P7 convolutions and its max-pool level give ceil(n / 2).
std::vector<std::pair<int64_t, int64_t>> feature_sizes(const AnchorLayout& layout,
                                                        std::pair<int64_t, int64_t> image_size);

// Best IoU per level of each box: [boxes][level]. Boxes are (x1, y1, x2, y2) in the pixels of the
// padded image of size (h, w) they belong to. The fast path described above.
std::vector<std::vector<float>> best_anchor_iou(const AnchorLayout& layout, std::pair<int64_t, int64_t> image_size,
                                                const std::vector<std::array<float, 4>>& boxes);

// Coverage of a set of boxes from their best IoUs per level ([boxes][level]).
struct AnchorCoverage {
  int64_t boxes = 0;
  std::vector<double> level_at50, level_at40;  // share of boxes whose best anchor at level l reaches 0.5 / 0.4
  std::vector<double> best_level_share;        // share of boxes whose best anchor overall is at level l
  double at50 = 0, at40 = 0;                   // share whose best anchor over all levels reaches 0.5 / 0.4
  double median_best_iou = 0;                  // median over boxes of the best IoU over all levels
};
// Thresholds are compared in float32 (IoU >= 0.5f), like the matcher. No boxes: all zero.
AnchorCoverage summarize_coverage(const std::vector<std::vector<float>>& best_iou, int64_t num_levels);

}  // namespace sx::models
