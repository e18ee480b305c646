// Conv2d: the CPU kernels (im2col + GEMM, and oneDNN) against a naive direct convolution written
// here (many shapes, strides, padding, dilation, groups, with/without bias, float32 and float64),
// im2col's tiles (bands of rows, groups of images) and threading choices, oneDNN against im2col on
// ResNet shapes, the backward passes by gradcheck, empty inputs, errors, and CUDA/CPU parity.
#include <cblas.h>
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "common/devices.h"
#include "common/compare.h"
#include "common/gradcheck.h"
#include "kernels/conv2d/conv2d.h"
#include "kernels/conv2d/conv2d_algo.h"
#include "kernels/conv2d/conv2d_path_stats.h"
#include "layers/conv.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace sx {
namespace {

using kernels::Conv2dParams;

Tensor random_tensor(const Shape& s, uint64_t seed, DType dt = DType::Float32, double scale = 1.0) {
  Generator g(seed);
  Tensor t = Tensor::empty(s, DType::Float64);
  double* p = t.data<double>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = (g.uniform() * 2 - 1) * scale;
  return dt == DType::Float64 ? t : t.to(dt);
}

// Direct convolution straight from the definition, in double.
std::vector<double> naive_conv(const Tensor& x_, const Tensor& w_, const Tensor& b_, const Conv2dParams& p,
                               Shape& out_shape) {
  auto x = x_.to_vector(), w = w_.to_vector();
  std::vector<double> b = b_.defined() ? b_.to_vector() : std::vector<double>();
  const int64_t N = x_.size(0), C = x_.size(1), H = x_.size(2), W = x_.size(3);
  const int64_t K = w_.size(0), Cg = w_.size(1), R = w_.size(2), S = w_.size(3);
  const int64_t G = p.groups, Kg = K / G;
  const int64_t P = (H + 2 * p.pad_h - p.dil_h * (R - 1) - 1) / p.stride_h + 1;
  const int64_t Q = (W + 2 * p.pad_w - p.dil_w * (S - 1) - 1) / p.stride_w + 1;
  out_shape = {N, K, P, Q};
  std::vector<double> y(N * K * P * Q, 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k) {
      const int64_t g = k / Kg;
      for (int64_t op = 0; op < P; ++op)
        for (int64_t oq = 0; oq < Q; ++oq) {
          double s = b.empty() ? 0.0 : b[k];
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t r = 0; r < R; ++r)
              for (int64_t q = 0; q < S; ++q) {
                const int64_t h = op * p.stride_h - p.pad_h + r * p.dil_h;
                const int64_t ww = oq * p.stride_w - p.pad_w + q * p.dil_w;
                if (h < 0 || h >= H || ww < 0 || ww >= W) continue;
                s += w[((k * Cg + c) * R + r) * S + q] * x[((n * C + g * Cg + c) * H + h) * W + ww];
              }
          y[((n * K + k) * P + op) * Q + oq] = s;
        }
    }
  (void)C;
  return y;
}

struct ConvCase {
  int64_t N, C, H, W, K, R, S;
  Conv2dParams p;
  bool bias;
};

std::vector<ConvCase> cases() {
  return {
      {2, 3, 9, 9, 4, 3, 3, {1, 1, 1, 1, 1, 1, 1}, true},     // 3x3 same padding
      {1, 3, 16, 16, 8, 7, 7, {2, 2, 3, 3, 1, 1, 1}, false},  // ResNet stem
      {3, 8, 7, 7, 16, 1, 1, {1, 1, 0, 0, 1, 1, 1}, true},    // 1x1 direct GEMM path
      {2, 8, 8, 8, 16, 1, 1, {2, 2, 0, 0, 1, 1, 1}, false},   // 1x1 strided (downsample)
      {2, 4, 10, 11, 6, 3, 2, {2, 1, 1, 0, 1, 1, 2}, true},   // groups 2, rectangular kernel
      {1, 6, 9, 9, 6, 3, 3, {1, 1, 2, 2, 2, 2, 6}, true},     // depthwise, dilation 2
      {2, 4, 12, 9, 4, 3, 3, {3, 2, 0, 1, 2, 1, 1}, false},   // mixed strides/dilation, no pad
      {1, 2, 5, 5, 3, 5, 5, {1, 1, 0, 0, 1, 1, 1}, true},     // kernel = input
      {2, 3, 6, 6, 4, 3, 3, {1, 1, 3, 3, 1, 1, 1}, true},     // padding larger than needed
      {1, 1, 1, 1, 1, 1, 1, {1, 1, 0, 0, 1, 1, 1}, true},     // 1x1x1x1
  };
}

