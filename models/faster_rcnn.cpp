// Faster R-CNN with FPN: see faster_rcnn.h.
#include "models/faster_rcnn.h"

#include <chrono>

#include "models/detection_backbone.h"
#include "tensor/autograd.h"
#include "tensor/ops.h"

namespace sx::models {

DetectorOptions FasterRCNNConfig::faster_rcnn_default_options() {
  DetectorOptions o;
  o.score_thresh = 0.05;
  o.nms_thresh = 0.5;
  o.detections_per_img = 100;
  AnchorGenerator a = faster_rcnn_anchors();
  o.anchor_sizes = a.sizes;
  o.aspect_ratios = a.aspect_ratios;
  return o;
}

AnchorGenerator faster_rcnn_anchors(double base_size, int64_t num_levels, std::vector<double> ratios) {
  AnchorGenerator a;
  static_cast<kernels::AnchorConfig&>(a) = kernels::fasterrcnn_anchor_config(base_size, num_levels, std::move(ratios));
  return a;
}

FasterRCNN::FasterRCNN(const FasterRCNNConfig& cfg) : DetectionModel("FasterRCNN"), cfg_(cfg) {
  DetectorOptions& o = cfg_.base;
  SX_CHECK(o.num_classes >= 1, "FasterRCNN: num_classes must be >= 1, got ", o.num_classes);
  SX_CHECK(!cfg_.returned_layers.empty(), "FasterRCNN: returned_layers is empty");
  const int64_t levels = static_cast<int64_t>(cfg_.returned_layers.size()) + 1;  // + "pool"
  if (o.anchor_sizes.empty()) {
    AnchorGenerator a = faster_rcnn_anchors(32, levels);
    o.anchor_sizes = a.sizes;
    if (o.aspect_ratios.empty()) o.aspect_ratios = a.aspect_ratios;
  }
  if (o.aspect_ratios.empty()) o.aspect_ratios = {{0.5, 1.0, 2.0}};
  if (o.aspect_ratios.size() == 1 && o.anchor_sizes.size() > 1)
    o.aspect_ratios.assign(o.anchor_sizes.size(), o.aspect_ratios[0]);
  SX_CHECK(static_cast<int64_t>(o.anchor_sizes.size()) == levels, "FasterRCNN: anchor sizes must give ", levels,
           " levels (the FPN's outputs), got ", o.anchor_sizes.size());
  SX_CHECK(o.aspect_ratios.size() == o.anchor_sizes.size(), "FasterRCNN: ", o.aspect_ratios.size(),
           " aspect-ratio tuples for ", o.anchor_sizes.size(), " levels");
  cfg_.roi.roi_levels = static_cast<int64_t>(cfg_.returned_layers.size());

  Generator gen(o.seed * 7919 + 29);
  auto body = make_detection_backbone(o);
  backbone = register_module("backbone", std::make_shared<BackboneWithFPN>(body, cfg_.returned_layers, o.fpn_channels,
                                                                           FpnExtra::MaxPool, -1, &gen));
  AnchorGenerator anchors;
  anchors.sizes = o.anchor_sizes;
  anchors.aspect_ratios = o.aspect_ratios;
  rpn = register_module("rpn", std::make_shared<RegionProposalNetwork>(o.fpn_channels, anchors, cfg_.rpn, gen,
                                                                       o.seed * 104729 + 1));
  roi_heads = register_module("roi_heads", std::make_shared<RoIHeads>(o.fpn_channels, o.num_classes, cfg_.roi, o, gen,
                                                                      o.seed * 104729 + 2));
}

std::vector<Tensor> FasterRCNN::features(const ImageList& images) {
  SX_CHECK(images.tensor.dim() == 4 && images.tensor.size(1) == cfg_.base.in_channels, "FasterRCNN: images must be [B, ",
           cfg_.base.in_channels, ", H, W], got ", shape_str(images.tensor.shape()));
  SX_CHECK(images.batch() == images.tensor.size(0), "FasterRCNN: ", images.batch(), " image sizes for a batch of ",
           images.tensor.size(0));
  // torchvision normalises each image, then pads with zeros: the padding is zeroed again.
  Tensor x = normalize_padded_images(images, cfg_.base.image_mean, cfg_.base.image_std);
  return backbone->forward_levels(x);
}

namespace {
using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
}  // namespace

std::map<std::string, Tensor> FasterRCNN::losses(const ImageList& images, const std::vector<ImageTargets>& targets) {
  SX_CHECK(static_cast<int64_t>(targets.size()) == images.batch(), "FasterRCNN: ", targets.size(), " targets for ",
           images.batch(), " images");
  auto t0 = Clock::now();
  std::vector<Tensor> feats = features(images);
  if (record_stage_times_) stage_seconds_["backbone"] = seconds_since(t0);
  auto t1 = Clock::now();
  auto r = rpn->forward(images, feats, &targets);
  auto box = roi_heads->losses(feats, r.proposals, images.image_sizes, targets);
  if (record_stage_times_) stage_seconds_["heads"] = seconds_since(t1);
  std::map<std::string, Tensor> out = r.losses;
  for (auto& [k, v] : box) out[k] = v;
  return out;
}

std::vector<Detections> FasterRCNN::detect(const ImageList& images) {
  auto t0 = Clock::now();
  std::vector<Tensor> feats = features(images);
  if (record_stage_times_) stage_seconds_["backbone"] = seconds_since(t0);
  auto t1 = Clock::now();
  auto r = rpn->forward(images, feats, nullptr);
  auto out = roi_heads->box_outputs(feats, r.proposals, images.image_sizes);
  if (record_stage_times_) stage_seconds_["heads"] = seconds_since(t1);
  auto t2 = Clock::now();
  auto dets = roi_heads->postprocess(out, r.proposals, images.image_sizes);
  if (record_stage_times_) stage_seconds_["postprocess"] = seconds_since(t2);
  return dets;
}

std::shared_ptr<FasterRCNN> make_faster_rcnn(const DetectorOptions& o) {
  FasterRCNNConfig cfg;
  cfg.base = o;
  if (cfg.base.detections_per_img == DetectorOptions{}.detections_per_img) cfg.base.detections_per_img = 100;
  return make_faster_rcnn(cfg);
}

std::shared_ptr<FasterRCNN> make_faster_rcnn(const FasterRCNNConfig& cfg) { return std::make_shared<FasterRCNN>(cfg); }

}  // namespace sx::models
