// Argument checks, device dispatch and the convenience forms of nms.h.
#include "kernels/nms/nms.h"

#include "kernels/box_ops/checks.h"
#include "tensor/dispatch.h"

namespace sx::kernels {

std::pair<Tensor, Tensor> nms_padded(const Tensor& boxes, const Tensor& scores, const Tensor& idxs,
                                     const NmsOptions& o) {
  detail::check_boxes(boxes, "nms", "boxes");
  detail::check_float(scores, "nms", "scores");
  SX_CHECK(scores.dim() == 1 && scores.size(0) == boxes.size(0), "nms: scores must be [",
           boxes.size(0), "] to match boxes ", shape_str(boxes.shape()), ", got ",
           shape_str(scores.shape()));
  detail::check_same_device(boxes, scores, "nms");
  detail::check_same_dtype(boxes, scores, "nms");
  Tensor ic;
  if (idxs.defined()) {
    SX_CHECK(idxs.dtype() == DType::Int64, "batched_nms: idxs must be int64, got ",
             dtype_name(idxs.dtype()));
    SX_CHECK(idxs.dim() == 1 && idxs.size(0) == boxes.size(0), "batched_nms: idxs must be [",
             boxes.size(0), "], got ", shape_str(idxs.shape()));
    detail::check_same_device(boxes, idxs, "batched_nms");
    ic = idxs.contiguous();
  }
  Tensor b = boxes.contiguous(), s = scores.contiguous();
  return backend<NmsBackend>(b.device(), "nms").nms_padded(b, s, ic, o);
}

Tensor nms_with_options(const Tensor& boxes, const Tensor& scores, const Tensor& idxs,
                        const NmsOptions& o) {
  auto [keep, count] = nms_padded(boxes, scores, idxs, o);
  const int64_t k = keep.is_cuda() ? static_cast<int64_t>(count.item())  // the one explicit sync
                                   : count.data<int64_t>()[0];
  return keep.narrow(0, 0, k);
}

Tensor nms(const Tensor& boxes, const Tensor& scores, double iou_threshold, NmsAlgo algo) {
  NmsOptions o;
  o.iou_threshold = iou_threshold;
  o.algo = algo;
  return nms_with_options(boxes, scores, Tensor(), o);
}

Tensor batched_nms(const Tensor& boxes, const Tensor& scores, const Tensor& idxs,
                   double iou_threshold, NmsAlgo algo) {
  SX_CHECK(idxs.defined(), "batched_nms: idxs is undefined");
  NmsOptions o;
  o.iou_threshold = iou_threshold;
  o.algo = algo;
  return nms_with_options(boxes, scores, idxs, o);
}

}  // namespace sx::kernels
