// RoIAlign: torchvision golden forward/backward (aligned on/off, sampling 0 and 2, RoIs crossing
// the border, tiny, zero-area and outside RoIs), MultiScaleRoIAlign golden, naive == fast, float64
// gradient checks, edge cases, CUDA parity and deterministic backward.
#include <gtest/gtest.h>

#include <cmath>

#include "kernels/roi_align/roi_align.h"
#include "kernels/roi_align/roi_align_math.h"
#include "layers/roi_align.h"
#include "tensor/autograd.h"
#include "tests/common/devices.h"
#include "tests/common/gradcheck.h"
#include "tests/kernels/detection_test_util.h"

namespace sx::kernels {
namespace {

// The autograd bindings (layers/roi_align.h).
using nn::FpnSetup;
using nn::infer_fpn_setup;
using nn::multiscale_roi_align;
using nn::roi_align;

using test::DetectionFixture;
using test::expect_close;

RoiAlignParams params(bool aligned, int64_t sr) {
  RoiAlignParams p;
  p.pooled_h = 5;
  p.pooled_w = 4;
  p.spatial_scale = 0.5;
  p.sampling_ratio = sr;
  p.aligned = aligned;
  return p;
}

TEST(RoiAlignGolden, ForwardBackwardMatchTorchvision) {
  DetectionFixture f("roi");
  Tensor x = f["roi_x"], rois = f["roi_rois"], w = f["roi_wout"];
  for (bool aligned : {false, true})
    for (int64_t sr : {0, 2})
      for (RoiAlignAlgo algo : {RoiAlignAlgo::Naive, RoiAlignAlgo::Fast}) {
        const std::string tag = "roi_a" + std::to_string(int(aligned)) + "_s" + std::to_string(sr);
        const std::string what = tag + (algo == RoiAlignAlgo::Naive ? " naive" : " fast");
        const RoiAlignParams p = params(aligned, sr);
        expect_close(roi_align_forward(x, rois, p, algo), f[tag + "_out"], 1e-6, 1e-6, what + " forward");
        expect_close(roi_align_backward(w, rois, x.shape(), p, false, algo), f[tag + "_grad"], 1e-6, 1e-5,
                     what + " backward");
      }
}

TEST(RoiAlignGolden, AutogradBindingMatchesTorchvision) {
  DetectionFixture f("roi");
  Tensor x = f["roi_x"].clone().set_requires_grad(true);
  Tensor y = roi_align(x, f["roi_rois"], 5, 4, 0.5, 0, true);
  y.backward(f["roi_wout"]);
  expect_close(y.detach(), f["roi_a1_s0_out"], 1e-6, 1e-6, "forward");
  expect_close(x.grad(), f["roi_a1_s0_grad"], 1e-6, 1e-5, "grad");
}

TEST(RoiAlign, NaiveEqualsFastExactly) {
  DetectionFixture f("roi");
  Tensor x = f["roi_x"].to(DType::Float64), rois = f["roi_rois"].to(DType::Float64);
  Tensor w = f["roi_wout"].to(DType::Float64);
  for (bool aligned : {false, true})
    for (int64_t sr : {0, 1, 3}) {
      const RoiAlignParams p = params(aligned, sr);
      expect_close(roi_align_forward(x, rois, p, RoiAlignAlgo::Fast), roi_align_forward(x, rois, p, RoiAlignAlgo::Naive),
                   0, 0, "forward");
      expect_close(roi_align_backward(w, rois, x.shape(), p, false, RoiAlignAlgo::Fast),
                   roi_align_backward(w, rois, x.shape(), p, false, RoiAlignAlgo::Naive), 1e-14, 1e-12, "backward");
    }
}

TEST(RoiAlign, GradcheckFloat64CrossingBorder) {
  Generator g(5);
  Tensor x = Tensor::empty({2, 1, 5, 6}, DType::Float64);
  {
    double* p = x.data<double>();
    for (int64_t i = 0; i < x.numel(); ++i) p[i] = g.normal();
  }
  x.set_requires_grad(true);
  // Crossing the top-left and bottom-right borders, inside, and a sub-pixel box.
  Tensor rois = Tensor::from_vector({0, -3.2, -2.1, 4.3, 5.6,  1, 3.1, 2.2, 13.7, 11.4,  1, 1.3, 1.1, 6.2, 4.9,
                                     0, 2.2, 2.6, 2.7, 3.05},
                                    {4, 5}, DType::Float64);
  for (bool aligned : {false, true})
    for (int64_t sr : {0, 2}) {
      RoiAlignParams p;
      p.pooled_h = 3;
      p.pooled_w = 2;
      p.spatial_scale = 0.5;
      p.sampling_ratio = sr;
      p.aligned = aligned;
      SX_EXPECT_GRADCHECK([&](const std::vector<Tensor>& in) { return roi_align(in[0], rois, p); }, {x});
    }
}

// The fixed-point accumulation of the CUDA deterministic backward (roi_align_math.h), emulated on
// the host: on data where float accumulation depends on the order, the fixed-point scale leaves no
// order a chance to overflow, and the sums are within their rounding bound of the exact ones and
// close to the float64 CPU backward.
TEST(RoiAlign, FixedPointAccumulationIsOrderIndependent) {
  DetectionFixture f("roi");
  Tensor x = f["roi_x"].to(DType::Float64), rois = f["roi_rois"].to(DType::Float64);
  Tensor w = f["roi_wout"].to(DType::Float64);
  const RoiAlignParams p = params(true, 0);
  const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3), K = rois.size(0);
  auto rv = rois.to_vector();
  auto gv = w.to_vector();
  double S = 0;
  for (double v : gv) S += std::fabs(v);
  const double scale = roimath::fixed_point_scale(S);
  ASSERT_GT(scale, 0.0);
  struct Contribution { int64_t index; double value; };
  std::vector<Contribution> list;
  for (int64_t k = 0; k < K; ++k) {
    const auto g = roimath::geometry(&rv[5 * k], N, 0.5, p.pooled_h, p.pooled_w, p.sampling_ratio, p.aligned);
    if (g.batch < 0) continue;
    for (int64_t c = 0; c < C; ++c)
      for (int64_t ph = 0; ph < p.pooled_h; ++ph)
        for (int64_t pw = 0; pw < p.pooled_w; ++pw) {
          const double go = gv[((k * C + c) * p.pooled_h + ph) * p.pooled_w + pw];
          const int64_t base = (g.batch * C + c) * H * W;
          for (int iy = 0; iy < g.grid_h; ++iy)
            for (int ix = 0; ix < g.grid_w; ++ix) {
              const auto b = roimath::bilinear(H, W, roimath::sample_y(g, ph, iy), roimath::sample_x(g, pw, ix));
              if (!b.valid) continue;
              list.push_back({base + b.p1, go * b.w1 / g.count});
              list.push_back({base + b.p2, go * b.w2 / g.count});
              list.push_back({base + b.p3, go * b.w3 / g.count});
              list.push_back({base + b.p4, go * b.w4 / g.count});
            }
        }
  }
  // Integer sums are equal in any order by construction; what the scheme must get right is the
  // scale: (a) no order can overflow, i.e. per pixel the sum of |rounded contributions| stays
  // below 2^62 (the header's promise), and (b) the result is within the rounding bound
  // (contributions/2 units of 1/scale) of the exact sum, and close to the CPU backward. (c) The
  // data must make the order matter for float accumulation, or (a)-(b) say nothing about order.
  std::vector<unsigned long long> fwd(x.numel(), 0);
  std::vector<double> abs_fixed(x.numel(), 0), count(x.numel(), 0);
  std::vector<long double> exact(x.numel(), 0);  // 64-bit mantissa: the contributions' sum, near exact
  std::vector<float> f_fwd(x.numel(), 0), f_rev(x.numel(), 0);
  for (const auto& c : list) {
    const unsigned long long q = roimath::to_fixed(c.value, scale);
    fwd[c.index] += q;
    abs_fixed[c.index] += std::fabs(static_cast<double>(static_cast<long long>(q)));
    count[c.index] += 1;
    exact[c.index] += c.value;
    f_fwd[c.index] += static_cast<float>(c.value);
  }
  for (auto it = list.rbegin(); it != list.rend(); ++it) f_rev[it->index] += static_cast<float>(it->value);
  auto ref = roi_align_backward(w, rois, x.shape(), p).to_vector();
  int64_t float_order_differs = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    EXPECT_LT(abs_fixed[i], std::ldexp(1.0, 62)) << i;
    const double got = roimath::from_fixed(fwd[i], scale);
    EXPECT_LE(std::fabs(got - static_cast<double>(exact[i])), 0.5 * count[i] / scale + 0x1p-52 * std::fabs(got)) << i;
    EXPECT_NEAR(got, ref[i], 1e-12) << i;
    float_order_differs += f_fwd[i] != f_rev[i];
  }
  EXPECT_GT(float_order_differs, 0);
  // The scale uses the headroom: doubling it would break (a) for the largest possible gradient
  // (S all in one pixel), i.e. 2^62 / scale is within a factor 2 above S.
  EXPECT_GE(std::ldexp(1.0, 62) / scale, S);
  EXPECT_LT(std::ldexp(1.0, 62) / scale, 2 * S);
  EXPECT_EQ(roimath::fixed_point_scale(INFINITY), 0.0);
  EXPECT_EQ(roimath::fixed_point_scale(0.0), 1.0);
}

