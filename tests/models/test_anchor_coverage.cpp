// Anchor coverage (models/anchor_coverage.h): the fast path (2 x 2 grid points per anchor shape)
// equals the brute force over the full anchor grid with the project's box_iou, for both detectors,
// several image sizes and anchor bases; the feature-map sizes equal the real models'; and the
// summary counts a hand-made case right.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <random>
#include <vector>

#include "kernels/anchors/anchors.h"
#include "kernels/box_ops/box_ops.h"
#include "models/anchor_coverage.h"
#include "models/faster_rcnn.h"
#include "models/image_list.h"
#include "models/retinanet.h"
#include "tensor/autograd.h"
#include "tensor/ops.h"
#include "tests/models/model_test_util.h"

namespace sx::models {
namespace {

// Best IoU per level the slow way: every anchor of the level (kernels::generate_anchor_levels) and
// kernels::box_iou, then the maximum of each row.
std::vector<std::vector<float>> brute_force(const std::vector<Tensor>& levels, const std::vector<std::array<float, 4>>& boxes) {
  std::vector<double> flat;
  for (const auto& b : boxes) flat.insert(flat.end(), b.begin(), b.end());  // exact: float -> double -> float
  const Tensor gt = Tensor::from_vector(flat, {static_cast<int64_t>(boxes.size()), 4});
  std::vector<std::vector<float>> out(boxes.size(), std::vector<float>(levels.size()));
  for (size_t l = 0; l < levels.size(); ++l) {
    const Tensor iou = kernels::box_iou(gt, levels[l]).contiguous();
    const float* p = iou.data<float>();
    const int64_t A = iou.size(1);
    for (size_t i = 0; i < boxes.size(); ++i) out[i][l] = *std::max_element(p + i * A, p + (i + 1) * A);
  }
  return out;
}

std::vector<std::array<float, 4>> random_boxes(std::mt19937& rng, int64_t h, int64_t w, int n) {
  std::uniform_real_distribution<float> u(0, 1);
  std::vector<std::array<float, 4>> boxes;
  for (int i = 0; i < n; ++i) {
    // Sizes from 2 px to the whole image (log-uniform), some reaching past the border.
    const float bw = 2 * std::pow(w / 2.0f, u(rng)), bh = 2 * std::pow(h / 2.0f, u(rng));
    const float x1 = u(rng) * (w - bw * 0.8f), y1 = u(rng) * (h - bh * 0.8f);
    boxes.push_back({x1, y1, x1 + bw, y1 + bh});
  }
  boxes.push_back({0, 0, static_cast<float>(w), static_cast<float>(h)});      // the whole image
  boxes.push_back({w / 2.0f, h / 2.0f, w / 2.0f + 16, h / 2.0f + 16});          // on the grid
  boxes.push_back({w - 3.0f, h - 5.0f, static_cast<float>(w), static_cast<float>(h)});  // a corner
  return boxes;
}

TEST(AnchorCoverage, FastPathEqualsFullGridBruteForce) {
  std::mt19937 rng(7);
  const std::vector<std::pair<int64_t, int64_t>> sizes = {{160, 160}, {96, 224}, {512, 512}, {1024, 1024}, {200, 136}};
  for (const std::string model : {"retinanet", "faster_rcnn"}) {
    for (double base : {8.0, 16.0, 32.0}) {
      const AnchorLayout layout = detector_anchor_layout(model, base);
      for (const auto& hw : sizes) {
        const auto boxes = random_boxes(rng, hw.first, hw.second, 40);
        const auto levels = kernels::generate_anchor_levels(layout.anchors, hw, feature_sizes(layout, hw));
        const auto slow = brute_force(levels, boxes);
        const auto fast = best_anchor_iou(layout, hw, boxes);
        ASSERT_EQ(fast.size(), slow.size());
        for (size_t i = 0; i < boxes.size(); ++i)
          for (size_t l = 0; l < levels.size(); ++l)
            ASSERT_EQ(fast[i][l], slow[i][l]) << model << " base " << base << " image " << hw.first << "x" << hw.second
                                              << " box " << i << " level " << l;
      }
    }
  }
}

TEST(AnchorCoverage, FeatureSizesAreTheModelsOwn) {
  NoGradGuard ng;
  const std::pair<int64_t, int64_t> hw = {64, 96};
  const Tensor x = Tensor::zeros({1, 1, hw.first, hw.second});
  // RetinaNet: its own anchors (forward_heads) are the grid anchor_coverage assumes.
  auto retina = make_retinanet(test::tiny_options());
  const AnchorLayout rl = detector_anchor_layout("retinanet", 8);
  const auto h = retina->forward_heads(image_list_from_batch(x));
  const auto expect = kernels::generate_anchor_levels(rl.anchors, hw, feature_sizes(rl, hw));
  ASSERT_EQ(h.anchors.size(), expect.size());
  for (size_t l = 0; l < expect.size(); ++l) {
    ASSERT_EQ(h.anchors[l].shape(), expect[l].shape()) << "level " << l;
    EXPECT_EQ(max(abs(sub(h.anchors[l], expect[l]))).item<float>(), 0.0f) << "level " << l;
  }
  // Faster R-CNN: its FPN levels (P2..P6) have the sizes anchor_coverage assumes.
  DetectorOptions o = test::tiny_options();
  o.anchor_sizes = detector_anchor_layout("faster_rcnn", 8).anchors.sizes;
  auto frcnn = make_faster_rcnn(o);
  const auto feats = frcnn->features(image_list_from_batch(x));
  const auto fs = feature_sizes(detector_anchor_layout("faster_rcnn", 8), hw);
  ASSERT_EQ(feats.size(), fs.size());
  for (size_t l = 0; l < fs.size(); ++l) {
    EXPECT_EQ(feats[l].size(2), fs[l].first) << "level " << l;
    EXPECT_EQ(feats[l].size(3), fs[l].second) << "level " << l;
  }
}

TEST(AnchorCoverage, KnownAnswer) {
  // Faster R-CNN base 32 on a 256 px image: a 32 x 32 box centred on a P2 grid point has IoU 1 at
  // P2; a 64 x 64 one has IoU 1 at P3; a 16 x 16 box reaches 256 / (46 x 22) at best (the ratio-0.5 anchor of size 32 is
  // round(45.25 / 2) x 2 = 46 wide, round(22.63 / 2) x 2 = 22 high: more IoU than the 32 x 32 one's 0.25).
  const AnchorLayout L = detector_anchor_layout("faster_rcnn", 32);
  const std::vector<std::array<float, 4>> boxes = {{48, 48, 80, 80}, {32, 32, 96, 96}, {56, 56, 72, 72}};
  const auto best = best_anchor_iou(L, {256, 256}, boxes);
  EXPECT_EQ(best[0][0], 1.0f);
  EXPECT_EQ(best[1][1], 1.0f);
  EXPECT_FLOAT_EQ(*std::max_element(best[2].begin(), best[2].end()), 256.0f / (46 * 22));
  const AnchorCoverage c = summarize_coverage(best, L.num_levels());
  EXPECT_EQ(c.boxes, 3);
  EXPECT_DOUBLE_EQ(c.at50, 2.0 / 3);
  EXPECT_DOUBLE_EQ(c.at40, 2.0 / 3);
  EXPECT_DOUBLE_EQ(c.level_at50[0], 1.0 / 3);
  EXPECT_DOUBLE_EQ(c.level_at50[1], 1.0 / 3);
  EXPECT_DOUBLE_EQ(c.best_level_share[0], 2.0 / 3);  // the 16 px box's best is at P2 too
  EXPECT_DOUBLE_EQ(c.median_best_iou, 1.0);
  EXPECT_EQ(summarize_coverage({}, 5).boxes, 0);
  EXPECT_THROW(detector_anchor_layout("yolo", 16), ValueError);
}

TEST(AnchorCoverage, AnchorBaseLayouts) {
  const AnchorLayout r = detector_anchor_layout("retinanet", 16);
  ASSERT_EQ(r.num_levels(), 5);
  EXPECT_EQ(r.anchors.sizes[0], (std::vector<double>{16, 20, 25}));
  EXPECT_EQ(r.first_level, 3);
  const AnchorLayout f = detector_anchor_layout("faster_rcnn", 0);  // torchvision's 32
  EXPECT_EQ(f.anchors.sizes[4], (std::vector<double>{512}));
  EXPECT_EQ(f.first_level, 2);
}

}  // namespace
}  // namespace sx::models