void check_against_naive(DType dt, double tol) {
  int i = 0;
  for (const auto& c : cases()) {
    SCOPED_TRACE(testing::Message() << "case " << i);
    Tensor x = random_tensor({c.N, c.C, c.H, c.W}, 10 + i, dt);
    Tensor w = random_tensor({c.K, c.C / c.p.groups, c.R, c.S}, 20 + i, dt);
    Tensor b = c.bias ? random_tensor({c.K}, 30 + i, dt) : Tensor();
    Shape os;
    auto ref = naive_conv(x, w, b, c.p, os);
    Tensor y = kernels::conv2d_forward(x, w, b, c.p);
    ASSERT_EQ(y.shape(), os);
    EXPECT_EQ(y.dtype(), dt);
    auto got = y.to_vector();
    for (size_t k = 0; k < ref.size(); ++k) ASSERT_NEAR(got[k], ref[k], tol * (1 + std::fabs(ref[k]))) << "at " << k;
    ++i;
  }
}

// Sets the CPU algorithm for a scope (restores it after).
struct AlgoScope {
  kernels::cpu::CpuConvAlgo saved = kernels::cpu::cpu_conv_algo();
  explicit AlgoScope(kernels::cpu::CpuConvAlgo a) { kernels::cpu::cpu_conv_algo() = a; }
  ~AlgoScope() { kernels::cpu::cpu_conv_algo() = saved; }
};

TEST(Conv2dCPU, MatchesNaiveFloat32) { check_against_naive(DType::Float32, 1e-5); }
TEST(Conv2dCPU, Im2colMatchesNaiveFloat32) {
  AlgoScope a(kernels::cpu::CpuConvAlgo::Im2col);
  check_against_naive(DType::Float32, 1e-5);
}
TEST(Conv2dCPU, OneDnnMatchesNaiveFloat32) {
  // every float32 case on oneDNN, 1x1 kernels, groups and dilation included
  AlgoScope a(kernels::cpu::CpuConvAlgo::OneDNN);
  check_against_naive(DType::Float32, 1e-5);
}
TEST(Conv2dCPU, MatchesNaiveFloat64) { check_against_naive(DType::Float64, 1e-12); }

TEST(Conv2dCPU, BandedIm2colMatchesNaiveAndGradients) {
  // Force tiny column buffers: every case runs in bands of one or a few output rows.
  int64_t& limit = kernels::cpu::im2col_chunk_elements();
  const int64_t saved = limit;
  for (int64_t lim : {int64_t(1), int64_t(200)}) {
    limit = lim;
    check_against_naive(DType::Float64, 1e-12);
    Conv2dParams p{2, 1, 1, 2, 1, 2, 1};
    Tensor x = random_tensor({2, 3, 9, 8}, 70, DType::Float64).set_requires_grad();
    Tensor w = random_tensor({5, 3, 3, 2}, 71, DType::Float64).set_requires_grad();
    SX_EXPECT_GRADCHECK([p](const std::vector<Tensor>& in) { return nn::conv2d(in[0], in[1], Tensor(), p); }, {x, w});
  }
  limit = saved;
}

