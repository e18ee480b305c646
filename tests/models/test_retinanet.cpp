// RetinaNet: checkpoint parity with torchvision (fixture from scripts/fixtures/models_retinanet.py),
// anchors and matcher against torchvision's values, losses on normal images, post-processing edge
// cases, and a single-image overfit (the loss falls and the detection becomes near perfect).
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <map>
#include <cstring>
#include <fstream>
#include <sstream>

#include "kernels/box_ops/box_ops.h"
#include "models/retinanet.h"
#include "tests/models/model_test_util.h"
#include "tensor/autograd.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace sx::models {
namespace {

const std::string kData = std::string(SX_TEST_DATA_DIR) + "/models/";

// ---- the fixture's weight generator (mirrors scripts/fixtures/models_retinanet.py) --------------
uint64_t fnv1a64(const std::string& s) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001B3ull;
  }
  return h;
}
double fixture_uniform(uint64_t seed, uint64_t i) {
  uint64_t z = seed + i + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z = z ^ (z >> 31);
  return static_cast<double>(z >> 11) * std::ldexp(1.0, -53) * 2.0 - 1.0;
}
Tensor fixture_value(const std::string& name, const Shape& shape) {
  const int64_t n = shape_numel(shape);
  const uint64_t seed = fnv1a64(name);
  const std::string leaf = name.substr(name.rfind('.') + 1);
  const bool head_out = name.find("cls_logits") != std::string::npos || name.find("bbox_reg") != std::string::npos;
  std::vector<double> v(n);
  for (int64_t i = 0; i < n; ++i) {
    double u = fixture_uniform(seed, static_cast<uint64_t>(i)), r;
    if (leaf == "weight" && shape.size() == 4) {
      const double fan_in = static_cast<double>(n / shape[0]);
      r = u * std::sqrt(3.0 / fan_in);
      if (head_out) r = r * (name.find("cls_logits") != std::string::npos ? 3.0 : 0.5);
    } else if (leaf == "weight") {
      r = 1.0 + 0.2 * u;
    } else if (leaf == "running_var") {
      r = 1.0 + 0.5 * std::abs(u);
    } else if (leaf == "running_mean") {
      r = 0.1 * u;
    } else if (name.find("cls_logits") != std::string::npos && leaf == "bias") {
      r = -4.0 + 0.1 * u;
    } else {
      r = 0.05 * u;
    }
    v[i] = static_cast<float>(r);
  }
  return Tensor::from_vector(v, shape, DType::Float32);
}

struct KeyShape {
  std::string name;
  Shape shape;
};
std::vector<KeyShape> read_keys() {
  std::ifstream f(kData + "retinanet_keys.txt");
  EXPECT_TRUE(f.good()) << "missing fixture retinanet_keys.txt";
  std::vector<KeyShape> out;
  std::string line;
  while (std::getline(f, line)) {
    std::istringstream ss(line);
    KeyShape k;
    ss >> k.name;
    int64_t d;
    while (ss >> d) k.shape.push_back(d);
    out.push_back(k);
  }
  return out;
}

std::vector<float> read_floats(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << "missing fixture " << path;
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  std::vector<float> out(bytes.size() / 4);
  std::memcpy(out.data(), bytes.data(), out.size() * 4);  // little-endian host
  return out;
}

DetectorOptions fixture_options() {
  DetectorOptions o;
  o.arch = "resnet18";
  o.in_channels = 3;
  o.num_classes = 7;
  o.fpn_channels = 64;
  o.norm = NormKind::FrozenBatchNorm;
  return o;
}

constexpr int64_t kH = 160, kW = 128;

Tensor fixture_image() {
  const uint64_t seed = fnv1a64("image");
  std::vector<double> v(3 * kH * kW);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(fixture_uniform(seed, i) * 0.5 + 0.5);
  return Tensor::from_vector(v, {1, 3, kH, kW}, DType::Float32);
}

nn::StateDict fixture_state_dict() {
  nn::StateDict sd;
  for (const auto& k : read_keys()) sd.set(k.name, fixture_value(k.name, k.shape));
  return sd;
}