// Plain float64 RoIAlign written from the definition (independent of roi_align_math.h): bins of the
// scaled box, a grid of sample points per bin, bilinear interpolation with torchvision's border
// rule (outside [-1, H] x [-1, W] -> 0, otherwise clamp to the image), average per bin.
std::vector<double> naive_roi_align(const std::vector<double>& x, int64_t C, int64_t H, int64_t W,
                                    const std::vector<double>& roi, const RoiAlignParams& p) {
  const double off = p.aligned ? 0.5 : 0.0;
  const double x1 = roi[1] * p.spatial_scale - off, y1 = roi[2] * p.spatial_scale - off;
  double rw = roi[3] * p.spatial_scale - off - x1, rh = roi[4] * p.spatial_scale - off - y1;
  if (!p.aligned) rw = std::max(rw, 1.0), rh = std::max(rh, 1.0);
  const double bw = rw / p.pooled_w, bh = rh / p.pooled_h;
  const int gh = p.sampling_ratio > 0 ? int(p.sampling_ratio) : int(std::ceil(rh / p.pooled_h));
  const int gw = p.sampling_ratio > 0 ? int(p.sampling_ratio) : int(std::ceil(rw / p.pooled_w));
  const int64_t b = static_cast<int64_t>(roi[0]);
  auto at = [&](int64_t c, int64_t yy, int64_t xx) { return x[((b * C + c) * H + yy) * W + xx]; };
  auto sample = [&](int64_t c, double y, double xv) {
    if (y < -1.0 || y > H || xv < -1.0 || xv > W) return 0.0;
    y = std::min(std::max(y, 0.0), double(H - 1));
    xv = std::min(std::max(xv, 0.0), double(W - 1));
    const int64_t y0 = int64_t(std::floor(y)), x0 = int64_t(std::floor(xv));
    const int64_t y1i = std::min(y0 + 1, H - 1), x1i = std::min(x0 + 1, W - 1);
    const double ly = y - y0, lx = xv - x0;
    return (1 - ly) * (1 - lx) * at(c, y0, x0) + (1 - ly) * lx * at(c, y0, x1i) + ly * (1 - lx) * at(c, y1i, x0) +
           ly * lx * at(c, y1i, x1i);
  };
  std::vector<double> out;
  for (int64_t c = 0; c < C; ++c)
    for (int64_t ph = 0; ph < p.pooled_h; ++ph)
      for (int64_t pw = 0; pw < p.pooled_w; ++pw) {
        double acc = 0;
        for (int iy = 0; iy < gh; ++iy)
          for (int ix = 0; ix < gw; ++ix)
            acc += sample(c, y1 + ph * bh + (iy + 0.5) * bh / gh, x1 + pw * bw + (ix + 0.5) * bw / gw);
        out.push_back(acc / std::max(gh * gw, 1));
      }
  return out;
}

