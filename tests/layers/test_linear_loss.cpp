// Linear, ReLU, Dropout and the loss functions: values against formulas evaluated here in double,
// numerical stability at extreme logits, gradients by gradcheck.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <vector>

#include "common/devices.h"
#include "common/gradcheck.h"
#include "layers/activation.h"
#include "layers/linear.h"
#include "layers/loss.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace sx {
namespace {

using nn::Reduction;

Tensor random_tensor(const Shape& s, uint64_t seed, DType dt = DType::Float64, double scale = 1.0) {
  Generator g(seed);
  Tensor t = Tensor::empty(s, DType::Float64);
  double* p = t.data<double>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = (g.uniform() * 2 - 1) * scale;
  return dt == DType::Float64 ? t : t.to(dt);
}

TEST(Linear, ForwardAndInit) {
  nn::Linear lin(4, 3);
  EXPECT_EQ(lin.weight.shape(), (Shape{3, 4}));
  EXPECT_EQ(lin.num_parameters(), 15);
  for (double v : lin.weight.to_vector()) EXPECT_LE(std::fabs(v), 0.5);  // 1/sqrt(4)
  Tensor x = random_tensor({5, 4}, 1, DType::Float32);
  auto y = lin.forward(x).to_vector();
  auto xv = x.to_vector(), w = lin.weight.to_vector(), b = lin.bias.to_vector();
  for (int n = 0; n < 5; ++n)
    for (int o = 0; o < 3; ++o) {
      double s = b[o];
      for (int i = 0; i < 4; ++i) s += xv[n * 4 + i] * w[o * 4 + i];
      EXPECT_NEAR(y[n * 3 + o], s, 1e-5);
    }
}

TEST(Linear, Gradcheck) {
  Tensor x = random_tensor({3, 4}, 2).set_requires_grad();
  Tensor w = random_tensor({2, 4}, 3).set_requires_grad();
  Tensor b = random_tensor({2}, 4).set_requires_grad();
  SX_EXPECT_GRADCHECK([](const std::vector<Tensor>& in) { return nn::linear(in[0], in[1], in[2]); }, {x, w, b});
}

TEST(Dropout, ScalesSurvivorsAndIsIdentityInEval) {
  nn::Dropout d(0.25, 7);
  Tensor x = Tensor::ones({1000});
  auto y = d.forward(x).to_vector();
  int zeros = 0;
  for (double v : y) {
    if (v == 0) ++zeros;
    else EXPECT_NEAR(v, 1.0 / 0.75, 1e-6);
  }
  EXPECT_GT(zeros, 180);
  EXPECT_LT(zeros, 320);
  d.eval();
  EXPECT_EQ(d.forward(x).to_vector(), x.to_vector());
  // same seed -> same mask
  nn::Dropout a(0.5, 3), b(0.5, 3);
  EXPECT_EQ(a.forward(x).to_vector(), b.forward(x).to_vector());
}

double bce_ref(double x, double t, double pw) {
  // direct formula in long double: -(pw * t * log(sigmoid(x)) + (1 - t) * log(1 - sigmoid(x)))
  long double lx = x;
  long double log_sig = -std::log1p(std::exp(-std::fabs(lx))) + std::min<long double>(lx, 0);
  long double log_one_minus = -std::log1p(std::exp(-std::fabs(lx))) + std::min<long double>(-lx, 0);
  return static_cast<double>(-(pw * t * log_sig + (1 - t) * log_one_minus));
}

TEST(BCEWithLogits, ValuesPosWeightAndStability) {
  std::vector<double> xs = {-100, -20, -3.5, -0.2, 0.0, 0.7, 4, 30, 100};
  std::vector<double> ts = {0, 1, 0.3, 1, 0, 1, 0, 0, 1};
  Tensor x = Tensor::from_vector(xs, {9}, DType::Float64), t = Tensor::from_vector(ts, {9}, DType::Float64);
  auto l = nn::binary_cross_entropy_with_logits(x, t, Tensor(), Reduction::None).to_vector();
  for (int i = 0; i < 9; ++i) {
    EXPECT_TRUE(std::isfinite(l[i])) << i;
    EXPECT_NEAR(l[i], bce_ref(xs[i], ts[i], 1.0), 1e-9 * (1 + std::fabs(l[i]))) << "x=" << xs[i];
  }
  Tensor pw = Tensor::from_vector({3.0}, {1}, DType::Float64);
  auto lp = nn::binary_cross_entropy_with_logits(x, t, pw, Reduction::None).to_vector();
  for (int i = 0; i < 9; ++i) EXPECT_NEAR(lp[i], bce_ref(xs[i], ts[i], 3.0), 1e-9 * (1 + std::fabs(lp[i])));
  double mean = 0;
  for (double v : l) mean += v;
  EXPECT_NEAR(nn::binary_cross_entropy_with_logits(x, t).item(), mean / 9, 1e-9);
  // float32 at extreme logits stays finite
  auto l32 = nn::binary_cross_entropy_with_logits(x.to(DType::Float32), t.to(DType::Float32), Tensor(),
                                                  Reduction::Sum);
  EXPECT_TRUE(std::isfinite(l32.item()));
}

TEST(BCEWithLogits, Gradcheck) {
  Tensor x = random_tensor({3, 4}, 5, DType::Float64, 4.0).set_requires_grad();
  Tensor t = random_tensor({3, 4}, 6);
  t = add(mul(t, 0.5), 0.5);
  Tensor pw = add(random_tensor({4}, 7), 2.0);
  SX_EXPECT_GRADCHECK(
      [t, pw](const std::vector<Tensor>& in) {
        return nn::binary_cross_entropy_with_logits(in[0], t, pw, Reduction::None);
      },
      {x});
}

TEST(CrossEntropy, ValuesIgnoreIndexWeightsSmoothing) {
  Tensor x = random_tensor({4, 5}, 8, DType::Float64, 3.0);
  Tensor y = Tensor::from_vector({1, 4, -100, 0}, {4}, DType::Int64);
  Tensor w = Tensor::from_vector({1.0, 2.0, 0.5, 1.0, 3.0}, {5}, DType::Float64);
  auto xv = x.to_vector();
  auto lse = [&](int n) {
    double m = -1e300;
    for (int c = 0; c < 5; ++c) m = std::max(m, xv[n * 5 + c]);
    double s = 0;
    for (int c = 0; c < 5; ++c) s += std::exp(xv[n * 5 + c] - m);
    return m + std::log(s);
  };
  const int tgt[4] = {1, 4, -100, 0};
  const double wv[5] = {1.0, 2.0, 0.5, 1.0, 3.0};
  // plain, mean over non-ignored
  double s = 0, ws = 0;
  std::vector<double> per(4, 0);
  for (int n = 0; n < 4; ++n) {
    if (tgt[n] < 0) continue;
    per[n] = lse(n) - xv[n * 5 + tgt[n]];
    s += per[n];
    ws += 1;
  }
  auto none = nn::cross_entropy(x, y, Reduction::None).to_vector();
  for (int n = 0; n < 4; ++n) EXPECT_NEAR(none[n], per[n], 1e-10);
  EXPECT_NEAR(nn::cross_entropy(x, y).item(), s / ws, 1e-10);
  // weighted mean divides by the sum of target weights
  double sw = 0, wsum = 0;
  for (int n = 0; n < 4; ++n) {
    if (tgt[n] < 0) continue;
    sw += wv[tgt[n]] * per[n];
    wsum += wv[tgt[n]];
  }
  EXPECT_NEAR(nn::cross_entropy(x, y, Reduction::Mean, w).item(), sw / wsum, 1e-10);
  // label smoothing 0.1 (torch's definition)
  double ls = 0;
  for (int n = 0; n < 4; ++n) {
    if (tgt[n] < 0) continue;
    double smooth = 0;
    for (int c = 0; c < 5; ++c) smooth += lse(n) - xv[n * 5 + c];
    ls += 0.9 * per[n] + 0.1 / 5 * smooth;
  }
  EXPECT_NEAR(nn::cross_entropy(x, y, Reduction::Mean, Tensor(), -100, 0.1).item(), ls / 3, 1e-10);
  // stability: huge logits
  Tensor big = Tensor::from_vector({1000, -1000, 0, 1000}, {2, 2}, DType::Float32);
  Tensor yb = Tensor::from_vector({0, 0}, {2}, DType::Int64);
  auto lb = nn::cross_entropy(big, yb, Reduction::None).to_vector();
  EXPECT_NEAR(lb[0], 0.0, 1e-6);
  EXPECT_NEAR(lb[1], 1000.0, 1e-3);
  // out-of-range class
  EXPECT_THROW(nn::cross_entropy(x, Tensor::from_vector({5, 0, 0, 0}, {4}, DType::Int64)), ValueError);
}

TEST(CrossEntropy, Gradcheck) {
  Tensor x = random_tensor({3, 4}, 9, DType::Float64, 2.0).set_requires_grad();
  Tensor y = Tensor::from_vector({2, 0, 3}, {3}, DType::Int64);
  Tensor w = Tensor::from_vector({1.0, 0.5, 2.0, 1.5}, {4}, DType::Float64);
  SX_EXPECT_GRADCHECK([y, w](const std::vector<Tensor>& in) { return nn::cross_entropy(in[0], y, Reduction::Mean, w, -100, 0.05); },
                      {x});
}

TEST(SmoothL1AndL1, ValuesAndGradcheck) {
  Tensor a = Tensor::from_vector({0.0, 0.5, 2.0, -3.0}, {4}, DType::Float64);
  Tensor b = Tensor::from_vector({0.2, -0.3, 0.0, 0.0}, {4}, DType::Float64);
  auto l = nn::smooth_l1_loss(a, b, 1.0, Reduction::None).to_vector();
  // |d| = 0.2, 0.8, 2, 3 -> 0.02, 0.32, 1.5, 2.5
  EXPECT_NEAR(l[0], 0.02, 1e-12);
  EXPECT_NEAR(l[1], 0.32, 1e-12);
  EXPECT_NEAR(l[2], 1.5, 1e-12);
  EXPECT_NEAR(l[3], 2.5, 1e-12);
  auto l9 = nn::smooth_l1_loss(a, b, 1.0 / 9, Reduction::None).to_vector();
  EXPECT_NEAR(l9[0], 0.2 - 0.5 / 9, 1e-12);
  EXPECT_NEAR(nn::l1_loss(a, b, Reduction::Sum).item(), 6.0, 1e-12);
  EXPECT_NEAR(nn::l1_loss(a, b).item(), 1.5, 1e-12);
  Tensor x = random_tensor({2, 3}, 10, DType::Float64, 2.0).set_requires_grad();
  Tensor t = random_tensor({2, 3}, 11);
  SX_EXPECT_GRADCHECK([t](const std::vector<Tensor>& in) { return nn::smooth_l1_loss(in[0], t, 0.5, Reduction::None); },
                      {x});
  SX_EXPECT_GRADCHECK([t](const std::vector<Tensor>& in) { return nn::l1_loss(in[0], t, Reduction::None); }, {x});
}

TEST(GIoULoss, ValuesLikeTorchvision) {
  Tensor b1 = Tensor::from_vector({0, 0, 2, 2, 0, 0, 2, 2, 0, 0, 1, 1}, {3, 4}, DType::Float64);
  Tensor b2 = Tensor::from_vector({0, 0, 2, 2, 1, 1, 3, 3, 2, 2, 3, 3}, {3, 4}, DType::Float64);
  auto l = nn::giou_loss(b1, b2, Reduction::None).to_vector();
  EXPECT_NEAR(l[0], 0.0, 1e-6);
  // overlap 1, union 7, iou 1/7; enclosing 9: giou = 1/7 - 2/9
  EXPECT_NEAR(l[1], 1 - (1.0 / 7 - 2.0 / 9), 1e-6);
  // disjoint unit boxes: iou 0, enclosing 9, union 2: giou = -7/9
  EXPECT_NEAR(l[2], 1 + 7.0 / 9, 1e-6);
  // empty input, mean: 0 and differentiable
  Tensor e = Tensor::zeros({0, 4}, DType::Float64).set_requires_grad();
  Tensor m = nn::giou_loss(e, Tensor::zeros({0, 4}, DType::Float64), Reduction::Mean);
  EXPECT_EQ(m.item(), 0.0);
}

TEST(GIoULoss, Gradcheck) {
  // Overlapping boxes, away from the kinks (no equal coordinates).
  Tensor b1 = Tensor::from_vector({0.1, 0.2, 2.3, 2.1, 1.0, 0.5, 3.0, 2.7}, {2, 4}, DType::Float64).set_requires_grad();
  Tensor b2 = Tensor::from_vector({0.6, 0.4, 2.9, 3.1, -0.5, 1.1, 1.7, 3.3}, {2, 4}, DType::Float64).set_requires_grad();
  SX_EXPECT_GRADCHECK([](const std::vector<Tensor>& in) { return nn::giou_loss(in[0], in[1], Reduction::None); },
                      {b1, b2});
}

class LossParity : public ::testing::TestWithParam<Device> {};

// Every loss (and Linear) on the device against the CPU, values and input gradients.
TEST_P(LossParity, MatchesCPU) {
  Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  auto both = [&](const std::function<Tensor(const Tensor&)>& f, const Tensor& x0) {
    Tensor xc = Tensor::from_vector(x0.to_vector(), x0.shape(), x0.dtype()).set_requires_grad();
    Tensor xd = Tensor::from_vector(x0.to_vector(), x0.shape(), x0.dtype(), dev).set_requires_grad();
    Tensor lc = f(xc), ld = f(xd);
    EXPECT_TRUE(ld.device() == dev);
    EXPECT_NEAR(lc.item(), ld.item(), 1e-5 * (1 + std::fabs(lc.item())));
    lc.backward();
    ld.backward();
    auto gc = xc.grad().to_vector(), gd = xd.grad().cpu().to_vector();
    ASSERT_EQ(gc.size(), gd.size());
    for (size_t i = 0; i < gc.size(); ++i) ASSERT_NEAR(gc[i], gd[i], 1e-5 * (1 + std::fabs(gc[i])));
  };
  Tensor x = random_tensor({6, 5}, 30, DType::Float32, 3.0);
  Tensor t = add(mul(random_tensor({6, 5}, 31, DType::Float32), 0.5), 0.5);
  Tensor pw = add(random_tensor({5}, 32, DType::Float32), 2.0);
  Tensor y = Tensor::from_vector({0, 4, 2, -100, 1, 3}, {6}, DType::Int64);
  Tensor w = random_tensor({3, 5}, 33, DType::Float32);
  Tensor b = Tensor::from_vector({0.1, 0.2, 2.3, 2.1}, {1, 4}, DType::Float32);
  both([&](const Tensor& v) { return nn::binary_cross_entropy_with_logits(v, t.to(v.device()), pw.to(v.device())); }, x);
  both([&](const Tensor& v) { return nn::cross_entropy(v, y.to(v.device()), Reduction::Mean, Tensor(), -100, 0.1); }, x);
  both([&](const Tensor& v) { return nn::smooth_l1_loss(v, t.to(v.device()), 0.5, Reduction::Sum); }, x);
  both([&](const Tensor& v) { return nn::l1_loss(v, t.to(v.device())); }, x);
  both([&](const Tensor& v) { return sum(nn::linear(v, w.to(v.device()), Tensor())); }, x);
  both([&](const Tensor& v) { return nn::giou_loss(v, b.to(v.device()), Reduction::Mean); },
       Tensor::from_vector({0.3, 0.1, 2.0, 2.4}, {1, 4}, DType::Float32));
}

INSTANTIATE_TEST_SUITE_P(Devices, LossParity, SX_PARITY_DEVICES, test::device_name);

}  // namespace
}  // namespace sx
