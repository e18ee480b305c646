// Sparse R-CNN's set criterion (models/sparse_rcnn_loss.h) against an independent implementation
// (tests/data/models/sparse_rcnn_loss.txt, written by scripts/fixtures/sparse_rcnn_loss_fixture.py:
// scipy's linear_sum_assignment, torchvision's sigmoid_focal_loss and generalized_box_iou, float64):
// the matching of every image at every stage, the three weighted losses, their gradient, the
// deep-supervision keys; then a float64 gradient check, the edge cases (no target in the batch,
// more targets than proposals, NaN predictions, bad labels) and, on a GPU, the one sync per stage.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "common/devices.h"
#include "common/gradcheck.h"
#include "models/sparse_rcnn_loss.h"
#include "tensor/autograd.h"
#include "tensor/errors.h"
#include "tensor/ops.h"
#include "tensor/sync_stats.h"
#include "tests/kernels/detection_test_util.h"

namespace sx::models {
namespace {

using test::DetectionFixture;
using Sizes = std::vector<std::pair<int64_t, int64_t>>;

const DetectionFixture& fx() {
  static const DetectionFixture f("sparse_rcnn_loss.txt", "models");
  return f;
}

// One fixture case ("a": 2 images, 2 stages; "r": 1 image, 2 proposals, 3 targets; "c": 3 images
// with 2, 0 and 3 targets).
struct Case {
  std::vector<SetPrediction> stages;
  std::vector<ImageTargets> targets;
  Sizes sizes;
};

Case load(const std::string& c, int64_t images, int64_t stages, Device dev) {
  Case out;
  const std::vector<double> s = fx()[c + "_image_sizes"].to_vector();
  for (int64_t b = 0; b < images; ++b) {
    out.sizes.push_back({int64_t(s[2 * b]), int64_t(s[2 * b + 1])});
    out.targets.push_back({fx()[c + "_gt_boxes_" + std::to_string(b)].to(dev),
                           fx()[c + "_gt_labels_" + std::to_string(b)].to(dev)});
  }
  for (int64_t k = 0; k < stages; ++k)
    out.stages.push_back({fx()[c + "_logits_s" + std::to_string(k)].to(dev),
                          fx()[c + "_boxes_s" + std::to_string(k)].to(dev)});
  return out;
}

std::vector<int64_t> ints(const Tensor& t) { return t.cpu().to_vector_as<int64_t>(); }

void expect_match(const std::vector<kernels::Assignment>& got, const std::string& c, int64_t stage) {
  for (size_t b = 0; b < got.size(); ++b) {
    const std::string at = "_s" + std::to_string(stage) + "_" + std::to_string(b);
    EXPECT_EQ(ints(got[b].rows), ints(fx()[c + "_rows" + at])) << c << " stage " << stage << " image " << b;
    EXPECT_EQ(ints(got[b].cols), ints(fx()[c + "_cols" + at])) << c << " stage " << stage << " image " << b;
  }
}

// A weighted loss: 1e-5 relative (float32 arithmetic against a float64 reference).
void expect_loss(const Tensor& got, const std::string& ref, const std::string& what) {
  ASSERT_TRUE(got.defined()) << what;
  ASSERT_EQ(got.numel(), 1) << what;
  const double r = fx()[ref].to_vector()[0];
  EXPECT_NEAR(got.item(), r, 1e-5 * std::fabs(r) + 1e-7) << what;
}

const char* const kKeys[] = {"loss_ce", "loss_bbox", "loss_giou"};

class SparseRcnnLossGolden : public ::testing::TestWithParam<Device> {};

// Both stages of case "a": matching, per-stage losses, and the deep-supervision keys of the sum.
TEST_P(SparseRcnnLossGolden, MatchingAndLossesOfEveryStageMatchTheReference) {
  SX_SKIP_IF_NO_DEVICE(GetParam());
  const Case a = load("a", 2, 2, GetParam());
  for (int64_t k = 0; k < 2; ++k) {
    const auto m = sparse_rcnn_match(a.stages[k], a.targets, a.sizes);
    ASSERT_EQ(m.size(), 2u);
    expect_match(m, "a", k);
    EXPECT_EQ(m[1].rows.numel(), 0) << "image 1 has no targets: nothing matched";
    const auto l = sparse_rcnn_stage_losses(a.stages[k], a.targets, a.sizes, m);
    ASSERT_EQ(l.size(), 3u);
    for (const char* key : kKeys) expect_loss(l.at(key), std::string("a_") + key + "_s" + std::to_string(k), key);
  }
  const auto all = sparse_rcnn_losses(a.stages, a.targets, a.sizes);
  ASSERT_EQ(all.size(), 6u);
  for (const char* key : kKeys) {
    expect_loss(all.at(key), std::string("a_") + key + "_s1", std::string(key) + " (last stage)");
    expect_loss(all.at(std::string(key) + "_0"), std::string("a_") + key + "_s0", std::string(key) + "_0");
  }
}

// d(loss_ce + loss_bbox + loss_giou) / d(logits, boxes) of the last stage against torch's autograd.
TEST_P(SparseRcnnLossGolden, GradientsMatchTheReference) {
  SX_SKIP_IF_NO_DEVICE(GetParam());
  Case a = load("a", 2, 2, GetParam());
  SetPrediction p{a.stages[1].logits.clone().set_requires_grad(true),
                  a.stages[1].boxes.clone().set_requires_grad(true)};
  const auto m = sparse_rcnn_match(p, a.targets, a.sizes);
  const auto l = sparse_rcnn_stage_losses(p, a.targets, a.sizes, m);
  add(add(l.at("loss_ce"), l.at("loss_bbox")), l.at("loss_giou")).backward();
  for (const auto& [got, ref] :
       {std::pair{p.logits.grad(), "a_grad_logits_s1"}, std::pair{p.boxes.grad(), "a_grad_boxes_s1"}}) {
    ASSERT_TRUE(got.defined()) << ref;
    const Tensor r = fx()[ref];
    double scale = 0;
    for (double v : r.to_vector()) scale = std::max(scale, std::fabs(v));
    ASSERT_GT(scale, 0.0) << ref;
    test::expect_close(got.cpu().to(DType::Float64), r, 1e-5 * scale, 1e-4, ref);
  }
}

// More targets (3) than proposals (2): every proposal is matched, num_boxes counts all 3 targets.
TEST_P(SparseRcnnLossGolden, MoreTargetsThanProposalsMatchesRectangularly) {
  SX_SKIP_IF_NO_DEVICE(GetParam());
  const Case r = load("r", 1, 1, GetParam());
  const auto m = sparse_rcnn_match(r.stages[0], r.targets, r.sizes);
  EXPECT_EQ(m[0].rows.numel(), 2);
  expect_match(m, "r", 0);
  const auto l = sparse_rcnn_losses(r.stages, r.targets, r.sizes);
  for (const char* key : kKeys) expect_loss(l.at(key), std::string("r_") + key + "_s0", key);
}

// Three images with 2, 0 and 3 targets: each image is matched on its own block of the batch's cost
// matrix (the targets of image 2 start at column 2), the same pairs as a batch of that image alone.
TEST_P(SparseRcnnLossGolden, EveryImageIsMatchedOnItsOwnBlock) {
  SX_SKIP_IF_NO_DEVICE(GetParam());
  const Case c = load("c", 3, 1, GetParam());
  const auto m = sparse_rcnn_match(c.stages[0], c.targets, c.sizes);
  expect_match(m, "c", 0);
  const auto l = sparse_rcnn_losses(c.stages, c.targets, c.sizes);
  for (const char* key : kKeys) expect_loss(l.at(key), std::string("c_") + key + "_s0", key);
  for (int64_t b = 0; b < 3; ++b) {
    const SetPrediction one{c.stages[0].logits.narrow(0, b, 1), c.stages[0].boxes.narrow(0, b, 1)};
    const auto alone = sparse_rcnn_match(one, {c.targets[b]}, {c.sizes[b]});
    EXPECT_EQ(ints(alone[0].rows), ints(m[b].rows)) << "image " << b;
    EXPECT_EQ(ints(alone[0].cols), ints(m[b].cols)) << "image " << b;
  }
}

// Prefixed "SparseRcnnLoss" (not "Devices") so that --gtest_filter='SparseRcnnLoss*' selects these too.
INSTANTIATE_TEST_SUITE_P(SparseRcnnLoss, SparseRcnnLossGolden, SX_DEVICES, test::device_name);

// float64 central differences of the three stage losses w.r.t. logits and boxes (matching fixed).
TEST(SparseRcnnLoss, GradcheckInFloat64) {
  const Case a = load("a", 2, 2, Device::cpu());
  const Tensor logits = a.stages[1].logits.to(DType::Float64).set_requires_grad(true);
  const Tensor boxes = a.stages[1].boxes.to(DType::Float64).set_requires_grad(true);
  const auto m = sparse_rcnn_match({logits, boxes}, a.targets, a.sizes);
  ASSERT_GT(m[0].rows.numel(), 0);
  auto f = [&](const std::vector<Tensor>& in) {
    const auto l = sparse_rcnn_stage_losses({in[0], in[1]}, a.targets, a.sizes, m);
    return stack({l.at("loss_ce"), l.at("loss_bbox"), l.at("loss_giou")}, 0);
  };
  SX_EXPECT_GRADCHECK(f, {logits, boxes}, 1e-6, 1e-6, 1e-4);
}

// No target anywhere: num_boxes clamps to 1, every prediction is background; the box losses are
// zeros that still backpropagate (zero gradient), the class loss is the all-negative focal sum.
TEST(SparseRcnnLoss, NoTargetInTheBatchIsAllBackground) {
  const Case a = load("a", 2, 2, Device::cpu());
  const std::vector<ImageTargets> none(2, ImageTargets{Tensor::zeros({0, 4}), Tensor::zeros({0}, DType::Int64)});
  SetPrediction p{a.stages[0].logits.to(DType::Float64).set_requires_grad(true),
                  a.stages[0].boxes.to(DType::Float64).set_requires_grad(true)};
  const auto all = sparse_rcnn_losses({p}, none, a.sizes);
  // 2 * sum over every logit x of 0.75 * sigmoid(x)^2 * softplus(x) (the focal negative term), / 1.
  double want = 0;
  for (double x : p.logits.to_vector()) {
    const double s = 1.0 / (1.0 + std::exp(-x));
    want += 2.0 * 0.75 * s * s * std::log1p(std::exp(x));
  }
  EXPECT_NEAR(all.at("loss_ce").item(), want, 1e-10 * want);
  EXPECT_EQ(all.at("loss_bbox").item(), 0.0);
  EXPECT_EQ(all.at("loss_giou").item(), 0.0);
  add(add(all.at("loss_ce"), all.at("loss_bbox")), all.at("loss_giou")).backward();
  ASSERT_TRUE(p.boxes.grad().defined());
  for (double g : p.boxes.grad().to_vector()) EXPECT_EQ(g, 0.0);
  double gl = 0;
  for (double g : p.logits.grad().to_vector()) gl += std::fabs(g);
  EXPECT_GT(gl, 0.0);
}

// Two stages give the last stage's keys plus "_0" copies; three stages "_0" and "_1".
TEST(SparseRcnnLoss, DeepSupervisionKeys) {
  const Case a = load("a", 2, 2, Device::cpu());
  const auto l = sparse_rcnn_losses({a.stages[0], a.stages[1], a.stages[0]}, a.targets, a.sizes);
  std::vector<std::string> keys;
  for (const auto& [k, v] : l) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"loss_bbox", "loss_bbox_0", "loss_bbox_1", "loss_ce", "loss_ce_0",
                                            "loss_ce_1", "loss_giou", "loss_giou_0", "loss_giou_1"}));
  EXPECT_EQ(l.at("loss_ce").item(), l.at("loss_ce_0").item());  // the same predictions
  EXPECT_THROW(sparse_rcnn_losses({}, a.targets, a.sizes), ValueError);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const ValueError& e) {
    return e.what();
  }
  return "(no ValueError)";
}

