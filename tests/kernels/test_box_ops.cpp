// Box ops: torchvision golden values, a float64 naive reference, edge cases, CPU/CUDA parity.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/box_ops/box_ops.h"
#include "tests/common/devices.h"
#include "tests/kernels/detection_test_util.h"

namespace sx::kernels {
namespace {

using test::DetectionFixture;
using test::expect_close;

TEST(BoxOpsGolden, IouGiouMatchTorchvision) {
  DetectionFixture f("box");
  // Same arithmetic in the same order: bit-exact on the CPU, NaN (0/0) where torchvision has NaN.
  expect_close(box_iou(f["box_b1"], f["box_b2"]), f["box_iou"], 0, 0, "box_iou");
  expect_close(generalized_box_iou(f["box_b1"], f["box_b2"]), f["box_giou"], 0, 0, "generalized_box_iou");
}

TEST(BoxOpsGolden, ClipAndRemoveSmall) {
  DetectionFixture f("box");
  Tensor b1 = f["box_b1"];
  std::vector<double> v = b1.to_vector();
  for (double x : {-5.0, -3.0, 150.0, 90.0}) v.push_back(x);
  Tensor b = Tensor::from_vector(v, {b1.size(0) + 1, 4});
  expect_close(clip_boxes_to_image(b, 60, 80), f["box_clip"], 0, 0, "clip");
  EXPECT_EQ(test::ints(remove_small_boxes(b1, 12.0)), test::ints(f["box_small"]));
}

TEST(BoxOpsGolden, BoxCoderEncodeDecode) {
  DetectionFixture f("coder");
  const BoxCoderWeights w[2] = {{10, 10, 5, 5}, {1, 1, 1, 1}};
  for (int i = 0; i < 2; ++i) {
    const std::string tag = "coder" + std::to_string(i);
    // log/exp may differ from torch's vectorised versions in the last ulp. So: a few float32 ulps,
    // of each value for the codes, and of the largest |coordinate| of the box for decoded corners
    // (x1 = ctr - w/2 cancels, so a corner near 0 carries the rounding of ctr and w).
    expect_close(encode_boxes(f["coder_gt"], f["coder_anchors"], w[i]), f[tag + "_enc"], 1e-7, 4.8e-7, tag + " encode");
    const auto got = decode_boxes(f["coder_codes"], f["coder_anchors"], w[i]).to_vector();
    const auto ref = f[tag + "_dec"].to_vector();
    ASSERT_EQ(got.size(), ref.size());
    for (size_t b = 0; b < ref.size(); b += 4) {
      double scale = 0;
      for (size_t k = b; k < b + 4; ++k) scale = std::max(scale, std::fabs(ref[k]));
      for (size_t k = b; k < b + 4; ++k)
        EXPECT_NEAR(got[k], ref[k], 4.8e-7 * scale) << tag << " decode, box " << b / 4 << " value " << k % 4;
    }
  }
}

TEST(BoxOps, DecodeClampsLogScale) {
  // dw = 20 is clamped to log(1000/16): the decoded width is exactly 62.5x the anchor's.
  Tensor anchors = Tensor::from_vector({0, 0, 10, 10}, {1, 4}, DType::Float64);
  Tensor codes = Tensor::from_vector({0, 0, 20, 0}, {1, 4}, DType::Float64);
  auto v = decode_boxes(codes, anchors).to_vector();
  EXPECT_NEAR(v[2] - v[0], 625.0, 1e-9);
  EXPECT_NEAR(v[3] - v[1], 10.0, 1e-12);
}

TEST(BoxOps, EncodeDecodeRoundTrip) {
  Tensor gt = Tensor::from_vector({1, 2, 30, 40, -5, 7, 12, 9.5}, {2, 4}, DType::Float64);
  Tensor an = Tensor::from_vector({0, 0, 20, 20, -3, 5, 10, 12}, {2, 4}, DType::Float64);
  for (BoxCoderWeights w : {BoxCoderWeights{10, 10, 5, 5}, BoxCoderWeights{1, 1, 1, 1}})
    expect_close(decode_boxes(encode_boxes(gt, an, w), an, w), gt, 1e-10, 1e-10, "round trip");
}

// Naive float64 reference written independently of box_ops_math.h.
double ref_iou(const double* a, const double* b) {
  const double iw = std::max(0.0, std::min(a[2], b[2]) - std::max(a[0], b[0]));
  const double ih = std::max(0.0, std::min(a[3], b[3]) - std::max(a[1], b[1]));
  const double inter = iw * ih;
  return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter);
}

TEST(BoxOps, IouMatchesNaiveReferenceFloat64) {
  Tensor a = Tensor::from_vector({0, 0, 10, 10, 5, 5, 15, 15, 0, 0, 10, 20, 100, 100, 101, 130}, {4, 4},
                                 DType::Float64);
  Tensor b = Tensor::from_vector({0, 0, 10, 10, 2, 3, 4, 9, 50, 50, 60, 60}, {3, 4}, DType::Float64);
  Tensor iou = box_iou(a, b);
  auto va = a.to_vector(), vb = b.to_vector(), vi = iou.to_vector();
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 3; ++j) EXPECT_DOUBLE_EQ(vi[i * 3 + j], ref_iou(&va[4 * i], &vb[4 * j]));
  EXPECT_DOUBLE_EQ(vi[2 * 3 + 0], 0.5);  // [0,0,10,20] vs [0,0,10,10]: exactly 0.5
}

