// Sparse R-CNN: backbone + FPN, learned proposals, the six-stage head, the set losses and the
// NMS-free post-processing. See sparse_rcnn.h.
#include "models/sparse_rcnn.h"

#include <algorithm>
#include <chrono>

#include "kernels/box_ops/box_ops.h"
#include "models/sparse_rcnn_loss.h"
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
}  // namespace

SparseRCNN::SparseRCNN(const SparseRcnnConfig& cfg) : DetectionModel("SparseRCNN"), cfg_(cfg) {
  const DetectorOptions& o = cfg_.base;
  SX_CHECK(o.num_classes >= 1, "SparseRCNN: num_classes must be >= 1, got ", o.num_classes);
  SX_CHECK(o.num_proposals >= 1, "SparseRCNN: num_proposals must be >= 1, got ", o.num_proposals);
  SX_CHECK(o.num_heads >= 1, "SparseRCNN: num_heads must be >= 1, got ", o.num_heads);
  cfg_.head.hidden_dim = o.fpn_channels;
  SX_CHECK(o.fpn_channels % cfg_.head.nhead == 0, "SparseRCNN: the FPN channels (", o.fpn_channels,
           ") must be a multiple of the attention heads (", cfg_.head.nhead, ")");

  Generator gen(o.seed * 7919 + 43);
  auto body = make_detection_backbone(o);
  backbone = register_module("backbone", std::make_shared<BackboneWithFPN>(body, std::vector<int>{1, 2, 3, 4},
                                                                           o.fpn_channels, FpnExtra::None, -1, &gen));
  init_proposal_features =
      register_module("init_proposal_features", std::make_shared<LearnedTable>(o.num_proposals, o.fpn_channels));
  init_proposal_boxes = register_module("init_proposal_boxes", std::make_shared<LearnedTable>(o.num_proposals, 4));
  {
    NoGradGuard ng;
    init_proposal_features->weight.copy_(randn({o.num_proposals, o.fpn_channels}, gen));  // nn.Embedding's N(0, 1)
    // Every proposal starts as the whole image: (cx, cy) = (0.5, 0.5), (w, h) = (1, 1).
    init_proposal_boxes->weight.narrow(1, 0, 2).fill_(0.5);
    init_proposal_boxes->weight.narrow(1, 2, 2).fill_(1.0);
  }
  head = register_module("head", std::make_shared<DynamicHead>(cfg_.head, o.num_classes, o.num_heads, gen));
}

std::vector<Tensor> SparseRCNN::features(const ImageList& images) {
  SX_CHECK(images.tensor.defined() && images.tensor.dim() == 4 && images.tensor.size(1) == cfg_.base.in_channels,
           "SparseRCNN: images must be [B, ", cfg_.base.in_channels, ", H, W], got ",
           images.tensor.defined() ? shape_str(images.tensor.shape()) : std::string("nothing"));
  return backbone->forward_levels(normalize_padded_images(images, cfg_.base.image_mean, cfg_.base.image_std));
}

Tensor SparseRCNN::initial_boxes(const ImageList& images) {
  const int64_t B = images.batch();
  const Tensor& t = init_proposal_boxes->weight;  // [N, 4] (cx, cy, w, h), fractions of the image
  Tensor c = t.narrow(1, 0, 2), half = mul(t.narrow(1, 2, 2), 0.5);
  Tensor xyxy = cat({sub(c, half), add(c, half)}, 1);  // [N, 4]
  std::vector<double> whwh;
  for (const auto& [h, w] : images.image_sizes) {
    const double hw[4] = {static_cast<double>(w), static_cast<double>(h), static_cast<double>(w),
                          static_cast<double>(h)};
    whwh.insert(whwh.end(), hw, hw + 4);
  }
  Tensor scale = Tensor::from_vector(whwh, {B, 1, 4}, t.dtype()).to(t.device());
  return mul(xyxy.unsqueeze(0), scale);  // [B, N, 4]
}

