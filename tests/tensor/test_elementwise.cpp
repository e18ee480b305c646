// Elementwise ops: forward values against plain loops (broadcasting, non-contiguous views, empty
// and 0-d tensors, dtype promotion), errors, in-place helpers, gradient checks (float64, CPU) for
// every differentiable op, and CUDA-vs-CPU parity (run only where a GPU is present).
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "common/devices.h"
#include "common/gradcheck.h"
#include "tensor/autograd.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

using namespace sx;

namespace {

// Uniform values in [lo, hi) from a seeded generator (CPU), cast to dtype, placed on dev.
Tensor rnd(const Shape& shape, double lo, double hi, uint64_t seed, DType dt = DType::Float64,
           Device dev = Device::cpu()) {
  Generator g(seed);
  std::vector<double> v(static_cast<size_t>(shape_numel(shape)));
  for (auto& x : v) x = lo + (hi - lo) * g.uniform();
  return Tensor::from_vector(v, shape, dt).to(dev);
}

// Values of a at the multi-index of `out_shape`'s linear index i, with broadcasting.
double bget(const std::vector<double>& v, const Shape& s, const Shape& out_shape, int64_t i) {
  const int64_t nd = static_cast<int64_t>(out_shape.size());
  const int64_t lead = nd - static_cast<int64_t>(s.size());
  int64_t off = 0, stride = 1;
  for (int64_t d = nd - 1; d >= 0; --d) {
    int64_t idx = i % out_shape[d];
    i /= out_shape[d];
    const int64_t sd = d - lead;
    if (sd < 0) continue;
    if (s[sd] != 1) off += idx * stride;
    stride *= s[sd];
  }
  return v[off];
}

std::vector<double> ref_binary(const Tensor& a, const Tensor& b, const std::function<double(double, double)>& f) {
  Shape os = broadcast_shapes(a.shape(), b.shape());
  auto va = a.to_vector(), vb = b.to_vector();
  std::vector<double> out(static_cast<size_t>(shape_numel(os)));
  for (int64_t i = 0; i < static_cast<int64_t>(out.size()); ++i)
    out[i] = f(bget(va, a.shape(), os, i), bget(vb, b.shape(), os, i));
  return out;
}

void expect_near_vec(const std::vector<double>& got, const std::vector<double>& want, double tol,
                     const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::isnan(want[i])) {
      EXPECT_TRUE(std::isnan(got[i])) << what << " at " << i;
      continue;
    }
    if (std::isinf(want[i])) {
      EXPECT_EQ(got[i], want[i]) << what << " at " << i;
      continue;
    }
    EXPECT_NEAR(got[i], want[i], tol * (1 + std::fabs(want[i]))) << what << " at " << i;
  }
}

double sigmoid_ref(double x) { return 1.0 / (1.0 + std::exp(-x)); }

class Elementwise : public ::testing::TestWithParam<Device> {};

}  // namespace

// ---- broadcasting ------------------------------------------------------------------------------
TEST(Broadcast, ShapesFollowNumPyRules) {
  EXPECT_EQ(broadcast_shapes({3, 1, 4}, {5, 4}), (Shape{3, 5, 4}));
  EXPECT_EQ(broadcast_shapes({}, {2, 3}), (Shape{2, 3}));
  EXPECT_EQ(broadcast_shapes({0, 1}, {1, 7}), (Shape{0, 7}));
  EXPECT_EQ(broadcast_shapes({1}, {0}), (Shape{0}));
  try {
    broadcast_shapes({2, 3}, {4, 3});
    FAIL() << "expected ValueError";
  } catch (const ValueError& e) {
    std::string m = e.what();
    EXPECT_NE(m.find("[2, 3]"), std::string::npos) << m;
    EXPECT_NE(m.find("[4, 3]"), std::string::npos) << m;
  }
  EXPECT_THROW(add(Tensor::zeros({2, 3}), Tensor::zeros({3, 2})), ValueError);
}

TEST(Broadcast, SumToReducesBroadcastDims) {
  Tensor t = Tensor::arange(0, 24, 1, DType::Float64).reshape({2, 3, 4});
  Tensor r = sum_to(t, {3, 1});
  EXPECT_EQ(r.shape(), (Shape{3, 1}));
  auto v = r.to_vector();
  for (int j = 0; j < 3; ++j) {
    double want = 0;
    for (int i = 0; i < 2; ++i)
      for (int k = 0; k < 4; ++k) want += i * 12 + j * 4 + k;
    EXPECT_EQ(v[j], want);
  }
  EXPECT_EQ(sum_to(t, {4}).to_vector(), (std::vector<double>{60, 66, 72, 78}));
  EXPECT_EQ(sum_to(t, {}).item(), 276.0);
  EXPECT_TRUE(sum_to(t, {2, 3, 4}).same_storage(t));
  EXPECT_THROW(sum_to(t, {5}), ValueError);
}

