// Sparse R-CNN (models/sparse_rcnn.h): the authors' state-dict names and shapes, the forward pass
// per stage, the NMS-free post-processing, the differentiable box transform against the decode
// kernel, float64 gradient checks of one RCNNHead, and a save/load round trip.
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <string>
#include <vector>

#include "common/gradcheck.h"
#include "io/safetensors.h"
#include "kernels/box_ops/box_ops.h"
#include "models/sparse_rcnn.h"
#include "tensor/autograd.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace sx::models {
namespace {

// ResNet-18, 32 FPN channels (4 per attention head), grey input, 3 classes, 10 proposals, 2 stages.
DetectorOptions small_options() {
  DetectorOptions o;
  o.arch = "resnet18";
  o.in_channels = 1;
  o.num_classes = 3;
  o.fpn_channels = 32;
  o.trainable_layers = 5;
  o.image_mean = {0.5};
  o.image_std = {0.25};
  o.num_proposals = 10;
  o.num_heads = 2;
  o.score_thresh = 0.0;
  o.detections_per_img = 100;
  o.seed = 11;
  return o;
}

// Two images of different sizes (64 x 64 and 48 x 56) padded to 64 x 64.
ImageList two_images() {
  Generator g(5);
  return batch_images({rand({1, 64, 64}, g), rand({1, 48, 56}, g)}, 32);
}

struct KeyShape {
  std::string name;
  Shape shape;
};

// head.py's names, in registration order, for one RCNNHead of width D, Dd dynamic dims, S RoI
// positions, F feed-forward dims and C classes.
std::vector<KeyShape> rcnn_head_keys(const std::string& p, int64_t D, int64_t Dd, int64_t S, int64_t F, int64_t C) {
  return {{p + "self_attn.in_proj_weight", {3 * D, D}},
          {p + "self_attn.in_proj_bias", {3 * D}},
          {p + "self_attn.out_proj.weight", {D, D}},
          {p + "self_attn.out_proj.bias", {D}},
          {p + "inst_interact.dynamic_layer.weight", {2 * D * Dd, D}},
          {p + "inst_interact.dynamic_layer.bias", {2 * D * Dd}},
          {p + "inst_interact.norm1.weight", {Dd}},
          {p + "inst_interact.norm1.bias", {Dd}},
          {p + "inst_interact.norm2.weight", {D}},
          {p + "inst_interact.norm2.bias", {D}},
          {p + "inst_interact.out_layer.weight", {D, S * D}},
          {p + "inst_interact.out_layer.bias", {D}},
          {p + "inst_interact.norm3.weight", {D}},
          {p + "inst_interact.norm3.bias", {D}},
          {p + "linear1.weight", {F, D}},
          {p + "linear1.bias", {F}},
          {p + "linear2.weight", {D, F}},
          {p + "linear2.bias", {D}},
          {p + "norm1.weight", {D}},
          {p + "norm1.bias", {D}},
          {p + "norm2.weight", {D}},
          {p + "norm2.bias", {D}},
          {p + "norm3.weight", {D}},
          {p + "norm3.bias", {D}},
          {p + "cls_module.0.weight", {D, D}},
          {p + "cls_module.1.weight", {D}},
          {p + "cls_module.1.bias", {D}},
          {p + "reg_module.0.weight", {D, D}},
          {p + "reg_module.1.weight", {D}},
          {p + "reg_module.1.bias", {D}},
          {p + "reg_module.3.weight", {D, D}},
          {p + "reg_module.4.weight", {D}},
          {p + "reg_module.4.bias", {D}},
          {p + "reg_module.6.weight", {D, D}},
          {p + "reg_module.7.weight", {D}},
          {p + "reg_module.7.bias", {D}},
          {p + "class_logits.weight", {C, D}},
          {p + "class_logits.bias", {C}},
          {p + "bboxes_delta.weight", {4, D}},
          {p + "bboxes_delta.bias", {4}}};
}

TEST(SparseRcnn, StateDictHasTheAuthorsNamesAndShapes) {
  DetectorOptions o = small_options();
  auto m = make_sparse_rcnn(o);
  const nn::StateDict sd = m->state_dict();
  std::vector<KeyShape> want = {{"init_proposal_features.weight", {10, 32}}, {"init_proposal_boxes.weight", {10, 4}}};
  for (int h = 0; h < 2; ++h)
    for (auto& k : rcnn_head_keys("head.head_series." + std::to_string(h) + ".", 32, 64, 49, 2048, 3)) want.push_back(k);
  // The backbone keeps torchvision's names; everything else is exactly the list above, in its order.
  std::vector<std::string> rest;
  for (const auto& [k, t] : sd) {
    if (k.rfind("backbone.body.", 0) == 0 || k.rfind("backbone.fpn.", 0) == 0) continue;
    rest.push_back(k);
  }
  ASSERT_EQ(rest.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(rest[i], want[i].name);
    ASSERT_TRUE(sd.contains(want[i].name)) << want[i].name;
    EXPECT_EQ(sd.at(want[i].name).shape(), want[i].shape) << want[i].name;
  }
  // FPN over C2..C5 only: four laterals and four outputs, no P6/P7 convolutions.
  EXPECT_TRUE(sd.contains("backbone.fpn.inner_blocks.3.0.weight"));
  EXPECT_FALSE(sd.contains("backbone.fpn.inner_blocks.4.0.weight"));
  EXPECT_FALSE(sd.contains("backbone.fpn.extra_blocks.p6.weight"));
  // The authors' initialisation: proposals cover the whole image, the class bias is the 0.01 prior.
  for (double v : sd.at("init_proposal_boxes.weight").narrow(1, 0, 2).contiguous().to_vector()) EXPECT_EQ(v, 0.5);
  for (double v : sd.at("init_proposal_boxes.weight").narrow(1, 2, 2).contiguous().to_vector()) EXPECT_EQ(v, 1.0);
  for (double v : sd.at("head.head_series.1.class_logits.bias").to_vector())
    EXPECT_NEAR(v, -std::log(0.99 / 0.01), 1e-6);
  // Each stage has its own weights (the authors deep-copy one head, then re-initialise all).
  EXPECT_NE(sd.at("head.head_series.0.linear1.weight").to_vector(), sd.at("head.head_series.1.linear1.weight").to_vector());
}

TEST(SparseRcnn, ForwardGivesEveryStageFiniteBoxesStartingFromTheWholeImage) {
  auto m = make_sparse_rcnn(small_options());
  m->eval();
  ImageList il = two_images();
  NoGradGuard ng;
  Tensor init = m->initial_boxes(il);
  ASSERT_EQ(init.shape(), (Shape{2, 10, 4}));
  // Each image's own size (not the padded 64 x 64): (0, 0, w, h).
  EXPECT_EQ(init.select(0, 0).select(0, 3).to_vector(), (std::vector<double>{0, 0, 64, 64}));
  EXPECT_EQ(init.select(0, 1).select(0, 7).to_vector(), (std::vector<double>{0, 0, 56, 48}));
  auto stages = m->forward_stages(il);
  ASSERT_EQ(stages.size(), 2u);
  for (const auto& s : stages) {
    EXPECT_EQ(s.logits.shape(), (Shape{2, 10, 3}));
    EXPECT_EQ(s.boxes.shape(), (Shape{2, 10, 4}));
    EXPECT_EQ(s.features.shape(), (Shape{2, 10, 32}));
    for (double v : s.logits.contiguous().to_vector()) ASSERT_TRUE(std::isfinite(v));
    for (double v : s.boxes.contiguous().to_vector()) {
      ASSERT_TRUE(std::isfinite(v));
      EXPECT_LT(std::abs(v), 64.0 * 20);  // an untrained stage moves boxes, within reason
    }
  }
}

TEST(SparseRcnn, DetectKeepsTheBestScoresSortedWithoutNms) {
  DetectorOptions o = small_options();
  o.detections_per_img = 7;
  auto m = make_sparse_rcnn(o);
  m->eval();
  ImageList il = two_images();
  auto dets = m->detect(il);
  ASSERT_EQ(dets.size(), 2u);
  for (size_t i = 0; i < dets.size(); ++i) {
    const auto& d = dets[i];
    EXPECT_LE(d.size(), 7);
    EXPECT_GT(d.size(), 0);
    auto s = d.scores.to_vector();
    for (size_t j = 1; j < s.size(); ++j) EXPECT_GE(s[j - 1], s[j]);
    for (double l : d.labels.to_vector()) EXPECT_TRUE(l >= 0 && l < 3);
    const auto [h, w] = il.image_sizes[i];
    auto b = d.boxes.contiguous().to_vector();
    for (size_t j = 0; j < b.size(); j += 4) {
      EXPECT_GE(b[j], 0);
      EXPECT_GE(b[j + 1], 0);
      EXPECT_LE(b[j + 2], w);
      EXPECT_LE(b[j + 3], h);
      EXPECT_LT(b[j], b[j + 2]);
      EXPECT_LT(b[j + 1], b[j + 3]);
    }
  }
  // Two proposals on the same box, both confident: both are kept (no NMS); a proposal can appear
  // with two classes; boxes are clipped to the image; the limit applies, then the score threshold.
  SparseRcnnStage last;
  last.logits = Tensor::from_vector({4, -9, -9, 3, -9, 2, -9, 1, -9}, {1, 3, 3});  // proposal x class
  last.boxes = Tensor::from_vector({10, 10, 20, 20, 10, 10, 20, 20, 30, 30, 90, 90}, {1, 3, 4});
  ImageList one;
  one.tensor = Tensor::zeros({1, 1, 64, 64});
  one.image_sizes = {{64, 64}};
  auto all = m->postprocess(last, one)[0];  // limit 7, threshold 0
  ASSERT_EQ(all.size(), 7);
  EXPECT_EQ(all.labels.narrow(0, 0, 4).to_vector(), (std::vector<double>{0, 0, 2, 1}));
  EXPECT_EQ(all.boxes.narrow(0, 0, 4).contiguous().to_vector(),
            (std::vector<double>{10, 10, 20, 20, 10, 10, 20, 20, 10, 10, 20, 20, 30, 30, 64, 64}));
  EXPECT_NEAR(all.scores.to_vector()[0], 1.0 / (1.0 + std::exp(-4.0)), 1e-6);
  o.detections_per_img = 3;
  o.score_thresh = 0.5;
  auto strict = make_sparse_rcnn(o)->postprocess(last, one)[0];
  EXPECT_EQ(strict.labels.to_vector(), (std::vector<double>{0, 0, 2}));
  o.detections_per_img = 100;
  auto above = make_sparse_rcnn(o)->postprocess(last, one)[0];
  EXPECT_EQ(above.labels.to_vector(), (std::vector<double>{0, 0, 2, 1}));  // sigmoid(-9) < 0.5
}

// The composed (differentiable) box transform is the decode kernel's arithmetic, clamp included.
TEST(SparseRcnn, ApplyBoxDeltasMatchesTheDecodeKernel) {
  Generator g(7);
  Tensor boxes = rand({20, 4}, g, DType::Float64);
  boxes = cat({mul(boxes.narrow(1, 0, 2), 50.0), add(mul(boxes.narrow(1, 0, 2), 50.0),
                                                     add(mul(boxes.narrow(1, 2, 2), 40.0), 1.0))}, 1);
  Tensor deltas = mul(sub(rand({20, 4}, g, DType::Float64), 0.5), 6.0);
  deltas.narrow(1, 2, 1).select(0, 3).fill_(40.0);  // beyond the clamp log(1e5 / 16) ~ 8.74
  const kernels::BoxCoderWeights w = {2.0, 2.0, 1.0, 1.0};
  const double clip = std::log(100000.0 / 16.0);
  auto a = apply_box_deltas(deltas, boxes, w, clip).to_vector();
  auto b = kernels::decode_boxes(deltas, boxes, w, clip).to_vector();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-9 * std::max(1.0, std::abs(b[i]))) << i;
}