// The backward passes of the current CPU algorithm against the naive convolution's adjoint,
// computed in double: <conv(x), g> = <x, dx(g)> = <w, dw(g)> for random x, w, g.
void check_adjoint(const ConvCase& c, int seed, DType dt, double tol) {
  Tensor x = random_tensor({c.N, c.C, c.H, c.W}, seed, dt);
  Tensor w = random_tensor({c.K, c.C / c.p.groups, c.R, c.S}, seed + 1, dt);
  Shape os;
  auto y = naive_conv(x, w, Tensor(), c.p, os);
  Tensor g = random_tensor(os, seed + 2, dt);
  auto gv = g.to_vector();
  double lhs = 0, scale = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    lhs += y[i] * gv[i];
    scale += std::fabs(y[i] * gv[i]);
  }
  auto dot = [](const Tensor& a, const Tensor& b) {
    auto va = a.to_vector(), vb = b.to_vector();
    double s = 0;
    for (size_t i = 0; i < va.size(); ++i) s += va[i] * vb[i];
    return s;
  };
  EXPECT_NEAR(dot(x, kernels::conv2d_backward_input(g, w, x.shape(), c.p)), lhs, tol * (1 + scale));
  EXPECT_NEAR(dot(w, kernels::conv2d_backward_weight(g, x, w.shape(), c.p)), lhs, tol * (1 + scale));
}

TEST(Conv2dCPU, Im2colTilesAndThreadingMatchNaive) {
  // Batches of several small images (grouped into one GEMM), large images (bands of rows), and the
  // two threading choices, through the forward and both backward passes.
  AlgoScope a(kernels::cpu::CpuConvAlgo::Im2col);
  int64_t& cache = kernels::cpu::im2col_cache_elements();
  int64_t& mincols = kernels::cpu::im2col_min_columns();
  bool& split = kernels::cpu::conv_batch_split();
  const int64_t saved_cache = cache, saved_mincols = mincols;
  const bool saved_split = split;
  const std::vector<ConvCase> cs = {
      {5, 6, 7, 7, 8, 3, 3, {1, 1, 1, 1, 1, 1, 1}, true},     // small images: grouped
      {3, 4, 20, 18, 5, 3, 3, {1, 1, 1, 1, 1, 1, 1}, false},  // bands of rows
      {4, 6, 9, 9, 4, 1, 1, {1, 1, 0, 0, 1, 1, 1}, true},     // 1x1 direct, grouped images
      {3, 6, 10, 10, 4, 1, 1, {2, 2, 0, 0, 1, 1, 1}, false},  // strided 1x1: rows no band reaches
      {4, 4, 11, 9, 6, 3, 2, {2, 1, 1, 0, 1, 2, 2}, true},    // groups, dilation, strides
  };
  struct Knobs { int64_t cache, mincols; bool split; };
  for (Knobs k : {Knobs{1 << 18, 384, true}, Knobs{64, 1, true}, Knobs{64, 200, true}, Knobs{1 << 18, 384, false},
                  Knobs{300, 30, true}}) {
    cache = k.cache;
    mincols = k.mincols;
    split = k.split;
    for (size_t i = 0; i < cs.size(); ++i) {
      SCOPED_TRACE(testing::Message() << "case " << i << " cache " << k.cache << " mincols " << k.mincols
                                      << " split " << k.split);
      const ConvCase& c = cs[i];
      Tensor x = random_tensor({c.N, c.C, c.H, c.W}, 200 + i, DType::Float64);
      Tensor w = random_tensor({c.K, c.C / c.p.groups, c.R, c.S}, 210 + i, DType::Float64);
      Tensor b = c.bias ? random_tensor({c.K}, 220 + i, DType::Float64) : Tensor();
      Shape os;
      auto ref = naive_conv(x, w, b, c.p, os);
      auto got = kernels::conv2d_forward(x, w, b, c.p).to_vector();
      ASSERT_EQ(got.size(), ref.size());
      for (size_t j = 0; j < ref.size(); ++j) ASSERT_NEAR(got[j], ref[j], 1e-12 * (1 + std::fabs(ref[j]))) << j;
      check_adjoint(c, 230 + 3 * static_cast<int>(i), DType::Float64, 1e-12);
    }
  }
  cache = saved_cache;
  mincols = saved_mincols;
  split = saved_split;
}