// ---- forward values ----------------------------------------------------------------------------
TEST_P(Elementwise, BinaryOpsBroadcastAgainstLoops) {
  Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  for (DType dt : {DType::Float32, DType::Float64}) {
    const double tol = dt == DType::Float32 ? 1e-6 : 1e-14;
    Tensor a = rnd({3, 1, 4}, 0.5, 2.0, 1, dt, dev);
    Tensor b = rnd({5, 4}, 0.5, 2.0, 2, dt, dev);
    expect_near_vec(add(a, b).to_vector(), ref_binary(a, b, [](double x, double y) { return x + y; }), tol, "add");
    expect_near_vec(sub(a, b).to_vector(), ref_binary(a, b, [](double x, double y) { return x - y; }), tol, "sub");
    expect_near_vec(mul(a, b).to_vector(), ref_binary(a, b, [](double x, double y) { return x * y; }), tol, "mul");
    expect_near_vec(div(a, b).to_vector(), ref_binary(a, b, [](double x, double y) { return x / y; }), tol, "div");
    expect_near_vec(pow(a, b).to_vector(), ref_binary(a, b, [](double x, double y) { return std::pow(x, y); }), 4 * tol, "pow");
    expect_near_vec(maximum(a, b).to_vector(), ref_binary(a, b, [](double x, double y) { return std::max(x, y); }), 0, "maximum");
    expect_near_vec(minimum(a, b).to_vector(), ref_binary(a, b, [](double x, double y) { return std::min(x, y); }), 0, "minimum");
    EXPECT_EQ(add(a, b).shape(), (Shape{3, 5, 4}));
    EXPECT_EQ(add(a, b).dtype(), dt);
    EXPECT_EQ(add(a, b).device(), dev);
  }
}

TEST_P(Elementwise, NonContiguousInputs) {
  Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  Tensor base = rnd({6, 7}, -2, 2, 3, DType::Float32, dev);
  Tensor at = base.transpose(0, 1);            // [7, 6], strides (1, 7)
  Tensor bn = rnd({7, 10}, -2, 2, 4, DType::Float32, dev).narrow(1, 2, 6);  // [7, 6], row stride 10
  Tensor ce = rnd({6}, -2, 2, 5, DType::Float32, dev).expand({7, 6});        // stride 0 rows
  auto f = [](double x, double y) { return x * y; };
  expect_near_vec(mul(at, bn).to_vector(), ref_binary(at, bn, f), 1e-6, "transpose*narrow");
  expect_near_vec(mul(at, ce).to_vector(), ref_binary(at, ce, f), 1e-6, "transpose*expand");
  expect_near_vec(add(bn, ce).to_vector(), ref_binary(bn, ce, [](double x, double y) { return x + y; }), 1e-6,
                  "narrow+expand");
  // A slice with step, of a view of a view.
  Tensor s = base.slice(1, 0, 7, 2).transpose(0, 1);  // [4, 6]
  auto sv = s.to_vector();
  auto ev = exp(s).to_vector();
  for (size_t i = 0; i < sv.size(); ++i) EXPECT_NEAR(ev[i], std::exp(sv[i]), 1e-6 * std::exp(sv[i]));
  // Large enough for the parallel path, transposed.
  Tensor big = rnd({300, 200}, -1, 1, 6, DType::Float32, dev);
  Tensor bt = big.t();
  Tensor r = add(bt, rnd({200, 1}, -1, 1, 7, DType::Float32, dev));
  Tensor col = rnd({200, 1}, -1, 1, 7, DType::Float32, Device::cpu());
  expect_near_vec(r.to_vector(), ref_binary(bt.cpu(), col, [](double x, double y) { return x + y; }), 1e-6, "big");
}

TEST_P(Elementwise, ManyStridedDims) {
  Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  // 9 dims whose strides cannot be merged (more than the kernels' 8): the inputs are made dense.
  Shape s(9, 2);
  Tensor a = rnd(s, -1, 1, 8, DType::Float32, dev);
  Tensor b = rnd(s, -1, 1, 9, DType::Float32, dev).permute({8, 7, 6, 5, 4, 3, 2, 1, 0});
  Tensor r = add(a, b);
  EXPECT_EQ(r.shape(), s);
  expect_near_vec(r.to_vector(), ref_binary(a, b, [](double x, double y) { return x + y; }), 1e-6, "9-d");
  // An in-place update of such a view is refused with a clear error.
  Tensor c = Tensor::zeros(s, DType::Float32, dev);
  Tensor cv = c.permute({8, 7, 6, 5, 4, 3, 2, 1, 0});
  EXPECT_THROW(add_(cv, a), ValueError);
}

TEST_P(Elementwise, EmptyAndZeroDim) {
  Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  Tensor e = Tensor::zeros({0, 3}, DType::Float32, dev);
  Tensor r = add(e, Tensor::ones({3}, DType::Float32, dev));
  EXPECT_EQ(r.shape(), (Shape{0, 3}));
  EXPECT_EQ(r.dtype(), DType::Float32);
  EXPECT_EQ(r.device(), dev);
  EXPECT_EQ(exp(e).shape(), (Shape{0, 3}));
  EXPECT_EQ(lt(e, 1.0).dtype(), DType::Bool);
  EXPECT_EQ(where(lt(e, 1.0), e, e).shape(), (Shape{0, 3}));
  Tensor s = Tensor::scalar(2.0, DType::Float64, dev);
  Tensor t = Tensor::scalar(3.0, DType::Float64, dev);
  EXPECT_EQ(mul(s, t).shape(), Shape{});
  EXPECT_EQ(mul(s, t).item(), 6.0);
  EXPECT_EQ(add(s, Tensor::ones({2, 2}, DType::Float64, dev)).to_vector(), (std::vector<double>{3, 3, 3, 3}));
  EXPECT_EQ(sqrt(Tensor::scalar(9.0, DType::Float32, dev)).item(), 3.0);
}