// A NaN in the predictions stops with a ValueError naming where, even in an image without targets
// (whose cost matrix is empty, so only the finiteness count sees it).
TEST(SparseRcnnLoss, NonFinitePredictionsAreAClearError) {
  const Case a = load("a", 2, 2, Device::cpu());
  SetPrediction p{a.stages[1].logits.clone(), a.stages[1].boxes.clone()};
  p.logits.data<float>()[1 * 8 * 3 + 5 * 3 + 2] = NAN;  // image 1, proposal 5
  std::string e = error_of([&] { sparse_rcnn_losses({p}, a.targets, a.sizes); });
  EXPECT_NE(e.find("logits of image 1, proposal 5 are not finite"), std::string::npos) << e;
  SetPrediction q{a.stages[1].logits.clone(), a.stages[1].boxes.clone()};
  q.boxes.data<float>()[0 * 8 * 4 + 3 * 4 + 1] = INFINITY;  // image 0, proposal 3
  e = error_of([&] { sparse_rcnn_match(q, a.targets, a.sizes); });
  EXPECT_NE(e.find("boxes of image 0, proposal 3 are not finite"), std::string::npos) << e;
}

TEST(SparseRcnnLoss, BadInputsAreRefused) {
  const Case a = load("a", 2, 2, Device::cpu());
  const SetPrediction& p = a.stages[1];
  EXPECT_THROW(sparse_rcnn_match(p, {a.targets[0]}, a.sizes), ValueError);  // 1 target list, 2 images
  EXPECT_THROW(sparse_rcnn_match(p, a.targets, {a.sizes[0]}), ValueError);
  EXPECT_THROW(sparse_rcnn_match({p.logits, p.boxes.narrow(1, 0, 4)}, a.targets, a.sizes), ValueError);
  std::vector<ImageTargets> bad = a.targets;
  bad[0].labels = Tensor::from_vector({0, 3, 1}, {3}, DType::Int64);  // class 3 of 3
  const std::string e = error_of([&] { sparse_rcnn_match(p, bad, a.sizes); });
  EXPECT_NE(e.find("class 3, outside [0, 3)"), std::string::npos) << e;
  auto m = sparse_rcnn_match(p, a.targets, a.sizes);
  m[0].cols = Tensor::from_vector({0, 1, 7}, {3}, DType::Int64);  // target 7 of 3
  EXPECT_THROW(sparse_rcnn_stage_losses(p, a.targets, a.sizes, m), ValueError);
  m.pop_back();
  EXPECT_THROW(sparse_rcnn_stage_losses(p, a.targets, a.sizes, m), ValueError);
}

// On CUDA: exactly one device-to-host copy per stage (the matcher's cost matrices); the losses
// themselves never wait for the device.
TEST(SparseRcnnLossCuda, OneDeviceToHostCopyPerStage) {
  SX_REQUIRE_CUDA();
  const Case a = load("a", 2, 2, Device::cuda(0));
  (void)sparse_rcnn_losses(a.stages, a.targets, a.sizes);  // warm-up
  reset_sync_stats();
  const auto l = sparse_rcnn_losses(a.stages, a.targets, a.sizes);
  EXPECT_EQ(sync_stats().device_to_host_copies, 2);
  EXPECT_LE(sync_stats().stream_syncs, 2);
  const auto m = sparse_rcnn_match(a.stages[1], a.targets, a.sizes);
  reset_sync_stats();
  (void)sparse_rcnn_stage_losses(a.stages[1], a.targets, a.sizes, m);
  EXPECT_EQ(sync_stats().device_to_host_copies, 0);
  EXPECT_EQ(sync_stats().stream_syncs, 0);
  EXPECT_EQ(l.at("loss_ce").device(), Device::cuda(0));
}

}  // namespace
}  // namespace sx::models