// oneDNN (the default for float32) against the im2col reference on
// ResNet shapes: forward, data and weight gradients, relative error of the whole tensor (the two
// sum in different orders).
TEST(Conv2dCPU, OneDnnMatchesIm2colOnResNetShapes) {
  struct Case { int64_t N, C, H, K, R, stride, pad; };
  int i = 0;
  for (Case c : {Case{2, 3, 64, 16, 7, 2, 3}, Case{4, 32, 20, 32, 3, 1, 1}, Case{3, 64, 14, 128, 3, 2, 1},
                 Case{8, 64, 7, 64, 3, 1, 1}, Case{2, 48, 9, 24, 1, 1, 0}, Case{2, 32, 10, 64, 1, 2, 0}}) {
    SCOPED_TRACE(testing::Message() << "case " << i);
    kernels::Conv2dParams p{c.stride, c.stride, c.pad, c.pad, 1, 1, 1};
    Tensor x = random_tensor({c.N, c.C, c.H, c.H}, 400 + i);
    Tensor w = random_tensor({c.K, c.C, c.R, c.R}, 410 + i, DType::Float32, 0.1);
    Tensor b = random_tensor({c.K}, 420 + i);
    Tensor y[2], dx[2], dw[2];
    const kernels::cpu::CpuConvAlgo algos[2] = {kernels::cpu::CpuConvAlgo::Im2col, kernels::cpu::CpuConvAlgo::OneDNN};
    for (int a = 0; a < 2; ++a) {
      AlgoScope s(algos[a]);
      y[a] = kernels::conv2d_forward(x, w, b, p);
      Tensor g = random_tensor(y[a].shape(), 430 + i);
      dx[a] = kernels::conv2d_backward_input(g, w, x.shape(), p);
      dw[a] = kernels::conv2d_backward_weight(g, x, w.shape(), p);
    }
    EXPECT_LT(test::rel_err(y[1], y[0]), 1e-5);
    EXPECT_LT(test::rel_err(dx[1], dx[0]), 1e-5);
    EXPECT_LT(test::rel_err(dw[1], dw[0]), 1e-5);
    ++i;
  }
}

TEST(Conv2dCPU, NonContiguousInput) {
  // A transposed view: the kernel must read through the strides (via contiguous()).
  Tensor base = random_tensor({2, 3, 8, 7}, 5);
  Tensor x = base.transpose(2, 3);  // [2, 3, 7, 8], non-contiguous
  ASSERT_FALSE(x.is_contiguous());
  Tensor w = random_tensor({4, 3, 3, 3}, 6);
  Conv2dParams p{1, 1, 1, 1, 1, 1, 1};
  Shape os;
  auto ref = naive_conv(x, w, Tensor(), p, os);
  auto got = kernels::conv2d_forward(x, w, Tensor(), p).to_vector();
  for (size_t k = 0; k < ref.size(); ++k) ASSERT_NEAR(got[k], ref[k], 1e-5 * (1 + std::fabs(ref[k])));
}

// Edge cases: a non-contiguous weight (the kernel must read it through its strides, forward and
// backward), grouped (not depthwise) convolutions with dilation, and K = 0 output channels.
TEST(Conv2dCPU, NonContiguousWeight) {
  Tensor x = random_tensor({2, 4, 7, 6}, 80, DType::Float64);
  Tensor wt = random_tensor({3, 3, 4, 5}, 81, DType::Float64);  // stored [S, R, C, K]... permuted below
  Tensor w = wt.permute({3, 2, 1, 0});                             // [5, 4, 3, 3] view
  ASSERT_FALSE(w.is_contiguous());
  for (Conv2dParams p : {Conv2dParams{1, 1, 1, 1, 1, 1, 1}, Conv2dParams{2, 1, 0, 1, 1, 2, 1}}) {
    Shape os;
    auto ref = naive_conv(x, w, Tensor(), p, os);
    Tensor y = kernels::conv2d_forward(x, w, Tensor(), p);
    ASSERT_EQ(y.shape(), os);
    auto got = y.to_vector();
    for (size_t k = 0; k < ref.size(); ++k) ASSERT_NEAR(got[k], ref[k], 1e-12 * (1 + std::fabs(ref[k]))) << k;
    // Backward with the view equals backward with its contiguous copy.
    Tensor g = random_tensor(y.shape(), 82, DType::Float64);
    EXPECT_EQ(kernels::conv2d_backward_input(g, w, x.shape(), p).to_vector(),
              kernels::conv2d_backward_input(g, w.contiguous(), x.shape(), p).to_vector());
    Tensor xg = x.clone().set_requires_grad(), wg = w.detach().set_requires_grad();
    ASSERT_FALSE(wg.is_contiguous());
    SX_EXPECT_GRADCHECK([p](const std::vector<Tensor>& in) { return nn::conv2d(in[0], in[1], Tensor(), p); }, {xg, wg});
  }
}

