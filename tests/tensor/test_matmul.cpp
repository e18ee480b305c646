// matmul: values against a plain-loop float64 reference (all torch.matmul forms, broadcast batches,
// transposed / non-contiguous / empty operands), errors, gradients (gradcheck, float64) and
// CPU-vs-CUDA parity.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "tensor/ops.h"
#include "tensor/random.h"
#include "tests/common/devices.h"
#include "tests/common/gradcheck.h"

#ifdef SX_WITH_CUDA
#include "tensor/cuda_context.h"
#endif

namespace sx {
namespace {

// Reference torch.matmul on row-major double values (1-D operands promoted and squeezed back).
std::vector<double> ref_matmul(const Tensor& a, const Tensor& b, Shape& out_shape) {
  std::vector<double> av = a.to_vector(), bv = b.to_vector();
  Shape sa = a.shape(), sb = b.shape();
  const bool a1 = sa.size() == 1, b1 = sb.size() == 1;
  if (a1) sa.insert(sa.begin(), 1);
  if (b1) sb.push_back(1);
  const int64_t n = sa[sa.size() - 2], k = sa.back(), m = sb.back();
  Shape ba(sa.begin(), sa.end() - 2), bb(sb.begin(), sb.end() - 2);
  const size_t nb = std::max(ba.size(), bb.size());
  while (ba.size() < nb) ba.insert(ba.begin(), 1);
  while (bb.size() < nb) bb.insert(bb.begin(), 1);
  Shape batch(nb);
  for (size_t i = 0; i < nb; ++i) batch[i] = std::max(ba[i], bb[i]);
  const int64_t nbatch = shape_numel(batch);
  std::vector<double> out(nbatch * n * m, 0.0);
  for (int64_t t = 0; t < nbatch; ++t) {
    // batch coordinates -> offsets in a and b (size-1 dims broadcast)
    int64_t rem = t, oa = 0, ob = 0, stride_a = 1, stride_b = 1;
    for (int64_t d = static_cast<int64_t>(nb) - 1; d >= 0; --d) {
      const int64_t c = rem % batch[d];
      rem /= batch[d];
      oa += (ba[d] == 1 ? 0 : c) * stride_a;
      ob += (bb[d] == 1 ? 0 : c) * stride_b;
      stride_a *= ba[d];
      stride_b *= bb[d];
    }
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < m; ++j) {
        double s = 0;
        for (int64_t p = 0; p < k; ++p) s += av[(oa * n + i) * k + p] * bv[(ob * k + p) * m + j];
        out[(t * n + i) * m + j] = s;
      }
  }
  out_shape = batch;
  if (!a1) out_shape.push_back(n);
  if (!b1) out_shape.push_back(m);
  return out;
}

class MatmulTest : public ::testing::TestWithParam<Device> {};

void expect_matches_ref(const Tensor& a, const Tensor& b, double tol) {
  Tensor c = matmul(a, b);
  Shape ref_shape;
  std::vector<double> ref = ref_matmul(a, b, ref_shape);
  ASSERT_EQ(c.shape(), ref_shape) << shape_str(a.shape()) << " x " << shape_str(b.shape());
  EXPECT_EQ(c.device(), a.device());
  EXPECT_EQ(c.dtype(), a.dtype());
  std::vector<double> got = c.to_vector();
  ASSERT_EQ(got.size(), ref.size());
  for (size_t i = 0; i < ref.size(); ++i)
    ASSERT_NEAR(got[i], ref[i], tol * (1.0 + std::fabs(ref[i])))
        << "element " << i << " of " << shape_str(a.shape()) << " x " << shape_str(b.shape());
}

TEST_P(MatmulTest, AllFormsMatchReference) {
  const Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  Generator g(7);
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{5, 7}, {7, 3}},           {{7}, {7}},           {{5, 7}, {7}},        {{7}, {7, 3}},
      {{2, 5, 7}, {7}},           {{7}, {2, 7, 3}},     {{4, 5, 7}, {4, 7, 3}}, {{4, 5, 7}, {7, 3}},
      {{5, 7}, {4, 7, 3}},        {{2, 1, 5, 7}, {3, 7, 4}}, {{1, 1}, {1, 1}},  {{1, 6}, {6, 1}},
      {{6, 1}, {1, 6}},           {{3, 1, 2, 4}, {1, 5, 4, 2}}};
  for (DType dt : {DType::Float32, DType::Float64}) {
    const double tol = dt == DType::Float32 ? 1e-5 : 1e-12;
    for (const auto& [sa, sb] : cases) {
      Tensor a = randn(sa, g, dt, dev), b = randn(sb, g, dt, dev);
      expect_matches_ref(a, b, tol);
    }
  }
}

