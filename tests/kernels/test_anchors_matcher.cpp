// Anchor generator and matcher: torchvision golden values (RetinaNet anchors over 5 FPN levels;
// Matcher with and without low-quality matches, IoU exactly at the thresholds), edge cases, parity.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/anchors/anchors.h"
#include "kernels/box_ops/box_ops.h"
#include "kernels/matcher/matcher.h"
#include "tests/common/devices.h"
#include "tests/kernels/detection_test_util.h"

namespace sx::kernels {
namespace {

using test::DetectionFixture;
using test::expect_close;
using test::ints;

AnchorConfig golden_config(const DetectionFixture& f) {
  // The fixture uses torchvision RetinaNet's integer sizes (x, int(x 2^(1/3)), int(x 2^(2/3))).
  auto s = f["anchors_sizes"].to_vector();
  AnchorConfig c;
  for (int l = 0; l < 5; ++l) {
    c.sizes.push_back({s[3 * l], s[3 * l + 1], s[3 * l + 2]});
    c.aspect_ratios.push_back({0.5, 1.0, 2.0});
  }
  return c;
}

const std::vector<std::pair<int64_t, int64_t>> kFeatureSizes = {{16, 20}, {8, 10}, {4, 5}, {2, 2}, {1, 2}};

TEST(AnchorsGolden, RetinaNetLevelsMatchTorchvision) {
  DetectionFixture f("anchors");
  Tensor a = generate_anchors(golden_config(f), {128, 160}, kFeatureSizes);
  expect_close(a, f["anchors_retina"], 0, 0, "anchors");
}

TEST(Anchors, BaseAnchorsAndCounts) {
  Tensor b = base_anchors({32}, {1.0});
  EXPECT_EQ(b.to_vector(), (std::vector<double>{-16, -16, 16, 16}));
  Tensor b2 = base_anchors({32}, {0.5, 2.0});  // h/w = 0.5: wide; 2: tall
  auto v = b2.to_vector();
  EXPECT_EQ(v[0], -23);  // w = 32 / sqrt(0.5) = 45.25 -> round(-22.63) = -23
  EXPECT_EQ(v[1], -11);  // h = 32 * sqrt(0.5) = 22.6 -> round(-11.3) = -11
  EXPECT_EQ(anchors_per_location(retinanet_anchor_config()), (std::vector<int64_t>(5, 9)));
  // Empty feature map: no anchors from that level.
  Tensor a = generate_anchors(fasterrcnn_anchor_config(), {64, 64}, {{16, 16}, {0, 0}, {4, 4}, {2, 2}, {1, 1}});
  EXPECT_EQ(a.size(0), (256 + 0 + 16 + 4 + 1) * 3);
  EXPECT_THROW(base_anchors({32}, {-1.0}), ValueError);
}

TEST(MatcherGolden, MatchesTorchvision) {
  DetectionFixture f("match");
  Tensor q = f["match_q"];
  MatcherParams a{0.5, 0.4, true}, b{0.7, 0.3, false}, c{0.5, 0.4, false};
  EXPECT_EQ(ints(match_anchors(q, a)), ints(f["match_a"]));
  EXPECT_EQ(ints(match_anchors(q, b)), ints(f["match_b"]));
  EXPECT_EQ(ints(match_anchors(q, c)), ints(f["match_c"]));
}

TEST(Matcher, ThresholdBandsAndLowQuality) {
  // 2 ground truths x 4 anchors.
  Tensor q = Tensor::from_vector({0.8, 0.45, 0.1, 0.0,
                                  0.2, 0.5, 0.42, 0.3},
                                 {2, 4});
  MatcherParams p{0.5, 0.4, false};
  // Anchor 1's best is 0.5 == high -> matched to gt 1; anchor 2's best 0.42 is in [0.4, 0.5) -> -2;
  // anchor 3's best 0.3 < 0.4 -> -1.
  EXPECT_EQ(ints(match_anchors(q, p)), (std::vector<int64_t>{0, 1, -2, -1}));
  Tensor q2 = Tensor::from_vector({0.35, 0.1, 0.2, 0.35}, {1, 4});
  MatcherParams lq{0.5, 0.4, true};
  // gt 0's best quality 0.35 is shared by anchors 0 and 3: both get it back (ties included).
  EXPECT_EQ(ints(match_anchors(q2, lq)), (std::vector<int64_t>{0, -1, -1, 0}));
}

TEST(Matcher, EmptyInputs) {
  Tensor none = match_anchors(Tensor::empty({0, 5}), MatcherParams{});
  EXPECT_EQ(ints(none), (std::vector<int64_t>(5, -1)));
  Tensor e = match_anchors(Tensor::empty({3, 0}), MatcherParams{});
  EXPECT_EQ(e.shape(), (Shape{0}));
  EXPECT_EQ(e.dtype(), DType::Int64);
  EXPECT_THROW(match_anchors(Tensor::empty({3}), MatcherParams{}), ValueError);
}

TEST(Matcher, NanQualityDoesNotCrash) {
  Tensor q = Tensor::from_vector({NAN, 0.9, 0.6, 0.1}, {2, 2});
  auto m = ints(match_anchors(q, MatcherParams{0.5, 0.4, true}));
  EXPECT_EQ(m.size(), 2u);
  EXPECT_EQ(m[1], 0);  // 0.9 for gt 0
}

class AnchorsMatcherDevice : public ::testing::TestWithParam<Device> {};

TEST_P(AnchorsMatcherDevice, ParityWithCpu) {
  const Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  DetectionFixture f("anchors"), m("match");
  Tensor a = generate_anchors(golden_config(f), {128, 160}, kFeatureSizes, dev);
  EXPECT_EQ(a.device(), dev);
  expect_close(a.cpu(), f["anchors_retina"], 0, 0, "anchors");
  for (MatcherParams p : {MatcherParams{0.5, 0.4, true}, MatcherParams{0.7, 0.3, false}})
    EXPECT_EQ(ints(match_anchors(m["match_q"].to(dev), p)), ints(match_anchors(m["match_q"], p)));
  // Matching real anchors against boxes through box_iou on the device.
  Tensor gt = Tensor::from_vector({10, 10, 60, 50, 80, 20, 150, 120}, {2, 4});
  Tensor q = box_iou(gt, f["anchors_retina"]);
  EXPECT_EQ(ints(match_anchors(box_iou(gt.to(dev), a), MatcherParams{0.5, 0.4, true})),
            ints(match_anchors(q, MatcherParams{0.5, 0.4, true})));
}

INSTANTIATE_TEST_SUITE_P(Devices, AnchorsMatcherDevice, SX_DEVICES, test::device_name);

}  // namespace
}  // namespace sx::kernels