TEST(Conv2dCPU, GroupsWithDilation) {
  const std::vector<ConvCase> gd = {
      {2, 6, 11, 10, 9, 3, 3, {1, 1, 2, 2, 2, 2, 3}, true},   // 3 groups of 2 -> 3, dilation 2
      {1, 4, 12, 13, 6, 3, 2, {2, 1, 3, 1, 3, 2, 2}, false},  // 2 groups, dilation 3 x 2, strided
  };
  int i = 0;
  for (const auto& c : gd) {
    SCOPED_TRACE(testing::Message() << "case " << i);
    Tensor x = random_tensor({c.N, c.C, c.H, c.W}, 90 + i, DType::Float64);
    Tensor w = random_tensor({c.K, c.C / c.p.groups, c.R, c.S}, 95 + i, DType::Float64);
    Tensor b = c.bias ? random_tensor({c.K}, 99 + i, DType::Float64) : Tensor();
    Shape os;
    auto ref = naive_conv(x, w, b, c.p, os);
    Tensor y = kernels::conv2d_forward(x, w, b, c.p);
    ASSERT_EQ(y.shape(), os);
    auto got = y.to_vector();
    for (size_t k = 0; k < ref.size(); ++k) ASSERT_NEAR(got[k], ref[k], 1e-12 * (1 + std::fabs(ref[k]))) << k;
    Tensor xg = x.clone().set_requires_grad(), wg = w.clone().set_requires_grad();
    auto p = c.p;
    SX_EXPECT_GRADCHECK([p](const std::vector<Tensor>& in) { return nn::conv2d(in[0], in[1], Tensor(), p); }, {xg, wg});
    ++i;
  }
}

TEST(Conv2dCPU, ZeroOutputChannels) {
  Tensor x = random_tensor({2, 3, 6, 6}, 3, DType::Float64);
  Tensor w = Tensor::empty({0, 3, 3, 3}, DType::Float64);
  Conv2dParams p{1, 1, 1, 1, 1, 1, 1};
  Tensor y = kernels::conv2d_forward(x, w, Tensor::empty({0}, DType::Float64), p);
  EXPECT_EQ(y.shape(), (Shape{2, 0, 6, 6}));
  Tensor dx = kernels::conv2d_backward_input(y, w, x.shape(), p);
  EXPECT_EQ(dx.shape(), x.shape());
  for (double v : dx.to_vector()) EXPECT_EQ(v, 0.0);
  EXPECT_EQ(kernels::conv2d_backward_weight(y, x, w.shape(), p).shape(), w.shape());
  EXPECT_EQ(kernels::conv2d_backward_bias(y).shape(), (Shape{0}));
}

