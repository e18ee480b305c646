// Argument checks and device dispatch for box_ops.h.
#include "kernels/box_ops/box_ops.h"

#include "kernels/box_ops/checks.h"
#include "tensor/dispatch.h"

namespace sx::kernels {

using detail::check_boxes;

Tensor box_area(const Tensor& boxes) {
  check_boxes(boxes, "box_area", "boxes");
  Tensor b = boxes.contiguous();
  return backend<BoxOpsBackend>(b.device(), "box_area").box_area(b);
}

static Tensor pairwise_checked(const Tensor& a, const Tensor& b, PairwiseBoxOp op, const char* name) {
  check_boxes(a, name, "boxes1");
  check_boxes(b, name, "boxes2");
  detail::check_same_device(a, b, name);
  detail::check_same_dtype(a, b, name);
  Tensor ac = a.contiguous(), bc = b.contiguous();
  return backend<BoxOpsBackend>(ac.device(), name).pairwise(ac, bc, op);
}

Tensor box_iou(const Tensor& a, const Tensor& b) {
  return pairwise_checked(a, b, PairwiseBoxOp::IoU, "box_iou");
}
Tensor generalized_box_iou(const Tensor& a, const Tensor& b) {
  return pairwise_checked(a, b, PairwiseBoxOp::GIoU, "generalized_box_iou");
}

Tensor clip_boxes_to_image(const Tensor& boxes, int64_t height, int64_t width) {
  check_boxes(boxes, "clip_boxes_to_image", "boxes");
  SX_CHECK(height >= 0 && width >= 0, "clip_boxes_to_image: image size must be >= 0, got ", height,
           "x", width);
  Tensor b = boxes.contiguous();
  return backend<BoxOpsBackend>(b.device(), "clip_boxes_to_image")
      .clip_boxes_to_image(b, height, width);
}

Tensor remove_small_boxes(const Tensor& boxes, double min_size) {
  check_boxes(boxes, "remove_small_boxes", "boxes");
  Tensor b = boxes.contiguous();
  return backend<BoxOpsBackend>(b.device(), "remove_small_boxes").remove_small_boxes(b, min_size);
}

Tensor encode_boxes(const Tensor& reference_boxes, const Tensor& proposals, const BoxCoderWeights& w) {
  check_boxes(reference_boxes, "encode_boxes", "reference_boxes");
  check_boxes(proposals, "encode_boxes", "proposals");
  detail::check_same_device(reference_boxes, proposals, "encode_boxes");
  detail::check_same_dtype(reference_boxes, proposals, "encode_boxes");
  SX_CHECK(reference_boxes.size(0) == proposals.size(0),
           "encode_boxes: reference_boxes and proposals must have the same number of boxes, got ",
           reference_boxes.size(0), " and ", proposals.size(0));
  Tensor g = reference_boxes.contiguous(), p = proposals.contiguous();
  return backend<BoxOpsBackend>(g.device(), "encode_boxes").encode_boxes(g, p, w);
}

Tensor decode_boxes(const Tensor& rel_codes, const Tensor& boxes, const BoxCoderWeights& w,
                    double clip) {
  detail::check_float(rel_codes, "decode_boxes", "rel_codes");
  check_boxes(boxes, "decode_boxes", "boxes");
  detail::check_same_device(rel_codes, boxes, "decode_boxes");
  SX_CHECK(rel_codes.dim() == 2 && rel_codes.size(1) % 4 == 0 && rel_codes.size(1) > 0,
           "decode_boxes: rel_codes must be [N, 4k], got ", shape_str(rel_codes.shape()));
  SX_CHECK(rel_codes.size(0) == boxes.size(0), "decode_boxes: rel_codes has ", rel_codes.size(0),
           " rows but boxes has ", boxes.size(0));
  Tensor c = rel_codes.contiguous();
  // torchvision casts the reference boxes to the codes' dtype.
  Tensor b = boxes.dtype() == c.dtype() ? boxes.contiguous() : boxes.to(c.dtype()).contiguous();
  return backend<BoxOpsBackend>(c.device(), "decode_boxes").decode_boxes(c, b, w, clip);
}

}  // namespace sx::kernels