TEST_P(Elementwise, TypePromotion) {
  Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  Tensor i32 = Tensor::from_vector({1, 2, 3}, {3}, DType::Int32).to(dev);
  Tensor i64 = Tensor::from_vector({10, 20, 30}, {3}, DType::Int64).to(dev);
  Tensor f32 = Tensor::from_vector({0.5, 0.25, 0.125}, {3}, DType::Float32).to(dev);
  Tensor f64 = Tensor::from_vector({0.5, 0.25, 0.125}, {3}, DType::Float64).to(dev);
  Tensor u8 = Tensor::from_vector({250, 3, 7}, {3}, DType::UInt8).to(dev);
  EXPECT_EQ(add(i32, f32).dtype(), DType::Float32);
  EXPECT_EQ(add(i32, f32).to_vector(), (std::vector<double>{1.5, 2.25, 3.125}));
  EXPECT_EQ(add(i32, i64).dtype(), DType::Int64);
  EXPECT_EQ(add(i32, i64).to_vector(), (std::vector<double>{11, 22, 33}));
  EXPECT_EQ(mul(f32, f64).dtype(), DType::Float64);
  EXPECT_EQ(sub(i64, i32).to_vector(), (std::vector<double>{9, 18, 27}));
  EXPECT_EQ(mul(i64, i32).to_vector(), (std::vector<double>{10, 40, 90}));
  // True division of integers gives float32.
  Tensor d = div(i64, i32);
  EXPECT_EQ(d.dtype(), DType::Float32);
  EXPECT_NEAR(d.to_vector()[2], 10.0, 1e-6);
  EXPECT_EQ(div(i32, 2.0).dtype(), DType::Float32);
  EXPECT_EQ(div(i32, 2.0).to_vector(), (std::vector<double>{0.5, 1, 1.5}));
  // Scalars take the tensor's dtype; uint8 wraps like C.
  EXPECT_EQ(add(u8, 10.0).dtype(), DType::UInt8);
  EXPECT_EQ(add(u8, 10.0).to_vector(), (std::vector<double>{4, 13, 17}));
  EXPECT_EQ(mul(i32, 3.0).to_vector(), (std::vector<double>{3, 6, 9}));
  EXPECT_EQ(rsub(1.0, i64).to_vector(), (std::vector<double>{-9, -19, -29}));
  EXPECT_EQ(maximum(i32, Tensor::scalar(2, DType::Int32, dev)).to_vector(), (std::vector<double>{2, 2, 3}));
  EXPECT_EQ(neg(i32).to_vector(), (std::vector<double>{-1, -2, -3}));
  EXPECT_EQ(abs(neg(i64)).to_vector(), (std::vector<double>{10, 20, 30}));
  EXPECT_EQ(clamp(i64, 15.0, 25.0).to_vector(), (std::vector<double>{15, 20, 25}));
  // Math ops refuse integers; half types are refused everywhere with a clear error.
  EXPECT_THROW(exp(i32), ValueError);
  EXPECT_THROW(pow(i32, 2.0), ValueError);
  EXPECT_THROW(neg(Tensor::zeros({2}, DType::Bool, dev)), ValueError);
  EXPECT_THROW(add(Tensor::zeros({2}, DType::Bool, dev), Tensor::zeros({2}, DType::Bool, dev)), ValueError);
  // Bool promotes to the other operand.
  EXPECT_EQ(mul(gt(f32, 0.2), f32).dtype(), DType::Float32);
  EXPECT_EQ(mul(gt(f32, 0.2), f32).to_vector(), (std::vector<double>{0.5, 0.25, 0}));
}

TEST(ElementwiseErrors, HalfTypesAreRefusedClearly) {
  Tensor h = Tensor::empty({2}, DType::Float16);
  try {
    add(h, h);
    FAIL() << "expected ValueError";
  } catch (const ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("float16"), std::string::npos) << e.what();
  }
  EXPECT_THROW(exp(h), ValueError);
  EXPECT_THROW(relu(h), ValueError);
  EXPECT_THROW(mul(Tensor::empty({2}, DType::BFloat16), 2.0), ValueError);
  EXPECT_THROW(sum(h), ValueError);
  EXPECT_THROW(where(gt(Tensor::zeros({2}), 0.0), h, h), ValueError);
}