TEST(Conv2dCPU, BatchOfOneUsesBlasThreadsAndMatches) {
  // With two OpenMP threads available (whatever OMP_NUM_THREADS says): a batch of one must take
  // the path that leaves OpenBLAS its threads, a batch of two the batch-parallel one (counted by
  // kernels/conv2d/conv2d_path_stats.h), and OpenBLAS's thread count is restored after.
  // The threading choice belongs to the im2col path (oneDNN threads itself): force it.
  auto& algo = kernels::cpu::cpu_conv_algo();
  const auto prev_algo = algo;
  algo = kernels::cpu::CpuConvAlgo::Im2col;
  const int prev_omp = omp_get_max_threads(), prev_blas = openblas_get_num_threads();
  omp_set_num_threads(2);
  openblas_set_num_threads(2);
  auto& counts = kernels::cpu::conv2d_path_counts();
  counts.reset();
  Tensor x = random_tensor({1, 16, 14, 14}, 7);
  Tensor w = random_tensor({32, 16, 3, 3}, 8);
  Conv2dParams p{1, 1, 1, 1, 1, 1, 1};
  Shape os;
  auto ref = naive_conv(x, w, Tensor(), p, os);
  auto got = kernels::conv2d_forward(x, w, Tensor(), p).to_vector();
  EXPECT_EQ(counts.blas_threaded.load(), 1);
  EXPECT_EQ(counts.batch_parallel.load(), 0);
  for (size_t k = 0; k < ref.size(); ++k) ASSERT_NEAR(got[k], ref[k], 1e-4 * (1 + std::fabs(ref[k])));
  counts.reset();
  Tensor x2 = random_tensor({2, 16, 14, 14}, 9);
  auto ref2 = naive_conv(x2, w, Tensor(), p, os);
  auto got2 = kernels::conv2d_forward(x2, w, Tensor(), p).to_vector();
  EXPECT_EQ(counts.batch_parallel.load(), 1);
  EXPECT_EQ(counts.blas_threaded.load(), 0);
  EXPECT_EQ(openblas_get_num_threads(), 2);
  for (size_t k = 0; k < ref2.size(); ++k) ASSERT_NEAR(got2[k], ref2[k], 1e-4 * (1 + std::fabs(ref2[k])));
  algo = prev_algo;
  omp_set_num_threads(prev_omp);
  openblas_set_num_threads(prev_blas);
}

TEST(Conv2dCPU, GradcheckInputWeightBias) {
  const std::vector<ConvCase> gc = {
      {2, 4, 5, 6, 4, 3, 2, {2, 1, 1, 1, 1, 1, 2}, true},
      {1, 3, 6, 5, 2, 3, 3, {1, 2, 2, 1, 2, 1, 1}, true},
      {2, 2, 4, 4, 3, 1, 1, {1, 1, 0, 0, 1, 1, 1}, true},
  };
  int i = 0;
  for (const auto& c : gc) {
    SCOPED_TRACE(testing::Message() << "gradcheck case " << i);
    Tensor x = random_tensor({c.N, c.C, c.H, c.W}, 40 + i, DType::Float64).set_requires_grad();
    Tensor w = random_tensor({c.K, c.C / c.p.groups, c.R, c.S}, 50 + i, DType::Float64).set_requires_grad();
    Tensor b = random_tensor({c.K}, 60 + i, DType::Float64).set_requires_grad();
    auto p = c.p;
    SX_EXPECT_GRADCHECK([p](const std::vector<Tensor>& in) { return nn::conv2d(in[0], in[1], in[2], p); }, {x, w, b});
    ++i;
  }
}

TEST(Conv2dCPU, BackwardMatchesAdjointOfNaive) {
  // <conv(x), g> = <x, conv_backward_input(g)> and = <w, conv_backward_weight(g)>.
  Conv2dParams p{2, 1, 1, 2, 1, 2, 1};
  Tensor x = random_tensor({2, 3, 9, 8}, 70, DType::Float64);
  Tensor w = random_tensor({5, 3, 3, 2}, 71, DType::Float64);
  Tensor y = kernels::conv2d_forward(x, w, Tensor(), p);
  Tensor g = random_tensor(y.shape(), 72, DType::Float64);
  auto dot = [](const Tensor& a, const Tensor& b) {
    auto va = a.to_vector(), vb = b.to_vector();
    double s = 0;
    for (size_t i = 0; i < va.size(); ++i) s += va[i] * vb[i];
    return s;
  };
  const double lhs = dot(y, g);
  EXPECT_NEAR(dot(x, kernels::conv2d_backward_input(g, w, x.shape(), p)), lhs, 1e-9 * (1 + std::fabs(lhs)));
  EXPECT_NEAR(dot(w, kernels::conv2d_backward_weight(g, x, w.shape(), p)), lhs, 1e-9 * (1 + std::fabs(lhs)));
  // bias gradient = sum of g over N, P, Q
  auto db = kernels::conv2d_backward_bias(g).to_vector();
  auto gv = g.to_vector();
  const int64_t K = g.size(1), PQ = g.size(2) * g.size(3);
  for (int64_t k = 0; k < K; ++k) {
    double s = 0;
    for (int64_t n = 0; n < g.size(0); ++n)
      for (int64_t i = 0; i < PQ; ++i) s += gv[(n * K + k) * PQ + i];
    EXPECT_NEAR(db[k], s, 1e-12);
  }
}

