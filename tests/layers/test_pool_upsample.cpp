// MaxPool2d, AdaptiveAvgPool2d and nearest Upsample: values against naive references written
// here, torch's output-size rules, gradients, empty inputs, parity.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "common/devices.h"
#include "common/gradcheck.h"
#include "kernels/pooling/pooling_math.h"
#include "layers/pooling.h"
#include "layers/upsample.h"
#include "tensor/random.h"

namespace sx {
namespace {

using kernels::MaxPool2dParams;

Tensor random_tensor(const Shape& s, uint64_t seed, DType dt = DType::Float32) {
  Generator g(seed);
  Tensor t = Tensor::empty(s, DType::Float64);
  double* p = t.data<double>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = g.uniform() * 2 - 1;  // ties have probability ~0
  return dt == DType::Float64 ? t : t.to(dt);
}

std::vector<double> naive_max_pool(const Tensor& x, const MaxPool2dParams& p, int64_t P, int64_t Q) {
  auto v = x.to_vector();
  const int64_t NC = x.size(0) * x.size(1), H = x.size(2), W = x.size(3);
  std::vector<double> y(NC * P * Q);
  for (int64_t pl = 0; pl < NC; ++pl)
    for (int64_t i = 0; i < P; ++i)
      for (int64_t j = 0; j < Q; ++j) {
        double m = -std::numeric_limits<double>::infinity();
        for (int64_t a = 0; a < p.kernel_h; ++a)
          for (int64_t b = 0; b < p.kernel_w; ++b) {
            int64_t h = i * p.stride_h - p.pad_h + a * p.dil_h, w = j * p.stride_w - p.pad_w + b * p.dil_w;
            if (h >= 0 && h < H && w >= 0 && w < W) m = std::max(m, v[pl * H * W + h * W + w]);
          }
        y[(pl * P + i) * Q + j] = m;
      }
  return y;
}

TEST(MaxPool2d, OutputSizeRulesLikeTorch) {
  // floor vs ceil mode; torch: 6 -> k3 s2: floor 2, ceil 3; 5 -> k2 s2 p1 ceil: 3 (last window starts in padding? no)
  EXPECT_EQ(kernels::max_pool2d_output_shape({1, 1, 6, 6}, {3, 3, 2, 2, 0, 0, 1, 1, false})[2], 2);
  EXPECT_EQ(kernels::max_pool2d_output_shape({1, 1, 6, 6}, {3, 3, 2, 2, 0, 0, 1, 1, true})[2], 3);
  EXPECT_EQ(kernels::max_pool2d_output_shape({1, 1, 5, 5}, {2, 2, 2, 2, 1, 1, 1, 1, true})[2], 3);
  // torch.nn.MaxPool2d(2, 2, padding=1, ceil_mode=True) on 4: floor((4+2-2+1)/2)+1 = 3, and (3-1)*2=4 >= 4+1? no -> 3
  EXPECT_EQ(kernels::max_pool2d_output_shape({1, 1, 4, 4}, {2, 2, 2, 2, 1, 1, 1, 1, true})[2], 3);
  // ResNet stem: 112 -> 56
  EXPECT_EQ(kernels::max_pool2d_output_shape({1, 1, 112, 112}, {3, 3, 2, 2, 1, 1, 1, 1, false})[2], 56);
  EXPECT_THROW(kernels::max_pool2d_output_shape({1, 1, 8, 8}, {2, 2, 2, 2, 2, 2, 1, 1, false}), ValueError);
}

TEST(MaxPool2d, MatchesNaive) {
  const std::vector<MaxPool2dParams> ps = {
      {3, 3, 2, 2, 1, 1, 1, 1, false}, {2, 2, 2, 2, 0, 0, 1, 1, false}, {3, 2, 1, 2, 1, 1, 2, 1, false},
      {3, 3, 2, 2, 0, 0, 1, 1, true},  {2, 3, 3, 1, 1, 0, 1, 2, true},
  };
  int i = 0;
  for (const auto& p : ps) {
    SCOPED_TRACE(testing::Message() << "case " << i);
    Tensor x = random_tensor({2, 3, 9, 8}, 1 + i);
    Shape os = kernels::max_pool2d_output_shape(x.shape(), p);
    auto ref = naive_max_pool(x, p, os[2], os[3]);
    auto [y, idx] = kernels::max_pool2d_forward(x, p);
    ASSERT_EQ(y.shape(), os);
    auto yv = y.to_vector();
    auto iv = idx.to_vector();
    auto xv = x.to_vector();
    for (size_t k = 0; k < ref.size(); ++k) {
      ASSERT_EQ(yv[k], static_cast<float>(ref[k]));
      // the index points at the maximum within its plane
      const int64_t plane = static_cast<int64_t>(k) / (os[2] * os[3]);
      ASSERT_EQ(static_cast<float>(xv[plane * 72 + static_cast<int64_t>(iv[k])]), yv[k]);
    }
    ++i;
  }
}

TEST(MaxPool2d, InsideWindowsMatchTheBorderCheckedScan) {
  // The CPU forward scans windows inside the plane without border checks; with ties (values on a
  // coarse grid) and NaNs, values and indices must be those of the border-checked scan.
  const std::vector<MaxPool2dParams> ps = {
      {3, 3, 2, 2, 1, 1, 1, 1, false}, {3, 3, 1, 1, 0, 0, 1, 1, false}, {2, 3, 2, 1, 1, 1, 2, 1, true}};
  int i = 0;
  for (const auto& p : ps) {
    SCOPED_TRACE(testing::Message() << "case " << i);
    Generator g(50 + i);
    Tensor x = Tensor::empty({2, 3, 11, 10});
    float* xv = x.data<float>();
    for (int64_t k = 0; k < x.numel(); ++k) {
      const double u = g.uniform();
      xv[k] = u < 0.05 ? NAN : static_cast<float>(std::floor(u * 4));  // many ties, a few NaNs
    }
    auto [y, idx] = kernels::max_pool2d_forward(x, p);
    const int64_t P = y.size(2), Q = y.size(3), H = 11, W = 10;
    const float* yv = y.data<float>();
    const int64_t* iv = idx.data<int64_t>();
    for (int64_t pl = 0; pl < 6; ++pl)
      for (int64_t op = 0; op < P; ++op)
        for (int64_t oq = 0; oq < Q; ++oq) {
          float best;
          int64_t bi;
          kernels::pool_math::max_pool_window(xv + pl * H * W, H, W, op * p.stride_h - p.pad_h,
                                              oq * p.stride_w - p.pad_w, p.kernel_h, p.kernel_w, p.dil_h, p.dil_w,
                                              &best, &bi);
          const int64_t o = (pl * P + op) * Q + oq;
          ASSERT_EQ(iv[o], bi) << "at " << o;
          if (std::isnan(best)) ASSERT_TRUE(std::isnan(yv[o])) << "at " << o;
          else ASSERT_EQ(yv[o], best) << "at " << o;
        }
    ++i;
  }
}

TEST(MaxPool2d, NaNPropagates) {
  Tensor x = Tensor::from_vector({1, 2, NAN, 4}, {1, 1, 2, 2});
  auto [y, idx] = kernels::max_pool2d_forward(x, {2, 2, 2, 2, 0, 0, 1, 1, false});
  EXPECT_TRUE(std::isnan(y.item()));
  EXPECT_EQ(idx.item<int64_t>(), 2);
}

TEST(MaxPool2d, Gradcheck) {
  Tensor x = random_tensor({2, 2, 7, 6}, 9, DType::Float64).set_requires_grad();
  MaxPool2dParams p{3, 3, 2, 2, 1, 1, 1, 1, false};
  SX_EXPECT_GRADCHECK([p](const std::vector<Tensor>& in) { return nn::max_pool2d(in[0], p); }, {x});
  MaxPool2dParams q{2, 3, 1, 2, 0, 1, 2, 1, true};
  SX_EXPECT_GRADCHECK([q](const std::vector<Tensor>& in) { return nn::max_pool2d(in[0], q); }, {x});
}

TEST(AdaptiveAvgPool2d, CellsLikeTorch) {
  // 5 -> 3: cells [0,2), [1,4), [3,5)
  Tensor x = Tensor::from_vector({0, 1, 2, 3, 4}, {1, 1, 1, 5});
  auto y = kernels::adaptive_avg_pool2d_forward(x, 1, 3).to_vector();
  EXPECT_NEAR(y[0], 0.5, 1e-6);
  EXPECT_NEAR(y[1], 2.0, 1e-6);
  EXPECT_NEAR(y[2], 3.5, 1e-6);
  // global pooling = mean
  Tensor z = random_tensor({2, 3, 4, 5}, 3);
  auto g = kernels::adaptive_avg_pool2d_forward(z, 1, 1).to_vector();
  auto zv = z.to_vector();
  for (int pl = 0; pl < 6; ++pl) {
    double s = 0;
    for (int i = 0; i < 20; ++i) s += zv[pl * 20 + i];
    EXPECT_NEAR(g[pl], s / 20, 1e-6);
  }
}

TEST(AdaptiveAvgPool2d, Gradcheck) {
  Tensor x = random_tensor({2, 2, 7, 5}, 4, DType::Float64).set_requires_grad();
  SX_EXPECT_GRADCHECK([](const std::vector<Tensor>& in) { return nn::adaptive_avg_pool2d(in[0], 3, 2); }, {x});
  SX_EXPECT_GRADCHECK([](const std::vector<Tensor>& in) { return nn::adaptive_avg_pool2d(in[0], 1, 1); }, {x});
}

TEST(Upsample, NearestIndicesLikeTorch) {
  // 2x3 -> 5x7: rows floor(i * 2/5) = 0,0,0,1,1; cols floor(j * 3/7) = 0,0,0,1,1,2,2
  Tensor x = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {1, 1, 2, 3});
  auto y = nn::upsample_nearest(x, 5, 7).to_vector();
  const int rows[5] = {0, 0, 0, 1, 1}, cols[7] = {0, 0, 0, 1, 1, 2, 2};
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 7; ++j) EXPECT_EQ(y[i * 7 + j], 1 + rows[i] * 3 + cols[j]);
  // scale 2: each pixel becomes a 2x2 block
  auto z = nn::upsample_nearest_scale(x, 2.0);
  EXPECT_EQ(z.shape(), (Shape{1, 1, 4, 6}));
  auto zv = z.to_vector();
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 6; ++j) EXPECT_EQ(zv[i * 6 + j], 1 + (i / 2) * 3 + j / 2);
  // downsampling by size: 4 -> 3 picks floor(i * 4/3) = 0, 1, 2
  Tensor w = Tensor::from_vector({1, 2, 3, 4}, {1, 1, 1, 4});
  auto d = nn::upsample_nearest(w, 1, 3).to_vector();
  EXPECT_EQ(d, (std::vector<double>{1, 2, 3}));
}