TEST_P(Elementwise, UnaryOpsAgainstLoops) {
  Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  for (DType dt : {DType::Float32, DType::Float64}) {
    const double tol = dt == DType::Float32 ? 2e-6 : 1e-14;
    Tensor x = rnd({4, 9}, -5, 5, 11, dt, dev);
    Tensor xp = rnd({4, 9}, 0.01, 5, 12, dt, dev);
    auto xv = x.to_vector(), xpv = xp.to_vector();
    auto check = [&](const Tensor& got, const std::vector<double>& in, const std::function<double(double)>& f,
                     const char* what) {
      std::vector<double> want(in.size());
      for (size_t i = 0; i < in.size(); ++i) want[i] = f(in[i]);
      EXPECT_EQ(got.dtype(), dt) << what;
      expect_near_vec(got.to_vector(), want, tol, what);
    };
    check(neg(x), xv, [](double v) { return -v; }, "neg");
    check(abs(x), xv, [](double v) { return std::fabs(v); }, "abs");
    check(exp(x), xv, [](double v) { return std::exp(v); }, "exp");
    check(log(xp), xpv, [](double v) { return std::log(v); }, "log");
    check(sqrt(xp), xpv, [](double v) { return std::sqrt(v); }, "sqrt");
    check(relu(x), xv, [](double v) { return v > 0 ? v : 0; }, "relu");
    check(leaky_relu(x, 0.2), xv, [](double v) { return v > 0 ? v : 0.2 * v; }, "leaky_relu");
    check(sigmoid(x), xv, sigmoid_ref, "sigmoid");
    check(tanh(x), xv, [](double v) { return std::tanh(v); }, "tanh");
    check(softplus(x), xv, [](double v) { return std::log1p(std::exp(v)); }, "softplus");
    check(softplus(x, 2.0, 3.0), xv, [](double v) { return 2 * v > 3 ? v : std::log1p(std::exp(2 * v)) / 2; },
          "softplus(beta=2, threshold=3)");
    check(clamp(x, -1.0, 2.0), xv, [](double v) { return std::min(2.0, std::max(-1.0, v)); }, "clamp");
    check(clamp(x, std::nullopt, 0.5), xv, [](double v) { return std::min(0.5, v); }, "clamp(hi)");
    check(clamp(x, 0.5, std::nullopt), xv, [](double v) { return std::max(0.5, v); }, "clamp(lo)");
    check(pow(xp, 2.0), xpv, [](double v) { return v * v; }, "pow 2");
    check(pow(xp, -1.5), xpv, [](double v) { return std::pow(v, -1.5); }, "pow -1.5");
    check(add(x, 1.5), xv, [](double v) { return v + 1.5; }, "add scalar");
    check(sub(x, 1.5), xv, [](double v) { return v - 1.5; }, "sub scalar");
    check(rsub(1.5, x), xv, [](double v) { return 1.5 - v; }, "rsub");
    check(mul(x, -3.0), xv, [](double v) { return -3 * v; }, "mul scalar");
    check(div(x, 4.0), xv, [](double v) { return v / 4; }, "div scalar");
    check(2.0 - x * 3.0 + 1.0, xv, [](double v) { return 2 - v * 3 + 1; }, "operators");
  }
}

TEST_P(Elementwise, SpecialValues) {
  Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  const double inf = std::numeric_limits<double>::infinity(), nan = std::nan("");
  Tensor x = Tensor::from_vector({-1000, 1000, nan, -inf, inf, 0}, {6}, DType::Float32).to(dev);
  auto s = sigmoid(x).to_vector();
  EXPECT_EQ(s[0], 0.0);
  EXPECT_EQ(s[1], 1.0);
  EXPECT_TRUE(std::isnan(s[2]));
  EXPECT_EQ(s[5], 0.5);
  auto sp = softplus(x).to_vector();
  EXPECT_EQ(sp[0], 0.0);
  EXPECT_EQ(sp[1], 1000.0);
  EXPECT_TRUE(std::isnan(relu(x).to_vector()[2]));
  EXPECT_TRUE(std::isnan(clamp(x, 0.0, 1.0).to_vector()[2]));
  EXPECT_TRUE(std::isnan(maximum(x, Tensor::zeros({6}, DType::Float32, dev)).to_vector()[2]));
  EXPECT_TRUE(std::isnan(minimum(Tensor::zeros({6}, DType::Float32, dev), x).to_vector()[2]));
  EXPECT_EQ(isfinite(x).to_vector(), (std::vector<double>{1, 1, 0, 0, 0, 1}));
  EXPECT_EQ(isfinite(Tensor::ones({2}, DType::Int64, dev)).to_vector(), (std::vector<double>{1, 1}));
  EXPECT_EQ(tanh(x).to_vector()[1], 1.0);
}

