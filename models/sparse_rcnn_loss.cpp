// Sparse R-CNN's set criterion: Hungarian matching + focal / L1 / GIoU losses, every stage.
//
// Set prediction. A dense detector (RetinaNet, Faster R-CNN) assigns ground truth to anchors by
// IoU: many anchors near one object all learn to fire on it, so inference needs NMS to keep one of
// the duplicates. Sparse R-CNN (like DETR) instead treats the N proposals of an image as a *set*
// and supervises it with a one-to-one assignment: each ground-truth box is given to exactly one
// proposal -- the one that, among all one-to-one assignments, makes the total matching cost
// smallest (the Hungarian problem, kernels/assignment) -- and every other proposal is trained to
// say "background". A second proposal near an object is therefore *penalised* for firing on it,
// so the model learns to emit one box per object and no NMS is needed.
// The cost of giving target j to proposal i mixes what the losses measure: a focal-style class
// cost (how cheap it is for proposal i to call target j's class: the positive focal term minus the
// negative one at p = sigmoid(logit)), the L1 distance of the boxes normalised by the image size
// (scale-free, so large and small images weigh alike), and -GIoU (overlap, defined even for
// disjoint boxes). The same weights (2, 5, 2) weight the losses of the matched set.
// Deep supervision: the head refines the boxes in 6 stages; each stage's output is matched on its
// own (its best proposals may differ from the last stage's) and gets the same loss, which gives
// the early stages a direct training signal. Detectron2's keys: "loss_ce" ... for the last stage,
// "loss_ce_k" ... for stage k < last; the trainer sums them all.
#include "models/sparse_rcnn_loss.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "kernels/box_ops/box_ops.h"
#include "layers/loss.h"
#include "tensor/autograd.h"
#include "tensor/errors.h"
#include "tensor/ops.h"