TEST(Upsample, Gradcheck) {
  Tensor x = random_tensor({2, 2, 3, 4}, 5, DType::Float64).set_requires_grad();
  SX_EXPECT_GRADCHECK([](const std::vector<Tensor>& in) { return nn::upsample_nearest(in[0], 7, 9); }, {x});
  SX_EXPECT_GRADCHECK([](const std::vector<Tensor>& in) { return nn::upsample_nearest_scale(in[0], 2.0); }, {x});
}

TEST(PoolUpsample, EmptyBatch) {
  Tensor x = Tensor::zeros({0, 3, 8, 8});
  EXPECT_EQ(nn::max_pool2d(x, {3, 3, 2, 2, 1, 1, 1, 1, false}).shape(), (Shape{0, 3, 4, 4}));
  EXPECT_EQ(nn::adaptive_avg_pool2d(x, 1, 1).shape(), (Shape{0, 3, 1, 1}));
  EXPECT_EQ(nn::upsample_nearest(x, 16, 16).shape(), (Shape{0, 3, 16, 16}));
}

TEST(PoolLayers, Modules) {
  nn::MaxPool2d mp(3, 2, 1);
  EXPECT_EQ(mp.params().stride_h, 2);
  nn::MaxPool2d mp2(2);
  EXPECT_EQ(mp2.params().stride_h, 2);
  nn::AdaptiveAvgPool2d ap(1);
  Tensor x = random_tensor({1, 4, 10, 10}, 6);
  EXPECT_EQ(ap.forward(mp.forward(x)).shape(), (Shape{1, 4, 1, 1}));
  auto up = nn::Upsample::with_size(20, 20);
  EXPECT_EQ(up->forward(x).shape(), (Shape{1, 4, 20, 20}));
  EXPECT_EQ(mp.num_parameters(), 0);
}