TEST(RetinaNet, StateDictNamesAndShapesEqualTorchvision) {
  auto model = make_retinanet(fixture_options());
  auto keys = read_keys();
  auto sd = model->state_dict();
  ASSERT_EQ(sd.size(), keys.size());
  size_t i = 0;
  for (const auto& [name, t] : sd) {
    EXPECT_EQ(name, keys[i].name) << "at position " << i;
    EXPECT_EQ(t.shape(), keys[i].shape) << name;
    ++i;
  }
}

TEST(RetinaNet, CheckpointParityWithTorchvision) {
  auto model = make_retinanet(fixture_options());
  auto report = model->load_state_dict(upgrade_torchvision_detection_keys(fixture_state_dict(), 3), true);
  ASSERT_TRUE(report.ok()) << report.str();
  model->eval();
  ImageList il = image_list_from_batch(fixture_image());
  NoGradGuard ng;
  auto h = model->forward_heads(il);
  auto ref = read_floats(kData + "retinanet_outputs.bin");
  const int64_t N = h.cls_logits.size(1);
  ASSERT_EQ(N, 3852);
  ASSERT_EQ(static_cast<int64_t>(ref.size()), N * 7 + N * 4);
  auto cls = h.cls_logits.to_vector(), reg = h.bbox_regression.to_vector();
  // float32 through 20 layers: compare against the scale of each output (max |ref|), like
  // torch.testing's atol + rtol * |ref| with atol tied to the tensor's magnitude.
  auto check = [](const std::vector<double>& got, const float* ref, int64_t n, const char* what) {
    double scale = 0, worst = 0;
    for (int64_t i = 0; i < n; ++i) scale = std::max(scale, std::abs(static_cast<double>(ref[i])));
    for (int64_t i = 0; i < n; ++i)
      worst = std::max(worst, std::abs(got[i] - ref[i]) / (1e-5 * scale + 1e-4 * std::abs(ref[i])));
    EXPECT_LT(worst, 1.0) << what << ": max |ref| " << scale;
  };
  check(cls, ref.data(), N * 7, "cls_logits");
  check(reg, ref.data() + N * 7, N * 4, "bbox_regression");

  // Final detections: same count, and each reference detection found in ours (same label, box and
  // score within float32 tolerance). Entries closer than 1e-5 in score may swap places; so we match
  // by content rather than by rank.
  auto dets = model->postprocess(h, il)[0];
  std::ifstream f(kData + "retinanet_dets.txt");
  std::vector<std::array<double, 6>> want;
  for (std::array<double, 6> r; f >> r[0] >> r[1] >> r[2] >> r[3] >> r[4] >> r[5];) want.push_back(r);
  ASSERT_EQ(want.size(), 300u);
  ASSERT_EQ(dets.size(), 300);
  auto b = dets.boxes.to_vector(), s = dets.scores.to_vector(), l = dets.labels.to_vector();
  std::vector<bool> used(300, false);
  int64_t missing = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    bool found = false;
    for (size_t j = 0; j < 300 && !found; ++j) {
      if (used[j] || l[j] != want[i][5] || std::abs(s[j] - want[i][4]) > 1e-4) continue;
      bool box_ok = true;
      for (int c = 0; c < 4; ++c) box_ok = box_ok && std::abs(b[j * 4 + c] - want[i][c]) < 2e-3;
      if (box_ok) used[j] = found = true;
    }
    if (!found) ++missing;
  }
  // The score-ordered cut at 300 may differ by a near-tie at the boundary, nothing more.
  EXPECT_LE(missing, 2);
  // Ranks agree at the top.
  EXPECT_NEAR(s[0], want[0][4], 1e-5);
  EXPECT_EQ(l[0], want[0][5]);
}