TEST_P(MatmulTest, TransposedAndNonContiguousOperands) {
  const Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  Generator g(11);
  for (DType dt : {DType::Float32, DType::Float64}) {
    const double tol = dt == DType::Float32 ? 1e-5 : 1e-12;
    // plain transposes (passed to BLAS as transposes)
    Tensor at = randn({7, 5}, g, dt, dev).t(), bt = randn({3, 7}, g, dt, dev).t();
    expect_matches_ref(at, bt, tol);
    expect_matches_ref(at, randn({7, 3}, g, dt, dev), tol);
    expect_matches_ref(randn({5, 7}, g, dt, dev), bt, tol);
    // batched transposes
    Tensor abt = randn({2, 7, 5}, g, dt, dev).transpose(1, 2), bbt = randn({2, 3, 7}, g, dt, dev).transpose(1, 2);
    expect_matches_ref(abt, bbt, tol);
    // last-dim stride 2: copied to contiguous first
    Tensor as = randn({5, 14}, g, dt, dev).slice(1, 0, 14, 2);
    ASSERT_EQ(as.stride(1), 2);
    expect_matches_ref(as, randn({7, 3}, g, dt, dev), tol);
    // batch dims that do not collapse into one stride
    Tensor ap = randn({4, 3, 5, 7}, g, dt, dev).transpose(0, 1);
    expect_matches_ref(ap, randn({3, 4, 7, 2}, g, dt, dev), tol);
    // row slice of a wider matrix (ld > cols)
    Tensor aw = randn({5, 10}, g, dt, dev).narrow(1, 2, 7);
    expect_matches_ref(aw, randn({7, 3}, g, dt, dev).t().contiguous().t(), tol);
    // broadcast (expanded, stride 0) operand
    Tensor be = randn({7, 3}, g, dt, dev).unsqueeze(0).expand({4, 7, 3});
    expect_matches_ref(randn({4, 5, 7}, g, dt, dev), be, tol);
  }
}

TEST_P(MatmulTest, EmptyOperands) {
  const Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  Generator g(3);
  Tensor c = matmul(randn({0, 7}, g, DType::Float32, dev), randn({7, 3}, g, DType::Float32, dev));
  EXPECT_EQ(c.shape(), (Shape{0, 3}));
  EXPECT_EQ(c.device(), dev);
  c = matmul(randn({0, 5, 7}, g, DType::Float32, dev), randn({7, 3}, g, DType::Float32, dev));
  EXPECT_EQ(c.shape(), (Shape{0, 5, 3}));
  // k = 0: a zero matrix of the right shape
  c = matmul(randn({5, 0}, g, DType::Float64, dev), randn({0, 3}, g, DType::Float64, dev));
  ASSERT_EQ(c.shape(), (Shape{5, 3}));
  for (double v : c.to_vector()) EXPECT_EQ(v, 0.0);
  c = matmul(randn({0}, g, DType::Float64, dev), randn({0}, g, DType::Float64, dev));
  EXPECT_EQ(c.shape(), Shape{});
  EXPECT_EQ(c.item(), 0.0);
}

TEST_P(MatmulTest, Errors) {
  const Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  Generator g(5);
  Tensor a = randn({5, 7}, g, DType::Float32, dev);
  try {
    matmul(a, randn({6, 3}, g, DType::Float32, dev));
    FAIL() << "expected ValueError";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("[5, 7]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[6, 3]"), std::string::npos) << e.what();
  }
  EXPECT_THROW(matmul(a, randn({7, 3}, g, DType::Float64, dev)), ValueError);
  EXPECT_THROW(matmul(randn({2, 5, 7}, g, DType::Float32, dev), randn({3, 7, 2}, g, DType::Float32, dev)),
               ValueError);
  EXPECT_THROW(matmul(Tensor::scalar(2.0, DType::Float32, dev), a), ValueError);
  EXPECT_THROW(matmul(Tensor::ones({2, 2}, DType::Int64, dev), Tensor::ones({2, 2}, DType::Int64, dev)),
               ValueError);
}