TEST(Conv2dCPU, EmptyBatch) {
  Tensor x = Tensor::zeros({0, 3, 8, 8});
  Tensor w = random_tensor({4, 3, 3, 3}, 1);
  Tensor y = kernels::conv2d_forward(x, w, Tensor(), Conv2dParams{1, 1, 1, 1, 1, 1, 1});
  EXPECT_EQ(y.shape(), (Shape{0, 4, 8, 8}));
  Tensor dx = kernels::conv2d_backward_input(y, w, x.shape(), Conv2dParams{1, 1, 1, 1, 1, 1, 1});
  EXPECT_EQ(dx.shape(), x.shape());
  Tensor dw = kernels::conv2d_backward_weight(y, x, w.shape(), Conv2dParams{1, 1, 1, 1, 1, 1, 1});
  EXPECT_EQ(dw.shape(), w.shape());
  for (double v : dw.to_vector()) EXPECT_EQ(v, 0.0);
}

TEST(Conv2dCPU, BadShapesThrowWithValues) {
  Tensor x = Tensor::zeros({1, 3, 8, 8});
  Tensor w = Tensor::zeros({4, 2, 3, 3});
  try {
    kernels::conv2d_forward(x, w, Tensor(), Conv2dParams{});
    FAIL() << "expected ValueError";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("[4, 2, 3, 3]"), std::string::npos) << e.what();
  }
  // kernel larger than the padded input
  EXPECT_THROW(kernels::conv2d_forward(Tensor::zeros({1, 3, 2, 2}), Tensor::zeros({4, 3, 3, 3}), Tensor(),
                                       Conv2dParams{}),
               ValueError);
  // dtype mismatch
  EXPECT_THROW(kernels::conv2d_forward(Tensor::zeros({1, 3, 4, 4}), Tensor::zeros({4, 3, 3, 3}, DType::Float64),
                                       Tensor(), Conv2dParams{}),
               ValueError);
}

TEST(Conv2dLayer, ShapesNamesAndInit) {
  nn::Conv2d conv(6, 12, 3, 2, 1, 1, 3, true);
  auto named = conv.named_parameters();
  ASSERT_EQ(named.size(), 2u);
  EXPECT_EQ(named[0].first, "weight");
  EXPECT_EQ(named[1].first, "bias");
  EXPECT_EQ(conv.weight.shape(), (Shape{12, 2, 3, 3}));
  EXPECT_EQ(conv.num_parameters(), 12 * 2 * 9 + 12);
  // torch's default init bound: 1/sqrt(fan_in) = 1/sqrt(18)
  const double bound = 1.0 / std::sqrt(18.0);
  double mx = 0;
  for (double v : conv.weight.to_vector()) mx = std::max(mx, std::fabs(v));
  EXPECT_LE(mx, bound);
  EXPECT_GT(mx, 0.5 * bound);
  Tensor y = conv.forward(Tensor::zeros({2, 6, 9, 9}));
  EXPECT_EQ(y.shape(), (Shape{2, 12, 5, 5}));
}

class Conv2dParity : public ::testing::TestWithParam<Device> {};

TEST_P(Conv2dParity, MatchesCPU) {
  Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  int i = 0;
  for (const auto& c : cases()) {
    SCOPED_TRACE(testing::Message() << "case " << i);
    Tensor x = random_tensor({c.N, c.C, c.H, c.W}, 80 + i);
    Tensor w = random_tensor({c.K, c.C / c.p.groups, c.R, c.S}, 90 + i);
    Tensor b = c.bias ? random_tensor({c.K}, 100 + i) : Tensor();
    Tensor y = kernels::conv2d_forward(x, w, b, c.p);
    Tensor yd = kernels::conv2d_forward(x.to(dev), w.to(dev), b.defined() ? b.to(dev) : b, c.p);
    EXPECT_TRUE(yd.device() == dev);
    Tensor g = random_tensor(y.shape(), 110 + i);
    Tensor dx = kernels::conv2d_backward_input(g, w, x.shape(), c.p);
    Tensor dw = kernels::conv2d_backward_weight(g, x, w.shape(), c.p);
    Tensor db = kernels::conv2d_backward_bias(g);
    Tensor dxd = kernels::conv2d_backward_input(g.to(dev), w.to(dev), x.shape(), c.p);
    Tensor dwd = kernels::conv2d_backward_weight(g.to(dev), x.to(dev), w.shape(), c.p);
    Tensor dbd = kernels::conv2d_backward_bias(g.to(dev));
    auto cmp = [](const Tensor& a, const Tensor& b) {
      auto va = a.to_vector(), vb = b.cpu().to_vector();
      ASSERT_EQ(va.size(), vb.size());
      for (size_t k = 0; k < va.size(); ++k) ASSERT_NEAR(va[k], vb[k], 1e-4 * (1 + std::fabs(va[k])));
    };
    cmp(y, yd);
    cmp(dx, dxd);
    cmp(dw, dwd);
    cmp(db, dbd);
    ++i;
  }
}