TEST(RetinaNet, LossParityWithTorchvision) {
  auto model = make_retinanet(fixture_options());
  ASSERT_TRUE(model->load_state_dict(fixture_state_dict(), true).ok());
  model->train();  // FrozenBatchNorm: the same as eval
  ImageList il = image_list_from_batch(fixture_image());
  ImageTargets t{Tensor::from_vector({10, 20, 60, 90, 70, 30, 120, 62, 30, 100, 50, 140}, {3, 4}),
                 Tensor::from_vector({0, 3, 6}, {3}, DType::Int64)};
  auto losses = model->losses(il, {t});
  std::ifstream f(kData + "retinanet_losses.txt");
  std::map<std::string, double> want;
  for (std::string k; f >> k;) f >> want[k];
  ASSERT_EQ(want.size(), 2u);
  EXPECT_NEAR(losses.at("classification").item(), want["classification"], 2e-4 * want["classification"]);
  EXPECT_NEAR(losses.at("bbox_regression").item(), want["bbox_regression"], 2e-4 * want["bbox_regression"]);
}

TEST(RetinaNet, OldFormatKeysAreUpgraded) {
  auto sd = fixture_state_dict();
  nn::StateDict old;
  for (const auto& [k, t] : sd) {
    std::string name = k;
    auto rep = [&](const std::string& from, const std::string& to) {
      auto p = name.find(from);
      if (p != std::string::npos) name = name.substr(0, p) + to + name.substr(p + from.size());
    };
    for (int i = 0; i < 4; ++i) rep("conv." + std::to_string(i) + ".0.", "conv." + std::to_string(2 * i) + ".");
    for (int i = 0; i < 3; ++i) {
      rep("inner_blocks." + std::to_string(i) + ".0.", "inner_blocks." + std::to_string(i) + ".");
      rep("layer_blocks." + std::to_string(i) + ".0.", "layer_blocks." + std::to_string(i) + ".");
    }
    old.set(name, t);
  }
  EXPECT_TRUE(old.contains("head.classification_head.conv.6.weight"));
  EXPECT_TRUE(old.contains("backbone.fpn.inner_blocks.2.bias"));
  auto model = make_retinanet(fixture_options());
  auto report = model->load_state_dict(upgrade_torchvision_detection_keys(old, 3), true);
  EXPECT_TRUE(report.ok()) << report.str();
  // Grey input: conv1 summed over RGB.
  DetectorOptions grey = fixture_options();
  grey.in_channels = 1;
  auto g = make_retinanet(grey);
  auto up = upgrade_torchvision_detection_keys(sd, 1);
  EXPECT_EQ(up.at("backbone.body.conv1.weight").shape(), (Shape{64, 1, 7, 7}));
  EXPECT_TRUE(g->load_state_dict(up, true).ok());
}

TEST(Anchors, CellAnchorsEqualTorchvision) {
  AnchorGenerator g = retinanet_default_anchors();
  ASSERT_EQ(g.num_levels(), 5);
  EXPECT_EQ(g.sizes[0], (std::vector<double>{32, 40, 50}));
  EXPECT_EQ(g.sizes[4], (std::vector<double>{512, 645, 812}));
  EXPECT_EQ(g.num_anchors_per_location(0), 9);
  auto c = g.cell_anchors(0).to_vector();
  std::vector<double> want = {-23, -11, 23, 11, -28, -14, 28, 14, -35, -18, 35, 18, -16, -16, 16, 16, -20, -20, 20, 20,
                              -25, -25, 25, 25, -11, -23, 11, 23, -14, -28, 14, 28, -18, -35, 18, 35};
  EXPECT_EQ(c, want);
  AnchorGenerator s = retinanet_anchors(16);
  auto c16 = s.cell_anchors(0).to_vector();
  std::vector<double> want16 = {-11, -6, 11, 6, -14, -7, 14, 7, -18, -9, 18, 9, -8, -8, 8, 8, -10, -10, 10, 10,
                                -12, -12, 12, 12, -6, -11, 6, 11, -7, -14, 7, 14, -9, -18, 9, 18};
  EXPECT_EQ(c16, want16);  // 12.5 rounds to even
  // Grid: location-major, anchor-minor, shifted by the stride.
  AnchorGenerator one;
  one.sizes = {{8}};
  one.aspect_ratios = {{1.0}};
  auto a = one.grid_anchors({{2, 3}}, {16, 24}, Device::cpu())[0].to_vector();
  ASSERT_EQ(a.size(), 24u);
  EXPECT_EQ((std::vector<double>(a.begin() + 4, a.begin() + 8)), (std::vector<double>{4, -4, 12, 4}));
  EXPECT_EQ((std::vector<double>(a.begin() + 12, a.begin() + 16)), (std::vector<double>{-4, 4, 4, 12}));
}