TEST_P(MatmulTest, GradientsAgreeWithCpu) {
  // The backward on this device gives the float64 CPU gradients (same formula, other backend).
  const Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  Generator g(21);
  Tensor a0 = randn({3, 4, 5}, g, DType::Float64), b0 = randn({5, 2}, g, DType::Float64);
  Tensor a = a0.to(dev).detach().set_requires_grad(), b = b0.to(dev).detach().set_requires_grad();
  Tensor w = randn({3, 4, 2}, g, DType::Float64);
  matmul(a, b).backward(w.to(dev));
  Shape s;
  // dA = W @ B^T ; dB = sum_batch A^T @ W
  std::vector<double> ga = ref_matmul(w, b0.t().contiguous(), s);
  std::vector<double> gb_all = ref_matmul(a0.transpose(1, 2).contiguous(), w, s);  // [3,5,2]
  std::vector<double> gav = a.grad().to_vector(), gbv = b.grad().to_vector();
  ASSERT_EQ(gav.size(), ga.size());
  for (size_t i = 0; i < ga.size(); ++i) EXPECT_NEAR(gav[i], ga[i], 1e-12);
  ASSERT_EQ(gbv.size(), 10u);
  for (size_t i = 0; i < 10; ++i) EXPECT_NEAR(gbv[i], gb_all[i] + gb_all[10 + i] + gb_all[20 + i], 1e-12);
}

INSTANTIATE_TEST_SUITE_P(Devices, MatmulTest, SX_DEVICES, test::device_name);

// ---- gradient checks (float64, CPU) ----------------------------------------------------------

Tensor leaf(const Shape& s, Generator& g) { return randn(s, g, DType::Float64).set_requires_grad(); }

TEST(MatmulGrad, AllForms) {
  Generator g(99);
  auto mm = [](const std::vector<Tensor>& x) { return matmul(x[0], x[1]); };
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{3, 4}, {4, 2}}, {{4}, {4}},        {{3, 4}, {4}},          {{4}, {4, 2}},
      {{2, 3, 4}, {4}}, {{4}, {2, 4, 3}},  {{2, 3, 4}, {2, 4, 2}}, {{2, 3, 4}, {4, 2}},
      {{3, 4}, {2, 4, 2}}, {{2, 1, 3, 4}, {3, 4, 2}}};
  for (const auto& [sa, sb] : cases) {
    SCOPED_TRACE(shape_str(sa) + " x " + shape_str(sb));
    SX_EXPECT_GRADCHECK(mm, {leaf(sa, g), leaf(sb, g)});
  }
}

TEST(MatmulGrad, TransposedAndNonContiguousInputs) {
  Generator g(100);
  auto mm = [](const std::vector<Tensor>& x) { return matmul(x[0].t(), x[1].slice(1, 0, 6, 2)); };
  SX_EXPECT_GRADCHECK(mm, {leaf({4, 3}, g), leaf({4, 6}, g)});
  auto bt = [](const std::vector<Tensor>& x) { return matmul(x[0], x[1].transpose(-1, -2)); };
  SX_EXPECT_GRADCHECK(bt, {leaf({2, 3, 4}, g), leaf({2, 5, 4}, g)});
}

TEST(MatmulGrad, OnlyOneInputRequiresGrad) {
  Generator g(101);
  Tensor b = randn({4, 2}, g, DType::Float64);
  auto mm = [b](const std::vector<Tensor>& x) { return matmul(x[0], b); };
  SX_EXPECT_GRADCHECK(mm, {leaf({3, 4}, g)});
}

// ---- CUDA specifics ----------------------------------------------------------------------------

TEST(MatmulParity, CudaMatchesCpuFloat32WithoutTf32) {
  SX_REQUIRE_CUDA();
#ifdef SX_WITH_CUDA
  ASSERT_FALSE(cuda::allow_tf32()) << "TF32 must be off unless asked for";
  Generator g(5);
  // k = 512: TF32 (10-bit mantissa) would give relative errors near 1e-3; IEEE float32 stays ~1e-6.
  Tensor a = randn({64, 512}, g), b = randn({512, 48}, g);
  std::vector<double> c_cpu = matmul(a, b).to_vector();
  std::vector<double> c_gpu = matmul(a.cuda(), b.cuda()).to_vector();
  Shape s;
  std::vector<double> ref = ref_matmul(a.to(DType::Float64), b.to(DType::Float64), s);
  for (size_t i = 0; i < ref.size(); ++i) {
    EXPECT_NEAR(c_gpu[i], ref[i], 2e-4 * (1 + std::fabs(ref[i])));
    EXPECT_NEAR(c_gpu[i], c_cpu[i], 2e-4 * (1 + std::fabs(ref[i])));
  }
  // With TF32 allowed the result is still close, at TF32 precision.
  cuda::set_allow_tf32(true);
  std::vector<double> c_tf32 = matmul(a.cuda(), b.cuda()).to_vector();
  cuda::set_allow_tf32(false);
  for (size_t i = 0; i < ref.size(); ++i) EXPECT_NEAR(c_tf32[i], ref[i], 0.05 * (1 + std::fabs(ref[i])));
#endif
}

}  // namespace
}  // namespace sx
