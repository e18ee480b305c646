// BatchNorm2d / FrozenBatchNorm2d: batch statistics and running statistics against the closed
// form, eval mode, gradients (training and eval mode), buffers and state-dict behaviour, parity.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/devices.h"
#include "common/compare.h"
#include "common/gradcheck.h"
#include "kernels/batchnorm/batchnorm.h"
#include "kernels/batchnorm/batchnorm_math.h"
#include "layers/batchnorm.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace sx {
namespace {

Tensor random_tensor(const Shape& s, uint64_t seed, DType dt = DType::Float32, double scale = 1.0, double shift = 0) {
  Generator g(seed);
  Tensor t = Tensor::empty(s, DType::Float64);
  double* p = t.data<double>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = (g.uniform() * 2 - 1) * scale + shift;
  return dt == DType::Float64 ? t : t.to(dt);
}

// Closed-form per-channel mean and biased variance of x [N, C, H, W].
void stats(const Tensor& x, std::vector<double>& mean, std::vector<double>& var) {
  auto v = x.to_vector();
  const int64_t N = x.size(0), C = x.size(1), S = x.size(2) * x.size(3);
  mean.assign(C, 0);
  var.assign(C, 0);
  for (int64_t c = 0; c < C; ++c) {
    double s = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < S; ++i) s += v[(n * C + c) * S + i];
    mean[c] = s / (N * S);
    double q = 0;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t i = 0; i < S; ++i) q += std::pow(v[(n * C + c) * S + i] - mean[c], 2);
    var[c] = q / (N * S);
  }
}

TEST(BatchNorm2d, TrainingNormalisesWithBatchStatistics) {
  nn::BatchNorm2d bn(3);
  {
    NoGradGuard ng;
    bn.weight.copy_(Tensor::from_vector({2.0, 0.5, -1.0}, {3}));
    bn.bias.copy_(Tensor::from_vector({0.1, -0.2, 0.3}, {3}));
  }
  Tensor x = random_tensor({4, 3, 5, 6}, 1, DType::Float32, 2.0, 1.5);
  Tensor y = bn.forward(x);
  std::vector<double> mean, var;
  stats(x, mean, var);
  auto xv = x.to_vector(), yv = y.to_vector();
  const double w[3] = {2.0, 0.5, -1.0}, b[3] = {0.1, -0.2, 0.3};
  for (size_t i = 0; i < xv.size(); ++i) {
    const int64_t c = (i / 30) % 3;
    const double ref = (xv[i] - mean[c]) / std::sqrt(var[c] + 1e-5) * w[c] + b[c];
    ASSERT_NEAR(yv[i], ref, 1e-4);
  }
}

TEST(BatchNorm2d, LargeOffsetDoesNotCancel) {
  // Values 1e4 + U(-1, 1) in float32: a naive E[x^2] - E[x]^2 in float would lose the variance.
  Tensor x = random_tensor({2, 2, 8, 8}, 40, DType::Float32, 1.0, 1e4);
  auto r = kernels::batch_norm_train_forward(x, Tensor(), Tensor(), Tensor(), Tensor(), 0.1, 1e-5);
  std::vector<double> mean, var;
  stats(x, mean, var);
  auto sm = r.save_mean.to_vector(), si = r.save_invstd.to_vector();
  for (int c = 0; c < 2; ++c) {
    EXPECT_NEAR(sm[c], mean[c], 1e-3);
    EXPECT_NEAR(1.0 / (si[c] * si[c]) - 1e-5, var[c], 1e-4 * var[c]);
  }
}

TEST(BatchNorm2d, RunningStatisticsFollowTheClosedForm) {
  nn::BatchNorm2d bn(2, 1e-5, 0.1);
  std::vector<double> rm = {0, 0}, rv = {1, 1};
  for (int step = 0; step < 3; ++step) {
    Tensor x = random_tensor({3, 2, 4, 5}, 10 + step, DType::Float32, 1.0 + step, 0.5 * step);
    bn.forward(x);
    std::vector<double> mean, var;
    stats(x, mean, var);
    const double M = 3 * 4 * 5;
    for (int c = 0; c < 2; ++c) {
      rm[c] = 0.9 * rm[c] + 0.1 * mean[c];
      rv[c] = 0.9 * rv[c] + 0.1 * var[c] * M / (M - 1);  // unbiased, like torch
    }
  }
  auto m = bn.running_mean.to_vector(), v = bn.running_var.to_vector();
  for (int c = 0; c < 2; ++c) {
    EXPECT_NEAR(m[c], rm[c], 1e-5);
    EXPECT_NEAR(v[c], rv[c], 1e-5);
  }
  EXPECT_EQ(bn.num_batches_tracked.item<int64_t>(), 3);
}

