// Per-image ground truth and detections, and the box helpers of the detectors' post-processing
// (device moves, resizing to the original image, per-class NMS).
//
// Coordinates: boxes are [n, 4] float32 (x1, y1, x2, y2) in pixels of the image *as it sits in the
// batch* (after the loader's resize, before padding), x right, y down, like torchvision.
// Labels are int64 class indices 0 .. num_classes-1 (the 7 VinDr classes in the paper's order);
// there is no background index (RetinaNet has sigmoid outputs per class; Faster R-CNN's box
// predictor adds its own background column internally, so its class k is label k here).
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace sx::models {

// Ground truth for one image: boxes [n, 4] float32, labels [n] int64 (n may be 0: a normal image).
struct ImageTargets {
  Tensor boxes;
  Tensor labels;
};

// One image's detections, score-descending: boxes [k, 4] float32, scores [k] float32, labels [k] int64.
struct Detections {
  Tensor boxes;
  Tensor scores;
  Tensor labels;
  int64_t size() const { return boxes.defined() ? boxes.size(0) : 0; }
};

// Moves targets/detections between devices.
std::vector<ImageTargets> targets_to(const std::vector<ImageTargets>& t, Device d);
Detections detections_to(const Detections& d, Device dev);

// Empty detections (correctly typed: [0,4] f32, [0] f32, [0] i64) on a device.
Detections empty_detections(Device d);

// Scales boxes from the network's input size (h_in, w_in) to an original size (h_out, w_out)
// (torchvision's transform.postprocess / resize_boxes).
Tensor resize_boxes(const Tensor& boxes, std::pair<int64_t, int64_t> from, std::pair<int64_t, int64_t> to);

// Per-class (batched) NMS of scored boxes then keeping the best `max_det`: returns kept indices
// (int64, score-descending): kernels/nms batched_nms (exact per-class NMS).
Tensor batched_nms_keep(const Tensor& boxes, const Tensor& scores, const Tensor& labels, double iou_thresh,
                        int64_t max_det = -1);

}  // namespace sx::models