TEST(RoiAlign, MatchesNaiveFloat64Reference) {
  DetectionFixture f("roi");
  Tensor x = f["roi_x"].to(DType::Float64), rois = f["roi_rois"].to(DType::Float64);
  const int64_t C = x.size(1), H = x.size(2), W = x.size(3);
  auto xv = x.to_vector(), rv = rois.to_vector();
  for (bool aligned : {false, true})
    for (int64_t sr : {0, 2}) {
      const RoiAlignParams p = params(aligned, sr);
      auto got = roi_align_forward(x, rois, p).to_vector();
      const int64_t per = C * p.pooled_h * p.pooled_w;
      for (int64_t k = 0; k < rois.size(0); ++k) {
        std::vector<double> roi(rv.begin() + 5 * k, rv.begin() + 5 * k + 5);
        auto want = naive_roi_align(xv, C, H, W, roi, p);
        for (int64_t i = 0; i < per; ++i)
          EXPECT_NEAR(got[k * per + i], want[i], 1e-12) << "roi " << k << " aligned " << aligned << " sr " << sr;
      }
    }
}

TEST(RoiAlign, EmptyAndDegenerateInputs) {
  Tensor x = Tensor::zeros({1, 3, 4, 4});
  RoiAlignParams p = params(false, 2);
  Tensor out = roi_align_forward(x, Tensor::empty({0, 5}), p);
  EXPECT_EQ(out.shape(), (Shape{0, 3, 5, 4}));
  Tensor gi = roi_align_backward(Tensor::empty({0, 3, 5, 4}), Tensor::empty({0, 5}), x.shape(), p);
  EXPECT_EQ(gi.shape(), x.shape());
  EXPECT_EQ(sx::test::ints(gi.to(DType::Int64)), std::vector<int64_t>(48, 0));
  // NaN RoI: zeros, no crash, no gradient.
  Tensor ones = Tensor::ones({1, 3, 4, 4});
  Tensor nan_roi = Tensor::from_vector({0, NAN, 0, 2, 2}, {1, 5});
  auto v = roi_align_forward(ones, nan_roi, p).to_vector();
  for (double a : v) EXPECT_EQ(a, 0.0);
  auto gv = roi_align_backward(Tensor::ones({1, 3, 5, 4}), nan_roi, ones.shape(), p).to_vector();
  for (double a : gv) EXPECT_EQ(a, 0.0);
  // Out-of-range batch index: a clear error on the CPU.
  EXPECT_THROW(roi_align_forward(ones, Tensor::from_vector({3, 0, 0, 2, 2}, {1, 5}), p), ValueError);
  EXPECT_THROW(roi_align_forward(ones, Tensor::empty({2, 4}), p), ValueError);
  // Inverted aligned RoI: empty sampling grid, zeros.
  RoiAlignParams pa = params(true, 0);
  auto iv = roi_align_forward(ones, Tensor::from_vector({0, 6, 6, 2, 2}, {1, 5}), pa).to_vector();
  for (double a : iv) EXPECT_EQ(a, 0.0);
}