class PoolParity : public ::testing::TestWithParam<Device> {};

TEST_P(PoolParity, MatchesCPU) {
  Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  Tensor x = random_tensor({2, 3, 11, 9}, 7);
  MaxPool2dParams p{3, 3, 2, 2, 1, 1, 1, 1, true};
  auto [y, idx] = kernels::max_pool2d_forward(x, p);
  auto [yd, idxd] = kernels::max_pool2d_forward(x.to(dev), p);
  Tensor g = random_tensor(y.shape(), 8);
  auto cmp = [](const Tensor& a, const Tensor& b) {
    auto va = a.to_vector(), vb = b.cpu().to_vector();
    ASSERT_EQ(va.size(), vb.size());
    for (size_t k = 0; k < va.size(); ++k) ASSERT_NEAR(va[k], vb[k], 1e-5 * (1 + std::fabs(va[k])));
  };
  cmp(y, yd);
  cmp(idx, idxd);
  cmp(kernels::max_pool2d_backward(g, idx, x.shape()), kernels::max_pool2d_backward(g.to(dev), idxd, x.shape()));
  Tensor a = kernels::adaptive_avg_pool2d_forward(x, 4, 3);
  cmp(a, kernels::adaptive_avg_pool2d_forward(x.to(dev), 4, 3));
  Tensor ga = random_tensor(a.shape(), 9);
  cmp(kernels::adaptive_avg_pool2d_backward(ga, x.shape()), kernels::adaptive_avg_pool2d_backward(ga.to(dev), x.shape()));
  Tensor u = kernels::upsample_nearest2d_forward(x, 17, 20);
  cmp(u, kernels::upsample_nearest2d_forward(x.to(dev), 17, 20));
  Tensor gu = random_tensor(u.shape(), 10);
  cmp(kernels::upsample_nearest2d_backward(gu, x.shape()), kernels::upsample_nearest2d_backward(gu.to(dev), x.shape()));
}

INSTANTIATE_TEST_SUITE_P(Devices, PoolParity, SX_PARITY_DEVICES, test::device_name);

}  // namespace
}  // namespace sx
