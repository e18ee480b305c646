// Device moves, empty results, box resizing and per-class NMS for per-image detections.
#include "models/detections.h"

#include "kernels/nms/nms.h"
#include "tensor/ops.h"

namespace sx::models {

std::vector<ImageTargets> targets_to(const std::vector<ImageTargets>& t, Device d) {
  std::vector<ImageTargets> out;
  out.reserve(t.size());
  for (const auto& e : t) out.push_back({e.boxes.to(d), e.labels.to(d)});
  return out;
}

Detections detections_to(const Detections& d, Device dev) {
  return {d.boxes.to(dev), d.scores.to(dev), d.labels.to(dev)};
}

Detections empty_detections(Device d) {
  return {Tensor::empty({0, 4}, DType::Float32, d), Tensor::empty({0}, DType::Float32, d),
          Tensor::empty({0}, DType::Int64, d)};
}

Tensor resize_boxes(const Tensor& boxes, std::pair<int64_t, int64_t> from, std::pair<int64_t, int64_t> to) {
  SX_CHECK(boxes.dim() == 2 && boxes.size(1) == 4, "resize_boxes: boxes must be [N, 4], got ",
           shape_str(boxes.shape()));
  SX_CHECK(from.first > 0 && from.second > 0, "resize_boxes: empty source size");
  // torchvision: ratio = float32(original) / float32(resized), computed as tensors.
  float rh = static_cast<float>(to.first) / static_cast<float>(from.first);
  float rw = static_cast<float>(to.second) / static_cast<float>(from.second);
  Tensor r = Tensor::from_vector({rw, rh, rw, rh}, {1, 4}, boxes.dtype()).to(boxes.device());
  return mul(boxes, r);
}

Tensor batched_nms_keep(const Tensor& boxes, const Tensor& scores, const Tensor& labels, double iou_thresh,
                        int64_t max_det) {
  SX_CHECK(boxes.dim() == 2 && boxes.size(1) == 4, "batched_nms_keep: boxes must be [N, 4], got ",
           shape_str(boxes.shape()));
  SX_CHECK(scores.dim() == 1 && scores.size(0) == boxes.size(0) && labels.dim() == 1 &&
               labels.size(0) == boxes.size(0),
           "batched_nms_keep: boxes ", shape_str(boxes.shape()), ", scores ", shape_str(scores.shape()),
           " and labels ", shape_str(labels.shape()), " disagree");
  if (boxes.size(0) == 0) return Tensor::empty({0}, DType::Int64, boxes.device());
  Tensor keep = kernels::batched_nms(boxes, scores, labels.to(DType::Int64), iou_thresh);
  if (max_det >= 0 && keep.size(0) > max_det) keep = keep.narrow(0, 0, max_det);
  return keep;
}

}  // namespace sx::models