// Edge cases: a non-contiguous feature map (an NHWC buffer viewed as NCHW) gives the contiguous
// result bit for bit, forward and through autograd; N = 0 and C = 0 give typed empty outputs; a
// 1 x 1 output is the average over the whole RoI (checked against the float64 reference above).
TEST(RoiAlign, NonContiguousFeaturesGiveTheContiguousResult) {
  DetectionFixture f("roi");
  Tensor x = f["roi_x"], rois = f["roi_rois"];
  Tensor nhwc = x.permute({0, 2, 3, 1}).contiguous();
  Tensor view = nhwc.permute({0, 3, 1, 2});
  ASSERT_FALSE(view.is_contiguous());
  ASSERT_EQ(view.shape(), x.shape());
  for (RoiAlignAlgo algo : {RoiAlignAlgo::Naive, RoiAlignAlgo::Fast}) {
    const RoiAlignParams p = params(true, 0);
    expect_close(roi_align_forward(view, rois, p, algo), roi_align_forward(x, rois, p, algo), 0, 0, "forward");
  }
  // A non-contiguous narrow of the batch (the second image only) equals that image alone.
  Tensor second = x.narrow(0, 1, 1);
  Tensor rois1 = Tensor::from_vector({0, 1.0, 2.0, 17.0, 13.0}, {1, 5});
  expect_close(roi_align_forward(view.narrow(0, 1, 1), rois1, params(false, 2)),
               roi_align_forward(second.contiguous(), rois1, params(false, 2)), 0, 0, "narrowed view");
  // Gradients through the autograd binding land in the view's logical layout.
  Tensor a = view.detach().set_requires_grad(true), b = x.clone().set_requires_grad(true);
  Tensor w = f["roi_wout"];
  roi_align(a, rois, params(false, 0)).backward(w);
  roi_align(b, rois, params(false, 0)).backward(w);
  expect_close(a.grad(), b.grad(), 0, 0, "grad");
}