TEST(Matcher, ThresholdsAndLowQualityMatchesLikeTorchvision) {
  Tensor q = Tensor::from_vector({0.9, 0.45, 0.1, 0.3, 0.2, 0.2, 0.1, 0.35, 0.3, 0.0}, {2, 5});
  EXPECT_EQ(match_boxes(q, 0.5, 0.4, true).to_vector(), (std::vector<double>{0, -2, 1, -1, -1}));
  EXPECT_EQ(match_boxes(q, 0.5, 0.4, false).to_vector(), (std::vector<double>{0, -2, -1, -1, -1}));
  // No ground truth: everything background.
  EXPECT_EQ(match_boxes(Tensor::zeros({0, 3}), 0.5, 0.4, true).to_vector(), (std::vector<double>{-1, -1, -1}));
  // Ties for a ground truth's best: every tied anchor is restored.
  Tensor t = Tensor::from_vector({0.3, 0.3, 0.1}, {1, 3});
  EXPECT_EQ(match_boxes(t, 0.5, 0.4, true).to_vector(), (std::vector<double>{0, 0, -1}));
}

using test::tiny_options;

TEST(RetinaNet, NormalImagesGiveBackgroundOnlyLoss) {
  auto model = make_retinanet(tiny_options());
  Generator g(9);
  ImageList il = image_list_from_batch(rand({2, 1, 64, 64}, g));
  std::vector<ImageTargets> t(2, ImageTargets{Tensor::zeros({0, 4}), Tensor::zeros({0}, DType::Int64)});
  auto l = model->losses(il, t);
  EXPECT_EQ(l.at("bbox_regression").item(), 0.0);
  double c = l.at("classification").item();
  EXPECT_TRUE(std::isfinite(c));
  EXPECT_GT(c, 0.0);
  Tensor total = add(l.at("classification"), l.at("bbox_regression"));
  total.backward();
  EXPECT_TRUE(model->head->classification_head->cls_logits->weight.grad().defined());
  EXPECT_THROW(model->losses(il, {t[0]}), ValueError);
}

TEST(RetinaNet, DetectOnBlankImagesIsEmptyAndTyped) {
  DetectorOptions o = tiny_options();
  o.score_thresh = 0.5;  // the prior (0.01) is far below: nothing survives on an untrained model
  auto model = make_retinanet(o);
  model->eval();
  auto d = model->detect(batch_images({Tensor::zeros({1, 64, 64}), Tensor::zeros({1, 40, 50})}));
  ASSERT_EQ(d.size(), 2u);
  for (const auto& e : d) {
    EXPECT_EQ(e.boxes.shape(), (Shape{0, 4}));
    EXPECT_EQ(e.scores.shape(), (Shape{0}));
    EXPECT_EQ(e.labels.dtype(), DType::Int64);
  }
}

TEST(DetectionCommon, BatchImagesPadsToMultipleOf32) {
  auto il = batch_images({Tensor::ones({1, 40, 50}), Tensor::ones({1, 64, 20})});
  EXPECT_EQ(il.tensor.shape(), (Shape{2, 1, 64, 64}));
  EXPECT_EQ(il.image_sizes[0], (std::pair<int64_t, int64_t>{40, 50}));
  auto v = il.tensor.to_vector();
  EXPECT_EQ(v[39 * 64 + 49], 1.0);
  EXPECT_EQ(v[39 * 64 + 50], 0.0);
  EXPECT_EQ(v[40 * 64 + 0], 0.0);
  EXPECT_THROW(batch_images({}), ValueError);
}

TEST(DetectionCommon, OptionsRoundTripThroughMetadata) {
  DetectorOptions o = tiny_options();
  o.norm = NormKind::BatchNorm;
  o.score_thresh = 0.123;
  auto back = detector_options_from_metadata(detector_options_to_metadata(o));
  EXPECT_EQ(back.arch, o.arch);
  EXPECT_EQ(back.in_channels, 1);
  EXPECT_EQ(back.num_classes, 3);
  EXPECT_EQ(back.norm, NormKind::BatchNorm);
  EXPECT_EQ(back.anchor_sizes, o.anchor_sizes);
  EXPECT_EQ(back.image_std, o.image_std);
  EXPECT_DOUBLE_EQ(back.score_thresh, 0.123);
  EXPECT_THROW(detector_options_from_metadata({{"det.in_channels", "x"}}), ValueError);
}