TEST(BatchNorm2d, EvalUsesRunningStatisticsAndDoesNotUpdate) {
  nn::BatchNorm2d bn(2);
  {
    NoGradGuard ng;
    bn.running_mean.copy_(Tensor::from_vector({0.5, -1.0}, {2}));
    bn.running_var.copy_(Tensor::from_vector({4.0, 0.25}, {2}));
    bn.weight.copy_(Tensor::from_vector({1.5, 2.0}, {2}));
    bn.bias.copy_(Tensor::from_vector({0.0, 1.0}, {2}));
  }
  bn.eval();
  EXPECT_FALSE(bn.is_training());
  Tensor x = random_tensor({2, 2, 3, 3}, 3);
  Tensor y = bn.forward(x);
  auto xv = x.to_vector(), yv = y.to_vector();
  const double m[2] = {0.5, -1.0}, v[2] = {4.0, 0.25}, w[2] = {1.5, 2.0}, b[2] = {0.0, 1.0};
  for (size_t i = 0; i < xv.size(); ++i) {
    const int64_t c = (i / 9) % 2;
    ASSERT_NEAR(yv[i], (xv[i] - m[c]) / std::sqrt(v[c] + 1e-5) * w[c] + b[c], 1e-5);
  }
  EXPECT_NEAR(bn.running_mean.to_vector()[0], 0.5, 0);
  EXPECT_EQ(bn.num_batches_tracked.item<int64_t>(), 0);
}

TEST(BatchNorm2d, GradcheckTrainingMode) {
  Tensor x = random_tensor({3, 2, 3, 4}, 5, DType::Float64, 1.0, 0.3).set_requires_grad();
  Tensor w = random_tensor({2}, 6, DType::Float64, 0.5, 1.0).set_requires_grad();
  Tensor b = random_tensor({2}, 7, DType::Float64).set_requires_grad();
  SX_EXPECT_GRADCHECK(
      [](const std::vector<Tensor>& in) {
        return nn::batch_norm(in[0], in[1], in[2], Tensor(), Tensor(), true, 0.1, 1e-5);
      },
      {x, w, b});
}

TEST(BatchNorm2d, GradcheckEvalMode) {
  Tensor x = random_tensor({2, 3, 2, 3}, 8, DType::Float64).set_requires_grad();
  Tensor w = random_tensor({3}, 9, DType::Float64, 0.5, 1.0).set_requires_grad();
  Tensor b = random_tensor({3}, 10, DType::Float64).set_requires_grad();
  Tensor rm = random_tensor({3}, 11, DType::Float64);
  Tensor rv = random_tensor({3}, 12, DType::Float64, 0.5, 1.0);
  SX_EXPECT_GRADCHECK(
      [rm, rv](const std::vector<Tensor>& in) { return nn::batch_norm(in[0], in[1], in[2], rm, rv, false, 0.1, 1e-5); },
      {x, w, b});
}

// Central differences of L = sum(g * y) for every element of x, weight and bias.
struct BnNumeric {
  std::vector<double> dx, dw, db;
};
BnNumeric bn_numeric(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& g, double eps = 1e-5) {
  auto L = [&](const Tensor& xx, const Tensor& ww, const Tensor& bb) {
    auto y = kernels::batch_norm_train_forward(xx, ww, bb, Tensor(), Tensor(), 0.1, eps).y.to_vector();
    auto gv = g.to_vector();
    double s = 0;
    for (size_t i = 0; i < y.size(); ++i) s += y[i] * gv[i];
    return s;
  };
  auto diff = [&](const Tensor& t, int which) {
    std::vector<double> out;
    for (int64_t i = 0; i < t.numel(); ++i) {
      Tensor tp = t.clone(), tm = t.clone();
      tp.data<double>()[i] += 1e-6;
      tm.data<double>()[i] -= 1e-6;
      const double lp = which == 0 ? L(tp, w, b) : which == 1 ? L(x, tp, b) : L(x, w, tp);
      const double lm = which == 0 ? L(tm, w, b) : which == 1 ? L(x, tm, b) : L(x, w, tm);
      out.push_back((lp - lm) / 2e-6);
    }
    return out;
  };
  return {diff(x, 0), diff(w, 1), diff(b, 2)};
}