TEST_P(Elementwise, ComparisonsAndLogic) {
  Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  Tensor a = Tensor::from_vector({1, 2, 3, 4}, {2, 2}, DType::Float32).to(dev);
  Tensor b = Tensor::from_vector({2, 2}, {1, 2}, DType::Int64).to(dev);  // broadcast row [2, 2]
  EXPECT_EQ(eq(a, b).to_vector(), (std::vector<double>{0, 1, 0, 0}));
  EXPECT_EQ(ne(a, b).to_vector(), (std::vector<double>{1, 0, 1, 1}));
  EXPECT_EQ(lt(a, b).to_vector(), (std::vector<double>{1, 0, 0, 0}));
  EXPECT_EQ(le(a, b).to_vector(), (std::vector<double>{1, 1, 0, 0}));
  EXPECT_EQ(gt(a, b).to_vector(), (std::vector<double>{0, 0, 1, 1}));
  EXPECT_EQ(ge(a, b).to_vector(), (std::vector<double>{0, 1, 1, 1}));
  EXPECT_EQ(gt(a, b).dtype(), DType::Bool);
  EXPECT_EQ(eq(a, 2.0).to_vector(), (std::vector<double>{0, 1, 0, 0}));
  EXPECT_EQ(ne(a, 2.0).to_vector(), (std::vector<double>{1, 0, 1, 1}));
  EXPECT_EQ(lt(a, 2.5).to_vector(), (std::vector<double>{1, 1, 0, 0}));
  EXPECT_EQ(le(a, 2.0).to_vector(), (std::vector<double>{1, 1, 0, 0}));
  EXPECT_EQ(gt(a, 2.0).to_vector(), (std::vector<double>{0, 0, 1, 1}));
  EXPECT_EQ(ge(a, 3.0).to_vector(), (std::vector<double>{0, 0, 1, 1}));
  // Scalar comparisons compare values, not the scalar truncated to the tensor's dtype.
  Tensor ints = Tensor::from_vector({0, 1, 2}, {3}, DType::Int64).to(dev);
  EXPECT_EQ(gt(ints, 0.5).to_vector(), (std::vector<double>{0, 1, 1}));
  EXPECT_EQ(eq(ints, 0.5).to_vector(), (std::vector<double>{0, 0, 0}));
  Tensor p = gt(a, 1.5), q = lt(a, 3.5);
  EXPECT_EQ(logical_and(p, q).to_vector(), (std::vector<double>{0, 1, 1, 0}));
  EXPECT_EQ(logical_or(logical_not(p), logical_not(q)).to_vector(), (std::vector<double>{1, 0, 0, 1}));
  EXPECT_EQ(logical_not(ints).to_vector(), (std::vector<double>{1, 0, 0}));
  EXPECT_EQ(logical_and(ints, Tensor::scalar(3, DType::Int32, dev)).to_vector(), (std::vector<double>{0, 1, 1}));
  EXPECT_EQ(eq(p, q).dtype(), DType::Bool);
  EXPECT_EQ(eq(p, q).to_vector(), (std::vector<double>{0, 1, 1, 0}));
}

TEST_P(Elementwise, WhereBroadcasts) {
  Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  Tensor c = Tensor::from_vector({1, 0, 1}, {3}, DType::Bool).to(dev);
  Tensor a = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3}, DType::Float64).to(dev);
  Tensor b = Tensor::scalar(-1, DType::Float64, dev);
  Tensor w = where(c, a, b);
  EXPECT_EQ(w.shape(), (Shape{2, 3}));
  EXPECT_EQ(w.to_vector(), (std::vector<double>{1, -1, 3, 4, -1, 6}));
  Tensor wi = where(c, Tensor::scalar(7, DType::Int64, dev), Tensor::scalar(8, DType::Int32, dev));
  EXPECT_EQ(wi.dtype(), DType::Int64);
  EXPECT_EQ(wi.to_vector(), (std::vector<double>{7, 8, 7}));
  EXPECT_THROW(where(a, a, b), ValueError);  // cond must be bool
  // Non-contiguous condition.
  Tensor cm = gt(a, 2.5).t();  // [3, 2]
  EXPECT_EQ(where(cm, a.t(), b).to_vector(), (std::vector<double>{-1, 4, -1, 5, 3, 6}));
}

TEST_P(Elementwise, InPlaceHelpers) {
  Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  Tensor a = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3}, DType::Float32).to(dev);
  Tensor b = Tensor::from_vector({10, 20, 30}, {3}, DType::Float64).to(dev);
  add_(a, b, 0.5);  // broadcast, cast to a's dtype
  EXPECT_EQ(a.dtype(), DType::Float32);
  EXPECT_EQ(a.to_vector(), (std::vector<double>{6, 12, 18, 9, 15, 21}));
  mul_(a, 2.0);
  EXPECT_EQ(a.to_vector(), (std::vector<double>{12, 24, 36, 18, 30, 42}));
  // In place through a non-contiguous view writes into the base.
  Tensor col = a.narrow(1, 1, 1);  // [2, 1], stride 3
  mul_(col, 0.5);
  EXPECT_EQ(a.to_vector(), (std::vector<double>{12, 12, 36, 18, 15, 42}));
  Tensor at = a.t();
  add_(at, Tensor::ones({3, 2}, DType::Float32, dev));
  EXPECT_EQ(a.to_vector(), (std::vector<double>{13, 13, 37, 19, 16, 43}));
  EXPECT_THROW(add_(a, Tensor::ones({4}, DType::Float32, dev)), ValueError);
  // Refused on a tensor that requires grad while grad mode is on; fine under NoGradGuard.
  Tensor p = Tensor::ones({3}, DType::Float32, dev).set_requires_grad();
  EXPECT_THROW(mul_(p, 2.0), ValueError);
  EXPECT_THROW(add_(p, p), ValueError);
  {
    NoGradGuard ng;
    add_(p, p, -0.25);
    mul_(p, 4.0);
  }
  EXPECT_EQ(p.to_vector(), (std::vector<double>{3, 3, 3}));
  Tensor e = Tensor::empty({0}, DType::Float32, dev);
  add_(e, Tensor::ones({1}, DType::Float32, dev));
  mul_(e, 3.0);
  EXPECT_EQ(e.numel(), 0);
}