INSTANTIATE_TEST_SUITE_P(Devices, Conv2dParity, SX_PARITY_DEVICES, test::device_name);

// The CUDA conv's default algorithm choice (conv2d_algo.h) over a fake candidate list: the first
// usable candidate whose workspace fits, in cuDNN's ranking order; and the alignment key.
TEST(Conv2dAlgo, FirstUsableCandidateWithinTheWorkspaceCap) {
  struct Perf {
    bool ok;
    size_t memory;
  };
  auto usable = [](const Perf& p) { return p.ok; };
  const Perf c[] = {{false, 0}, {true, size_t(4) << 30}, {true, 1000}, {true, 0}};
  EXPECT_EQ(kernels::conv_algo::first_fitting(c, 4, size_t(1) << 30, usable), 2);
  EXPECT_EQ(kernels::conv_algo::first_fitting(c, 4, size_t(8) << 30, usable), 1);
  EXPECT_EQ(kernels::conv_algo::first_fitting(c, 4, 10, usable), 3);
  EXPECT_EQ(kernels::conv_algo::first_fitting(c, 1, 10, usable), -1);
  alignas(256) static char buf[1024];
  EXPECT_EQ(kernels::conv_algo::common_alignment({buf, buf + 512}), 256);
  EXPECT_EQ(kernels::conv_algo::common_alignment({buf, buf + 16}), 16);
  EXPECT_EQ(kernels::conv_algo::common_alignment({buf + 4, buf + 256}), 4);
}

// A ResNet-50 stage at a realistic size (batch 8, 64 channels, 56 x 56; 3x3 and a strided 1x1),
// full float32 on both sides (TF32 is off in tests).
TEST(Conv2dCudaParity, ResNet50StageShapes) {
  SX_REQUIRE_CUDA();
  const Device dev = Device::cuda(0);
  struct Case { int64_t C, K, R, stride, pad; };
  int i = 0;
  for (Case c : {Case{64, 64, 3, 1, 1}, Case{64, 256, 1, 1, 0}, Case{256, 128, 1, 2, 0}}) {
    SCOPED_TRACE(testing::Message() << "case " << i);
    kernels::Conv2dParams p{c.stride, c.stride, c.pad, c.pad, 1, 1, 1};
    Tensor x = random_tensor({8, c.C, 56, 56}, 300 + i);
    Tensor w = random_tensor({c.K, c.C, c.R, c.R}, 310 + i);
    Tensor y = kernels::conv2d_forward(x, w, Tensor(), p);
    Tensor g = random_tensor(y.shape(), 320 + i);
    EXPECT_LT(test::rel_err(kernels::conv2d_forward(x.to(dev), w.to(dev), Tensor(), p), y), 1e-5);
    EXPECT_LT(test::rel_err(kernels::conv2d_backward_input(g.to(dev), w.to(dev), x.shape(), p),
                      kernels::conv2d_backward_input(g, w, x.shape(), p)), 1e-5);
    EXPECT_LT(test::rel_err(kernels::conv2d_backward_weight(g.to(dev), x.to(dev), w.shape(), p),
                      kernels::conv2d_backward_weight(g, x, w.shape(), p)), 1e-5);
    ++i;
  }
}

}  // namespace
}  // namespace sx