// Adam written out here (the models test does not link the optimizers of train/).
struct TinyAdam {
  std::vector<Tensor> p, m, v;
  double lr, b1 = 0.9, b2 = 0.999, eps = 1e-8;
  int64_t t = 0;
  TinyAdam(std::vector<Tensor> params, double lr_) : p(std::move(params)), lr(lr_) {
    for (auto& x : p) {
      m.push_back(Tensor::zeros(x.shape()));
      v.push_back(Tensor::zeros(x.shape()));
    }
  }
  void step() {
    NoGradGuard ng;
    ++t;
    const double c1 = 1 - std::pow(b1, t), c2 = 1 - std::pow(b2, t);
    for (size_t i = 0; i < p.size(); ++i) {
      Tensor g = p[i].grad();
      if (!g.defined()) continue;
      m[i] = add(mul(m[i], b1), mul(g, 1 - b1));
      v[i] = add(mul(v[i], b2), mul(mul(g, g), 1 - b2));
      Tensor upd = div(div(m[i], c1), add(sqrt(div(v[i], c2)), eps));
      add_(p[i], upd, -lr);
      p[i].zero_grad();
    }
  }
};

TEST(RetinaNet, SingleImageOverfitGivesNearPerfectDetection) {
  // The backbone stays frozen (random features are enough to memorise one image) so the test is fast.
  DetectorOptions o = tiny_options();
  o.trainable_layers = 0;
  auto model = make_retinanet(o);
  model->train();
  // A bright rectangle (class 2) and a bright disc-like square (class 0) on a dark background.
  std::vector<double> px(64 * 64, 0.1);
  auto paint = [&](int x1, int y1, int x2, int y2, double v) {
    for (int y = y1; y < y2; ++y)
      for (int x = x1; x < x2; ++x) px[y * 64 + x] = v;
  };
  paint(8, 10, 30, 24, 0.9);
  paint(38, 36, 56, 58, 0.6);
  ImageList il = image_list_from_batch(Tensor::from_vector(px, {1, 1, 64, 64}));
  ImageTargets t{Tensor::from_vector({8, 10, 30, 24, 38, 36, 56, 58}, {2, 4}),
                 Tensor::from_vector({2, 0}, {2}, DType::Int64)};
  TinyAdam opt(model->trainable_parameters(), 3e-3);
  double first = 0, last = 0;
  for (int it = 0; it < 80; ++it) {
    auto l = model->losses(il, {t});
    Tensor total = add(l.at("classification"), l.at("bbox_regression"));
    if (it == 0) first = total.item();
    last = total.item();
    total.backward();
    opt.step();
  }
  EXPECT_LT(last, 0.1 * first) << "first " << first << " last " << last;
  model->eval();
  auto d = model->detect(il)[0];
  ASSERT_GE(d.size(), 2);
  auto iou = kernels::box_iou(d.boxes.narrow(0, 0, 2), t.boxes).to_vector();
  auto lab = d.labels.to_vector(), sc = d.scores.to_vector();
  int best[2];
  for (int k = 0; k < 2; ++k) {
    best[k] = iou[k * 2 + 0] > iou[k * 2 + 1] ? 0 : 1;
    EXPECT_GT(iou[k * 2 + best[k]], 0.8) << "detection " << k;
    EXPECT_EQ(lab[k], best[k] == 0 ? 2 : 0) << "detection " << k;
    EXPECT_GT(sc[k], 0.5) << "detection " << k;
  }
  // The two top detections are the two objects, one each (not one object found twice).
  EXPECT_NE(best[0], best[1]);
  // No other confident box: a third detection above 0.5 would be a duplicate or a false positive.
  for (int64_t k = 2; k < d.size(); ++k) EXPECT_LT(sc[k], 0.5) << "detection " << k;
}

}  // namespace
}  // namespace sx::models