INSTANTIATE_TEST_SUITE_P(Devices, Elementwise, SX_DEVICES, sx::test::device_name);

// ---- gradients (float64, CPU) ------------------------------------------------------------------
namespace {
Tensor leaf(const Shape& s, double lo, double hi, uint64_t seed) {
  return rnd(s, lo, hi, seed).set_requires_grad();
}
using Fn = std::function<Tensor(const std::vector<Tensor>&)>;
}  // namespace

TEST(ElementwiseGrad, BinaryOpsWithBroadcasting) {
  Tensor a = leaf({3, 1, 4}, 0.5, 2.0, 21);
  Tensor b = leaf({5, 4}, 0.5, 2.0, 22);
  SX_EXPECT_GRADCHECK([](const std::vector<Tensor>& x) { return add(x[0], x[1]); }, {a, b});
  SX_EXPECT_GRADCHECK([](const std::vector<Tensor>& x) { return sub(x[0], x[1]); }, {a, b});
  SX_EXPECT_GRADCHECK([](const std::vector<Tensor>& x) { return mul(x[0], x[1]); }, {a, b});
  SX_EXPECT_GRADCHECK([](const std::vector<Tensor>& x) { return div(x[0], x[1]); }, {a, b});
  SX_EXPECT_GRADCHECK([](const std::vector<Tensor>& x) { return pow(x[0], x[1]); }, {a, b});
  SX_EXPECT_GRADCHECK([](const std::vector<Tensor>& x) { return maximum(x[0], x[1]); }, {a, b});
  SX_EXPECT_GRADCHECK([](const std::vector<Tensor>& x) { return minimum(x[0], x[1]); }, {a, b});
  // One operand needs no grad.
  Tensor c = rnd({4}, 0.5, 2.0, 23);
  SX_EXPECT_GRADCHECK([c](const std::vector<Tensor>& x) { return mul(x[0], c); }, {a});
}

TEST(ElementwiseGrad, NonContiguousInputs) {
  Tensor base = leaf({5, 4}, 0.5, 2.0, 31);
  Tensor other = leaf({4, 7}, 0.5, 2.0, 32);
  // The views are built inside f, so gradients flow back through them to the leaves.
  SX_EXPECT_GRADCHECK([](const std::vector<Tensor>& x) { return mul(x[0].t(), x[1].narrow(1, 1, 5)); },
                      {base, other});
  SX_EXPECT_GRADCHECK([](const std::vector<Tensor>& x) { return div(x[0].t(), x[1].narrow(1, 2, 1).expand({4, 5})); },
                      {base, other});
  // A non-contiguous leaf itself (gradcheck perturbs it through its strides).
  Tensor nc = rnd({4, 6}, 0.5, 2.0, 33).t().set_requires_grad();
  SX_EXPECT_GRADCHECK([](const std::vector<Tensor>& x) { return exp(x[0]); }, {nc});
  SX_EXPECT_GRADCHECK([](const std::vector<Tensor>& x) { return pow(x[0], x[0].t().t()); }, {nc});
}

