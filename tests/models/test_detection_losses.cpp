// Detection training losses against torchvision (tests/data/models/detection_losses.txt, written by
// scripts/fixtures/models_detection_losses.py): RetinaNet's classification and box losses, the
// RPN's objectness and box losses, the RoI heads' classifier and box losses, each value and the
// gradient of each with respect to the head outputs, on four images (one with only a low-quality
// match, one without objects). Sampling is switched off in both implementations (every positive and
// negative is used), so the numbers do not depend on a random draw. The references are float64;
// these models compute in float32.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "models/faster_rcnn.h"
#include "models/retinanet.h"
#include "tensor/autograd.h"
#include "tests/kernels/detection_test_util.h"

namespace sx::models {
namespace {

using test::DetectionFixture;

const DetectionFixture& fx() {
  static const DetectionFixture f("losses", "models");
  return f;
}

std::vector<ImageTargets> targets() {
  std::vector<ImageTargets> t;
  for (int i = 0; i < 4; ++i)
    t.push_back({fx()["gt_boxes_" + std::to_string(i)], fx()["gt_labels_" + std::to_string(i)]});
  return t;
}

// A loss: relative error 1e-5 (float32 sums of a few thousand terms).
void expect_loss(const Tensor& got, const std::string& ref, const std::string& what) {
  ASSERT_TRUE(got.defined()) << what;
  const double r = fx()[ref].to_vector()[0];
  EXPECT_NEAR(got.item(), r, 1e-5 * std::fabs(r)) << what;
}

// A gradient: every element within 1e-5 of the largest |reference| plus 1e-4 relative; and the
// whole tensor must not be zero (else a missing gradient would pass).
void expect_grad(const Tensor& got, const std::string& ref, const std::string& what) {
  const Tensor r = fx()[ref];
  ASSERT_TRUE(got.defined()) << what << ": no gradient";
  ASSERT_EQ(shape_str(got.shape()), shape_str(r.shape())) << what;
  const auto g = got.to_vector(), rv = r.to_vector();
  double scale = 0;
  for (double v : rv) scale = std::max(scale, std::fabs(v));
  ASSERT_GT(scale, 0.0) << what << ": the reference gradient is zero";
  int bad = 0;
  for (size_t i = 0; i < rv.size(); ++i)
    if (!(std::fabs(g[i] - rv[i]) <= 1e-5 * scale + 1e-4 * std::fabs(rv[i])) && ++bad <= 5)
      ADD_FAILURE() << what << " element " << i << ": got " << g[i] << " want " << rv[i] << " (max |ref| " << scale
                    << ")";
  EXPECT_EQ(bad, 0) << what;
}

void expect_no_grad(const Tensor& t, const std::string& what) {
  if (!t.grad().defined()) return;
  for (double v : t.grad().to_vector()) ASSERT_EQ(v, 0.0) << what;
}

Tensor leaf(const std::string& name) { return fx()[name].clone().set_requires_grad(true); }

TEST(DetectionLossGolden, RetinaNetLossesAndHeadGradientsMatchTorchvision) {
  DetectorOptions o;
  o.arch = "resnet18";
  o.in_channels = 1;
  o.num_classes = 7;
  o.fpn_channels = 8;
  auto model = make_retinanet(o);  // compute_loss uses the configuration only (thresholds, focal, L1)
  for (const char* loss : {"classification", "bbox_regression"}) {
    RetinaNet::HeadOutputs h;
    h.cls_logits = leaf("rl_cls_logits");
    h.bbox_regression = leaf("rl_bbox_regression");
    h.anchors = {fx()["rl_anchors"]};
    h.level_sizes = {h.anchors[0].size(0)};
    auto l = model->compute_loss(h, targets());
    expect_loss(l.at("classification"), "rl_loss_classification", "classification");
    expect_loss(l.at("bbox_regression"), "rl_loss_bbox_regression", "bbox_regression");
    l.at(loss).backward();
    if (std::string(loss) == "classification") {
      expect_grad(h.cls_logits.grad(), "rl_grad_cls_logits", "d classification / d cls_logits");
      expect_no_grad(h.bbox_regression, "d classification / d bbox_regression");
    } else {
      expect_grad(h.bbox_regression.grad(), "rl_grad_bbox_regression", "d bbox_regression / d bbox_regression");
      expect_no_grad(h.cls_logits, "d bbox_regression / d cls_logits");
    }
  }
}

// The image without objects alone: every anchor is a negative, the loss divides by max(1, 0).
TEST(DetectionLossGolden, RetinaNetAllBackgroundImageMatchesTorchvision) {
  DetectorOptions o;
  o.arch = "resnet18";
  o.in_channels = 1;
  o.num_classes = 7;
  o.fpn_channels = 8;
  auto model = make_retinanet(o);
  RetinaNet::HeadOutputs h;
  h.cls_logits = fx()["rl_cls_logits"].narrow(0, 2, 1).clone().set_requires_grad(true);
  h.bbox_regression = fx()["rl_bbox_regression"].narrow(0, 2, 1).clone().set_requires_grad(true);
  h.anchors = {fx()["rl_anchors"]};
  h.level_sizes = {h.anchors[0].size(0)};
  auto l = model->compute_loss(h, {targets()[2]});
  ASSERT_EQ(targets()[2].boxes.size(0), 0);
  expect_loss(l.at("classification"), "rl_bg_loss_classification", "classification, background image");
  EXPECT_EQ(l.at("bbox_regression").item(), 0.0);
  l.at("classification").backward();
  expect_grad(h.cls_logits.grad(), "rl_bg_grad_cls_logits", "d classification / d cls_logits, background image");
}

// The RPN with an identity head (see the fixture script): the features are the head outputs, so
// their gradient is the loss's gradient with respect to the objectness logits and box deltas.
TEST(DetectionLossGolden, RpnLossesAndHeadGradientsMatchTorchvision) {
  AnchorGenerator ag;
  ag.sizes = {{16}, {32}};
  ag.aspect_ratios = {{0.5, 1.0, 2.0}};
  RpnConfig rc;
  rc.batch_size_per_image = 100000;  // sampling off: every positive and negative anchor
  rc.positive_fraction = 1.0;
  Generator init(3);
  RegionProposalNetwork rpn(15, ag, rc, init, 5);
  {
    NoGradGuard ng;
    const int64_t A = 3, C = 15;
    rpn.head->conv0->weight.zero_();
    float* w = rpn.head->conv0->weight.data<float>();
    for (int64_t c = 0; c < C; ++c) w[((c * C + c) * 3 + 1) * 3 + 1] = 1.0f;
    rpn.head->conv0->bias.fill_(16.0);
    rpn.head->cls_logits->weight.zero_();
    rpn.head->bbox_pred->weight.zero_();
    for (int64_t a = 0; a < A; ++a) rpn.head->cls_logits->weight.data<float>()[a * C + a] = 1.0f;
    for (int64_t j = 0; j < 4 * A; ++j) rpn.head->bbox_pred->weight.data<float>()[j * C + A + j] = 1.0f;
    rpn.head->cls_logits->bias.fill_(-16.0);
    rpn.head->bbox_pred->bias.fill_(-16.0);
  }
  rpn.train();
  ImageList il;
  il.tensor = Tensor::zeros({4, 1, 64, 64});
  il.image_sizes.assign(4, {64, 64});
  const auto tg = targets();
  for (const char* loss : {"loss_objectness", "loss_rpn_box_reg"}) {
    Tensor f0 = leaf("rpn_features_0"), f1 = leaf("rpn_features_1");
    auto out = rpn.forward(il, {f0, f1}, &tg);
    expect_loss(out.losses.at("loss_objectness"), "rpn_loss_objectness", "loss_objectness");
    expect_loss(out.losses.at("loss_rpn_box_reg"), "rpn_loss_rpn_box_reg", "loss_rpn_box_reg");
    out.losses.at(loss).backward();
    const std::string tag = std::string(loss) == "loss_objectness" ? "objectness" : "rpn_box_reg";
    expect_grad(f0.grad(), "rpn_grad_" + tag + "_0", std::string("d ") + loss + " / d head outputs, level 0");
    expect_grad(f1.grad(), "rpn_grad_" + tag + "_1", std::string("d ") + loss + " / d head outputs, level 1");
    for (auto& [n, p] : rpn.named_parameters()) p.zero_grad();
  }
}

TEST(DetectionLossGolden, RoIHeadsLossesAndGradientsMatchTorchvision) {
  RoIHeadsConfig rc;
  rc.batch_size_per_image = 100000;  // sampling off
  rc.positive_fraction = 1.0;
  rc.representation_size = 32;
  rc.roi_levels = 1;  // one 16 x 16 level (scale 1/4): every box of a 64 px image maps to it
  DetectorOptions post;
  post.num_classes = 7;
  Generator init(4);
  RoIHeads roi(4, 7, rc, post, init, 6);
  {
    NoGradGuard ng;
    roi.box_head->fc6->weight.copy_(fx()["roi_fc6_weight"]);
    roi.box_head->fc6->bias.copy_(fx()["roi_fc6_bias"]);
    roi.box_head->fc7->weight.copy_(fx()["roi_fc7_weight"]);
    roi.box_head->fc7->bias.copy_(fx()["roi_fc7_bias"]);
    roi.box_predictor->cls_score->weight.copy_(fx()["roi_cls_score_weight"]);
    roi.box_predictor->cls_score->bias.copy_(fx()["roi_cls_score_bias"]);
    roi.box_predictor->bbox_pred->weight.copy_(fx()["roi_bbox_pred_weight"]);
    roi.box_predictor->bbox_pred->bias.copy_(fx()["roi_bbox_pred_bias"]);
  }
  roi.train();
  std::vector<Tensor> props;
  for (int i = 0; i < 4; ++i) props.push_back(fx()["roi_proposals_" + std::to_string(i)]);
  const std::vector<std::pair<int64_t, int64_t>> sizes(4, {64, 64});
  for (const char* loss : {"loss_classifier", "loss_box_reg"}) {
    Tensor f0 = leaf("roi_features_0");
    auto l = roi.losses({f0}, props, sizes, targets());
    expect_loss(l.at("loss_classifier"), "roi_loss_classifier", "loss_classifier");
    expect_loss(l.at("loss_box_reg"), "roi_loss_box_reg", "loss_box_reg");
    l.at(loss).backward();
    const std::string tag = std::string(loss) == "loss_classifier" ? "classifier" : "box_reg";
    const std::string p = "roi_grad_" + tag + "_";
    auto& pr = *roi.box_predictor;
    if (tag == "classifier") {
      expect_grad(pr.cls_score->weight.grad(), p + "cls_score_weight", "d loss_classifier / d cls_score.weight");
      expect_grad(pr.cls_score->bias.grad(), p + "cls_score_bias", "d loss_classifier / d cls_score.bias");
      expect_no_grad(pr.bbox_pred->weight, "d loss_classifier / d bbox_pred.weight");
    } else {
      expect_grad(pr.bbox_pred->weight.grad(), p + "bbox_pred_weight", "d loss_box_reg / d bbox_pred.weight");
      expect_grad(pr.bbox_pred->bias.grad(), p + "bbox_pred_bias", "d loss_box_reg / d bbox_pred.bias");
      expect_no_grad(pr.cls_score->weight, "d loss_box_reg / d cls_score.weight");
    }
    expect_grad(f0.grad(), p + "features_0", std::string("d ") + loss + " / d features");
    for (auto& [n, q] : roi.named_parameters()) q.zero_grad();
  }
}

}  // namespace
}  // namespace sx::models