void expect_grads_near(const std::vector<double>& a, const std::vector<double>& n, const char* what) {
  ASSERT_EQ(a.size(), n.size()) << what;
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_NEAR(a[i], n[i], 1e-7 + 1e-6 * std::max(std::fabs(a[i]), std::fabs(n[i]))) << what << " " << i;
}

TEST(BatchNorm2d, KernelBackwardMatchesFiniteDifferenceOfKernelForward) {
  // Without autograd: the kernel pair alone (what the CUDA twin mirrors), every element of dx, dw
  // and db; the forward is run with running statistics (training mode updating them), which must
  // not change y, the saved statistics or the gradient.
  Tensor x = random_tensor({2, 2, 3, 3}, 13, DType::Float64);
  Tensor w = random_tensor({2}, 14, DType::Float64, 0.5, 1.0);
  Tensor b = random_tensor({2}, 15, DType::Float64);
  Tensor g = random_tensor(x.shape(), 16, DType::Float64);
  Tensor rm = random_tensor({2}, 17, DType::Float64), rv = random_tensor({2}, 18, DType::Float64, 0.2, 1.0);
  auto fr = kernels::batch_norm_train_forward(x, w, b, rm, rv, 0.1, 1e-5);
  auto f0 = kernels::batch_norm_train_forward(x, w, b, Tensor(), Tensor(), 0.1, 1e-5);
  EXPECT_EQ(fr.y.to_vector(), f0.y.to_vector());
  EXPECT_EQ(fr.save_invstd.to_vector(), f0.save_invstd.to_vector());
  auto br = kernels::batch_norm_train_backward(g, x, w, fr.save_mean, fr.save_invstd);
  ASSERT_TRUE(br.grad_weight.defined() && br.grad_bias.defined());
  const BnNumeric n = bn_numeric(x, w, b, g);
  expect_grads_near(br.grad_input.to_vector(), n.dx, "dx");
  expect_grads_near(br.grad_weight.to_vector(), n.dw, "dw");
  expect_grads_near(br.grad_bias.to_vector(), n.db, "db");
}

TEST(BatchNorm2d, GradcheckTrainingModeWithRunningStatistics) {
  // The layer's autograd path in training mode with running buffers (updated on every call).
  Tensor x = random_tensor({2, 3, 2, 3}, 19, DType::Float64, 1.0, 0.2).set_requires_grad();
  Tensor w = random_tensor({3}, 20, DType::Float64, 0.5, 1.0).set_requires_grad();
  Tensor b = random_tensor({3}, 21, DType::Float64).set_requires_grad();
  Tensor rm = random_tensor({3}, 22, DType::Float64), rv = random_tensor({3}, 23, DType::Float64, 0.5, 1.0);
  SX_EXPECT_GRADCHECK(
      [rm, rv](const std::vector<Tensor>& in) { return nn::batch_norm(in[0], in[1], in[2], rm, rv, true, 0.1, 1e-5); },
      {x, w, b});
}