TEST(ElementwiseGrad, UnaryOps) {
  Tensor x = leaf({3, 4}, -2, 2, 41);
  Tensor xp = leaf({3, 4}, 0.2, 3, 42);
  // Values near kinks (0 for relu/abs, the clamp bounds) are nudged away by construction.
  Tensor xk;
  {
    auto v = rnd({3, 4}, -2, 2, 43).to_vector();
    for (auto& e : v)
      if (std::fabs(e) < 0.05 || std::fabs(e - 1.0) < 0.05 || std::fabs(e + 0.5) < 0.05) e += 0.2;
    xk = Tensor::from_vector(v, {3, 4}, DType::Float64).set_requires_grad();
  }
  std::vector<std::pair<const char*, Fn>> fs = {
      {"neg", [](const std::vector<Tensor>& t) { return neg(t[0]); }},
      {"exp", [](const std::vector<Tensor>& t) { return exp(t[0]); }},
      {"sigmoid", [](const std::vector<Tensor>& t) { return sigmoid(t[0]); }},
      {"tanh", [](const std::vector<Tensor>& t) { return tanh(t[0]); }},
      {"softplus", [](const std::vector<Tensor>& t) { return softplus(t[0]); }},
      {"softplus(beta=3, threshold=2)", [](const std::vector<Tensor>& t) { return softplus(t[0], 3.0, 2.0); }},
      {"add s", [](const std::vector<Tensor>& t) { return add(t[0], 2.0); }},
      {"sub s", [](const std::vector<Tensor>& t) { return sub(t[0], 2.0); }},
      {"rsub", [](const std::vector<Tensor>& t) { return rsub(2.0, t[0]); }},
      {"mul s", [](const std::vector<Tensor>& t) { return mul(t[0], -1.5); }},
      {"div s", [](const std::vector<Tensor>& t) { return div(t[0], 3.0); }},
      {"pow 2", [](const std::vector<Tensor>& t) { return pow(t[0], 2.0); }},
      {"pow 3", [](const std::vector<Tensor>& t) { return pow(t[0], 3.0); }},
  };
  for (auto& [name, f] : fs) {
    SCOPED_TRACE(name);
    SX_EXPECT_GRADCHECK(f, {x});
  }
  std::vector<std::pair<const char*, Fn>> fp = {
      {"log", [](const std::vector<Tensor>& t) { return log(t[0]); }},
      {"sqrt", [](const std::vector<Tensor>& t) { return sqrt(t[0]); }},
      {"pow -1.5", [](const std::vector<Tensor>& t) { return pow(t[0], -1.5); }},
      {"pow 0.5", [](const std::vector<Tensor>& t) { return pow(t[0], 0.5); }},
  };
  for (auto& [name, f] : fp) {
    SCOPED_TRACE(name);
    SX_EXPECT_GRADCHECK(f, {xp});
  }
  std::vector<std::pair<const char*, Fn>> fk = {
      {"abs", [](const std::vector<Tensor>& t) { return abs(t[0]); }},
      {"relu", [](const std::vector<Tensor>& t) { return relu(t[0]); }},
      {"leaky_relu", [](const std::vector<Tensor>& t) { return leaky_relu(t[0], 0.1); }},
      {"clamp", [](const std::vector<Tensor>& t) { return clamp(t[0], -0.5, 1.0); }},
      {"clamp lo", [](const std::vector<Tensor>& t) { return clamp(t[0], -0.5, std::nullopt); }},
      {"clamp hi", [](const std::vector<Tensor>& t) { return clamp(t[0], std::nullopt, 1.0); }},
  };
  for (auto& [name, f] : fk) {
    SCOPED_TRACE(name);
    SX_EXPECT_GRADCHECK(f, {xk});
  }
}

TEST(ElementwiseGrad, WhereAndPromotion) {
  Tensor a = leaf({2, 3}, -1, 1, 51);
  Tensor b = leaf({3}, -1, 1, 52);
  Tensor c = Tensor::from_vector({1, 0, 1, 0, 0, 1}, {2, 3}, DType::Bool);
  SX_EXPECT_GRADCHECK([c](const std::vector<Tensor>& x) { return where(c, x[0], x[1]); }, {a, b});
  // A float64 leaf combined with a float32 constant: the result is float64 and the gradient
  // arrives in float64.
  Tensor f32 = Tensor::from_vector({1, 2, 3}, {3}, DType::Float32);
  SX_EXPECT_GRADCHECK([f32](const std::vector<Tensor>& x) { return mul(x[0], f32); }, {a});
  // A float32 leaf gets a float32 gradient from a float64 result.
  Tensor l32 = Tensor::from_vector({1, 2, 3}, {3}, DType::Float32).set_requires_grad();
  Tensor r = mul(l32, Tensor::from_vector({2, 2, 2}, {3}, DType::Float64));
  EXPECT_EQ(r.dtype(), DType::Float64);
  sum(r).backward();
  EXPECT_EQ(l32.grad().dtype(), DType::Float32);
  EXPECT_EQ(l32.grad().to_vector(), (std::vector<double>{2, 2, 2}));
}

TEST(ElementwiseGrad, TiesSplitTheGradientOfMaximum) {
  Tensor a = Tensor::from_vector({1, 2, 3}, {3}, DType::Float64).set_requires_grad();
  Tensor b = Tensor::from_vector({3, 2, 1}, {3}, DType::Float64).set_requires_grad();
  sum(maximum(a, b)).backward();
  EXPECT_EQ(a.grad().to_vector(), (std::vector<double>{0, 0.5, 1}));
  EXPECT_EQ(b.grad().to_vector(), (std::vector<double>{1, 0.5, 0}));
}

TEST(ElementwiseGrad, ComparisonsCarryNoGradient) {
  Tensor a = leaf({3}, -1, 1, 61);
  EXPECT_FALSE(gt(a, 0.0).requires_grad());
  EXPECT_FALSE(eq(a, a).requires_grad());
  EXPECT_FALSE(isfinite(a).requires_grad());
  EXPECT_TRUE(add(a, 1.0).requires_grad());
  NoGradGuard ng;
  EXPECT_FALSE(add(a, 1.0).requires_grad());
}

