// Random numbers: reproducibility for a seed, counter bookkeeping, distribution sanity on 1e5
// samples (tolerances of about 5 standard errors, stated per check), and CPU-vs-CUDA parity for the
// same generator state.
// random_ops_math.h first: random_math.h calls log/cos unqualified (see random_ops.cpp).
#include "tensor/random_ops_math.h"
// (keep the line above first)
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <vector>

#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/common/devices.h"

namespace sx {
namespace {

struct Moments {
  double mean = 0, var = 0, min = 1e300, max = -1e300;
};
Moments moments(const std::vector<double>& v) {
  Moments m;
  for (double x : v) {
    m.mean += x;
    m.min = std::min(m.min, x);
    m.max = std::max(m.max, x);
  }
  m.mean /= static_cast<double>(v.size());
  for (double x : v) m.var += (x - m.mean) * (x - m.mean);
  m.var /= static_cast<double>(v.size() - 1);
  return m;
}

class RandomTest : public ::testing::TestWithParam<Device> {};

TEST_P(RandomTest, SameSeedSameValues) {
  const Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  for (DType dt : {DType::Float32, DType::Float64}) {
    Generator g1(42), g2(42), g3(43);
    std::vector<double> a = rand({1000}, g1, dt, dev).to_vector();
    std::vector<double> b = rand({1000}, g2, dt, dev).to_vector();
    std::vector<double> c = rand({1000}, g3, dt, dev).to_vector();
    EXPECT_EQ(a, b);
    EXPECT_NE(a, c);
    // the next draw continues the stream: different values, and replayable with set_state
    const uint64_t off = g1.offset();
    EXPECT_EQ(off, 1000u);
    std::vector<double> n1 = randn({257}, g1, dt, dev).to_vector();
    Generator g4(0);
    g4.set_state(42, off);
    EXPECT_EQ(randn({257}, g4, dt, dev).to_vector(), n1);
    EXPECT_EQ(g4.offset(), g1.offset());
    EXPECT_EQ(g1.offset(), off + 2 * 257);  // two counters per normal, from an even start
    Generator g5(42), g6(42);
    EXPECT_EQ(randint(-3, 9, {100}, g5, DType::Int64, dev).to_vector(),
              randint(-3, 9, {100}, g6, DType::Int64, dev).to_vector());
  }
}

TEST_P(RandomTest, ValuesAreTheSharedMathAtTheReservedCounters) {
  const Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  Generator g(9);
  g.advance(3);  // odd offset: randn must start its pairs at an even counter
  std::vector<double> u = rand({5}, g, DType::Float64, dev).to_vector();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(u[i], rng::uniform(9, 3 + i));
  std::vector<double> n = randn({4}, g, DType::Float64, dev).to_vector();  // offset 8 -> pairs from c=4
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(n[i], rng::normal(9, 4 + i), 1e-13 * (1 + std::fabs(n[i])));
  EXPECT_EQ(g.offset(), 16u);
  Generator g2(9);
  g2.advance(1);
  randn({3}, g2, DType::Float64, dev);  // reserves 2*3 + 1 counters: [1, 8)
  EXPECT_EQ(g2.offset(), 8u);
  std::vector<double> f = rand({5}, g, DType::Float32, dev).to_vector();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(f[i], static_cast<double>(rng::uniform_value<float>(9, 16 + i)));
}

TEST_P(RandomTest, UniformDistribution) {
  const Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  Generator g(1);
  for (DType dt : {DType::Float32, DType::Float64}) {
    Moments m = moments(rand({100000}, g, dt, dev).to_vector());
    // U(0,1): mean 1/2 (standard error 0.00091), variance 1/12 (s.e. 0.00027)
    EXPECT_NEAR(m.mean, 0.5, 0.005);
    EXPECT_NEAR(m.var, 1.0 / 12.0, 0.0015);
    EXPECT_GE(m.min, 0.0);
    EXPECT_LT(m.max, 1.0);
  }
}

TEST_P(RandomTest, NormalDistribution) {
  const Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  Generator g(2);
  for (DType dt : {DType::Float32, DType::Float64}) {
    std::vector<double> v = randn({100000}, g, dt, dev).to_vector();
    Moments m = moments(v);
    // N(0,1): mean 0 (s.e. 0.0032), variance 1 (s.e. 0.0045)
    EXPECT_NEAR(m.mean, 0.0, 0.016);
    EXPECT_NEAR(m.var, 1.0, 0.025);
    // tails: P(|x| > 2) = 0.0455 (s.e. 0.00066); P(|x| > 3) = 0.0027
    int64_t over2 = 0, over3 = 0;
    for (double x : v) {
      over2 += std::fabs(x) > 2;
      over3 += std::fabs(x) > 3;
    }
    EXPECT_NEAR(over2 / 1e5, 0.0455, 0.0035);
    EXPECT_NEAR(over3 / 1e5, 0.0027, 0.0009);
  }
}

TEST_P(RandomTest, RandintAndBernoulli) {
  const Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  Generator g(3);
  std::vector<double> v = randint(-2, 5, {100000}, g, DType::Int64, dev).to_vector();
  std::vector<int64_t> counts(7, 0);
  for (double x : v) {
    ASSERT_GE(x, -2);
    ASSERT_LT(x, 5);
    ASSERT_EQ(x, std::floor(x));
    counts[static_cast<int>(x) + 2]++;
  }
  // each value 1/7 of the time (s.e. of a frequency 0.0011)
  for (int64_t c : counts) EXPECT_NEAR(c / 1e5, 1.0 / 7.0, 0.006);
  Tensor ri = randint(0, 3, {10}, g, DType::Int32, dev);
  EXPECT_EQ(ri.dtype(), DType::Int32);
  EXPECT_THROW(randint(3, 3, {2}, g, DType::Int64, dev), ValueError);
  EXPECT_THROW(rand({2}, g, DType::Int64, dev), ValueError);

  // Bernoulli with per-element probabilities: half the elements p = 0.2, half p = 0.9
  std::vector<double> pv(100000);
  for (size_t i = 0; i < pv.size(); ++i) pv[i] = i % 2 ? 0.9 : 0.2;
  Tensor p = Tensor::from_vector(pv, {100000}, DType::Float32).to(dev);
  Tensor b = bernoulli(p, g);
  EXPECT_EQ(b.dtype(), DType::Float32);
  EXPECT_EQ(b.shape(), p.shape());
  std::vector<double> bv = b.to_vector();
  double s_lo = 0, s_hi = 0;
  for (size_t i = 0; i < bv.size(); ++i) {
    ASSERT_TRUE(bv[i] == 0.0 || bv[i] == 1.0);
    (i % 2 ? s_hi : s_lo) += bv[i];
  }
  EXPECT_NEAR(s_lo / 5e4, 0.2, 0.01);  // s.e. 0.0018
  EXPECT_NEAR(s_hi / 5e4, 0.9, 0.007);  // s.e. 0.0013
  // p = 0 and p = 1 are exact; non-contiguous p
  Tensor p01 = Tensor::from_vector({0, 1, 0, 1, 0, 1}, {3, 2}, DType::Float64).to(dev).t();
  EXPECT_EQ(bernoulli(p01, g).to_vector(), (std::vector<double>{0, 0, 0, 1, 1, 1}));
  EXPECT_EQ(rand({0, 3}, g, DType::Float32, dev).shape(), (Shape{0, 3}));
}

INSTANTIATE_TEST_SUITE_P(Devices, RandomTest, SX_DEVICES, test::device_name);

TEST(GeneratorScalar, MatchesTensorDraws) {
  Generator a(77), b(77);
  EXPECT_EQ(a.uniform(), rand({1}, b, DType::Float64).item());
  EXPECT_EQ(a.offset(), b.offset());
  EXPECT_EQ(a.normal(), randn({1}, b, DType::Float64).item());
  EXPECT_EQ(a.offset(), b.offset());
  EXPECT_EQ(a.randint(10, 20), randint(10, 20, {1}, b).item());
  EXPECT_THROW(a.randint(5, 5), ValueError);
  // scalar normals are N(0,1) too
  Generator g(5);
  std::vector<double> v(20000);
  for (double& x : v) x = g.normal();
  Moments m = moments(v);
  EXPECT_NEAR(m.mean, 0.0, 0.036);  // s.e. 0.0071
  EXPECT_NEAR(m.var, 1.0, 0.05);    // s.e. 0.01
}

TEST(RandomParity, CudaDrawEqualsCpuDraw) {
  SX_REQUIRE_CUDA();
  for (DType dt : {DType::Float32, DType::Float64}) {
    Generator gc(123), gg(123);
    gc.advance(5);
    gg.advance(5);
    EXPECT_EQ(rand({3, 1001}, gc, dt).to_vector(), rand({3, 1001}, gg, dt, Device::cuda()).to_vector());
    // normals: log/cos/sqrt of the CUDA libm may differ from the host's in the last ulp
    std::vector<double> nc = randn({5000}, gc, dt).to_vector();
    std::vector<double> ng = randn({5000}, gg, dt, Device::cuda()).to_vector();
    const double tol = dt == DType::Float32 ? 1e-6 : 1e-13;
    for (size_t i = 0; i < nc.size(); ++i) ASSERT_NEAR(nc[i], ng[i], tol * (1 + std::fabs(nc[i]))) << i;
    EXPECT_EQ(randint(-100, 100, {4000}, gc).to_vector(),
              randint(-100, 100, {4000}, gg, DType::Int64, Device::cuda()).to_vector());
    Tensor p = rand({4000}, gc, dt);
    Tensor pg = rand({4000}, gg, dt, Device::cuda());
    EXPECT_EQ(bernoulli(p, gc).to_vector(), bernoulli(pg, gg).to_vector());
    EXPECT_EQ(gc.offset(), gg.offset());
  }
}

}  // namespace
}  // namespace sx