// A small head: hidden 8, 2 attention heads, dynamic 4, feed-forward 16, pooler 2 x 2.
SparseRcnnHeadConfig tiny_head() {
  SparseRcnnHeadConfig c;
  c.hidden_dim = 8;
  c.nhead = 2;
  c.dim_dynamic = 4;
  c.dim_feedforward = 16;
  c.pooler_resolution = 2;
  return c;
}

std::vector<Tensor> with_parameters(std::vector<Tensor> inputs, const nn::Module& m) {
  for (const Tensor& p : m.parameters()) inputs.push_back(p);
  return inputs;
}

Tensor flat_outputs(const SparseRcnnStage& s) {
  return cat({s.logits.reshape({-1}), s.boxes.reshape({-1}), s.features.reshape({-1})}, 0);
}

// Gradients of one stage w.r.t. the feature map, the proposal features and every weight (the RoI
// pooling included; RoIAlign gives the boxes no gradient, so they are fixed here).
TEST(SparseRcnn, RcnnHeadGradcheckThroughRoiAlign) {
  Generator g(21);
  RCNNHead head(tiny_head(), 3, g);
  head.to(DType::Float64);
  Tensor feat = randn({2, 8, 6, 6}, g, DType::Float64).set_requires_grad(true);
  Tensor boxes = Tensor::from_vector({0.5, 0.7, 4.2, 5.1, 1.3, 0.4, 5.5, 3.8, 2.1, 2.2, 3.9, 5.7,  //
                                      0.2, 1.1, 3.3, 4.4, 2.5, 0.9, 5.8, 5.2, 1.0, 3.0, 4.6, 5.9},
                                     {2, 3, 4}, DType::Float64);
  Tensor pro = randn({2, 3, 8}, g, DType::Float64).set_requires_grad(true);
  const std::vector<std::pair<int64_t, int64_t>> sizes = {{6, 6}, {6, 6}};
  auto f = [&](const std::vector<Tensor>& in) {
    return flat_outputs(head.forward_stage({in[0]}, boxes, in[1], sizes));
  };
  SX_EXPECT_GRADCHECK(f, with_parameters({feat, pro}, head), 1e-6, 1e-5, 1e-4);
}