// ---- CUDA vs CPU parity ----------------------------------------------------------------------------
TEST(ElementwiseParity, CudaMatchesCpuForwardAndBackward) {
  SX_REQUIRE_CUDA();
  const Device gpu = Device::cuda(0);
  for (DType dt : {DType::Float32, DType::Float64}) {
    const double tol = dt == DType::Float32 ? 1e-5 : 1e-12;
    Tensor a = rnd({64, 1, 33}, 0.3, 2.0, 71, dt);
    Tensor b = rnd({17, 33}, 0.3, 2.0, 72, dt);
    Tensor x = rnd({40, 50}, -4, 4, 73, dt);
    std::vector<std::pair<const char*, std::function<Tensor(const Tensor&, const Tensor&, const Tensor&)>>> fs = {
        {"add", [](const Tensor& p, const Tensor& q, const Tensor&) { return add(p, q); }},
        {"sub", [](const Tensor& p, const Tensor& q, const Tensor&) { return sub(p, q); }},
        {"mul", [](const Tensor& p, const Tensor& q, const Tensor&) { return mul(p, q); }},
        {"div", [](const Tensor& p, const Tensor& q, const Tensor&) { return div(p, q); }},
        {"pow", [](const Tensor& p, const Tensor& q, const Tensor&) { return pow(p, q); }},
        {"maximum", [](const Tensor& p, const Tensor& q, const Tensor&) { return maximum(p, q); }},
        {"minimum", [](const Tensor& p, const Tensor& q, const Tensor&) { return minimum(p, q); }},
        {"where", [](const Tensor& p, const Tensor& q, const Tensor&) { return where(gt(p, q), p, q); }},
        {"exp(t)", [](const Tensor&, const Tensor&, const Tensor& r) { return exp(r.t()); }},
        {"log", [](const Tensor& p, const Tensor&, const Tensor&) { return log(p); }},
        {"sqrt", [](const Tensor& p, const Tensor&, const Tensor&) { return sqrt(p); }},
        {"abs", [](const Tensor&, const Tensor&, const Tensor& r) { return abs(r); }},
        {"relu", [](const Tensor&, const Tensor&, const Tensor& r) { return relu(r.narrow(1, 3, 20)); }},
        {"leaky_relu", [](const Tensor&, const Tensor&, const Tensor& r) { return leaky_relu(r, 0.3); }},
        {"sigmoid", [](const Tensor&, const Tensor&, const Tensor& r) { return sigmoid(r); }},
        {"tanh", [](const Tensor&, const Tensor&, const Tensor& r) { return tanh(r); }},
        {"softplus", [](const Tensor&, const Tensor&, const Tensor& r) { return softplus(r, 2.0, 5.0); }},
        {"clamp", [](const Tensor&, const Tensor&, const Tensor& r) { return clamp(r, -1.0, 2.0); }},
        {"pow s", [](const Tensor& p, const Tensor&, const Tensor&) { return pow(p, 1.7); }},
        {"scalar ops", [](const Tensor&, const Tensor&, const Tensor& r) { return rsub(1.0, div(mul(add(r, 1.0), 3.0), 2.0)); }},
    };
    for (auto& [name, f] : fs) {
      SCOPED_TRACE(std::string(name) + " " + dtype_name(dt));
      Tensor ac = a.clone().set_requires_grad(), bc = b.clone().set_requires_grad(), xc = x.clone().set_requires_grad();
      Tensor ag = a.to(gpu).set_requires_grad(), bg = b.to(gpu).set_requires_grad(), xg = x.to(gpu).set_requires_grad();
      Tensor oc = f(ac, bc, xc), og = f(ag, bg, xg);
      ASSERT_TRUE(og.is_cuda());
      expect_near_vec(og.to_vector(), oc.to_vector(), tol, "forward");
      Tensor w = rnd(oc.shape(), -1, 1, 74, dt);
      oc.backward(w);
      og.backward(w.to(gpu));
      for (auto [lc, lg] : {std::pair<Tensor, Tensor>{ac, ag}, {bc, bg}, {xc, xg}}) {
        if (!lc.grad().defined()) {
          EXPECT_FALSE(lg.grad().defined());
          continue;
        }
        ASSERT_TRUE(lg.grad().defined());
        EXPECT_TRUE(lg.grad().is_cuda());
        expect_near_vec(lg.grad().to_vector(), lc.grad().to_vector(), tol, "grad");
      }
    }
    // Comparisons, logic, isfinite, integer ops, in-place.
    Tensor xg = x.to(gpu);
    EXPECT_EQ(gt(xg, 0.5).to_vector(), gt(x, 0.5).to_vector());
    EXPECT_EQ(logical_and(gt(xg, 0.0), lt(xg.t().t(), 1.0)).to_vector(), logical_and(gt(x, 0.0), lt(x, 1.0)).to_vector());
    EXPECT_EQ(isfinite(log(xg)).to_vector(), isfinite(log(x)).to_vector());
  }
  Tensor i = Tensor::arange(0, 1000, 1, DType::Int64);
  EXPECT_EQ(mul(i.to(gpu), 3.0).to_vector(), mul(i, 3.0).to_vector());
  Tensor big = rnd({1 << 20}, -1, 1, 75, DType::Float32);
  Tensor small = rnd({1 << 10}, -1, 1, 76, DType::Float32).reshape({1 << 10, 1}).expand({1 << 10, 1 << 10}).reshape({1 << 20});
  Tensor bg = big.to(gpu);
  add_(big, small, 0.5);
  add_(bg, small.to(gpu), 0.5);
  mul_(big, 3.0);
  mul_(bg, 3.0);
  expect_near_vec(bg.to_vector(), big.to_vector(), 1e-6, "in-place");
}