// N = 1 (the statistics come from one image's pixels) and a constant channel (zero variance: x_hat
// is 0, y is the bias, and the gradient is that of (x - mean) / sqrt(eps)), against the closed form
// and central differences.
TEST(BatchNorm2d, BatchOfOneAndConstantChannel) {
  Tensor x = random_tensor({1, 3, 4, 5}, 24, DType::Float64, 1.0, 0.5);
  {
    double* p = x.data<double>();
    for (int64_t i = 20; i < 40; ++i) p[i] = 2.5;  // channel 1 constant
  }
  Tensor w = Tensor::from_vector({1.5, -0.7, 0.9}, {3}, DType::Float64);
  Tensor b = Tensor::from_vector({0.2, 0.4, -0.1}, {3}, DType::Float64);
  Tensor g = random_tensor(x.shape(), 25, DType::Float64);
  Tensor rm = Tensor::zeros({3}, DType::Float64), rv = Tensor::ones({3}, DType::Float64);
  auto fr = kernels::batch_norm_train_forward(x, w, b, rm, rv, 0.1, 1e-5);
  std::vector<double> mean, var;
  stats(x, mean, var);
  EXPECT_EQ(var[1], 0.0);
  auto xv = x.to_vector(), yv = fr.y.to_vector();
  const double wv[3] = {1.5, -0.7, 0.9}, bv[3] = {0.2, 0.4, -0.1};
  for (int64_t i = 0; i < 60; ++i) {
    const int64_t c = i / 20;
    EXPECT_NEAR(yv[i], (xv[i] - mean[c]) / std::sqrt(var[c] + 1e-5) * wv[c] + bv[c], 1e-12) << i;
  }
  for (int64_t i = 20; i < 40; ++i) EXPECT_NEAR(yv[i], 0.4, 1e-12);  // the bias (to the rounding of x * w / sqrt(eps) ~ 553)
  // Running statistics: unbiased variance (M = 20), 0 for the constant channel.
  EXPECT_NEAR(rv.to_vector()[1], 0.9, 1e-15);
  EXPECT_NEAR(rv.to_vector()[0], 0.9 + 0.1 * var[0] * 20 / 19, 1e-12);
  EXPECT_NEAR(rm.to_vector()[1], 0.25, 1e-15);
  auto br = kernels::batch_norm_train_backward(g, x, w, fr.save_mean, fr.save_invstd);
  const BnNumeric n = bn_numeric(x, w, b, g);
  expect_grads_near(br.grad_input.to_vector(), n.dx, "dx");
  expect_grads_near(br.grad_weight.to_vector(), n.dw, "dw");
  expect_grads_near(br.grad_bias.to_vector(), n.db, "db");
  // Constant channel in closed form: dx = w / sqrt(eps) * (g - mean(g)), dw = 0.
  auto gv = g.to_vector(), dx = br.grad_input.to_vector();
  double gm = 0;
  for (int64_t i = 20; i < 40; ++i) gm += gv[i] / 20;
  for (int64_t i = 20; i < 40; ++i) EXPECT_NEAR(dx[i], -0.7 / std::sqrt(1e-5) * (gv[i] - gm), 1e-9) << i;
  EXPECT_EQ(br.grad_weight.to_vector()[1], 0.0);
}

TEST(BatchNorm2d, SingleValuePerChannelInTrainingThrows) {
  nn::BatchNorm2d bn(3);
  EXPECT_THROW(bn.forward(Tensor::zeros({1, 3, 1, 1})), ValueError);
}

TEST(BatchNorm2d, StateDictNamesLikeTorch) {
  nn::BatchNorm2d bn(4);
  auto keys = bn.state_dict().keys();
  std::vector<std::string> expect = {"weight", "bias", "running_mean", "running_var", "num_batches_tracked"};
  EXPECT_EQ(keys, expect);
  EXPECT_EQ(bn.num_parameters(), 8);
  EXPECT_EQ(bn.num_batches_tracked.dtype(), DType::Int64);
}

TEST(FrozenBatchNorm2d, AffineWithBuffersOnlyAndIgnoresNumBatchesTracked) {
  nn::FrozenBatchNorm2d fbn(2);
  EXPECT_EQ(fbn.num_parameters(), 0);
  nn::BatchNorm2d bn(2);
  {
    NoGradGuard ng;
    bn.running_mean.copy_(Tensor::from_vector({0.5, -1.0}, {2}));
    bn.running_var.copy_(Tensor::from_vector({4.0, 0.25}, {2}));
    bn.weight.copy_(Tensor::from_vector({1.5, 2.0}, {2}));
  }
  // A BatchNorm2d state dict (with num_batches_tracked) loads strictly.
  auto rep = fbn.load_state_dict(bn.state_dict(), true);
  EXPECT_TRUE(rep.ok()) << rep.str();
  bn.eval();
  fbn.train();  // frozen whatever the mode
  Tensor x = random_tensor({2, 2, 3, 3}, 20);
  auto a = bn.forward(x).to_vector(), b = fbn.forward(x).to_vector();
  for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-6);
}

