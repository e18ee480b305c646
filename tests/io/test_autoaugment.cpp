// AutoAugment for detection (policy v2): each operation on an image with a known pattern (a bright
// rectangle exactly where its box is), the policy table against the reference, probabilities,
// determinism, and a training loader that uses the policy.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include "io/autoaugment.h"
#include "io/dataset.h"
#include "io/synth.h"
#include "io_test_util.h"

namespace sx::io {
namespace {

// A dark W x H image with a bright rectangle [x1, x2) x [y1, y2), and that rectangle's box.
GreyF pattern(int W, int H, int x1, int y1, int x2, int y2, std::vector<Box>* boxes) {
  GreyF img(W, H, 0.0f);
  for (int y = y1; y < y2; ++y)
    for (int x = x1; x < x2; ++x) img.px[static_cast<size_t>(y) * W + x] = 1.0f;
  Box b;
  b.x1 = static_cast<float>(x1), b.y1 = static_cast<float>(y1), b.x2 = static_cast<float>(x2), b.y2 = static_cast<float>(y2);
  b.label = 3;
  *boxes = {b};
  return img;
}

// The box of the pixels brighter than the fill grey (what the pattern became); x2 < 0 if none.
Box bright_box(const GreyF& img, float thr = 0.75f) {
  Box b;
  b.x1 = b.y1 = 1e9f;
  b.x2 = b.y2 = -1.0f;
  for (int y = 0; y < img.height; ++y)
    for (int x = 0; x < img.width; ++x)
      if (img.at(x, y) > thr) {
        b.x1 = std::min(b.x1, static_cast<float>(x)), b.y1 = std::min(b.y1, static_cast<float>(y));
        b.x2 = std::max(b.x2, x + 1.0f), b.y2 = std::max(b.y2, y + 1.0f);
      }
  return b;
}

void expect_box_near(const Box& a, const Box& b, float tol) {
  EXPECT_NEAR(a.x1, b.x1, tol);
  EXPECT_NEAR(a.y1, b.y1, tol);
  EXPECT_NEAR(a.x2, b.x2, tol);
  EXPECT_NEAR(a.y2, b.y2, tol);
}

TEST(AutoAugment, PolicyV2MatchesTheReferenceTable) {
  const auto& v2 = autoaugment_policy_v2();
  ASSERT_EQ(v2.size(), 15u);
  size_t steps = 0;
  for (const auto& sp : v2) steps += sp.size();
  EXPECT_EQ(steps, 44u);  // 14 sub-policies of 3 and one of 2
  EXPECT_EQ(v2[2].size(), 2u);
  auto same = [](const PolicyStep& s, AugOp op, double p, int level) {
    return s.op == op && s.prob == p && s.level == level;
  };
  EXPECT_TRUE(same(v2[0][1], AugOp::Cutout, 0.6, 8));
  EXPECT_TRUE(same(v2[1][2], AugOp::RotateBBox, 0.8, 10));
  EXPECT_TRUE(same(v2[3][1], AugOp::ShearXBBox, 0.8, 8));
  EXPECT_TRUE(same(v2[7][1], AugOp::ShearYBBox, 0.8, 8));
  EXPECT_TRUE(same(v2[10][1], AugOp::BBoxCutout, 1.0, 4));
  EXPECT_TRUE(same(v2[13][2], AugOp::SolarizeAdd, 0.2, 10));
  EXPECT_TRUE(same(v2[14][0], AugOp::Contrast, 1.0, 10));
  EXPECT_STREQ(aug_op_name(v2[10][1].op), "BBox_Cutout");
  EXPECT_EQ(parse_autoaugment_policy("v2"), AutoAugmentPolicy::V2);
  EXPECT_THROW(parse_autoaugment_policy("v9"), ValueError);
}

TEST(AutoAugment, TranslateMovesPixelsAndBoxesTogether) {
  std::vector<Box> boxes;
  GreyF img = pattern(64, 48, 20, 12, 36, 28, &boxes);
  aa::translate(img, boxes, 7, -5);
  ASSERT_EQ(boxes.size(), 1u);
  expect_box_near(boxes[0], bright_box(img), 0.0f);
  EXPECT_FLOAT_EQ(boxes[0].x1, 27.0f);
  EXPECT_FLOAT_EQ(boxes[0].y1, 7.0f);
  EXPECT_EQ(boxes[0].label, 3);
  EXPECT_FLOAT_EQ(img.at(63, 47), aa::kFill);  // emptied pixels are grey
  // Partly out: clipped to the image, still on the pattern.
  aa::translate(img, boxes, 0, -12);
  ASSERT_EQ(boxes.size(), 1u);
  EXPECT_FLOAT_EQ(boxes[0].y1, 0.0f);
  expect_box_near(boxes[0], bright_box(img), 0.0f);
  // Wholly out: dropped.
  aa::translate(img, boxes, 70, 0);
  EXPECT_TRUE(boxes.empty());
}

TEST(AutoAugment, RotateMovesPixelsAndBoxesTogether) {
  for (double deg : {90.0, -90.0, 30.0, -30.0, 12.0}) {
    std::vector<Box> boxes;
    GreyF img = pattern(64, 64, 20, 14, 40, 26, &boxes);
    aa::rotate(img, boxes, deg);
    ASSERT_EQ(boxes.size(), 1u) << deg;
    // The box of the rotated corners encloses the rotated rectangle tightly.
    expect_box_near(boxes[0], bright_box(img), 1.5f);
  }
  // Counter-clockwise on screen: a rectangle right of the centre ends up above it.
  std::vector<Box> boxes;
  GreyF img = pattern(64, 64, 44, 28, 60, 36, &boxes);
  aa::rotate(img, boxes, 90.0);
  expect_box_near(boxes[0], Box{28, 4, 36, 20}, 0.01f);
  expect_box_near(bright_box(img), boxes[0], 0.0f);
}

TEST(AutoAugment, ShearMovesPixelsAndBoxesTogether) {
  for (double level : {0.3, -0.3, 0.12}) {
    std::vector<Box> boxes;
    GreyF img = pattern(80, 64, 28, 20, 48, 40, &boxes);
    aa::shear_x(img, boxes, level);
    ASSERT_EQ(boxes.size(), 1u);
    expect_box_near(boxes[0], bright_box(img, 0.6f), 1.5f);
    EXPECT_NEAR(boxes[0].x1, 28 - std::max(0.0, level) * 40 + std::max(0.0, -level) * 20, 1e-4);
    img = pattern(80, 64, 28, 20, 48, 40, &boxes);
    aa::shear_y(img, boxes, level);
    ASSERT_EQ(boxes.size(), 1u);
    expect_box_near(boxes[0], bright_box(img, 0.6f), 1.5f);
  }
}

TEST(AutoAugment, GeometricOpsAtPolicyLevelsKeepPixelsAndBoxesTogether) {
  // Through apply_aug_op (random signs from the rng), each box-moving op of v2 at its levels.
  for (AugOp op : {AugOp::RotateBBox, AugOp::TranslateYBBox, AugOp::ShearXBBox, AugOp::ShearYBBox})
    for (int level : {2, 6, 8, 10})
      for (uint64_t seed : {1, 2}) {
        std::vector<Box> boxes;
        GreyF img = pattern(96, 80, 36, 30, 60, 50, &boxes);
        AugRng rng(seed);
        apply_aug_op(op, level, img, boxes, rng, 80 / 800.0);  // translate: level * 2.5 px
        ASSERT_EQ(boxes.size(), 1u) << aug_op_name(op) << " " << level;
        expect_box_near(boxes[0], bright_box(img, 0.6f), 1.5f);
        if (op == AugOp::TranslateYBBox) {
          EXPECT_NEAR(std::fabs(boxes[0].y1 - 30.0f), std::lround(level * 2.5), 0.0);
        }
      }
}

TEST(AutoAugment, BBoxCutoutActsInsideOneBoxAndLeavesTheBoxes) {
  for (uint64_t seed = 0; seed < 8; ++seed) {
    std::vector<Box> boxes;
    GreyF img = pattern(64, 64, 16, 20, 40, 44, &boxes);  // 24 x 24 box
    const GreyF before = img;
    AugRng rng(seed);
    apply_aug_op(AugOp::BBoxCutout, 10, img, boxes, rng);
    ASSERT_EQ(boxes.size(), 1u);
    expect_box_near(boxes[0], Box{16, 20, 40, 44}, 0.0f);
    Box changed;
    changed.x1 = changed.y1 = 1e9f;
    changed.x2 = changed.y2 = -1;
    for (int y = 0; y < 64; ++y)
      for (int x = 0; x < 64; ++x)
        if (img.at(x, y) != before.at(x, y)) {
          EXPECT_FLOAT_EQ(img.at(x, y), aa::kFill);
          changed.x1 = std::min(changed.x1, float(x)), changed.y1 = std::min(changed.y1, float(y));
          changed.x2 = std::max(changed.x2, x + 1.0f), changed.y2 = std::max(changed.y2, y + 1.0f);
        }
    ASSERT_GT(changed.x2, 0) << "nothing cut out";
    // A rectangle of at most 0.75 of the box, centred inside the box: 2 * int(0.75 * 24 / 2) = 18.
    EXPECT_LE(changed.x2 - changed.x1, 18.0f);
    EXPECT_LE(changed.y2 - changed.y1, 18.0f);
    EXPECT_GE(changed.x2, 16.0f + 1); EXPECT_LE(changed.x1, 40.0f - 1);
    EXPECT_GE(changed.y2, 20.0f + 1); EXPECT_LE(changed.y1, 44.0f - 1);
    EXPECT_GE(changed.x1, 16.0f - 9); EXPECT_LE(changed.x2, 40.0f + 9);
  }
  // No box: nothing happens.
  GreyF img(32, 32, 0.3f);
  std::vector<Box> none;
  AugRng rng(1);
  apply_aug_op(AugOp::BBoxCutout, 10, img, none, rng);
  for (float v : img.px) EXPECT_EQ(v, 0.3f);
}

TEST(AutoAugment, CutoutFillsOneSquareAndLeavesTheBoxes) {
  std::vector<Box> boxes;
  GreyF img = pattern(200, 160, 20, 20, 60, 60, &boxes);
  const GreyF before = img;
  AugRng rng(4);
  apply_aug_op(AugOp::Cutout, 8, img, boxes, rng, 0.2);  // pad int(80 * 0.2) = 16: at most 32 x 32
  expect_box_near(boxes[0], Box{20, 20, 60, 60}, 0.0f);
  int n = 0;
  for (size_t i = 0; i < img.px.size(); ++i)
    if (img.px[i] != before.px[i]) {
      ++n;
      EXPECT_FLOAT_EQ(img.px[i], aa::kFill);
    }
  EXPECT_GT(n, 0);
  EXPECT_LE(n, 32 * 32);
}

TEST(AutoAugment, ColourOpsOnGrey) {
  std::vector<Box> boxes;
  GreyF img = pattern(34, 30, 0, 0, 17, 30, &boxes);  // half 0, half 1
  for (float& v : img.px) v = v > 0.5f ? 0.6f : 0.2f;
  const GreyF base = img;
  const std::vector<Box> boxes0 = boxes;
  AugRng rng(3);
  // Color: the grey version of a grey image is the image.
  apply_aug_op(AugOp::Color, 10, img, boxes, rng);
  EXPECT_EQ(img.px, base.px);
  img = base;
  aa::autocontrast(img);
  EXPECT_FLOAT_EQ(img.at(0, 0), 1.0f);
  EXPECT_FLOAT_EQ(img.at(33, 0), 0.0f);
  img = base;  // PIL equalize of two equal halves: the lower level to 0, the upper to 255
  aa::equalize(img);
  EXPECT_FLOAT_EQ(img.at(0, 0), 1.0f);
  EXPECT_FLOAT_EQ(img.at(33, 0), 0.0f);
  img = base;
  aa::solarize(img, 0.5f);
  EXPECT_FLOAT_EQ(img.at(0, 0), 0.4f);
  EXPECT_FLOAT_EQ(img.at(33, 0), 0.2f);
  img = base;
  aa::solarize_add(img, 0.3f, 128 / 255.0f);
  EXPECT_FLOAT_EQ(img.at(0, 0), 0.6f);
  EXPECT_FLOAT_EQ(img.at(33, 0), 0.5f);
  img = base;
  aa::contrast(img, 0.5f);  // towards the mean 0.4
  EXPECT_FLOAT_EQ(img.at(0, 0), 0.5f);
  EXPECT_FLOAT_EQ(img.at(33, 0), 0.3f);
  img = base;
  aa::brightness(img, 1.9f);
  EXPECT_FLOAT_EQ(img.at(0, 0), 1.0f);  // clipped
  EXPECT_FLOAT_EQ(img.at(33, 0), 0.38f);
  // Sharpness: 1 is the image, 0 the smoothed image (a lone dot keeps 5/13), borders untouched.
  GreyF dot(9, 9, 0.0f);
  dot.px[4 * 9 + 4] = 1.0f;
  GreyF s = dot;
  aa::sharpness(s, 1.0f);
  EXPECT_EQ(s.px, dot.px);
  aa::sharpness(s, 0.0f);
  EXPECT_NEAR(s.at(4, 4), 5.0f / 13.0f, 1e-6);
  EXPECT_NEAR(s.at(3, 4), 1.0f / 13.0f, 1e-6);
  // The colour ops leave boxes alone.
  for (AugOp op : {AugOp::AutoContrast, AugOp::Equalize, AugOp::Solarize, AugOp::SolarizeAdd, AugOp::Contrast,
                   AugOp::Brightness, AugOp::Sharpness}) {
    img = base;
    apply_aug_op(op, 6, img, boxes, rng);
    ASSERT_EQ(boxes.size(), 1u);
    expect_box_near(boxes[0], boxes0[0], 0.0f);
  }
}

TEST(AutoAugment, ProbabilityZeroDoesNothingAndLosingEveryBoxRestores) {
  std::vector<Box> boxes;
  const GreyF base = pattern(64, 64, 10, 10, 30, 30, &boxes);
  const std::vector<Box> boxes0 = boxes;
  GreyF img = base;
  SubPolicy never = {{AugOp::RotateBBox, 0.0, 10}, {AugOp::Cutout, 0.0, 10}, {AugOp::Equalize, 0.0, 5}};
  for (uint64_t seed = 0; seed < 20; ++seed) {
    AugRng rng(seed);
    apply_sub_policy(never, img, boxes, rng, 1.0);
  }
  EXPECT_EQ(img.px, base.px);
  expect_box_near(boxes[0], boxes0[0], 0.0f);
  // A translation by the whole height loses the box whatever the sign: the input comes back.
  SubPolicy away = {{AugOp::TranslateYBBox, 1.0, 10}};
  AugRng rng(1);
  apply_sub_policy(away, img, boxes, rng, 64 / 250.0);
  EXPECT_EQ(img.px, base.px);
  ASSERT_EQ(boxes.size(), 1u);
}

TEST(AutoAugment, SameSeedSameOutputAndEverySubPolicyKeepsValidBoxes) {
  std::set<int> chosen;
  for (uint64_t seed = 0; seed < 120; ++seed) {
    std::vector<Box> boxes;
    GreyF img = pattern(120, 100, 30, 25, 70, 60, &boxes);
    boxes.push_back(Box{90, 5, 118, 30, 1, 0});
    for (size_t i = 0; i < img.px.size(); ++i) img.px[i] = 0.8f * img.px[i] + 0.2f * ((i * 7919) % 13) / 13.0f;  // texture
    GreyF img2 = img;
    std::vector<Box> boxes2 = boxes;
    AugRng r1(seed), r2(seed);
    const int k1 = apply_autoaugment(AutoAugmentPolicy::V2, img, boxes, r1, 0.15);
    const int k2 = apply_autoaugment(AutoAugmentPolicy::V2, img2, boxes2, r2, 0.15);
    ASSERT_EQ(k1, k2);
    chosen.insert(k1);
    EXPECT_EQ(img.px, img2.px);
    ASSERT_EQ(boxes.size(), boxes2.size());
    ASSERT_FALSE(boxes.empty());
    for (size_t j = 0; j < boxes.size(); ++j) {
      expect_box_near(boxes[j], boxes2[j], 0.0f);
      EXPECT_GE(boxes[j].x1, 0.0f); EXPECT_GE(boxes[j].y1, 0.0f);
      EXPECT_LE(boxes[j].x2, 120.0f); EXPECT_LE(boxes[j].y2, 100.0f);
      EXPECT_GT(boxes[j].x2 - boxes[j].x1, 0.0f); EXPECT_GT(boxes[j].y2 - boxes[j].y1, 0.0f);
    }
    for (float v : img.px) ASSERT_TRUE(v >= 0.0f && v <= 1.0f);
  }
  EXPECT_EQ(chosen.size(), 15u);  // every sub-policy drawn in 120 images
}

TEST(AutoAugment, TrainingLoaderWithPolicyV2GivesValidBatches) {
  test::TempDir dir;
  SynthOptions so;
  so.images = 16;
  so.seed = 5;
  so.size = 96;
  so.progress = false;
  so.out = dir.path + "/vindr";
  synthesize_dataset(so);
  Dataset ds = Dataset::open(so.out);
  std::vector<int64_t> pool;
  for (int64_t i = 0; i < ds.size(); ++i) pool.push_back(i);
  LoaderOptions lo;
  lo.batch_size = 4;
  lo.workers = 2;
  lo.seed = 3;
  lo.transform.size = 64;
  lo.transform.hflip_prob = 0.5;
  lo.transform.autoaugment = AutoAugmentPolicy::V2;
  DataLoader dl(ds, pool, lo);
  LoaderOptions plain = lo;
  plain.transform.autoaugment = AutoAugmentPolicy::None;
  int64_t boxes = 0, differ = 0;
  for (int64_t epoch = 0; epoch < 2; ++epoch) {
    dl.start_epoch(epoch);
    const std::vector<int64_t> order = epoch_order(ds, pool, lo.sampling, lo.seed, epoch);
    Batch b;
    while (dl.next(b)) {
      ASSERT_GT(b.images.size(0), 0);
      const Batch again = make_batch(ds, order, b.batch_index, epoch, lo);  // deterministic
      const Batch without = make_batch(ds, order, b.batch_index, epoch, plain);
      ASSERT_EQ(b.images.numel(), again.images.numel());
      EXPECT_TRUE(std::equal(b.images.data<float>(), b.images.data<float>() + b.images.numel(), again.images.data<float>()));
      if (!std::equal(b.images.data<float>(), b.images.data<float>() + b.images.numel(), without.images.data<float>())) ++differ;
      for (const Target& t : b.targets) {
        const int64_t n = t.boxes.size(0);
        if (t.image_label == 1) {
          EXPECT_GT(n, 0) << t.image_id;  // an image with boxes keeps at least one
        }
        const float* p = n ? t.boxes.data<float>() : nullptr;
        for (int64_t j = 0; j < n; ++j, ++boxes) {
          EXPECT_GE(p[4 * j], 0.0f); EXPECT_GE(p[4 * j + 1], 0.0f);
          EXPECT_LE(p[4 * j + 2], static_cast<float>(t.resized_width));
          EXPECT_LE(p[4 * j + 3], static_cast<float>(t.resized_height));
          EXPECT_GT(p[4 * j + 2] - p[4 * j], 0.0f); EXPECT_GT(p[4 * j + 3] - p[4 * j + 1], 0.0f);
        }
      }
    }
  }
  EXPECT_GT(boxes, 0);
  EXPECT_GT(differ, 0);  // the policy changed some batches
}

}  // namespace
}  // namespace sx::io
