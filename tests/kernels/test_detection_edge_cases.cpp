// Detection-kernel edge cases pinned to torchvision (tests/data/kernels/detection_edge.txt, written
// by scripts/fixtures/kernels_edge_cases.py): Faster R-CNN anchors value for value, the matcher on
// a zero-area ground truth with low-quality matches, ties between ground truths and NaN
// qualities, batched NMS where the coordinate-offset trick fails (negative and very large
// coordinates), focal loss with gamma in (0, 1).
#include <gtest/gtest.h>

#include "kernels/anchors/anchors.h"
#include "kernels/focal_loss/focal_loss.h"
#include "layers/loss.h"
#include "kernels/matcher/matcher.h"
#include "kernels/nms/nms.h"
#include "tensor/autograd.h"
#include "tests/kernels/detection_test_util.h"

namespace sx::kernels {
namespace {

using nn::sigmoid_focal_loss;  // the autograd binding (layers/loss.h)

using test::DetectionFixture;
using test::expect_close;
using test::ints;

TEST(EdgeAnchors, FasterRcnnAnchorsMatchTorchvisionValueForValue) {
  DetectionFixture f("edge");
  for (const char* tag : {"a", "b"}) {
    auto s = ints(f[std::string("edge_anchors_") + tag + "_sizes"]);
    std::vector<std::pair<int64_t, int64_t>> feats;
    for (size_t i = 2; i < s.size(); i += 2) feats.push_back({s[i], s[i + 1]});
    Tensor a = generate_anchors(fasterrcnn_anchor_config(), {s[0], s[1]}, feats);
    expect_close(a, f[std::string("edge_anchors_") + tag], 0, 0, std::string("anchors ") + tag);
  }
}

TEST(EdgeMatcher, ZeroAreaTiesAndNanMatchTorchvision) {
  DetectionFixture f("edge");
  for (const char* name : {"zero", "tie", "nan"})
    for (int lq = 0; lq < 2; ++lq) {
      const std::string tag = std::string("edge_match_") + name;
      EXPECT_EQ(ints(match_anchors(f[tag + "_q"], MatcherParams{0.5, 0.4, lq == 1})),
                ints(f[tag + "_" + std::to_string(lq)]))
          << tag << " low-quality " << lq;
    }
}

TEST(EdgeBatchedNms, NegativeAndHugeCoordinatesEqualPerCategoryNms) {
  DetectionFixture f("edge");
  for (const char* tag : {"neg", "big32", "big64"}) {
    const std::string p = std::string("edge_bnms_") + tag;
    Tensor b = f[p + "_boxes"], s = f[p + "_scores"], idx = f[p + "_idxs"];
    for (NmsAlgo algo : {NmsAlgo::Naive, NmsAlgo::Fast}) {
      EXPECT_EQ(ints(batched_nms(b, s, idx, 0.5, algo)), ints(f[p + "_keep"]))
          << tag << (algo == NmsAlgo::Naive ? " naive" : " fast");
      NmsOptions o;
      o.algo = algo;
      EXPECT_EQ(ints(nms_with_options(b, s, idx, o)), ints(f[p + "_keep"])) << tag << " nms_with_options";
    }
  }
}

TEST(EdgeFocalLoss, GammaBelowOneMatchesTorchvision) {
  DetectionFixture f("edge");
  Tensor x = f["edge_fl_x"], t = f["edge_fl_t"], w = f["edge_fl_w"];
  FocalLossParams p;
  p.gamma = 0.5;
  p.reduction = FocalReduction::None;
  expect_close(sigmoid_focal_loss_forward(x, t, p), f["edge_fl_loss"], 1e-15, 1e-12, "loss");
  Tensor xg = x.clone().set_requires_grad(true);
  sigmoid_focal_loss(xg, t, p).backward(w);
  expect_close(xg.grad(), f["edge_fl_grad"], 1e-15, 1e-12, "grad");
}

}  // namespace
}  // namespace sx::kernels
