// The models' own matcher (match_boxes, used by RetinaNet, the RPN and the RoI heads) and Faster
// R-CNN's anchor generator, against torchvision on the edge cases of
// tests/data/kernels/detection_edge.txt (scripts/fixtures/kernels_edge_cases.py): a zero-area
// ground truth with low-quality matches, ties between ground truths, NaN qualities; anchors value
// for value on a batch whose size the feature maps divide and on one they do not.
#include <gtest/gtest.h>

#include "models/faster_rcnn.h"
#include "tensor/ops.h"
#include "tests/kernels/detection_test_util.h"

namespace sx::models {
namespace {

using test::DetectionFixture;
using test::ints;

TEST(EdgeModelMatcher, ZeroAreaTiesAndNanMatchTorchvision) {
  DetectionFixture f("edge");
  for (const char* name : {"zero", "tie", "nan"})
    for (int lq = 0; lq < 2; ++lq) {
      const std::string tag = std::string("edge_match_") + name;
      EXPECT_EQ(ints(match_boxes(f[tag + "_q"], 0.5, 0.4, lq == 1)), ints(f[tag + "_" + std::to_string(lq)]))
          << tag << " low-quality " << lq;
    }
}

// And on kernels_detection.py's matcher golden, which has qualities exactly at the thresholds.
TEST(EdgeModelMatcher, ThresholdsExactlyMatchTorchvision) {
  DetectionFixture f("match");
  EXPECT_EQ(ints(match_boxes(f["match_q"], 0.5, 0.4, true)), ints(f["match_a"]));
  EXPECT_EQ(ints(match_boxes(f["match_q"], 0.7, 0.3, false)), ints(f["match_b"]));
  EXPECT_EQ(ints(match_boxes(f["match_q"], 0.5, 0.4, false)), ints(f["match_c"]));
}

TEST(EdgeModelAnchors, FasterRcnnAnchorsMatchTorchvisionValueForValue) {
  DetectionFixture f("edge");
  const AnchorGenerator ag = faster_rcnn_anchors();
  for (const char* tag : {"a", "b"}) {
    auto s = ints(f[std::string("edge_anchors_") + tag + "_sizes"]);
    std::vector<std::pair<int64_t, int64_t>> grids;
    for (size_t i = 2; i < s.size(); i += 2) grids.push_back({s[i], s[i + 1]});
    Tensor a = cat(ag.grid_anchors(grids, {s[0], s[1]}, Device::cpu()), 0);
    test::expect_close(a, f[std::string("edge_anchors_") + tag], 0, 0, std::string("anchors ") + tag);
  }
}

}  // namespace
}  // namespace sx::models
