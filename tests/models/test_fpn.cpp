// FPN: output shapes and levels, torchvision state-dict names, the top-down wiring (checked against
// the same convolutions composed by hand), P6/P7 from P5 or C5, LastLevelMaxPool, and the
// backbone wrapper on a ResNet.
#include <gtest/gtest.h>

#include "models/fpn.h"
#include "tensor/autograd.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace sx::models {
namespace {

std::vector<Tensor> features(Generator& g, const std::vector<int64_t>& ch, const std::vector<int64_t>& hw) {
  std::vector<Tensor> out;
  for (size_t i = 0; i < ch.size(); ++i) out.push_back(randn({2, ch[i], hw[i], hw[i] + 1}, g));
  return out;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  auto x = a.to_vector(), y = b.to_vector();
  EXPECT_EQ(x.size(), y.size());
  double m = 0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

TEST(Fpn, ShapesAndNamesWithP6P7) {
  Generator g(1);
  FeaturePyramidNetwork fpn({16, 32, 64}, 8, FpnExtra::P6P7, 8, &g);
  auto sd = fpn.state_dict();
  std::vector<std::string> want = {
      "inner_blocks.0.0.weight", "inner_blocks.0.0.bias", "inner_blocks.1.0.weight", "inner_blocks.1.0.bias",
      "inner_blocks.2.0.weight", "inner_blocks.2.0.bias", "layer_blocks.0.0.weight", "layer_blocks.0.0.bias",
      "layer_blocks.1.0.weight", "layer_blocks.1.0.bias", "layer_blocks.2.0.weight", "layer_blocks.2.0.bias",
      "extra_blocks.p6.weight", "extra_blocks.p6.bias", "extra_blocks.p7.weight", "extra_blocks.p7.bias"};
  EXPECT_EQ(sd.keys(), want);
  EXPECT_EQ(sd.at("inner_blocks.2.0.weight").shape(), (Shape{8, 64, 1, 1}));
  EXPECT_EQ(sd.at("layer_blocks.0.0.weight").shape(), (Shape{8, 8, 3, 3}));
  EXPECT_EQ(fpn.num_levels(), 5);

  auto x = features(g, {16, 32, 64}, {16, 8, 4});
  NoGradGuard ng;
  auto p = fpn.forward_levels(x);
  ASSERT_EQ(p.size(), 5u);
  EXPECT_EQ(p[0].shape(), (Shape{2, 8, 16, 17}));
  EXPECT_EQ(p[1].shape(), (Shape{2, 8, 8, 9}));
  EXPECT_EQ(p[2].shape(), (Shape{2, 8, 4, 5}));
  EXPECT_EQ(p[3].shape(), (Shape{2, 8, 2, 3}));  // conv3x3 stride 2 pad 1
  EXPECT_EQ(p[4].shape(), (Shape{2, 8, 1, 2}));
}

TEST(Fpn, TopDownWiringMatchesHandComposition) {
  Generator g(2);
  FeaturePyramidNetwork fpn({4, 6, 8}, 5, FpnExtra::P6P7, 5, &g);
  // Biases are 0 after torchvision's init; give them values so they are exercised.
  for (auto& [name, t] : fpn.named_parameters()) {
    if (name.find("bias") == std::string::npos) continue;
    NoGradGuard ng;
    Tensor tt = t;
    tt.copy_(randn(t.shape(), g));
  }
  auto x = features(g, {4, 6, 8}, {12, 7, 3});  // odd sizes: nearest upsampling to the lateral's size
  NoGradGuard ng;
  auto p = fpn.forward_levels(x);
  auto conv = [&](const std::string& name, const Tensor& in, int64_t k, int64_t s) {
    nn::Conv2dParams cp;
    cp.stride_h = cp.stride_w = s;
    cp.pad_h = cp.pad_w = k / 2;
    return nn::conv2d(in, fpn.parameter(name + ".weight"), fpn.parameter(name + ".bias"), cp);
  };
  Tensor i2 = conv("inner_blocks.2.0", x[2], 1, 1);
  Tensor i1 = add(conv("inner_blocks.1.0", x[1], 1, 1), nn::upsample_nearest(i2, 7, 8));
  Tensor i0 = add(conv("inner_blocks.0.0", x[0], 1, 1), nn::upsample_nearest(i1, 12, 13));
  Tensor p2 = conv("layer_blocks.2.0", i2, 3, 1);
  Tensor p6 = conv("extra_blocks.p6", p2, 3, 2);  // use_P5: in == out channels
  Tensor p7 = conv("extra_blocks.p7", relu(p6), 3, 2);
  EXPECT_LT(max_abs_diff(p[0], conv("layer_blocks.0.0", i0, 3, 1)), 1e-5);
  EXPECT_LT(max_abs_diff(p[1], conv("layer_blocks.1.0", i1, 3, 1)), 1e-5);
  EXPECT_LT(max_abs_diff(p[2], p2), 1e-6);
  EXPECT_LT(max_abs_diff(p[3], p6), 1e-6);
  EXPECT_LT(max_abs_diff(p[4], p7), 1e-6);
}

TEST(Fpn, P6FromC5WhenChannelsDiffer) {
  Generator g(3);
  FeaturePyramidNetwork fpn({4, 8}, 6, FpnExtra::P6P7, 8, &g);
  EXPECT_EQ(fpn.parameter("extra_blocks.p6.weight").shape(), (Shape{6, 8, 3, 3}));
  auto x = features(g, {4, 8}, {8, 4});
  NoGradGuard ng;
  auto p = fpn.forward_levels(x);
  ASSERT_EQ(p.size(), 4u);
  nn::Conv2dParams cp;
  cp.stride_h = cp.stride_w = 2;
  cp.pad_h = cp.pad_w = 1;
  Tensor p6 = nn::conv2d(x[1], fpn.parameter("extra_blocks.p6.weight"), fpn.parameter("extra_blocks.p6.bias"), cp);
  EXPECT_LT(max_abs_diff(p[2], p6), 1e-6);
  EXPECT_THROW(FeaturePyramidNetwork({4, 8}, 6, FpnExtra::P6P7, 5, &g), ValueError);
}

TEST(Fpn, MaxPoolExtraAndNoExtra) {
  Generator g(4);
  FeaturePyramidNetwork fpn({4, 8}, 3, FpnExtra::MaxPool, -1, &g);
  FeaturePyramidNetwork plain({4, 8}, 3, FpnExtra::None, -1, &g);
  EXPECT_EQ(fpn.state_dict().size(), 8u);  // no parameters in LastLevelMaxPool
  auto x = features(g, {4, 8}, {8, 5});
  NoGradGuard ng;
  auto p = fpn.forward_levels(x);
  ASSERT_EQ(p.size(), 3u);
  EXPECT_EQ(p[2].shape(), (Shape{2, 3, 3, 3}));  // max_pool2d(k=1, s=2): every other pixel of P5
  auto a = p[1].to_vector(), b = p[2].to_vector();
  EXPECT_EQ(b[0], a[0]);
  EXPECT_EQ(b[1], a[2]);
  EXPECT_EQ(plain.forward_levels(x).size(), 2u);
  EXPECT_THROW(fpn.forward_levels({x[0]}), ValueError);
}

TEST(Fpn, BackboneWithFpnOnResNet18) {
  ResNetConfig cfg;
  cfg.depth = 18;
  cfg.num_classes = 0;
  cfg.in_channels = 1;
  Generator g(5);
  BackboneWithFPN bb(make_resnet("resnet18", cfg), {2, 3, 4}, 16, FpnExtra::P6P7, 16, &g);
  auto keys = bb.state_dict().keys();
  EXPECT_EQ(keys.front(), "body.conv1.weight");
  EXPECT_NE(std::find(keys.begin(), keys.end(), "fpn.inner_blocks.0.0.weight"), keys.end());
  EXPECT_EQ(bb.parameter("fpn.inner_blocks.0.0.weight").shape(), (Shape{16, 128, 1, 1}));
  NoGradGuard ng;
  bb.eval();
  auto p = bb.forward_levels(rand({1, 1, 64, 96}, g));
  ASSERT_EQ(p.size(), 5u);
  EXPECT_EQ(p[0].shape(), (Shape{1, 16, 8, 12}));  // stride 8
  EXPECT_EQ(p[2].shape(), (Shape{1, 16, 2, 3}));   // stride 32
  EXPECT_EQ(p[4].shape(), (Shape{1, 16, 1, 1}));   // stride 128
}

}  // namespace
}  // namespace sx::models