class BatchNormParity : public ::testing::TestWithParam<Device> {};

// One training-mode forward and backward of BatchNorm on the CPU (c, cb, rm, rv) and on `dev`
// (d, db, rmd, rvd) from the same seeded inputs of `shape` (seeds seed..seed+5).
struct BnBoth {
  Tensor x, w, g, rm, rv, rmd, rvd;
  kernels::BatchNormTrainResult c, d;
  kernels::BatchNormBackwardResult cb, db;
};
BnBoth bn_both(const Shape& shape, uint64_t seed, Device dev) {
  BnBoth r;
  const int64_t C = shape[1];
  r.x = random_tensor(shape, seed, DType::Float32, 2.0, 0.7);
  r.w = random_tensor({C}, seed + 1);
  Tensor b = random_tensor({C}, seed + 2);
  r.rm = random_tensor({C}, seed + 3);
  r.rv = random_tensor({C}, seed + 4, DType::Float32, 0.2, 1.0);
  r.rmd = r.rm.to(dev);
  r.rvd = r.rv.to(dev);
  r.c = kernels::batch_norm_train_forward(r.x, r.w, b, r.rm, r.rv, 0.1, 1e-5);
  r.d = kernels::batch_norm_train_forward(r.x.to(dev), r.w.to(dev), b.to(dev), r.rmd, r.rvd, 0.1, 1e-5);
  r.g = random_tensor(shape, seed + 5);
  r.cb = kernels::batch_norm_train_backward(r.g, r.x, r.w, r.c.save_mean, r.c.save_invstd);
  r.db = kernels::batch_norm_train_backward(r.g.to(dev), r.x.to(dev), r.w.to(dev), r.d.save_mean, r.d.save_invstd);
  return r;
}

TEST_P(BatchNormParity, MatchesCPU) {
  Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  BnBoth r = bn_both({3, 5, 7, 6}, 30, dev);
  const Tensor &x = r.x, &g = r.g, &rm = r.rm, &rv = r.rv, &rmd = r.rmd, &rvd = r.rvd;
  const auto &c = r.c, &d = r.d;
  const auto &cb = r.cb, &db = r.db;
  Tensor scale = random_tensor({5}, 36), shift = random_tensor({5}, 37);
  Tensor ca = kernels::channel_affine_forward(x, scale, shift);
  Tensor da = kernels::channel_affine_forward(x.to(dev), scale.to(dev), shift.to(dev));
  auto cab = kernels::channel_affine_backward(g, x, scale, true, true, true);
  auto dab = kernels::channel_affine_backward(g.to(dev), x.to(dev), scale.to(dev), true, true, true);
  auto cmp = [](const Tensor& a, const Tensor& b) {
    auto va = a.to_vector(), vb = b.cpu().to_vector();
    ASSERT_EQ(va.size(), vb.size());
    for (size_t k = 0; k < va.size(); ++k) ASSERT_NEAR(va[k], vb[k], 1e-4 * (1 + std::fabs(va[k])));
  };
  cmp(c.y, d.y);
  cmp(c.save_mean, d.save_mean);
  cmp(c.save_invstd, d.save_invstd);
  cmp(rm, rmd);
  cmp(rv, rvd);
  cmp(cb.grad_input, db.grad_input);
  cmp(cb.grad_weight, db.grad_weight);
  cmp(cb.grad_bias, db.grad_bias);
  cmp(ca, da);
  cmp(cab.grad_input, dab.grad_input);
  cmp(cab.grad_scale, dab.grad_scale);
  cmp(cab.grad_shift, dab.grad_shift);
}

INSTANTIATE_TEST_SUITE_P(Devices, BatchNormParity, SX_PARITY_DEVICES, test::device_name);