TEST(BoxOps, EmptyInputsGiveTypedEmptyOutputs) {
  Tensor e = Tensor::empty({0, 4});
  Tensor b = Tensor::from_vector({0, 0, 1, 1}, {1, 4});
  EXPECT_EQ(box_iou(e, b).shape(), (Shape{0, 1}));
  EXPECT_EQ(box_iou(b, e).shape(), (Shape{1, 0}));
  EXPECT_EQ(generalized_box_iou(e, e).shape(), (Shape{0, 0}));
  EXPECT_EQ(box_area(e).shape(), (Shape{0}));
  EXPECT_EQ(clip_boxes_to_image(e, 5, 5).shape(), (Shape{0, 4}));
  Tensor keep = remove_small_boxes(e, 1.0);
  EXPECT_EQ(keep.shape(), (Shape{0}));
  EXPECT_EQ(keep.dtype(), DType::Int64);
  EXPECT_EQ(encode_boxes(e, e).shape(), (Shape{0, 4}));
  EXPECT_EQ(decode_boxes(Tensor::empty({0, 8}), e).shape(), (Shape{0, 8}));
}

TEST(BoxOps, NanAndInvertedBoxesDoNotCrash) {
  Tensor a = Tensor::from_vector({NAN, 0, 1, 1, 5, 5, 1, 1}, {2, 4});
  Tensor b = Tensor::from_vector({0, 0, 2, 2}, {1, 4});
  auto v = box_iou(a, b).to_vector();
  EXPECT_TRUE(std::isnan(v[0]));        // torch.max propagates NaN
  EXPECT_FALSE(std::isnan(v[1]));       // inverted: overlap clamps to 0
  EXPECT_EQ(v[1], 0.0);
  auto c = clip_boxes_to_image(a, 3, 3).to_vector();
  EXPECT_TRUE(std::isnan(c[0]));
}

TEST(BoxOps, RejectsBadShapes) {
  EXPECT_THROW(box_iou(Tensor::empty({3, 5}), Tensor::empty({2, 4})), ValueError);
  EXPECT_THROW(decode_boxes(Tensor::empty({3, 6}), Tensor::empty({3, 4})), ValueError);
  EXPECT_THROW(box_iou(Tensor::empty({3, 4}, DType::Int64), Tensor::empty({2, 4}, DType::Int64)), ValueError);
}

// What the device parity case checked that means something on the CPU too (that case now runs on
// CUDA only): a non-contiguous view gives the contiguous result, an empty input a typed empty output.
TEST(BoxOps, NonContiguousInputGivesTheContiguousResult) {
  DetectionFixture f("box");
  Tensor b1 = f["box_b1"], b2 = f["box_b2"];
  Tensor nc = b1.t().contiguous().t();
  ASSERT_FALSE(nc.is_contiguous());
  expect_close(box_iou(nc, b2), f["box_iou"], 0, 0, "iou, non-contiguous boxes1");
  expect_close(box_iou(b1, b2.t().contiguous().t()), f["box_iou"], 0, 0, "iou, non-contiguous boxes2");
  expect_close(generalized_box_iou(nc, b2), f["box_giou"], 0, 0, "giou, non-contiguous");
  Tensor r = box_iou(Tensor::empty({0, 4}), b2);
  EXPECT_EQ(r.shape(), (Shape{0, b2.size(0)}));
  EXPECT_EQ(r.dtype(), DType::Float32);
}

class BoxOpsDevice : public ::testing::TestWithParam<Device> {};

TEST_P(BoxOpsDevice, ParityWithCpu) {
  const Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  DetectionFixture f("box"), c("coder");
  Tensor b1 = f["box_b1"], b2 = f["box_b2"];
  expect_close(box_iou(b1.to(dev), b2.to(dev)).cpu(), box_iou(b1, b2), 1e-6, 1e-6, "iou");
  expect_close(generalized_box_iou(b1.to(dev), b2.to(dev)).cpu(), generalized_box_iou(b1, b2), 1e-6, 1e-6, "giou");
  expect_close(clip_boxes_to_image(b1.to(dev), 60, 80).cpu(), clip_boxes_to_image(b1, 60, 80), 0, 0, "clip");
  EXPECT_EQ(test::ints(remove_small_boxes(b1.to(dev), 12.0)), test::ints(remove_small_boxes(b1, 12.0)));
  expect_close(encode_boxes(c["coder_gt"].to(dev), c["coder_anchors"].to(dev), {10, 10, 5, 5}).cpu(),
               encode_boxes(c["coder_gt"], c["coder_anchors"], {10, 10, 5, 5}), 1e-5, 1e-5, "encode");
  expect_close(decode_boxes(c["coder_codes"].to(dev), c["coder_anchors"].to(dev)).cpu(),
               decode_boxes(c["coder_codes"], c["coder_anchors"]), 1e-3, 1e-5, "decode");
  // Non-contiguous input: a transposed copy viewed back.
  Tensor nc = b1.t().contiguous().t();
  ASSERT_FALSE(nc.is_contiguous());
  expect_close(box_iou(nc.to(dev), b2.to(dev)).cpu(), box_iou(b1, b2), 1e-6, 1e-6, "non-contiguous");
  Tensor e = Tensor::empty({0, 4}, DType::Float32, dev);
  Tensor r = box_iou(e, b2.to(dev));
  EXPECT_EQ(r.shape(), (Shape{0, b2.size(0)}));
  EXPECT_EQ(r.device(), dev);
}

INSTANTIATE_TEST_SUITE_P(Devices, BoxOpsDevice, SX_PARITY_DEVICES, test::device_name);

}  // namespace
}  // namespace sx::kernels