std::vector<SparseRcnnStage> SparseRCNN::forward_stages(const ImageList& images) {
  SX_CHECK(images.batch() == images.tensor.size(0), "SparseRCNN: ", images.batch(), " image sizes for a batch of ",
           images.tensor.size(0));
  auto t0 = Clock::now();
  std::vector<Tensor> feats = features(images);
  if (record_stage_times_) stage_seconds_["backbone"] = seconds_since(t0, images.tensor.device());
  t0 = Clock::now();
  const int64_t B = images.batch(), N = cfg_.base.num_proposals, D = cfg_.head.hidden_dim;
  Tensor pro = init_proposal_features->weight.unsqueeze(0).expand({B, N, D});
  auto stages = head->forward_stages(feats, initial_boxes(images), pro, images.image_sizes);
  if (record_stage_times_) stage_seconds_["heads"] = seconds_since(t0, images.tensor.device());
  return stages;
}

std::map<std::string, Tensor> SparseRCNN::losses(const ImageList& images, const std::vector<ImageTargets>& targets) {
  SX_CHECK(static_cast<int64_t>(targets.size()) == images.batch(), "SparseRCNN::losses: ", targets.size(),
           " targets for ", images.batch(), " images");
  auto stages = forward_stages(images);
  auto t0 = Clock::now();
  std::vector<SetPrediction> preds;
  for (const auto& st : stages) preds.push_back({st.logits, st.boxes});
  auto l = sparse_rcnn_losses(preds, targets, images.image_sizes, cfg_.loss);
  if (record_stage_times_) stage_seconds_["loss"] = seconds_since(t0, images.tensor.device());
  return l;
}

std::vector<Detections> SparseRCNN::postprocess(const SparseRcnnStage& last, const ImageList& images) {
  NoGradGuard ng;
  const int64_t B = last.logits.size(0), N = last.logits.size(1), C = last.logits.size(2);
  SX_CHECK(B == images.batch(), "SparseRCNN::postprocess: ", B, " predictions for ", images.batch(), " images");
  const int64_t limit = cfg_.base.detections_per_img > 0 ? cfg_.base.detections_per_img : N * C;
  const int64_t k = std::min<int64_t>(limit, N * C);
  std::vector<Detections> out;
  for (int64_t i = 0; i < B; ++i) {
    Tensor scores = sigmoid(last.logits.select(0, i).detach()).reshape({-1});  // [N C], proposal-major
    auto [top_scores, top_idx] = topk(scores, k, 0, true);
    // idx = proposal * C + class (exact in float64 for any realistic count).
    Tensor proposal = div(top_idx.to(DType::Float64), static_cast<double>(C)).to(DType::Int64);
    Tensor labels = sub(top_idx, mul(proposal, static_cast<double>(C)));
    Tensor boxes = index_select(last.boxes.select(0, i).detach().contiguous(), 0, proposal).contiguous();
    auto [h, w] = images.image_sizes[i];
    boxes = kernels::clip_boxes_to_image(boxes, h, w);
    Tensor widths = sub(boxes.select(1, 2), boxes.select(1, 0));
    Tensor heights = sub(boxes.select(1, 3), boxes.select(1, 1));
    Tensor ok = logical_and(logical_and(gt(widths, 0.0), gt(heights, 0.0)), gt(top_scores, cfg_.base.score_thresh));
    Tensor keep = nonzero(ok).reshape({-1});  // ascending: the score order is kept
    Detections d;
    d.boxes = index_select(boxes, 0, keep).to(DType::Float32);
    d.scores = index_select(top_scores, 0, keep).to(DType::Float32);
    d.labels = index_select(labels, 0, keep);
    out.push_back(std::move(d));
  }
  return out;
}

std::vector<Detections> SparseRCNN::detect(const ImageList& images) {
  NoGradGuard ng;
  auto stages = forward_stages(images);
  auto t0 = Clock::now();
  auto d = postprocess(stages.back(), images);
  if (record_stage_times_) stage_seconds_["postprocess"] = seconds_since(t0, images.tensor.device());
  return d;
}

std::shared_ptr<SparseRCNN> make_sparse_rcnn(const SparseRcnnConfig& cfg) { return std::make_shared<SparseRCNN>(cfg); }

std::shared_ptr<SparseRCNN> make_sparse_rcnn(const DetectorOptions& o) {
  SparseRcnnConfig cfg;
  cfg.base = o;
  if (cfg.base.detections_per_img == DetectorOptions{}.detections_per_img) cfg.base.detections_per_img = 100;
  return make_sparse_rcnn(cfg);
}

}  // namespace sx::models
