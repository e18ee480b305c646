// Region Proposal Network: see rpn.h for the algorithm.
#include "models/rpn.h"

#include <algorithm>

#include "kernels/box_ops/box_ops.h"
#include "kernels/nms/nms.h"
#include "layers/loss.h"
#include "models/fpn.h"
#include "tensor/autograd.h"
#include "tensor/ops.h"

namespace sx::models {

std::pair<std::vector<int64_t>, std::vector<int64_t>> sample_pos_neg(const Tensor& labels, int64_t batch_size,
                                                                     double positive_fraction, Generator& gen) {
  SX_CHECK(labels.dim() == 1, "sample_pos_neg: labels must be [n], got ", shape_str(labels.shape()));
  SX_CHECK(batch_size >= 0 && positive_fraction >= 0 && positive_fraction <= 1,
           "sample_pos_neg: bad batch_size ", batch_size, " or positive_fraction ", positive_fraction);
  std::vector<double> l = labels.to_vector();
  std::vector<int64_t> pos, neg;
  for (int64_t i = 0; i < static_cast<int64_t>(l.size()); ++i) {
    if (l[i] >= 1) pos.push_back(i);
    else if (l[i] == 0) neg.push_back(i);
  }
  const int64_t num_pos = std::min<int64_t>(static_cast<int64_t>(batch_size * positive_fraction),
                                            static_cast<int64_t>(pos.size()));
  const int64_t num_neg = std::min<int64_t>(batch_size - num_pos, static_cast<int64_t>(neg.size()));
  // Partial Fisher-Yates: the first k entries become a uniform sample without replacement.
  auto draw = [&](std::vector<int64_t>& v, int64_t k) {
    const int64_t n = static_cast<int64_t>(v.size());
    for (int64_t i = 0; i < k; ++i) std::swap(v[i], v[gen.randint(i, n)]);
    v.resize(k);
  };
  draw(pos, num_pos);
  draw(neg, num_neg);
  return {pos, neg};
}

RPNHead::RPNHead(int64_t in_channels, int64_t num_anchors_, Generator& gen)
    : nn::Module("RPNHead"), num_anchors(num_anchors_) {
  // conv = Sequential(Conv2dNormActivation(C, C, 3, norm_layer=None)) -> "conv.0.0", "conv.0.1" (ReLU)
  conv = register_module("conv", std::make_shared<nn::Sequential>());
  auto block = conv->push_back(std::make_shared<nn::Sequential>());
  conv0 = block->push_back(std::make_shared<nn::Conv2d>(in_channels, in_channels, 3, 1, 1));
  block->push_back(std::make_shared<nn::ReLU>());
  cls_logits = register_module("cls_logits", std::make_shared<nn::Conv2d>(in_channels, num_anchors, 1));
  bbox_pred = register_module("bbox_pred", std::make_shared<nn::Conv2d>(in_channels, num_anchors * 4, 1));
  for (auto* c : {conv0.get(), cls_logits.get(), bbox_pred.get()}) {
    normal_(c->weight, 0.01, gen);
    constant_(c->bias, 0.0);
  }
}

std::pair<std::vector<Tensor>, std::vector<Tensor>> RPNHead::forward_levels(const std::vector<Tensor>& features) {
  std::vector<Tensor> logits, deltas;
  for (const Tensor& f : features) {
    Tensor t = conv->forward(f);
    logits.push_back(cls_logits->forward(t));
    deltas.push_back(bbox_pred->forward(t));
  }
  return {logits, deltas};
}

RegionProposalNetwork::RegionProposalNetwork(int64_t in_channels, AnchorGenerator anchors, const RpnConfig& cfg,
                                             Generator& init_gen, uint64_t sample_seed)
    : nn::Module("RegionProposalNetwork"), anchors_(std::move(anchors)), cfg_(cfg), gen_(sample_seed) {
  const int64_t A = anchors_.num_anchors_per_location(0);
  for (int64_t l = 1; l < anchors_.num_levels(); ++l)
    SX_CHECK(anchors_.num_anchors_per_location(l) == A, "RPN: every level needs the same number of anchors, level 0 has ",
             A, ", level ", l, " has ", anchors_.num_anchors_per_location(l));
  head = register_module("head", std::make_shared<RPNHead>(in_channels, A, init_gen));
}

namespace {

// [N, A*K, H, W] -> [N, H*W*A, K] (torchvision's permute_and_flatten).
Tensor permute_and_flatten(const Tensor& x, int64_t A, int64_t K) {
  const int64_t N = x.size(0), H = x.size(2), W = x.size(3);
  return x.view({N, A, K, H, W}).permute({0, 3, 4, 1, 2}).reshape({N, H * W * A, K});
}

Tensor index_tensor(const std::vector<int64_t>& idx, Device dev) {
  if (idx.empty()) return Tensor::empty({0}, DType::Int64, dev);
  return Tensor::from_blob_copy(idx.data(), {static_cast<int64_t>(idx.size())}, DType::Int64).to(dev);
}

}  // namespace

RegionProposalNetwork::Output RegionProposalNetwork::forward(const ImageList& images,
                                                             const std::vector<Tensor>& features,
                                                             const std::vector<ImageTargets>* targets) {
  SX_CHECK(static_cast<int64_t>(features.size()) == anchors_.num_levels(), "RPN: ", features.size(),
           " feature levels but anchors for ", anchors_.num_levels());
  const int64_t N = images.batch();
  const Device dev = features[0].device();
  const DType dt = features[0].dtype();
  const int64_t A = head->num_anchors;

  auto [logits_l, deltas_l] = head->forward_levels(features);
  std::vector<std::pair<int64_t, int64_t>> grids;
  for (const Tensor& f : features) grids.push_back({f.size(2), f.size(3)});
  std::vector<Tensor> anchors_l = anchors_.grid_anchors(grids, {images.tensor.size(2), images.tensor.size(3)}, dev);
  std::vector<int64_t> level_sizes;
  std::vector<Tensor> obj_parts, del_parts;
  for (size_t l = 0; l < features.size(); ++l) {
    obj_parts.push_back(permute_and_flatten(logits_l[l], A, 1).reshape({N, -1}));
    del_parts.push_back(permute_and_flatten(deltas_l[l], A, 4));
    level_sizes.push_back(anchors_l[l].size(0));
  }
  Tensor objectness = cat(obj_parts, 1);  // [N, T]
  Tensor deltas = cat(del_parts, 1);      // [N, T, 4]
  Tensor anchors = cat(anchors_l, 0).to(dt);  // [T, 4]
  const int64_t T = anchors.size(0);

  Output out;
  {
    NoGradGuard ng;
    const bool training = is_training();
    const int64_t pre_n = training ? cfg_.pre_nms_top_n_train : cfg_.pre_nms_top_n_test;
    const int64_t post_n = training ? cfg_.post_nms_top_n_train : cfg_.post_nms_top_n_test;
    Tensor obj = objectness.detach();
    Tensor del = deltas.detach();
    // level id of every anchor
    std::vector<double> lv;
    lv.reserve(T);
    for (size_t l = 0; l < level_sizes.size(); ++l) lv.insert(lv.end(), level_sizes[l], static_cast<double>(l));
    Tensor levels_all = Tensor::from_vector(lv, {T}, DType::Int64).to(dev);
    for (int64_t i = 0; i < N; ++i) {
      Tensor oi = obj.select(0, i);
      std::vector<Tensor> idx_parts;
      int64_t offset = 0;
      for (int64_t n_l : level_sizes) {
        const int64_t k = std::min(pre_n, n_l);
        if (k > 0) {
          auto [v, ix] = topk(oi.narrow(0, offset, n_l), k, 0, true);
          idx_parts.push_back(add(ix, static_cast<double>(offset)));
        }
        offset += n_l;
      }
      Tensor idx = cat(idx_parts, 0);
      Tensor sc = sigmoid(index_select(oi, 0, idx));
      Tensor lvl = index_select(levels_all, 0, idx);
      Tensor boxes = kernels::decode_boxes(index_select(del.select(0, i), 0, idx).contiguous(),
                                           index_select(anchors, 0, idx).contiguous());
      const auto [h, w] = images.image_sizes[i];
      boxes = kernels::clip_boxes_to_image(boxes, h, w);
      Tensor keep = kernels::remove_small_boxes(boxes, cfg_.min_size);
      boxes = index_select(boxes, 0, keep);
      sc = index_select(sc, 0, keep);
      lvl = index_select(lvl, 0, keep);
      keep = nonzero(ge(sc, cfg_.score_thresh)).reshape({-1});
      boxes = index_select(boxes, 0, keep);
      sc = index_select(sc, 0, keep);
      lvl = index_select(lvl, 0, keep);
      out.pre_nms_boxes.push_back(boxes);
      out.pre_nms_scores.push_back(sc);
      out.pre_nms_levels.push_back(lvl);
      keep = kernels::batched_nms(boxes, sc, lvl, cfg_.nms_thresh);
      if (keep.size(0) > post_n) keep = keep.narrow(0, 0, post_n);
      out.proposals.push_back(index_select(boxes, 0, keep));
      out.scores.push_back(index_select(sc, 0, keep));
    }
  }

  if (targets == nullptr) return out;
  SX_CHECK(static_cast<int64_t>(targets->size()) == N, "RPN: ", targets->size(), " targets for ", N, " images");
  // Assign anchors to ground truth, sample, and build the flat index sets over [N * T].
  std::vector<int64_t> pos_all, sampled_all;
  std::vector<Tensor> labels_parts, target_parts;
  {
    NoGradGuard ng;
    for (int64_t i = 0; i < N; ++i) {
      const ImageTargets& t = (*targets)[i];
      Tensor gt = t.boxes.to(dev, dt);
      SX_CHECK(gt.dim() == 2 && gt.size(1) == 4, "RPN: target boxes of image ", i, " must be [n, 4], got ",
               shape_str(gt.shape()));
      Tensor labels, reg;
      if (gt.size(0) == 0) {
        labels = Tensor::zeros({T}, dt, dev);
        reg = Tensor::zeros({T, 4}, dt, dev);
      } else {
        Tensor matched = match_boxes(kernels::box_iou(gt, anchors), cfg_.fg_iou_thresh, cfg_.bg_iou_thresh, true);
        Tensor fg = ge(matched, 0.0).to(dt);
        Tensor between = eq(matched, static_cast<double>(kBetweenThresholds)).to(dt);
        labels = sub(fg, between);  // 1 fg, 0 bg, -1 ignored
        Tensor idx = clamp(matched, 0.0, std::nullopt);
        reg = kernels::encode_boxes(index_select(gt, 0, idx).contiguous(), anchors);
      }
      auto [pos, neg] = sample_pos_neg(labels, cfg_.batch_size_per_image, cfg_.positive_fraction, gen_);
      for (int64_t p : pos) {
        pos_all.push_back(i * T + p);
        sampled_all.push_back(i * T + p);
      }
      for (int64_t q : neg) sampled_all.push_back(i * T + q);
      labels_parts.push_back(labels);
      target_parts.push_back(reg);
    }
  }
  Tensor labels_flat = cat(labels_parts, 0);   // [N*T]
  Tensor targets_flat = cat(target_parts, 0);  // [N*T, 4]
  Tensor pos_idx = index_tensor(pos_all, dev);
  Tensor sampled_idx = index_tensor(sampled_all, dev);
  Tensor obj_flat = objectness.reshape({-1});
  Tensor del_flat = deltas.reshape({-1, 4});
  const double denom = std::max<double>(1.0, static_cast<double>(sampled_all.size()));
  if (pos_all.empty()) {
    // No foreground anchor: a zero that still belongs to the graph (no op sees an empty tensor).
    out.losses["loss_rpn_box_reg"] = mul(sum(del_flat), 0.0);
  } else {
    out.losses["loss_rpn_box_reg"] =
        div(nn::smooth_l1_loss(index_select(del_flat, 0, pos_idx), index_select(targets_flat, 0, pos_idx),
                               cfg_.smooth_l1_beta, nn::Reduction::Sum),
            denom);
  }
  if (sampled_all.empty()) {
    out.losses["loss_objectness"] = mul(sum(obj_flat), 0.0);
  } else {
    out.losses["loss_objectness"] = nn::binary_cross_entropy_with_logits(
        index_select(obj_flat, 0, sampled_idx), index_select(labels_flat, 0, sampled_idx));
  }
  return out;
}

}  // namespace sx::models