TEST(RoiAlign, EmptyBatchEmptyChannelsAndOneByOneOutput) {
  RoiAlignParams p = params(false, 2);
  // N = 0 (no images, so no RoIs).
  Tensor y0 = roi_align_forward(Tensor::zeros({0, 3, 4, 4}), Tensor::empty({0, 5}), p);
  EXPECT_EQ(y0.shape(), (Shape{0, 3, 5, 4}));
  EXPECT_EQ(roi_align_backward(Tensor::empty({0, 3, 5, 4}), Tensor::empty({0, 5}), Shape{0, 3, 4, 4}, p).shape(),
            (Shape{0, 3, 4, 4}));
  // C = 0 with RoIs.
  Tensor rois = Tensor::from_vector({0, 0, 0, 3, 3, 0, 1, 1, 2, 2}, {2, 5});
  Tensor yc = roi_align_forward(Tensor::zeros({1, 0, 4, 4}), rois, p);
  EXPECT_EQ(yc.shape(), (Shape{2, 0, 5, 4}));
  EXPECT_EQ(roi_align_backward(Tensor::empty({2, 0, 5, 4}), rois, Shape{1, 0, 4, 4}, p).shape(), (Shape{1, 0, 4, 4}));
  // 1 x 1 output.
  DetectionFixture f("roi");
  Tensor x = f["roi_x"].to(DType::Float64), r = f["roi_rois"].to(DType::Float64);
  const int64_t C = x.size(1), H = x.size(2), W = x.size(3);
  auto xv = x.to_vector(), rv = r.to_vector();
  for (bool aligned : {false, true})
    for (int64_t sr : {0, 3}) {
      RoiAlignParams q = params(aligned, sr);
      q.pooled_h = q.pooled_w = 1;
      Tensor y = roi_align_forward(x, r, q);
      ASSERT_EQ(y.shape(), (Shape{r.size(0), C, 1, 1}));
      auto got = y.to_vector();
      for (int64_t k = 0; k < r.size(0); ++k) {
        auto want = naive_roi_align(xv, C, H, W, std::vector<double>(rv.begin() + 5 * k, rv.begin() + 5 * k + 5), q);
        for (int64_t c = 0; c < C; ++c) EXPECT_NEAR(got[k * C + c], want[c], 1e-12) << "roi " << k;
      }
      // The 1 x 1 backward spreads each RoI's gradient to the same pixels the forward read.
      SX_EXPECT_GRADCHECK([&](const std::vector<Tensor>& in) { return roi_align(in[0], r.narrow(0, 0, 4), q); },
                          {x.clone().set_requires_grad(true)});
    }
}

TEST(RoiAlign, ConstantImageGivesConstantInside) {
  // A RoI well inside a constant image pools to the constant (a simple naive-reference check).
  Tensor x = Tensor::full({1, 1, 8, 8}, 3.0, DType::Float64);
  Tensor rois = Tensor::from_vector({0, 1, 1, 6, 6}, {1, 5}, DType::Float64);
  RoiAlignParams p;
  p.pooled_h = p.pooled_w = 2;
  for (double a : roi_align_forward(x, rois, p).to_vector()) EXPECT_DOUBLE_EQ(a, 3.0);
}

