// RetinaNet: heads, anchors, losses (focal + L1) and post-processing; see retinanet.h.
#include "models/retinanet.h"

#include <chrono>
#include <cmath>

#include "kernels/box_ops/box_ops.h"
#include "layers/loss.h"
#include "tensor/autograd.h"
#include "tensor/ops.h"

namespace sx::models {

namespace {
using Clock = std::chrono::steady_clock;
// Stage timing (benchmarks): on CUDA the device is synchronised first so the time is the stage's.
double seconds_since(Clock::time_point t0, Device d) {
  synchronize_device(d);
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// 4 x Conv2dNormActivation(in, in) without norm: Sequential{"0": conv3x3, "1": ReLU}.
std::shared_ptr<nn::Sequential> make_tower(int64_t c, std::vector<std::shared_ptr<nn::Conv2d>>& convs,
                                           Generator& gen) {
  auto tower = std::make_shared<nn::Sequential>();
  for (int i = 0; i < 4; ++i) {
    auto block = std::make_shared<nn::Sequential>();
    auto conv = block->push_back(std::make_shared<nn::Conv2d>(c, c, 3, 1, 1));
    block->push_back(std::make_shared<nn::ReLU>());
    normal_(conv->weight, 0.01, gen);
    constant_(conv->bias, 0.0);
    convs.push_back(conv);
    tower->push_back(block);
  }
  return tower;
}

// [N, A*D, H, W] -> [N, H*W*A, D] (torchvision's view/permute/reshape).
Tensor flatten_level(const Tensor& t, int64_t D) {
  const int64_t N = t.size(0), H = t.size(2), W = t.size(3);
  const int64_t A = t.size(1) / D;
  return t.view({N, A, D, H, W}).permute({0, 3, 4, 1, 2}).reshape({N, H * W * A, D});
}
}  // namespace

// ---- heads -------------------------------------------------------------------------------------
RetinaNetClassificationHead::RetinaNetClassificationHead(int64_t in_channels, int64_t num_anchors_,
                                                         int64_t num_classes_, double prior_probability,
                                                         Generator& gen)
    : nn::Module("RetinaNetClassificationHead"), num_anchors(num_anchors_), num_classes(num_classes_) {
  SX_CHECK(num_classes_ > 0, "RetinaNet: num_classes must be > 0, got ", num_classes_);
  SX_CHECK(prior_probability > 0 && prior_probability < 1, "RetinaNet: prior_probability must be in (0, 1), got ",
           prior_probability);
  conv = register_module("conv", make_tower(in_channels, convs, gen));
  cls_logits = register_module(
      "cls_logits", std::make_shared<nn::Conv2d>(in_channels, num_anchors * num_classes, 3, 1, 1));
  normal_(cls_logits->weight, 0.01, gen);
  constant_(cls_logits->bias, -std::log((1.0 - prior_probability) / prior_probability));
}

Tensor RetinaNetClassificationHead::forward_levels(const std::vector<Tensor>& x) {
  std::vector<Tensor> all;
  for (const auto& f : x) all.push_back(flatten_level(cls_logits->forward(conv->forward(f)), num_classes));
  return cat(all, 1);
}

RetinaNetRegressionHead::RetinaNetRegressionHead(int64_t in_channels, int64_t num_anchors_, Generator& gen)
    : nn::Module("RetinaNetRegressionHead"), num_anchors(num_anchors_) {
  conv = register_module("conv", make_tower(in_channels, convs, gen));
  bbox_reg = register_module("bbox_reg", std::make_shared<nn::Conv2d>(in_channels, num_anchors * 4, 3, 1, 1));
  normal_(bbox_reg->weight, 0.01, gen);
  constant_(bbox_reg->bias, 0.0);
}

Tensor RetinaNetRegressionHead::forward_levels(const std::vector<Tensor>& x) {
  std::vector<Tensor> all;
  for (const auto& f : x) all.push_back(flatten_level(bbox_reg->forward(conv->forward(f)), 4));
  return cat(all, 1);
}

RetinaNetHead::RetinaNetHead(int64_t in_channels, int64_t num_anchors, int64_t num_classes,
                             double prior_probability, Generator& gen)
    : nn::Module("RetinaNetHead") {
  classification_head = register_module(
      "classification_head",
      std::make_shared<RetinaNetClassificationHead>(in_channels, num_anchors, num_classes, prior_probability, gen));
  regression_head =
      register_module("regression_head", std::make_shared<RetinaNetRegressionHead>(in_channels, num_anchors, gen));
}

// ---- the model ---------------------------------------------------------------------------------
RetinaNet::RetinaNet(const RetinaNetConfig& cfg) : DetectionModel("RetinaNet"), cfg_(cfg) {
  DetectorOptions& o = cfg_.base;
  if (o.anchor_sizes.empty()) o.anchor_sizes = retinanet_default_anchors().sizes;
  if (o.aspect_ratios.empty()) o.aspect_ratios = retinanet_default_anchors().aspect_ratios;
  SX_CHECK(o.anchor_sizes.size() == 5, "RetinaNet: anchor sizes must give 5 levels (P3..P7), got ",
           o.anchor_sizes.size());
  SX_CHECK(o.aspect_ratios.size() == 1 || o.aspect_ratios.size() == 5,
           "RetinaNet: aspect ratios must give 1 or 5 levels, got ", o.aspect_ratios.size());
  SX_CHECK(cfg_.box_loss == "l1" || cfg_.box_loss == "smooth_l1",
           "RetinaNet: box_loss must be l1 or smooth_l1, got '", cfg_.box_loss, "'");
  anchors_.sizes = o.anchor_sizes;
  anchors_.aspect_ratios = o.aspect_ratios;
  const int64_t A = anchors_.num_anchors_per_location(0);
  for (int64_t l = 1; l < anchors_.num_levels(); ++l)
    SX_CHECK(anchors_.num_anchors_per_location(l) == A, "RetinaNet: every level needs the same number of anchors");

  Generator gen(o.seed * 7919 + 17);
  auto body = make_detection_backbone(o);
  backbone = register_module(
      "backbone", std::make_shared<BackboneWithFPN>(body, std::vector<int>{2, 3, 4}, o.fpn_channels,
                                                     FpnExtra::P6P7, o.fpn_channels, &gen));
  head = register_module("head", std::make_shared<RetinaNetHead>(o.fpn_channels, A, o.num_classes,
                                                                  cfg_.prior_probability, gen));
}

RetinaNet::HeadOutputs RetinaNet::forward_heads(const ImageList& images) {
  SX_CHECK(images.tensor.defined() && images.tensor.dim() == 4, "RetinaNet: images must be [B, C, H, W]");
  SX_CHECK(images.tensor.size(0) == images.batch(), "RetinaNet: ", images.tensor.size(0), " images but ",
           images.batch(), " image sizes");
  auto t0 = Clock::now();
  Tensor x = normalize_images(images.tensor, cfg_.base.image_mean, cfg_.base.image_std);
  auto feats = backbone->forward_levels(x);
  SX_CHECK(static_cast<int64_t>(feats.size()) == anchors_.num_levels(), "RetinaNet: ", feats.size(),
           " feature levels but anchors for ", anchors_.num_levels());
  if (record_stage_times_) stage_seconds_["backbone"] = seconds_since(t0, x.device());
  t0 = Clock::now();
  HeadOutputs h;
  h.cls_logits = head->classification_head->forward_levels(feats);
  h.bbox_regression = head->regression_head->forward_levels(feats);
  std::vector<std::pair<int64_t, int64_t>> grids;
  for (const auto& f : feats) grids.push_back({f.size(2), f.size(3)});
  std::string key = x.device().str() + ":" + std::to_string(images.tensor.size(2)) + "x" +
                    std::to_string(images.tensor.size(3));
  for (const auto& g : grids) key += ":" + std::to_string(g.first) + "x" + std::to_string(g.second);
  if (key != anchor_key_) {
    anchor_cache_ = anchors_.grid_anchors(grids, {images.tensor.size(2), images.tensor.size(3)}, x.device());
    anchor_key_ = key;
  }
  h.anchors = anchor_cache_;
  for (const auto& a : h.anchors) h.level_sizes.push_back(a.size(0));
  h.grid_sizes = grids;
  if (record_stage_times_) stage_seconds_["heads"] = seconds_since(t0, x.device());
  return h;
}

std::map<std::string, Tensor> RetinaNet::compute_loss(const HeadOutputs& h, const std::vector<ImageTargets>& targets) {
  const int64_t B = h.cls_logits.size(0), K = cfg_.base.num_classes;
  SX_CHECK(static_cast<int64_t>(targets.size()) == B, "RetinaNet: ", targets.size(), " targets for ", B, " images");
  const Device dev = h.cls_logits.device();
  Tensor anchors = cat(h.anchors, 0);
  const int64_t A = anchors.size(0);
  Tensor cls_total, box_total;
  for (int64_t i = 0; i < B; ++i) {
    const auto& tg = targets[i];
    SX_CHECK(tg.boxes.defined() && tg.boxes.dim() == 2 && tg.boxes.size(1) == 4,
             "RetinaNet: target boxes of image ", i, " must be [n, 4]");
    SX_CHECK(tg.labels.defined() && tg.labels.dim() == 1 && tg.labels.size(0) == tg.boxes.size(0),
             "RetinaNet: target labels of image ", i, " must be [n] matching the boxes");
    Tensor logits = h.cls_logits.select(0, i);       // [A, K]
    Tensor reg = h.bbox_regression.select(0, i);     // [A, 4]
    const int64_t G = tg.boxes.size(0);
    if (!tg.labels.is_cuda())
      for (double lab : tg.labels.to_vector())
        SX_CHECK(lab >= 0 && lab < K, "RetinaNet: label ", lab, " of image ", i, " outside 0..", K - 1);
    Tensor gt_boxes = tg.boxes.to(dev, DType::Float32);
    Tensor gt_labels = tg.labels.to(dev, DType::Int64);
    Tensor matched;
    {
      NoGradGuard ng;
      if (G == 0) matched = Tensor::full({A}, -1.0, DType::Int64, dev);
      else matched = match_boxes(kernels::box_iou(gt_boxes, anchors), cfg_.fg_iou_thresh, cfg_.bg_iou_thresh, true);
    }
    Tensor fg = ge(matched, 0.0);                                          // [A] bool
    Tensor num_fg = clamp(sum(fg.to(DType::Float32)), 1.0, std::nullopt);  // max(1, #fg), no host sync
    // Focal-loss targets per anchor: its class (foreground), K (background), -1 (between thresholds).
    Tensor bg_or_ignore = where(eq(matched, static_cast<double>(kBetweenThresholds)),
                                Tensor::full({A}, -1.0, DType::Int64, dev),
                                Tensor::full({A}, static_cast<double>(K), DType::Int64, dev));
    Tensor cls_target, box_loss;
    if (G == 0) {
      cls_target = bg_or_ignore;
      box_loss = Tensor::zeros({}, DType::Float32, dev);
    } else {
      Tensor idx = clamp(matched, 0.0, std::nullopt);
      cls_target = where(fg, index_select(gt_labels, 0, idx), bg_or_ignore);
      Tensor target_codes = kernels::encode_boxes(index_select(gt_boxes, 0, idx), anchors);  // [A, 4]
      Tensor fg4 = fg.unsqueeze(1).expand({A, 4});
      Tensor per = cfg_.box_loss == "l1" ? abs(sub(reg, target_codes))
                                         : nn::smooth_l1_loss(reg, target_codes, 1.0 / 9.0, nn::Reduction::None);
      per = where(fg4, per, Tensor::zeros({}, DType::Float32, dev));
      box_loss = div(sum(per), num_fg);
    }
    nn::FocalLossParams fp;
    fp.alpha = cfg_.focal_alpha;
    fp.gamma = cfg_.focal_gamma;
    fp.reduction = nn::FocalReduction::Sum;
    Tensor cls_loss = div(nn::sigmoid_focal_loss(logits, cls_target, fp), num_fg);
    cls_total = cls_total.defined() ? add(cls_total, cls_loss) : cls_loss;
    box_total = box_total.defined() ? add(box_total, box_loss) : box_loss;
  }
  const double nb = static_cast<double>(std::max<int64_t>(1, B));
  return {{"classification", div(cls_total, nb)}, {"bbox_regression", div(box_total, nb)}};
}

std::map<std::string, Tensor> RetinaNet::losses(const ImageList& images, const std::vector<ImageTargets>& targets) {
  SX_CHECK(static_cast<int64_t>(targets.size()) == images.batch(), "RetinaNet::losses: ", targets.size(),
           " targets for ", images.batch(), " images");
  HeadOutputs h = forward_heads(images);
  auto t0 = Clock::now();
  auto l = compute_loss(h, targets);
  if (record_stage_times_) stage_seconds_["loss"] = seconds_since(t0, images.tensor.device());
  return l;
}

Detections RetinaNet::candidates(const HeadOutputs& h, const ImageList& images, int64_t i) {
  NoGradGuard ng;
  const int64_t K = cfg_.base.num_classes;
  SX_CHECK(i >= 0 && i < images.batch(), "RetinaNet::candidates: image ", i, " of a batch of ", images.batch());
  auto [ih, iw] = images.image_sizes[i];
  std::vector<Tensor> boxes_all, scores_all, labels_all;
  int64_t off = 0;
  for (size_t l = 0; l < h.anchors.size(); ++l) {
    const int64_t n = h.level_sizes[l];
    Tensor logits = h.cls_logits.select(0, i).narrow(0, off, n);   // [n, K]
    Tensor reg = h.bbox_regression.select(0, i).narrow(0, off, n);  // [n, 4]
    off += n;
    Tensor scores = sigmoid(logits).reshape({-1});
    Tensor keep_idx = nonzero(gt(scores, cfg_.base.score_thresh)).reshape({-1});
    if (keep_idx.numel() == 0) continue;
    Tensor s = index_select(scores, 0, keep_idx);
    const int64_t k = std::min<int64_t>(cfg_.topk_candidates, s.numel());
    auto [top_scores, top_pos] = topk(s, k, 0, true);
    Tensor top_idx = index_select(keep_idx, 0, top_pos);
    // idx = anchor * K + class (exact in float64 for any realistic count).
    Tensor anchor_idx = div(top_idx.to(DType::Float64), static_cast<double>(K)).to(DType::Int64);
    Tensor labels = sub(top_idx, mul(anchor_idx, static_cast<double>(K)));
    Tensor boxes = kernels::decode_boxes(index_select(reg, 0, anchor_idx), index_select(h.anchors[l], 0, anchor_idx));
    boxes = kernels::clip_boxes_to_image(boxes, ih, iw);
    boxes_all.push_back(boxes);
    scores_all.push_back(top_scores);
    labels_all.push_back(labels);
  }
  if (boxes_all.empty()) return empty_detections(h.cls_logits.device());
  return {cat(boxes_all, 0), cat(scores_all, 0), cat(labels_all, 0)};
}

std::vector<Detections> RetinaNet::postprocess(const HeadOutputs& h, const ImageList& images) {
  NoGradGuard ng;
  std::vector<Detections> out;
  for (int64_t i = 0; i < images.batch(); ++i) {
    Detections c = candidates(h, images, i);
    if (c.size() == 0) {
      out.push_back(c);
      continue;
    }
    Tensor keep = batched_nms_keep(c.boxes, c.scores, c.labels, cfg_.base.nms_thresh, cfg_.base.detections_per_img);
    out.push_back({index_select(c.boxes, 0, keep), index_select(c.scores, 0, keep), index_select(c.labels, 0, keep)});
  }
  return out;
}

std::vector<Detections> RetinaNet::detect(const ImageList& images) {
  NoGradGuard ng;
  HeadOutputs h = forward_heads(images);
  auto t0 = Clock::now();
  auto d = postprocess(h, images);
  if (record_stage_times_) stage_seconds_["postprocess"] = seconds_since(t0, images.tensor.device());
  return d;
}

std::shared_ptr<RetinaNet> make_retinanet(const RetinaNetConfig& cfg) { return std::make_shared<RetinaNet>(cfg); }

std::shared_ptr<RetinaNet> make_retinanet(const DetectorOptions& o) {
  RetinaNetConfig cfg;
  cfg.base = o;
  return make_retinanet(cfg);
}

}  // namespace sx::models
