// Sigmoid focal loss: torchvision golden loss and gradient (int targets with ignore and background
// rows), float64 gradient checks, stability at huge |logits| against a long-double reference,
// reductions/normaliser, empty input, CUDA parity.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "kernels/focal_loss/focal_loss.h"
#include "layers/loss.h"
#include "tensor/autograd.h"
#include "tests/common/devices.h"
#include "tests/common/gradcheck.h"
#include "tests/kernels/detection_test_util.h"

namespace sx::kernels {
namespace {

using nn::sigmoid_focal_loss;  // the autograd binding (layers/loss.h)

using test::DetectionFixture;
using test::expect_close;

const double kAlpha[3] = {0.25, -1.0, 0.5};
const double kGamma[3] = {2.0, 0.0, 1.5};

TEST(FocalLossGolden, MatchesTorchvision) {
  DetectionFixture f("fl");
  Tensor x = f["fl_logits"], t = f["fl_targets"], w = f["fl_w"];
  for (int c = 0; c < 3; ++c) {
    const std::string tag = "fl" + std::to_string(c);
    FocalLossParams p;
    p.alpha = kAlpha[c];
    p.gamma = kGamma[c];
    p.reduction = FocalReduction::None;
    // torchvision computes 1 - p_t as 1 - sigmoid (cancellation for large |x|): compare loosely
    // in absolute terms there; the stable form is checked against long double below.
    expect_close(sigmoid_focal_loss_forward(x, t, p), f[tag + "_none"], 1e-6, 1e-5, tag + " none");
    p.reduction = FocalReduction::Sum;
    expect_close(sigmoid_focal_loss_forward(x, t, p).reshape({1}), f[tag + "_sum"], 1e-4, 1e-5, tag + " sum");
    p.reduction = FocalReduction::None;
    Tensor xg = x.clone().set_requires_grad(true);
    Tensor l = sigmoid_focal_loss(xg, t, p);
    l.backward(w);
    expect_close(xg.grad(), f[tag + "_grad"], 1e-6, 1e-5, tag + " grad");
  }
}

TEST(FocalLoss, GradcheckFloat64AllReductions) {
  Generator g(9);
  const int64_t N = 6, C = 4;
  Tensor x = Tensor::empty({N, C}, DType::Float64);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<double>()[i] = 3 * g.normal();
  x.set_requires_grad(true);
  Tensor t = Tensor::from_vector({0, 3, 4, -1, 2, 7}, {N}, DType::Int64);
  for (FocalReduction r : {FocalReduction::None, FocalReduction::Sum, FocalReduction::Mean})
    for (int c = 0; c < 3; ++c) {
      FocalLossParams p;
      p.alpha = kAlpha[c];
      p.gamma = kGamma[c];
      p.reduction = r;
      p.normalizer = 3.0;
      SX_EXPECT_GRADCHECK([&](const std::vector<Tensor>& in) { return sigmoid_focal_loss(in[0], t, p); }, {x});
    }
}

// Long-double reference (naive textbook formula, accurate enough at these magnitudes).
long double ref_loss(long double x, bool pos, long double alpha, long double gamma) {
  const long double p = 1.0L / (1.0L + std::exp(-x));
  const long double ce = pos ? std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
  const long double one_minus_pt = pos ? 1.0L / (1.0L + std::exp(x)) : p;
  const long double at = alpha < 0 ? 1.0L : (pos ? alpha : 1 - alpha);
  return at * ce * std::pow(one_minus_pt, gamma);
}

// d ref_loss / dx, derived by hand from the same textbook form (p = sigmoid(x), q = 1 - p,
// ce = BCE-with-logits):  y = 1: -a q^g (q + g ce p),  y = 0: (1 - a) p^g (p + g ce q).
long double ref_grad(long double x, bool pos, long double alpha, long double gamma) {
  const long double p = 1.0L / (1.0L + std::exp(-x)), q = 1.0L / (1.0L + std::exp(x));
  const long double ce = pos ? std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
  const long double at = alpha < 0 ? 1.0L : (pos ? alpha : 1 - alpha);
  return pos ? -at * std::pow(q, gamma) * (q + gamma * ce * p) : at * std::pow(p, gamma) * (p + gamma * ce * q);
}

// Relative error against the long-double reference everywhere, however small the value: float64
// to 1e-12 relative (down to 1e-300), float32 to 1e-5 relative while the reference is a normal
// float32 (above 1.2e-38). Below that, float32 gives at most exp(-87) = 1.65e-38: the kernel
// clamps |x| at 87 (focal_loss_math.h), which with gamma = 0 leaves softplus at log1p(exp(-87)).
void expect_rel(double got, long double want, DType dt, const std::string& what) {
  const double w = static_cast<double>(want);
  if (dt == DType::Float64) {
    EXPECT_LE(std::fabs(got - w), 1e-12 * std::fabs(w)) << what << ": got " << got << " want " << w;
  } else if (std::fabs(w) >= 1.2e-38) {
    EXPECT_LE(std::fabs(got - w), 1e-5 * std::fabs(w)) << what << ": got " << got << " want " << w;
  } else {
    EXPECT_LE(std::fabs(got - w), 1.7e-38) << what << ": got " << got << " want " << w;
  }
}

TEST(FocalLoss, StableForHugeLogits) {
  const std::vector<double> xs = {-200, -80, -30, -12, -1.5, 0, 0.7, 12, 30, 80, 200};
  const int64_t N = static_cast<int64_t>(xs.size());
  for (double gamma : {2.0, 0.5, 0.0})
    for (DType dt : {DType::Float32, DType::Float64}) {
      // Row n: logit xs[n] in class 0, positive (target 0) and background (target 1 = C) rows.
      std::vector<double> xv, tv;
      for (int64_t n = 0; n < N; ++n)
        for (int pos = 0; pos < 2; ++pos) xv.push_back(xs[n]), tv.push_back(pos ? 0 : 1);
      Tensor x = Tensor::from_vector(xv, {2 * N, 1}, dt);
      Tensor t = Tensor::from_vector(tv, {2 * N}, DType::Int64);
      FocalLossParams p;
      p.gamma = gamma;
      p.reduction = FocalReduction::None;
      auto l = sigmoid_focal_loss_forward(x, t, p).to_vector();
      auto gvals = sigmoid_focal_loss_backward(Tensor::ones({2 * N, 1}, dt), x, t, p).to_vector();
      for (int64_t r = 0; r < 2 * N; ++r) {
        const bool pos = tv[r] == 0;
        std::ostringstream what;
        what << "x " << xv[r] << (pos ? " positive" : " background") << " gamma " << gamma
             << (dt == DType::Float32 ? " f32" : " f64");
        expect_rel(l[r], ref_loss(xv[r], pos, 0.25L, gamma), dt, "loss, " + what.str());
        expect_rel(gvals[r], ref_grad(xv[r], pos, 0.25L, gamma), dt, "grad, " + what.str());
      }
    }
}

// gamma in (0, 1): (1 - p_t)^(gamma - 1) is unbounded as p_t -> 1 in the textbook derivative; the
// fused form must stay finite and right (float64 gradient check over confident and unsure logits).
TEST(FocalLoss, GammaBetweenZeroAndOne) {
  Tensor x = Tensor::from_vector({9.0, -7.5, 0.3, -0.2, 14.0, -11.0, 2.5, -3.0}, {4, 2}, DType::Float64);
  x.set_requires_grad(true);
  Tensor t = Tensor::from_vector({0, 1, 2, 0}, {4}, DType::Int64);
  for (double gamma : {0.25, 0.5, 0.9})
    for (FocalReduction r : {FocalReduction::None, FocalReduction::Mean}) {
      FocalLossParams p;
      p.gamma = gamma;
      p.reduction = r;
      SX_EXPECT_GRADCHECK([&](const std::vector<Tensor>& in) { return sigmoid_focal_loss(in[0], t, p); }, {x});
    }
}

// Every row ignored: the loss is 0 (no NaN from 0 / 0) for every reduction, the gradient exactly 0.
TEST(FocalLoss, EveryRowIgnoredGivesZeroNotNan) {
  Tensor x = Tensor::from_vector({0.3, -1.2, 2.0, 0.1, -0.5, 1.5}, {3, 2}, DType::Float64);
  Tensor t = Tensor::from_vector({-1, -1, -1}, {3}, DType::Int64);
  for (FocalReduction r : {FocalReduction::Sum, FocalReduction::Mean})
    for (double norm : {1.0, 7.0}) {
      FocalLossParams p;
      p.reduction = r;
      p.normalizer = norm;
      EXPECT_EQ(sigmoid_focal_loss_forward(x, t, p).item(), 0.0);
      for (double g : sigmoid_focal_loss_backward(Tensor::scalar(1.0, DType::Float64), x, t, p).to_vector())
        EXPECT_EQ(g, 0.0);
      Tensor xg = x.clone().set_requires_grad(true);
      sigmoid_focal_loss(xg, t, p).backward();
      for (double g : xg.grad().to_vector()) EXPECT_EQ(g, 0.0);
    }
}

TEST(FocalLoss, ReductionsAndNormaliser) {
  Tensor x = Tensor::from_vector({0.3, -1.2, 2.0, 0.1, -0.5, 1.5}, {3, 2}, DType::Float64);
  Tensor t = Tensor::from_vector({1, -1, 2}, {3}, DType::Int64);  // positive, ignored, background
  FocalLossParams p;
  p.reduction = FocalReduction::None;
  auto none = sigmoid_focal_loss_forward(x, t, p).to_vector();
  EXPECT_EQ(none[2], 0.0);  // ignored row
  EXPECT_EQ(none[3], 0.0);
  double s = 0;
  for (double v : none) s += v;
  p.reduction = FocalReduction::Sum;
  p.normalizer = 4.0;
  EXPECT_NEAR(sigmoid_focal_loss_forward(x, t, p).item(), s / 4.0, 1e-15);
  p.reduction = FocalReduction::Mean;
  p.normalizer = 1.0;
  EXPECT_NEAR(sigmoid_focal_loss_forward(x, t, p).item(), s / 6.0, 1e-15);
  // Hand check of one element: background row, x = -0.5, alpha 0.25, gamma 2.
  const double sg = 1.0 / (1.0 + std::exp(0.5));
  EXPECT_NEAR(none[4], 0.75 * std::log1p(std::exp(-0.5)) * sg * sg, 1e-15);
  // Ignored rows get exactly zero gradient.
  p.reduction = FocalReduction::Sum;
  auto g = sigmoid_focal_loss_backward(Tensor::scalar(1.0, DType::Float64), x, t, p).to_vector();
  EXPECT_EQ(g[2], 0.0);
  EXPECT_EQ(g[3], 0.0);
}

TEST(FocalLoss, EmptyInputs) {
  Tensor x = Tensor::empty({0, 7});
  Tensor t = Tensor::empty({0}, DType::Int64);
  FocalLossParams p;
  p.reduction = FocalReduction::None;
  EXPECT_EQ(sigmoid_focal_loss_forward(x, t, p).shape(), (Shape{0, 7}));
  p.reduction = FocalReduction::Sum;
  Tensor s = sigmoid_focal_loss_forward(x, t, p);
  EXPECT_EQ(s.dim(), 0);
  EXPECT_EQ(s.item(), 0.0);
  p.reduction = FocalReduction::Mean;
  EXPECT_TRUE(std::isnan(sigmoid_focal_loss_forward(x, t, p).item()));
  EXPECT_EQ(sigmoid_focal_loss_backward(Tensor::scalar(1.0), x, t, p).shape(), (Shape{0, 7}));
  EXPECT_THROW(sigmoid_focal_loss_forward(Tensor::empty({3, 2}), Tensor::empty({2}, DType::Int64), p), ValueError);
  EXPECT_THROW(sigmoid_focal_loss_forward(Tensor::empty({3, 2}), Tensor::empty({3}), p), ValueError);
}

class FocalLossDevice : public ::testing::TestWithParam<Device> {};

TEST_P(FocalLossDevice, ParityWithCpu) {
  const Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  DetectionFixture f("fl");
  Tensor x = f["fl_logits"], t = f["fl_targets"], w = f["fl_w"];
  for (FocalReduction r : {FocalReduction::None, FocalReduction::Sum, FocalReduction::Mean}) {
    FocalLossParams p;
    p.reduction = r;
    p.normalizer = 5.0;
    Tensor yc = sigmoid_focal_loss_forward(x, t, p);
    Tensor yd = sigmoid_focal_loss_forward(x.to(dev), t.to(dev), p);
    EXPECT_EQ(yd.device(), dev);
    expect_close(yd.cpu(), yc, 1e-6, 1e-5, "forward");
    // Deterministic reduction: bit-identical run to run.
    expect_close(sigmoid_focal_loss_forward(x.to(dev), t.to(dev), p).cpu(), yd.cpu(), 0, 0, "run to run");
    Tensor g = r == FocalReduction::None ? w : Tensor::scalar(0.7);
    expect_close(sigmoid_focal_loss_backward(g.to(dev), x.to(dev), t.to(dev), p).cpu(),
                 sigmoid_focal_loss_backward(g, x, t, p), 1e-6, 1e-5, "backward");
  }
  // Large input: many blocks in the fused reduction.
  Generator gen(1);
  Tensor xl = Tensor::empty({100000, 7});
  for (int64_t i = 0; i < xl.numel(); ++i) xl.data<float>()[i] = static_cast<float>(2 * gen.normal());
  std::vector<double> tv(100000);
  for (size_t i = 0; i < tv.size(); ++i) tv[i] = static_cast<double>(static_cast<int64_t>(i % 9) - 1);
  Tensor tl = Tensor::from_vector(tv, {100000}, DType::Int64);
  FocalLossParams p;
  expect_close(sigmoid_focal_loss_forward(xl.to(dev), tl.to(dev), p).cpu(), sigmoid_focal_loss_forward(xl, tl, p),
               1e-3, 1e-5, "large sum");
}

INSTANTIATE_TEST_SUITE_P(Devices, FocalLossDevice, SX_PARITY_DEVICES, test::device_name);

}  // namespace
}  // namespace sx::kernels
