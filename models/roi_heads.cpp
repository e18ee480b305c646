// Faster R-CNN box head: see roi_heads.h for the algorithm.
#include "models/roi_heads.h"

#include <algorithm>

#include "kernels/nms/nms.h"
#include "layers/loss.h"
#include "layers/roi_align.h"
#include "models/rpn.h"
#include "tensor/autograd.h"
#include "tensor/ops.h"

namespace sx::models {

TwoMLPHead::TwoMLPHead(int64_t in_features, int64_t representation_size, Generator& gen) : nn::Module("TwoMLPHead") {
  fc6 = register_module("fc6", std::make_shared<nn::Linear>(in_features, representation_size, true, &gen));
  fc7 = register_module("fc7", std::make_shared<nn::Linear>(representation_size, representation_size, true, &gen));
}

Tensor TwoMLPHead::forward(const Tensor& x) {
  Tensor h = x.flatten(1);
  h = relu(fc6->forward(h));
  return relu(fc7->forward(h));
}

FastRCNNPredictor::FastRCNNPredictor(int64_t in_features, int64_t num_classes_with_background, Generator& gen)
    : nn::Module("FastRCNNPredictor") {
  cls_score = register_module("cls_score", std::make_shared<nn::Linear>(in_features, num_classes_with_background, true, &gen));
  bbox_pred =
      register_module("bbox_pred", std::make_shared<nn::Linear>(in_features, num_classes_with_background * 4, true, &gen));
}

std::pair<Tensor, Tensor> FastRCNNPredictor::forward_pair(const Tensor& x) {
  Tensor h = x.flatten(1);
  return {cls_score->forward(h), bbox_pred->forward(h)};
}

RoIHeads::RoIHeads(int64_t in_channels, int64_t num_classes, const RoIHeadsConfig& cfg, const DetectorOptions& post,
                   Generator& init_gen, uint64_t sample_seed)
    : nn::Module("RoIHeads"),
      num_classes_(num_classes),
      cfg_(cfg),
      score_thresh_(post.score_thresh),
      nms_thresh_(post.nms_thresh),
      detections_per_img_(post.detections_per_img),
      gen_(sample_seed) {
  SX_CHECK(num_classes >= 1, "RoIHeads: num_classes must be >= 1, got ", num_classes);
  SX_CHECK(cfg.roi_levels >= 1, "RoIHeads: roi_levels must be >= 1, got ", cfg.roi_levels);
  const int64_t in_features = in_channels * cfg.roi_output_size * cfg.roi_output_size;
  box_head = register_module("box_head", std::make_shared<TwoMLPHead>(in_features, cfg.representation_size, init_gen));
  box_predictor = register_module(
      "box_predictor", std::make_shared<FastRCNNPredictor>(cfg.representation_size, num_classes + 1, init_gen));
}

namespace {

// [K, 5] RoIs (batch index, x1, y1, x2, y2) from per-image boxes.
Tensor make_rois(const std::vector<Tensor>& boxes, DType dt, Device dev) {
  std::vector<Tensor> parts;
  for (size_t i = 0; i < boxes.size(); ++i) {
    const int64_t n = boxes[i].size(0);
    parts.push_back(cat({Tensor::full({n, 1}, static_cast<double>(i), dt, dev), boxes[i].to(dt)}, 1));
  }
  return cat(parts, 0);
}

Tensor index_tensor(const std::vector<int64_t>& idx, Device dev) {
  if (idx.empty()) return Tensor::empty({0}, DType::Int64, dev);
  return Tensor::from_blob_copy(idx.data(), {static_cast<int64_t>(idx.size())}, DType::Int64).to(dev);
}

}  // namespace

RoIHeads::BoxOutputs RoIHeads::box_outputs(const std::vector<Tensor>& features, const std::vector<Tensor>& proposals,
                                           const std::vector<std::pair<int64_t, int64_t>>& image_sizes) {
  SX_CHECK(static_cast<int64_t>(features.size()) >= cfg_.roi_levels, "RoIHeads: ", features.size(),
           " feature levels, need ", cfg_.roi_levels);
  SX_CHECK(proposals.size() == image_sizes.size(), "RoIHeads: ", proposals.size(), " proposal sets for ",
           image_sizes.size(), " images");
  std::vector<Tensor> levels(features.begin(), features.begin() + cfg_.roi_levels);
  Tensor rois;
  {
    NoGradGuard ng;
    rois = make_rois(proposals, features[0].dtype(), features[0].device());
  }
  nn::MultiScaleRoiAlignOptions o;
  o.output_h = o.output_w = cfg_.roi_output_size;
  o.sampling_ratio = cfg_.sampling_ratio;
  Tensor pooled = nn::multiscale_roi_align(levels, rois, image_sizes, o);
  Tensor h = box_head->forward(pooled);
  auto [logits, deltas] = box_predictor->forward_pair(h);
  return {logits, deltas};
}

std::vector<Detections> RoIHeads::postprocess(const BoxOutputs& out, const std::vector<Tensor>& proposals,
                                              const std::vector<std::pair<int64_t, int64_t>>& image_sizes) {
  NoGradGuard ng;
  const int64_t C1 = num_classes_ + 1;
  const Device dev = out.class_logits.device();
  std::vector<Detections> dets;
  int64_t offset = 0;
  for (size_t i = 0; i < proposals.size(); ++i) {
    const int64_t n = proposals[i].size(0);
    if (n == 0) {
      dets.push_back(empty_detections(dev));
      continue;
    }
    Tensor logits = out.class_logits.detach().narrow(0, offset, n);
    Tensor reg = out.box_regression.detach().narrow(0, offset, n).contiguous();
    offset += n;
    Tensor props = proposals[i].to(reg.dtype()).contiguous();
    Tensor boxes = kernels::decode_boxes(reg, props, cfg_.box_coder_weights);  // [n, 4 C1]
    Tensor scores = softmax(logits, -1);                                      // [n, C1]
    const auto [h, w] = image_sizes[i];
    boxes = kernels::clip_boxes_to_image(boxes.reshape({n * C1, 4}), h, w).reshape({n, C1, 4});
    Tensor labels = Tensor::arange(C1, DType::Int64, dev).reshape({1, C1}).expand({n, C1});
    boxes = boxes.narrow(1, 1, C1 - 1).reshape({-1, 4});
    scores = scores.narrow(1, 1, C1 - 1).reshape({-1});
    labels = labels.narrow(1, 1, C1 - 1).reshape({-1});
    Tensor keep = nonzero(gt(scores, score_thresh_)).reshape({-1});
    boxes = index_select(boxes, 0, keep).contiguous();
    scores = index_select(scores, 0, keep);
    labels = index_select(labels, 0, keep);
    keep = kernels::remove_small_boxes(boxes, cfg_.min_size);
    boxes = index_select(boxes, 0, keep).contiguous();
    scores = index_select(scores, 0, keep);
    labels = index_select(labels, 0, keep);
    keep = kernels::batched_nms(boxes, scores, labels, nms_thresh_);
    if (detections_per_img_ > 0 && keep.size(0) > detections_per_img_) keep = keep.narrow(0, 0, detections_per_img_);
    Detections d;
    d.boxes = index_select(boxes, 0, keep).to(DType::Float32);
    d.scores = index_select(scores, 0, keep).to(DType::Float32);
    d.labels = sub(index_select(labels, 0, keep), 1.0);  // background column dropped: class k = column k+1
    dets.push_back(std::move(d));
  }
  return dets;
}

std::map<std::string, Tensor> RoIHeads::losses(const std::vector<Tensor>& features, const std::vector<Tensor>& proposals,
                                               const std::vector<std::pair<int64_t, int64_t>>& image_sizes,
                                               const std::vector<ImageTargets>& targets) {
  SX_CHECK(targets.size() == proposals.size(), "RoIHeads: ", targets.size(), " targets for ", proposals.size(), " images");
  const Device dev = features[0].device();
  const DType dt = features[0].dtype();
  std::vector<Tensor> sampled_props, labels_parts, reg_parts;
  {
    NoGradGuard ng;
    for (size_t i = 0; i < proposals.size(); ++i) {
      Tensor gt = targets[i].boxes.to(dev, dt);
      Tensor gl = targets[i].labels.to(dev, DType::Int64);
      SX_CHECK(gt.dim() == 2 && gt.size(1) == 4 && gl.dim() == 1 && gl.size(0) == gt.size(0),
               "RoIHeads: targets of image ", i, " must be boxes [n, 4] and labels [n], got ", shape_str(gt.shape()),
               " and ", shape_str(gl.shape()));
      Tensor props = cat({proposals[i].detach().to(dt), gt}, 0);  // add the ground truth as proposals
      const int64_t P = props.size(0);
      Tensor labels, matched_gt;
      if (gt.size(0) == 0) {
        labels = Tensor::zeros({P}, DType::Int64, dev);
        matched_gt = Tensor::zeros({P, 4}, dt, dev);
      } else {
        Tensor matched = match_boxes(kernels::box_iou(gt, props), cfg_.fg_iou_thresh, cfg_.bg_iou_thresh, false);
        Tensor idx = clamp(matched, 0.0, std::nullopt);
        labels = add(index_select(gl, 0, idx), 1.0);
        labels = where(eq(matched, static_cast<double>(kBelowLowThreshold)), Tensor::zeros({P}, DType::Int64, dev), labels);
        labels = where(eq(matched, static_cast<double>(kBetweenThresholds)), Tensor::full({P}, -1.0, DType::Int64, dev),
                       labels);
        matched_gt = index_select(gt, 0, idx);
      }
      auto [pos, neg] = sample_pos_neg(labels, cfg_.batch_size_per_image, cfg_.positive_fraction, gen_);
      std::vector<int64_t> chosen(pos);
      chosen.insert(chosen.end(), neg.begin(), neg.end());
      std::sort(chosen.begin(), chosen.end());  // torch.where(pos | neg): index order
      Tensor ci = index_tensor(chosen, dev);
      Tensor sp = index_select(props, 0, ci).contiguous();
      sampled_props.push_back(sp);
      labels_parts.push_back(index_select(labels, 0, ci));
      reg_parts.push_back(kernels::encode_boxes(index_select(matched_gt, 0, ci).contiguous(), sp, cfg_.box_coder_weights));
    }
  }
  BoxOutputs out = box_outputs(features, sampled_props, image_sizes);
  Tensor labels = cat(labels_parts, 0);   // [K]
  Tensor reg_t = cat(reg_parts, 0);       // [K, 4]
  const int64_t K = labels.size(0);
  std::map<std::string, Tensor> losses;
  if (K == 0) {
    losses["loss_classifier"] = mul(sum(out.class_logits), 0.0);
    losses["loss_box_reg"] = mul(sum(out.box_regression), 0.0);
    return losses;
  }
  losses["loss_classifier"] = nn::cross_entropy(out.class_logits, labels);
  Tensor pos = nonzero(gt(labels, 0.0)).reshape({-1});
  if (pos.size(0) == 0) {  // no foreground proposal (an image without objects)
    losses["loss_box_reg"] = mul(sum(out.box_regression), 0.0);
    return losses;
  }
  const int64_t C1 = num_classes_ + 1;
  // rows pos * C1 + label of the [K * C1, 4] view of the deltas
  Tensor rows = add(mul(pos, static_cast<double>(C1)), index_select(labels, 0, pos));
  Tensor pred = index_select(out.box_regression.reshape({K * C1, 4}), 0, rows);
  losses["loss_box_reg"] =
      div(nn::smooth_l1_loss(pred, index_select(reg_t, 0, pos), cfg_.smooth_l1_beta, nn::Reduction::Sum),
          static_cast<double>(K));
  return losses;
}

}  // namespace sx::models