// After the pooling: w.r.t. the RoI features, the proposal features and the boxes (through the
// differentiable box transform: how the first stage trains the learned proposal boxes).
TEST(SparseRcnnHead, PooledPartGradcheckIncludingTheBoxes) {
  Generator g(22);
  RCNNHead head(tiny_head(), 3, g);
  head.to(DType::Float64);
  Tensor roi = randn({3, 4, 8}, g, DType::Float64).set_requires_grad(true);  // B N = 1 x 3, S = 4
  Tensor boxes = Tensor::from_vector({5, 7, 42, 51, 13, 4, 55, 38, 21, 22, 39, 57}, {1, 3, 4}, DType::Float64)
                     .set_requires_grad(true);
  Tensor pro = randn({1, 3, 8}, g, DType::Float64).set_requires_grad(true);
  auto f = [&](const std::vector<Tensor>& in) { return flat_outputs(head.forward_pooled(in[0], in[1], in[2])); };
  SX_EXPECT_GRADCHECK(f, {roi, boxes, pro}, 1e-6, 1e-5, 1e-4);
}

// Saved and loaded into a model built with another seed: the same detections.
TEST(SparseRcnn, SaveLoadRoundTripGivesTheSameDetections) {
  DetectorOptions o = small_options();
  auto a = make_sparse_rcnn(o);
  o.seed = 99;
  auto b = make_sparse_rcnn(o);
  a->eval();
  b->eval();
  const std::string bytes = safetensors::serialize(a->state_dict().items());
  auto loaded = safetensors::parse(bytes.data(), bytes.size(), "memory");
  nn::LoadReport r = b->load_state_dict(loaded.tensors, true);
  EXPECT_TRUE(r.ok()) << r.str();
  ImageList il = two_images();
  auto da = a->detect(il), db = b->detect(il);
  ASSERT_EQ(da.size(), db.size());
  for (size_t i = 0; i < da.size(); ++i) {
    EXPECT_EQ(da[i].boxes.to_vector(), db[i].boxes.to_vector());
    EXPECT_EQ(da[i].scores.to_vector(), db[i].scores.to_vector());
    EXPECT_EQ(da[i].labels.to_vector(), db[i].labels.to_vector());
  }
}

}  // namespace
}  // namespace sx::models
