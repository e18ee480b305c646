// Kernel labs (kernels/labs): every version of NMS, RoIAlign forward and focal loss gives the
// product kernel's result on random inputs, ties, degenerate values and empty inputs. NMS: the
// identical kept indices; RoIAlign and focal loss: within float tolerance (v2 of RoIAlign sums in
// v1's order: bit-identical to v1).
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "kernels/labs/focal_loss_lab.h"
#include "kernels/labs/nms_lab.h"
#include "kernels/labs/roi_align_lab.h"
#include "tensor/random.h"
#include "tests/kernels/detection_test_util.h"
#include "tests/ops/op_naive_twins.h"

namespace sx::kernels::labs {
namespace {

using test::expect_close;
using test::ints;

// ---- NMS ------------------------------------------------------------------------------------
// n boxes in a 200 x 200 image (sizes 4..40: dense enough for many suppressions); scores drawn
// from `levels` distinct values (few levels: many ties), a few exact duplicate boxes.
struct Scene {
  Tensor boxes, scores;
};
Scene make_scene(int64_t n, uint64_t seed, int levels, DType dt = DType::Float32) {
  Generator g(seed);
  Tensor b = Tensor::empty({n, 4}, DType::Float64), s = Tensor::empty({n}, DType::Float64);
  double* bp = b.data<double>();
  double* sp = s.data<double>();
  for (int64_t i = 0; i < n; ++i) {
    if (i > 0 && g.uniform() < 0.05) {  // an exact duplicate of an earlier box
      const int64_t j = g.randint(0, i);
      for (int k = 0; k < 4; ++k) bp[4 * i + k] = bp[4 * j + k];
    } else {
      const double x = g.uniform() * 200, y = g.uniform() * 200;
      bp[4 * i] = x, bp[4 * i + 1] = y, bp[4 * i + 2] = x + 4 + g.uniform() * 36;
      bp[4 * i + 3] = y + 4 + g.uniform() * 36;
    }
    sp[i] = static_cast<double>(g.randint(0, levels)) / levels;
  }
  return {b.to(dt), s.to(dt)};
}

void expect_all_nms_versions_agree(const Tensor& b, const Tensor& s, double thr, const std::string& what) {
  const std::vector<int64_t> want = ints(nms(b, s, thr));
  for (const NmsVersion& v : nms_versions())
    EXPECT_EQ(ints(v.fn(b, s, thr)), want) << v.name << " " << what << " thr " << thr;
}

TEST(LabsNms, AllVersionsKeepTheSameIndicesOnRandomScenes) {
  for (int64_t n : {1, 2, 50, 700, 2500})  // 2500: v3's rows run on threads (n >= 2048)
    for (int levels : {3, 1000000})
      for (double thr : {0.0, 0.3, 0.5, 0.9}) {
        const Scene sc = make_scene(n, 10 + n + levels, levels);
        expect_all_nms_versions_agree(sc.boxes, sc.scores, thr,
                                      "n " + std::to_string(n) + " levels " + std::to_string(levels));
      }
  const Scene sc = make_scene(400, 3, 5, DType::Float64);
  expect_all_nms_versions_agree(sc.boxes, sc.scores, 0.5, "float64");
}

TEST(LabsNms, TiesNanScoresAndDegenerateBoxes) {
  // All scores equal: index order decides. NaN scores come first. Zero-area, inverted and NaN
  // boxes suppress nothing.
  Scene sc = make_scene(300, 7, 1);
  float* bp = sc.boxes.data<float>();
  float* sp = sc.scores.data<float>();
  sp[17] = NAN, sp[200] = NAN;
  bp[4 * 5 + 2] = bp[4 * 5];          // zero width
  bp[4 * 9 + 2] = bp[4 * 9] - 10;     // inverted
  bp[4 * 11 + 1] = NAN;               // NaN coordinate
  for (double thr : {0.0, 0.5}) expect_all_nms_versions_agree(sc.boxes, sc.scores, thr, "ties and NaN");
}

TEST(LabsNms, EmptyInputAndBadArguments) {
  Tensor b = Tensor::empty({0, 4}), s = Tensor::empty({0});
  for (const NmsVersion& v : nms_versions()) {
    Tensor k = v.fn(b, s, 0.5);
    EXPECT_EQ(k.numel(), 0) << v.name;
    EXPECT_EQ(k.dtype(), DType::Int64) << v.name;
    EXPECT_THROW(v.fn(Tensor::empty({3, 5}), Tensor::empty({3}), 0.5), ValueError) << v.name;
    EXPECT_THROW(v.fn(Tensor::empty({3, 4}), Tensor::empty({2}), 0.5), ValueError) << v.name;
  }
}

// ---- RoIAlign -----------------------------------------------------------------------------------
// Feature map [2, 5, 18, 23] of uniform values; RoIs in image coordinates (spatial_scale 0.5 ->
// a 36 x 46 image), some crossing the border, some tiny, one inverted, one NaN.
struct RoiCase {
  Tensor x, rois;
};
RoiCase make_rois(int64_t K, uint64_t seed) {
  Generator g(seed);
  Tensor x = Tensor::empty({2, 5, 18, 23});
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = static_cast<float>(g.uniform() * 2 - 1);
  Tensor r = Tensor::empty({K, 5});
  float* p = r.data<float>();
  for (int64_t k = 0; k < K; ++k) {
    const double x1 = g.uniform() * 56 - 10, y1 = g.uniform() * 46 - 10;
    const double w = g.uniform() < 0.2 ? g.uniform() : g.uniform() * 30, h = g.uniform() * 30;
    p[5 * k] = static_cast<float>(g.randint(0, 2));
    p[5 * k + 1] = static_cast<float>(x1), p[5 * k + 2] = static_cast<float>(y1);
    p[5 * k + 3] = static_cast<float>(x1 + w), p[5 * k + 4] = static_cast<float>(y1 + h);
  }
  if (K > 3) {
    p[5 * 1 + 3] = p[5 * 1 + 1] - 3;  // inverted
    p[5 * 2 + 2] = NAN;                 // non-finite: zeros
  }
  return {x, r};
}

TEST(LabsRoiAlign, AllVersionsMatchTheProductKernel) {
  const RoiCase c = make_rois(40, 21);
  for (bool aligned : {false, true})
    for (int64_t sr : {-1, 2})
      for (int64_t pooled : {1, 7}) {
        RoiAlignParams p;
        p.pooled_h = pooled;
        p.pooled_w = pooled == 1 ? 1 : 5;
        p.spatial_scale = 0.5;
        p.sampling_ratio = sr;
        p.aligned = aligned;
        const std::string what = "aligned " + std::to_string(aligned) + " sr " + std::to_string(sr) +
                                 " pooled " + std::to_string(pooled);
        const Tensor want = roi_align_forward(c.x, c.rois, p);
        for (const RoiAlignVersion& v : roi_align_versions())
          expect_close(v.fn(c.x, c.rois, p), want, 1e-6, 1e-5, std::string(v.name) + " " + what);
        // v2 keeps v1's summation order: the same bits.
        test::expect_equal_values(roi_align_v2_precalc(c.x, c.rois, p), roi_align_v1_per_output(c.x, c.rois, p),
                                  "v2 == v1 " + what);
      }
}

TEST(LabsRoiAlign, EmptyRoisAndBadBatchIndex) {
  const RoiCase c = make_rois(0, 3);
  RoiAlignParams p;
  for (const RoiAlignVersion& v : roi_align_versions()) {
    Tensor y = v.fn(c.x, c.rois, p);
    EXPECT_EQ(shape_str(y.shape()), "[0, 5, 7, 7]") << v.name;
  }
  Tensor bad = Tensor::from_vector({2, 0, 0, 4, 4}, {1, 5});
  for (const RoiAlignVersion& v : roi_align_versions())
    EXPECT_THROW(v.fn(c.x, bad, p), ValueError) << v.name;
}

// ---- focal loss -----------------------------------------------------------------------------------
// Logits in [-8, 8] (v1 is torchvision's formula, whose 1 - sigmoid loses digits at large |x|);
// targets in [-1, C]: ignored rows, background rows, positives.
TEST(LabsFocalLoss, AllVersionsMatchTheProductKernel) {
  const int64_t C = 7;
  for (int64_t N : {1, 13, 3000}) {  // 3000 x 7 >= the product's parallel threshold
    Generator g(40 + N);
    Tensor x = Tensor::empty({N, C});
    for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = static_cast<float>(g.uniform() * 16 - 8);
    Tensor t = Tensor::empty({N}, DType::Int64);
    for (int64_t i = 0; i < N; ++i) t.data<int64_t>()[i] = g.randint(-1, C + 1);
    for (double gamma : {2.0, 0.0, 1.0, 1.5})
      for (double alpha : {0.25, -1.0})
        for (FocalReduction red : {FocalReduction::None, FocalReduction::Sum, FocalReduction::Mean}) {
          FocalLossParams p;
          p.alpha = alpha;
          p.gamma = gamma;
          p.reduction = red;
          p.normalizer = 3.0;
          const std::string what = "N " + std::to_string(N) + " gamma " + std::to_string(gamma) + " alpha " +
                                   std::to_string(alpha) + " reduction " + std::to_string(int(red));
          const FocalResult want = focal_v4_simd(x, t, p);
          const FocalResult v1 = test::twins::focal_composed_step(x, t, p);
          expect_close(v1.loss, want.loss, 1e-6, 1e-5, "v1 loss " + what);
          expect_close(v1.grad, want.grad, 1e-6, 1e-5, "v1 grad " + what);
          for (const FocalVersion& v : focal_versions()) {
            const FocalResult r = v.fn(x, t, p);
            expect_close(r.loss, want.loss, 1e-7, 1e-5, std::string(v.name) + " loss " + what);
            expect_close(r.grad, want.grad, 0.0, 0.0, std::string(v.name) + " grad " + what);
          }
        }
  }
}

TEST(LabsFocalLoss, EmptyInput) {
  Tensor x = Tensor::empty({0, 7}), t = Tensor::empty({0}, DType::Int64);
  for (FocalReduction red : {FocalReduction::None, FocalReduction::Sum, FocalReduction::Mean}) {
    FocalLossParams p;
    p.reduction = red;
    const FocalResult want = focal_v4_simd(x, t, p);
    for (const FocalVersion& v : focal_versions()) {
      const FocalResult r = v.fn(x, t, p);
      expect_close(r.loss, want.loss, 0.0, 0.0, std::string(v.name) + " loss");
      EXPECT_EQ(shape_str(r.grad.shape()), "[0, 7]") << v.name;
    }
  }
}

}  // namespace
}  // namespace sx::kernels::labs