namespace sx::models {
namespace {

using ImageSizes = std::vector<std::pair<int64_t, int64_t>>;

struct Dims {
  int64_t batch = 0, proposals = 0, classes = 0;
};

int64_t num_targets(const ImageTargets& t) { return t.boxes.size(0); }

// The shapes, dtypes and devices every entry point relies on; one clear line per problem.
Dims check_inputs(const char* fn, const SetPrediction& p, const std::vector<ImageTargets>& targets,
                  const ImageSizes& sizes) {
  SX_CHECK(p.logits.defined() && p.boxes.defined(), fn, ": the prediction's logits and boxes must be defined");
  SX_CHECK(p.logits.dim() == 3, fn, ": logits must be [B, N, C], got ", shape_str(p.logits.shape()));
  const Dims d{p.logits.size(0), p.logits.size(1), p.logits.size(2)};
  SX_CHECK(p.boxes.dim() == 3 && p.boxes.size(0) == d.batch && p.boxes.size(1) == d.proposals &&
               p.boxes.size(2) == 4,
           fn, ": boxes must be [B, N, 4] = [", d.batch, ", ", d.proposals, ", 4] like the logits ",
           shape_str(p.logits.shape()), ", got ", shape_str(p.boxes.shape()));
  SX_CHECK(is_floating(p.logits.dtype()) && p.boxes.dtype() == p.logits.dtype(), fn,
           ": logits and boxes must share a floating dtype, got ", dtype_name(p.logits.dtype()), " and ",
           dtype_name(p.boxes.dtype()));
  SX_CHECK(p.boxes.device() == p.logits.device(), fn, ": logits are on ", p.logits.device().str(),
           ", boxes on ", p.boxes.device().str());
  SX_CHECK(d.classes >= 1, fn, ": logits need at least one class column, got ", shape_str(p.logits.shape()));
  SX_CHECK(static_cast<int64_t>(targets.size()) == d.batch, fn, ": ", targets.size(),
           " targets for a batch of ", d.batch, " images");
  SX_CHECK(static_cast<int64_t>(sizes.size()) == d.batch, fn, ": ", sizes.size(),
           " image sizes for a batch of ", d.batch, " images");
  for (int64_t b = 0; b < d.batch; ++b) {
    const auto& [h, w] = sizes[b];
    SX_CHECK(h > 0 && w > 0, fn, ": image ", b, " has size (", h, ", ", w, "); height and width must be > 0");
    const ImageTargets& t = targets[b];
    SX_CHECK(t.boxes.defined() && t.labels.defined(), fn, ": targets of image ", b,
             " are undefined (an image without objects has boxes [0, 4] and labels [0])");
    SX_CHECK(t.boxes.dim() == 2 && t.boxes.size(1) == 4 && t.labels.dim() == 1 &&
                 t.labels.size(0) == t.boxes.size(0) && t.labels.dtype() == DType::Int64,
             fn, ": targets of image ", b, " must be boxes [M, 4] and int64 labels [M], got ",
             shape_str(t.boxes.shape()), " and ", dtype_name(t.labels.dtype()), " ", shape_str(t.labels.shape()));
    SX_CHECK(t.boxes.device() == p.logits.device() && t.labels.device() == p.logits.device(), fn,
             ": targets of image ", b, " are on ", t.boxes.device().str(), ", the predictions on ",
             p.logits.device().str(), " (models/detections.h targets_to)");
  }
  return d;
}

// (w, h, w, h) per row: `counts[b]` rows for image b, as a [sum(counts), 4] tensor. Dividing
// (x1, y1, x2, y2) by its row normalises a box by its own image's size.
Tensor size_rows(const ImageSizes& sizes, const std::vector<int64_t>& counts, DType dtype, Device dev) {
  std::vector<double> v;
  for (size_t b = 0; b < sizes.size(); ++b)
    for (int64_t i = 0; i < counts[b]; ++i) {
      const auto& [h, w] = sizes[b];
      v.insert(v.end(), {double(w), double(h), double(w), double(h)});
    }
  return Tensor::from_vector(v, {static_cast<int64_t>(v.size() / 4), 4}, dtype, dev);
}

// The matching cost of every prediction of the batch against every target of the batch,
// [B * N, M_total] (see the header: focal class cost + normalised L1 + -GIoU). Only the diagonal
// blocks (image b's predictions x image b's targets) are used; computing the whole matrix in one go
// (as the reference does) costs a dozen kernels per stage instead of a dozen per image.
Tensor batch_cost(const Tensor& logits, const Tensor& boxes, const Tensor& pred_size, const Tensor& gt,
                  const Tensor& gt_labels, const Tensor& gt_size, const SparseRcnnLossConfig& cfg) {
  const Tensor prob = sigmoid(logits);
  const double a = cfg.focal_alpha, g = cfg.focal_gamma;
  const Tensor neg_cost = mul(pow(prob, g), -log(add(rsub(1.0, prob), 1e-8))) * (1.0 - a);
  const Tensor pos_cost = mul(pow(rsub(1.0, prob), g), -log(add(prob, 1e-8))) * a;
  const Tensor cost_class = index_select(sub(pos_cost, neg_cost), 1, gt_labels);
  const Tensor cost_bbox = sum(abs(sub(div(boxes, pred_size).unsqueeze(1), div(gt, gt_size).unsqueeze(0))), {-1});
  const Tensor cost_giou = neg(kernels::generalized_box_iou(boxes, gt));
  return add(add(mul(cost_bbox, cfg.l1_weight), mul(cost_class, cfg.class_weight)),
             mul(cost_giou, cfg.giou_weight));
}

// Every label must name one of the C classes (image -1: some image of the batch).
void check_labels(const char* fn, const std::vector<double>& labels, int64_t classes, int64_t image) {
  for (double l : labels)
    if (l < 0 || l >= double(classes)) {
      if (image >= 0)
        SX_THROW(ValueError, fn, ": image ", image, " has a target of class ", l, ", outside [0, ", classes, ")");
      SX_THROW(ValueError, fn, ": a target label ", l, " is outside the model's classes [0, ", classes, ")");
    }
}

// The first non-finite value of `t` ([B, N, K]) as "image b, proposal i ... (value)"; the error path
// of the matcher only (copies t to the host).
[[noreturn]] void throw_not_finite(const char* fn, const char* what, const Tensor& t) {
  const std::vector<double> v = t.detach().to(Device::cpu(), DType::Float64).contiguous().to_vector();
  const int64_t n = t.size(1), k = t.size(2);
  for (size_t i = 0; i < v.size(); ++i)
    if (!std::isfinite(v[i]))
      SX_THROW(ValueError, fn, ": ", what, " of image ", int64_t(i) / (n * k), ", proposal ", (int64_t(i) / k) % n,
               " are not finite (", v[i], "): the model diverged (lower the learning rate) or its input is bad");
  SX_THROW(ValueError, fn, ": ", what, " are not finite");
}

}  // namespace

std::vector<kernels::Assignment> sparse_rcnn_match(const SetPrediction& p, const std::vector<ImageTargets>& targets,
                                                   const ImageSizes& image_sizes, const SparseRcnnLossConfig& cfg) {
  const char* fn = "sparse_rcnn_match";
  const Dims d = check_inputs(fn, p, targets, image_sizes);
  NoGradGuard no_grad;
  const Tensor logits = p.logits.detach().reshape({d.batch * d.proposals, d.classes});
  const Tensor boxes = p.boxes.detach().reshape({d.batch * d.proposals, 4});
  std::vector<int64_t> counts, proposals(d.batch, d.proposals);
  std::vector<Tensor> gt_boxes, gt_labels;
  for (int64_t b = 0; b < d.batch; ++b) {
    counts.push_back(num_targets(targets[b]));
    if (counts.back() == 0) continue;
    // Labels outside [0, C) would gather garbage class costs on CUDA: their range travels in the
    // one copy below there (a CPU tensor is checked directly, before any gather).
    if (targets[b].labels.device().is_cpu()) check_labels(fn, targets[b].labels.to_vector(), d.classes, b);
    gt_boxes.push_back(targets[b].boxes.to(boxes.dtype()));
    gt_labels.push_back(targets[b].labels);
  }
  int64_t total = 0;  // M_total, the batch's number of targets
  for (int64_t c : counts) total += c;
  // The cost matrix, the labels' (min, max) and the finite counts of logits and boxes: one tensor,
  // one device-to-host copy.
  std::vector<Tensor> parts;
  if (total > 0) {
    const Tensor gt = cat(gt_boxes, 0), labels = cat(gt_labels, 0);
    const Tensor pred_size = size_rows(image_sizes, proposals, boxes.dtype(), boxes.device());
    const Tensor gt_size = size_rows(image_sizes, counts, boxes.dtype(), boxes.device());
    parts.push_back(batch_cost(logits, boxes, pred_size, gt, labels, gt_size, cfg).reshape({-1}).to(DType::Float64));
    parts.push_back(stack({min(labels), max(labels)}, 0).to(DType::Float64));
  }
  parts.push_back(sum(isfinite(logits).to(DType::Float64)).reshape({1}));
  parts.push_back(sum(isfinite(boxes).to(DType::Float64)).reshape({1}));
  const std::vector<double> host = cat(parts, 0).to(Device::cpu(), DType::Float64).to_vector();  // the sync
  if (host[host.size() - 2] != double(logits.numel())) throw_not_finite(fn, "logits", p.logits);
  if (host[host.size() - 1] != double(boxes.numel())) throw_not_finite(fn, "boxes", p.boxes);
  if (total > 0) check_labels(fn, {host[host.size() - 4], host[host.size() - 3]}, d.classes, -1);

  // Per image, its diagonal block of the cost (rows b * N .., columns from its first target).
  std::vector<kernels::Assignment> out;
  std::vector<double> block;
  int64_t first = 0;
  for (int64_t b = 0; b < d.batch; ++b) {
    const int64_t m = counts[b];
    std::vector<double> r, c;
    if (m > 0) {
      block.resize(static_cast<size_t>(d.proposals * m));
      for (int64_t i = 0; i < d.proposals; ++i)
        for (int64_t j = 0; j < m; ++j) block[i * m + j] = host[(b * d.proposals + i) * total + first + j];
      const std::vector<int64_t> col = kernels::linear_sum_assignment(block.data(), d.proposals, m);
      for (int64_t i = 0; i < d.proposals; ++i)
        if (col[i] >= 0) {
          r.push_back(double(i));
          c.push_back(double(col[i]));
        }
      first += m;
    }
    const int64_t k = static_cast<int64_t>(r.size());
    out.push_back({Tensor::from_vector(r, {k}, DType::Int64), Tensor::from_vector(c, {k}, DType::Int64)});
  }
  return out;
}

std::map<std::string, Tensor> sparse_rcnn_stage_losses(const SetPrediction& p, const std::vector<ImageTargets>& targets,
                                                       const ImageSizes& image_sizes,
                                                       const std::vector<kernels::Assignment>& match,
                                                       const SparseRcnnLossConfig& cfg) {
  const char* fn = "sparse_rcnn_stage_losses";
  const Dims d = check_inputs(fn, p, targets, image_sizes);
  SX_CHECK(static_cast<int64_t>(match.size()) == d.batch, fn, ": ", match.size(), " matchings for a batch of ",
           d.batch, " images");
  const DType dt = p.boxes.dtype();
  const Device dev = p.boxes.device();
  // The matched pairs, on the host: flat prediction index b * N + row, the image's (w, h, w, h),
  // and per image the matched target indices (moved to the device to gather the targets there).
  std::vector<double> pred_index, scale;
  std::vector<Tensor> gt_boxes, gt_labels;
  int64_t num_boxes = 0;
  for (int64_t b = 0; b < d.batch; ++b) {
    const int64_t m = num_targets(targets[b]);
    num_boxes += m;
    const kernels::Assignment& a = match[b];
    SX_CHECK(a.rows.defined() && a.cols.defined() && a.rows.dim() == 1 && a.cols.dim() == 1 &&
                 a.rows.size(0) == a.cols.size(0) && a.rows.dtype() == DType::Int64 &&
                 a.cols.dtype() == DType::Int64 && a.rows.device().is_cpu() && a.cols.device().is_cpu(),
             fn, ": the matching of image ", b, " must be two int64 CPU vectors of one length (sparse_rcnn_match)");
    const std::vector<double> rows = a.rows.to_vector(), cols = a.cols.to_vector();
    for (size_t i = 0; i < rows.size(); ++i)
      SX_CHECK(rows[i] >= 0 && rows[i] < d.proposals && cols[i] >= 0 && cols[i] < m, fn, ": image ", b,
               " matches prediction ", rows[i], " to target ", cols[i], ", out of range for ", d.proposals,
               " predictions and ", m, " targets");
    if (rows.empty()) continue;
    const auto& [h, w] = image_sizes[b];
    for (double r : rows) {
      pred_index.push_back(double(b * d.proposals) + r);
      scale.insert(scale.end(), {double(w), double(h), double(w), double(h)});
    }
    const Tensor col = Tensor::from_vector(cols, {static_cast<int64_t>(cols.size())}, DType::Int64, dev);
    gt_boxes.push_back(index_select(targets[b].boxes.to(dt), 0, col));
    gt_labels.push_back(index_select(targets[b].labels, 0, col));
  }
  const double normalizer = double(std::max<int64_t>(num_boxes, 1));
  const int64_t k = static_cast<int64_t>(pred_index.size());
  const Tensor idx = Tensor::from_vector(pred_index, {k}, DType::Int64, dev);

  // Classification: every prediction x class, one-hot for the matched ones (background otherwise).
  const Tensor flat_logits = p.logits.reshape({d.batch * d.proposals, d.classes});
  Tensor cls_target = Tensor::full({d.batch * d.proposals}, double(d.classes), DType::Int64, dev);
  if (k > 0) cls_target = scatter_add(cls_target, 0, idx, sub(cat(gt_labels, 0), double(d.classes)));
  nn::FocalLossParams fp;
  fp.alpha = cfg.focal_alpha;
  fp.gamma = cfg.focal_gamma;
  fp.reduction = nn::FocalReduction::Sum;
  fp.normalizer = normalizer;
  const Tensor loss_ce = mul(nn::sigmoid_focal_loss(flat_logits, cls_target, fp), cfg.class_weight);

  // Boxes of the matched pairs: L1 on boxes normalised by their image's size, GIoU on absolute ones.
  const Tensor src = index_select(p.boxes.reshape({d.batch * d.proposals, 4}), 0, idx);  // [K, 4]
  const Tensor gt = k > 0 ? cat(gt_boxes, 0) : Tensor::zeros({0, 4}, dt, dev);
  const Tensor size = Tensor::from_vector(scale, {k, 4}, dt, dev);
  const Tensor l1 = sum(abs(sub(div(src, size), div(gt, size))));
  const Tensor loss_bbox = mul(l1, cfg.l1_weight / normalizer);
  const Tensor loss_giou = mul(nn::giou_loss(src, gt, nn::Reduction::Sum), cfg.giou_weight / normalizer);
  return {{"loss_ce", loss_ce}, {"loss_bbox", loss_bbox}, {"loss_giou", loss_giou}};
}

std::map<std::string, Tensor> sparse_rcnn_losses(const std::vector<SetPrediction>& stages,
                                                 const std::vector<ImageTargets>& targets,
                                                 const ImageSizes& image_sizes, const SparseRcnnLossConfig& cfg) {
  SX_CHECK(!stages.empty(), "sparse_rcnn_losses: no stage outputs given");
  std::map<std::string, Tensor> out;
  const size_t last = stages.size() - 1;
  for (size_t s = 0; s < stages.size(); ++s) {
    const auto match = sparse_rcnn_match(stages[s], targets, image_sizes, cfg);
    const std::string suffix = s == last ? "" : "_" + std::to_string(s);
    for (auto& [key, value] : sparse_rcnn_stage_losses(stages[s], targets, image_sizes, match, cfg))
      out[key + suffix] = value;
  }
  return out;
}

}  // namespace sx::models