TEST(MultiScaleRoiAlignGolden, MatchesTorchvision) {
  DetectionFixture f("ms");
  std::vector<Tensor> feats;
  for (int l = 2; l <= 5; ++l) feats.push_back(f["ms_p" + std::to_string(l)].clone().set_requires_grad(true));
  const std::vector<std::pair<int64_t, int64_t>> sizes = {{128, 160}, {120, 150}};
  FpnSetup setup = infer_fpn_setup(feats, sizes);
  EXPECT_EQ(setup.k_min, 2);
  EXPECT_EQ(setup.k_max, 5);
  expect_close(Tensor::from_vector(setup.scales, {4}, DType::Float64), f["ms_scales"], 0, 0, "scales");
  EXPECT_EQ(sx::test::ints(fpn_levels(f["ms_rois"], 2, 5)), sx::test::ints(f["ms_levels"]));
  Tensor out = multiscale_roi_align(feats, f["ms_rois"], sizes);
  expect_close(out.detach(), f["ms_out"], 1e-6, 1e-5, "forward");
  out.backward(f["ms_w"]);
  for (int l = 2; l <= 5; ++l)
    expect_close(feats[l - 2].grad(), f["ms_p" + std::to_string(l) + "_grad"], 1e-6, 1e-5,
                 "grad p" + std::to_string(l));
}

TEST(MultiScaleRoiAlign, LevelMapperRule) {
  // sqrt(area) = 224 -> level 4; 112 -> 3; 448 -> 5; tiny -> clamped to k_min; huge -> k_max.
  Tensor r = Tensor::from_vector({0, 0, 0, 224, 224,  0, 0, 0, 112, 112,  0, 0, 0, 448, 448,  0, 0, 0, 1, 1,
                                  0, 0, 0, 5000, 5000,  0, 5, 5, 1, 1,  0, NAN, 0, 1, 1},
                                 {7, 5});
  EXPECT_EQ(sx::test::ints(fpn_levels(r, 2, 5)), (std::vector<int64_t>{2, 1, 3, 0, 3, 0, 0}));
  EXPECT_EQ(fpn_levels(Tensor::empty({0, 5}), 2, 5).shape(), (Shape{0}));
  EXPECT_DOUBLE_EQ(infer_fpn_scale(32, 128), 0.25);
  EXPECT_DOUBLE_EQ(infer_fpn_scale(13, 200), 0.0625);  // log2(0.065) = -3.94 -> -4
}

class RoiAlignDevice : public ::testing::TestWithParam<Device> {};

TEST_P(RoiAlignDevice, ParityAndDeterministicBackward) {
  const Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  DetectionFixture f("roi");
  Tensor x = f["roi_x"], rois = f["roi_rois"], w = f["roi_wout"];
  for (bool aligned : {false, true})
    for (int64_t sr : {0, 2}) {
      const RoiAlignParams p = params(aligned, sr);
      Tensor y = roi_align_forward(x.to(dev), rois.to(dev), p);
      EXPECT_EQ(y.device(), dev);
      expect_close(y.cpu(), roi_align_forward(x, rois, p), 1e-5, 1e-5, "forward");
      Tensor ref = roi_align_backward(w, rois, x.shape(), p);
      expect_close(roi_align_backward(w.to(dev), rois.to(dev), x.shape(), p, false).cpu(), ref, 1e-5, 1e-5, "atomic");
      Tensor d1 = roi_align_backward(w.to(dev), rois.to(dev), x.shape(), p, true).cpu();
      Tensor d2 = roi_align_backward(w.to(dev), rois.to(dev), x.shape(), p, true).cpu();
      expect_close(d1, ref, 1e-5, 1e-5, "deterministic vs cpu");
      expect_close(d1, d2, 0, 0, "deterministic run to run");
    }
  // Multi-level parity.
  DetectionFixture m("ms");
  std::vector<Tensor> fc, fd;
  for (int l = 2; l <= 5; ++l) {
    fc.push_back(m["ms_p" + std::to_string(l)]);
    fd.push_back(fc.back().to(dev));
  }
  const std::vector<std::pair<int64_t, int64_t>> sizes = {{128, 160}, {120, 150}};
  expect_close(multiscale_roi_align(fd, m["ms_rois"].to(dev), sizes).cpu(), multiscale_roi_align(fc, m["ms_rois"], sizes),
               1e-5, 1e-5, "multiscale");
  Tensor e = roi_align_forward(x.to(dev), Tensor::empty({0, 5}, DType::Float32, dev), params(false, 2));
  EXPECT_EQ(e.shape(), (Shape{0, 3, 5, 4}));
  EXPECT_EQ(e.device(), dev);
}

INSTANTIATE_TEST_SUITE_P(Devices, RoiAlignDevice, SX_PARITY_DEVICES, test::device_name);

}  // namespace
}  // namespace sx::kernels