// The CUDA reductions split each channel into pieces (bn_math::bn_piece) and add the pieces' sums
// in order. The split must cover every (image, position) exactly once, and the piecewise shifted
// sums must give the statistics of the whole channel, for planes larger and smaller than a chunk.
TEST(BatchNormPieces, CoverEveryValueOnceAndGiveTheChannelStatistics) {
  struct Case { long long N, S, chunk; };
  for (Case c : {Case{8, 25600, 16384}, Case{8, 16384, 16384}, Case{3, 49, 16384}, Case{64, 49, 100},
                 Case{5, 7, 3}, Case{1, 1, 16384}, Case{2, 100000, 4096}, Case{7, 300, 300}}) {
    SCOPED_TRACE(testing::Message() << "N " << c.N << " S " << c.S << " chunk " << c.chunk);
    const long long P = kernels::bn_math::bn_num_pieces(c.N, c.S, c.chunk);
    std::vector<int> seen(static_cast<size_t>(c.N * c.S), 0);
    std::vector<double> v(seen.size());
    for (size_t i = 0; i < v.size(); ++i) v[i] = 100.0 + std::sin(0.37 * static_cast<double>(i)) * 3.0;
    const double K = v[0];
    double s1 = 0, s2 = 0;
    for (long long p = 0; p < P; ++p) {
      const auto pc = kernels::bn_math::bn_piece(p, c.N, c.S, c.chunk);
      ASSERT_LE(0, pc.n0);
      ASSERT_LE(pc.n1, c.N);
      ASSERT_LE(0, pc.k0);
      ASSERT_LE(pc.k1, c.S);
      ASSERT_LE((pc.n1 - pc.n0) * (pc.k1 - pc.k0), std::max(c.chunk, c.S)) << "piece " << p << " too large";
      double p1 = 0, p2 = 0;  // the piece's own sums, then added in piece order (as the GPU does)
      for (long long n = pc.n0; n < pc.n1; ++n)
        for (long long k = pc.k0; k < pc.k1; ++k) {
          ++seen[static_cast<size_t>(n * c.S + k)];
          kernels::bn_math::accumulate_shifted(v[static_cast<size_t>(n * c.S + k)], K, p1, p2);
        }
      s1 += p1;
      s2 += p2;
    }
    for (size_t i = 0; i < seen.size(); ++i) ASSERT_EQ(seen[i], 1) << "value " << i;
    double mean, var, ref_mean = 0, ref_var = 0;
    kernels::bn_math::shifted_moments(K, s1, s2, c.N * c.S, mean, var);
    for (double x : v) ref_mean += x;
    ref_mean /= static_cast<double>(v.size());
    for (double x : v) ref_var += (x - ref_mean) * (x - ref_mean);
    ref_var /= static_cast<double>(v.size());
    EXPECT_NEAR(mean, ref_mean, 1e-9 * std::fabs(ref_mean));
    EXPECT_NEAR(var, ref_var, 1e-7 * (ref_var + 1e-12));
  }
}

// Large spatial size (8 x 64 x 160^2: 204,800 values per channel), where the CUDA reductions
// split each channel over many blocks; train forward, running stats and backward.
TEST(BatchNormCudaParity, LargeSpatialSize) {
  SX_REQUIRE_CUDA();
  BnBoth r = bn_both({8, 64, 160, 160}, 40, Device::cuda(0));
  const auto &c = r.c, &d = r.d;
  const auto &cb = r.cb, &db = r.db;
  const Tensor &rm = r.rm, &rv = r.rv, &rmd = r.rmd, &rvd = r.rvd;
  EXPECT_LT(test::rel_err(d.y, c.y), 1e-5);
  EXPECT_LT(test::rel_err(d.save_mean, c.save_mean), 1e-5);
  EXPECT_LT(test::rel_err(d.save_invstd, c.save_invstd), 1e-5);
  EXPECT_LT(test::rel_err(rmd, rm), 1e-5);
  EXPECT_LT(test::rel_err(rvd, rv), 1e-5);
  EXPECT_LT(test::rel_err(db.grad_input, cb.grad_input), 1e-4);
  EXPECT_LT(test::rel_err(db.grad_weight, cb.grad_weight), 1e-4);
  EXPECT_LT(test::rel_err(db.grad_bias, cb.grad_bias), 1e-4);
}

}  // namespace
}  // namespace sx
