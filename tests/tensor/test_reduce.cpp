// Reductions and softmax: values against plain loops over every dim combination (contiguous,
// transposed and narrowed inputs, empty and 0-d tensors, integer dtypes), first-occurrence
// indices and NaN handling of max/min, softmax stability for huge logits, gradient checks
// (float64, CPU) and CUDA-vs-CPU parity (run only where a GPU is present).
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
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
#include "tensor/reduce_path_stats.h"
#include "tensor/tensor.h"

using namespace sx;

namespace {

Tensor rnd(const Shape& shape, double lo, double hi, uint64_t seed, DType dt = DType::Float64,
           Device dev = Device::cpu()) {
  Generator g(seed);
  std::vector<double> v(static_cast<size_t>(shape_numel(shape)));
  for (auto& x : v) x = lo + (hi - lo) * g.uniform();
  return Tensor::from_vector(v, shape, dt).to(dev);
}

// Reference reduction of a row-major value vector over `dims` (sorted), keepdim layout.
// f folds values; returns (values, argindex along the single dim when dims.size()==1).
struct RefOut {
  std::vector<double> v;
  std::vector<int64_t> idx;
};
RefOut ref_reduce(const std::vector<double>& x, const Shape& s, const std::vector<int64_t>& dims,
                  double init, const std::function<bool(double acc, double v)>& take,
                  const std::function<double(double, double)>& fold) {
  const int64_t nd = static_cast<int64_t>(s.size());
  Shape os = s;
  for (int64_t d : dims) os[d] = 1;
  const int64_t on = shape_numel(os);
  RefOut r;
  r.v.assign(on, init);
  r.idx.assign(on, -1);
  std::vector<bool> seen(on, false);
  const int64_t n = shape_numel(s);
  for (int64_t i = 0; i < n; ++i) {
    int64_t rem = i, o = 0, ostride = 1, pos = 0;
    std::vector<int64_t> mi(nd);
    for (int64_t d = nd - 1; d >= 0; --d) {
      mi[d] = rem % s[d];
      rem /= s[d];
    }
    for (int64_t d = nd - 1; d >= 0; --d) {
      const bool red = std::find(dims.begin(), dims.end(), d) != dims.end();
      if (!red) o += mi[d] * ostride;
      ostride *= os[d];
      if (red) pos = mi[d];
    }
    if (!seen[o]) {
      r.v[o] = fold(init, x[i]);
      r.idx[o] = pos;
      seen[o] = true;
    } else {
      if (take(r.v[o], x[i])) r.idx[o] = pos;
      r.v[o] = fold(r.v[o], x[i]);
    }
  }
  return r;
}

std::vector<double> ref_sum(const Tensor& t, const std::vector<int64_t>& dims) {
  return ref_reduce(t.to_vector(), t.shape(), dims, 0.0, [](double, double) { return true; },
                    [](double a, double v) { return a + v; })
      .v;
}

void expect_near_vec(const std::vector<double>& got, const std::vector<double>& want, double tol,
                     const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  // Reports the first mismatch and how many there are (not one line per element: a 2M-element
  // case once wrote 900 MB of log).
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const bool ok = std::isnan(want[i]) ? std::isnan(got[i])
                                        : std::fabs(got[i] - want[i]) <= tol * (1 + std::fabs(want[i]));
    if (!ok && bad++ == 0) first = i;
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << got.size() << " elements differ; first at " << first
                     << ": got " << (bad ? got[first] : 0) << ", want " << (bad ? want[first] : 0) << " (tol " << tol
                     << " relative)";
}

Shape drop_dims(const Shape& s, const std::vector<int64_t>& dims) {
  Shape o;
  for (int64_t d = 0; d < static_cast<int64_t>(s.size()); ++d)
    if (std::find(dims.begin(), dims.end(), d) == dims.end()) o.push_back(s[d]);
  return o;
}

class Reduce : public ::testing::TestWithParam<Device> {};

const std::vector<std::vector<int64_t>> kDimSets = {{}, {0}, {1}, {2}, {0, 1}, {1, 2}, {0, 2}, {0, 1, 2}};

}  // namespace

TEST_P(Reduce, SumOverEveryDimSet) {
  Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  for (DType dt : {DType::Float32, DType::Float64}) {
    Tensor x = rnd({3, 4, 5}, -1, 1, 1, dt, dev);
    for (const auto& dims : kDimSets) {
      SCOPED_TRACE(testing::Message() << "dims size " << dims.size() << " first " << (dims.empty() ? -1 : dims[0]));
      std::vector<int64_t> full = dims;
      if (full.empty()) full = {0, 1, 2};
      auto want = ref_sum(x.cpu(), full);
      Tensor k = sum(x, dims, true);
      EXPECT_EQ(k.dtype(), dt);
      EXPECT_EQ(k.device(), dev);
      Shape ks = x.shape();
      for (int64_t d : full) ks[d] = 1;
      EXPECT_EQ(k.shape(), ks);
      expect_near_vec(k.to_vector(), want, 1e-6, "keepdim");
      Tensor nk = sum(x, dims, false);
      EXPECT_EQ(nk.shape(), drop_dims(x.shape(), full));
      expect_near_vec(nk.to_vector(), want, 1e-6, "no keepdim");
    }
  }
  // Negative and unordered dims.
  Tensor x = rnd({3, 4, 5}, -1, 1, 2, DType::Float64, dev);
  expect_near_vec(sum(x, {-1, 0}).to_vector(), ref_sum(x.cpu(), {0, 2}), 1e-12, "neg dims");
  EXPECT_THROW(sum(x, {3}), ValueError);
  EXPECT_THROW(sum(x, {1, -2}), ValueError);
}

TEST_P(Reduce, SumNonContiguousIntegerEmptyAndScalar) {
  Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  Tensor base = rnd({6, 8, 5}, -1, 1, 3, DType::Float64, dev);
  Tensor v = base.permute({2, 0, 1}).narrow(2, 1, 5);  // [5, 6, 5], non-contiguous
  for (const auto& dims : kDimSets) {
    std::vector<int64_t> full = dims.empty() ? std::vector<int64_t>{0, 1, 2} : dims;
    expect_near_vec(sum(v, dims).to_vector(), ref_sum(v.cpu(), full), 1e-12, "view");
  }
  // Integers and bools sum to int64.
  Tensor i = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3}, DType::Int32).to(dev);
  EXPECT_EQ(sum(i).dtype(), DType::Int64);
  EXPECT_EQ(sum(i).item(), 21.0);
  EXPECT_EQ(sum(i, {0}).to_vector(), (std::vector<double>{5, 7, 9}));
  Tensor u = Tensor::full({300}, 200, DType::UInt8, dev);
  EXPECT_EQ(sum(u).item(), 60000.0);  // no uint8 overflow
  EXPECT_EQ(sum(gt(i, 2.5), {1}).to_vector(), (std::vector<double>{1, 3}));
  EXPECT_THROW(mean(i), ValueError);
  // Empty tensors.
  Tensor e = Tensor::zeros({0, 3}, DType::Float32, dev);
  EXPECT_EQ(sum(e, {0}).shape(), (Shape{3}));
  EXPECT_EQ(sum(e, {0}).to_vector(), (std::vector<double>{0, 0, 0}));
  EXPECT_EQ(sum(e, {1}).shape(), (Shape{0}));
  EXPECT_EQ(sum(e).item(), 0.0);
  EXPECT_EQ(sum(e).device(), dev);
  EXPECT_TRUE(std::isnan(mean(e).item()));
  // 0-d tensors.
  Tensor s = Tensor::scalar(2.5, DType::Float64, dev);
  EXPECT_EQ(sum(s).shape(), Shape{});
  EXPECT_EQ(sum(s).item(), 2.5);
  EXPECT_EQ(sum(s, {0}).item(), 2.5);
  EXPECT_EQ(mean(s).item(), 2.5);
  EXPECT_EQ(max(s).item(), 2.5);
  EXPECT_EQ(max(s, 0).second.item(), 0.0);
  EXPECT_EQ(softmax(s, 0).item(), 1.0);
}

// OpenMP threads for the scope of a test (restored after): the parallel paths need more than one.
struct OmpThreads {
  int prev;
  explicit OmpThreads(int n) : prev(omp_get_max_threads()) { omp_set_num_threads(n); }
  ~OmpThreads() { omp_set_num_threads(prev); }
};

TEST_P(Reduce, LargeSumsTakeTheParallelPaths) {
  Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  // On the CPU at least two threads, whatever OMP_NUM_THREADS says, and the path counters
  // (tensor/reduce_path_stats.h) prove each path below ran.
  OmpThreads threads(std::max(2, omp_get_max_threads()));
  red::cpu_reduce_path_counts().reset();
  // One long row (split into chunks), many columns over a long dim 0, many short rows.
  const int64_t n = 1 << 20;
  Tensor ones = Tensor::ones({n}, DType::Float32, dev);
  EXPECT_EQ(sum(ones).item(), static_cast<double>(n));
  Tensor ar = Tensor::arange(0, static_cast<double>(n), 1, DType::Float32, dev);
  EXPECT_EQ(sum(ar).item(), 0.5 * n * (n - 1));  // exact thanks to double accumulation
  EXPECT_EQ(max(ar).item(), n - 1.0);
  EXPECT_EQ(argmin(ar, 0).item(), 0.0);
  Tensor cols = rnd({20000, 3}, -1, 1, 4, DType::Float64, dev);
  expect_near_vec(sum(cols, {0}).to_vector(), ref_sum(cols.cpu(), {0}), 1e-12, "cols");
  Tensor wide = rnd({40, 3000}, -1, 1, 5, DType::Float64, dev);
  expect_near_vec(sum(wide, {0}).to_vector(), ref_sum(wide.cpu(), {0}), 1e-12, "wide cols");
  expect_near_vec(sum(wide, {1}).to_vector(), ref_sum(wide.cpu(), {1}), 1e-12, "rows");
  auto mx = max(wide, 0);
  auto rm = ref_reduce(wide.to_vector(), wide.shape(), {0}, -1e300, [](double a, double v) { return v > a; },
                       [](double a, double v) { return std::max(a, v); });
  expect_near_vec(mx.first.to_vector(), rm.v, 0, "max cols");
  auto gotidx = mx.second.to_vector();
  for (size_t k = 0; k < rm.idx.size(); ++k) EXPECT_EQ(gotidx[k], static_cast<double>(rm.idx[k]));
  // More than 65536 outputs per slab: the wide-tile path.
  Tensor vwide = rnd({3, 70000}, -1, 1, 6, DType::Float64, dev);
  expect_near_vec(sum(vwide, {0}).to_vector(), ref_sum(vwide.cpu(), {0}), 1e-12, "very wide cols");
  if (dev.is_cpu()) {
    const auto& c = red::cpu_reduce_path_counts();
    EXPECT_GE(c.row_chunks.load(), 1) << "no reduction split a long row over threads";
    EXPECT_GE(c.col_chunks.load(), 1) << "no column reduction split r over threads";
    EXPECT_GE(c.wide_tiles.load(), 1) << "no reduction took the wide-tile path";
  }
}

TEST_P(Reduce, MeanAndVar) {
  Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  Tensor x = rnd({4, 6}, -2, 3, 6, DType::Float64, dev);
  auto xv = x.to_vector();
  for (int64_t d : {0, 1}) {
    const int64_t n = x.size(d), m = x.size(1 - d);
    std::vector<double> mu(m, 0), v1(m, 0), v0(m, 0);
    for (int64_t j = 0; j < m; ++j) {
      for (int64_t i = 0; i < n; ++i) mu[j] += xv[d == 0 ? i * 6 + j : j * 6 + i];
      mu[j] /= n;
      double ss = 0;
      for (int64_t i = 0; i < n; ++i) {
        double e = xv[d == 0 ? i * 6 + j : j * 6 + i] - mu[j];
        ss += e * e;
      }
      v1[j] = ss / (n - 1);
      v0[j] = ss / n;
    }
    expect_near_vec(mean(x, {d}).to_vector(), mu, 1e-12, "mean");
    expect_near_vec(var(x, {d}).to_vector(), v1, 1e-12, "var unbiased");
    expect_near_vec(var(x, {d}, false).to_vector(), v0, 1e-12, "var biased");
    EXPECT_EQ(var(x, {d}, true, true).shape(), d == 0 ? (Shape{1, 6}) : (Shape{4, 1}));
  }
  double all = 0;
  for (double e : xv) all += e;
  EXPECT_NEAR(mean(x).item(), all / 24, 1e-12);
  Tensor c = Tensor::full({5}, 3.0, DType::Float32, dev);
  EXPECT_EQ(var(c).item(), 0.0);
  EXPECT_EQ(mean(c).dtype(), DType::Float32);
}

TEST_P(Reduce, MaxMinIndicesTiesAndNaN) {
  Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  const double nan = std::nan("");
  Tensor x = Tensor::from_vector({1, 5, 5, 2,
                                  7, 0, 7, -1,
                                  3, 3, 3, 3}, {3, 4}, DType::Float32).to(dev);
  auto [mv, mi] = max(x, 1);
  EXPECT_EQ(mv.to_vector(), (std::vector<double>{5, 7, 3}));
  EXPECT_EQ(mi.to_vector(), (std::vector<double>{1, 0, 0}));  // first occurrence
  EXPECT_EQ(mi.dtype(), DType::Int64);
  auto [nv, ni] = min(x, 0, true);
  EXPECT_EQ(nv.shape(), (Shape{1, 4}));
  EXPECT_EQ(nv.to_vector(), (std::vector<double>{1, 0, 3, -1}));
  EXPECT_EQ(ni.to_vector(), (std::vector<double>{0, 1, 2, 1}));
  EXPECT_EQ(argmax(x, 0).to_vector(), (std::vector<double>{1, 0, 1, 2}));
  EXPECT_EQ(argmin(x, -1).to_vector(), (std::vector<double>{0, 3, 0}));
  EXPECT_EQ(argmax(x, 1, true).shape(), (Shape{3, 1}));
  EXPECT_EQ(max(x).item(), 7.0);
  EXPECT_EQ(min(x).item(), -1.0);
  // Transposed input.
  EXPECT_EQ(argmax(x.t(), 1).to_vector(), (std::vector<double>{1, 0, 1, 2}));
  // Integers.
  Tensor xi = x.to(DType::Int64);
  EXPECT_EQ(max(xi, 1).first.dtype(), DType::Int64);
  EXPECT_EQ(max(xi, 1).first.to_vector(), (std::vector<double>{5, 7, 3}));
  EXPECT_EQ(argmin(xi, 0).to_vector(), (std::vector<double>{0, 1, 2, 1}));
  // NaN propagates and its index is reported.
  Tensor xn = Tensor::from_vector({1, nan, 3, nan}, {4}, DType::Float64).to(dev);
  auto [vn, in] = max(xn, 0);
  EXPECT_TRUE(std::isnan(vn.item()));
  EXPECT_EQ(in.item(), 1.0);
  EXPECT_TRUE(std::isnan(min(xn).item()));
  // Many rows (the CPU's row scan): NaN rows report their first NaN, others their first extreme.
  Tensor rows = Tensor::from_vector({1, nan, 3, nan, 4, 4, -2, 4, -2, 0, -2, 1, 9, 9, 9, 9}, {4, 4}, DType::Float32).to(dev);
  auto [rv, ri] = max(rows, 1);
  auto rvv = rv.to_vector();
  EXPECT_TRUE(std::isnan(rvv[0]));
  EXPECT_EQ(rvv[1], 4.0);
  EXPECT_EQ(ri.to_vector(), (std::vector<double>{1, 0, 3, 0}));
  EXPECT_EQ(argmin(rows, 1).to_vector(), (std::vector<double>{1, 2, 0, 0}));
  // Empty.
  Tensor e = Tensor::zeros({0, 3}, DType::Float32, dev);
  EXPECT_EQ(max(e, 0 + 1).first.shape(), (Shape{0}));
  EXPECT_THROW(max(e, 0), ValueError);
  EXPECT_THROW(max(e), ValueError);
  EXPECT_THROW(argmax(x, 2), ValueError);
}

TEST_P(Reduce, SoftmaxValuesAndStability) {
  Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  for (DType dt : {DType::Float32, DType::Float64}) {
    const double tol = dt == DType::Float32 ? 2e-6 : 1e-13;
    Tensor x = rnd({3, 4, 5}, -3, 3, 7, dt, dev);
    auto xv = x.to_vector();
    for (int64_t d : {0, 1, 2, -1}) {
      const int64_t dd = d < 0 ? d + 3 : d;
      Shape s = x.shape();
      std::vector<double> want(xv.size()), wantlog(xv.size());
      int64_t inner = 1;
      for (int64_t k = dd + 1; k < 3; ++k) inner *= s[k];
      for (size_t i = 0; i < xv.size(); ++i) {
        const int64_t pos = (static_cast<int64_t>(i) / inner) % s[dd];
        const int64_t base = static_cast<int64_t>(i) - pos * inner;
        double m = -1e300, z = 0;
        for (int64_t r = 0; r < s[dd]; ++r) m = std::max(m, xv[base + r * inner]);
        for (int64_t r = 0; r < s[dd]; ++r) z += std::exp(xv[base + r * inner] - m);
        want[i] = std::exp(xv[i] - m) / z;
        wantlog[i] = xv[i] - m - std::log(z);
      }
      Tensor y = softmax(x, d);
      EXPECT_EQ(y.shape(), x.shape());
      EXPECT_EQ(y.dtype(), dt);
      expect_near_vec(y.to_vector(), want, tol, "softmax");
      expect_near_vec(log_softmax(x, d).to_vector(), wantlog, tol, "log_softmax");
      // Non-contiguous input gives the same result.
      expect_near_vec(softmax(x.transpose(0, 2), 2 - dd).transpose(0, 2).to_vector(), want, tol, "transposed");
    }
    // Huge logits: no overflow, no NaN.
    Tensor h = Tensor::from_vector({1e4, 1e4 - 1, -1e4, 1e30, 1e30, -1e30}, {2, 3}, DType::Float64).to(dt).to(dev);
    auto hv = softmax(h, 1).to_vector();
    auto lv = log_softmax(h, 1).to_vector();
    const double e1 = std::exp(-1.0);
    EXPECT_NEAR(hv[0], 1 / (1 + e1), 1e-6);
    EXPECT_NEAR(hv[1], e1 / (1 + e1), 1e-6);
    EXPECT_EQ(hv[2], 0.0);
    EXPECT_NEAR(hv[3], 0.5, 1e-6);
    EXPECT_NEAR(hv[4], 0.5, 1e-6);
    EXPECT_NEAR(lv[0], -std::log1p(e1), 1e-5);
    EXPECT_NEAR(lv[3], -std::log(2.0), 1e-5);
    for (double v : lv) EXPECT_FALSE(std::isnan(v));
    EXPECT_LT(lv[5], -1e29);
    // Empty and integer inputs.
    EXPECT_EQ(softmax(Tensor::zeros({0, 4}, dt, dev), 1).shape(), (Shape{0, 4}));
  }
  EXPECT_THROW(softmax(Tensor::zeros({2, 3}, DType::Int64, dev), 1), ValueError);
  EXPECT_THROW(softmax(Tensor::zeros({2, 3}, DType::Float32, dev), 2), ValueError);
}

INSTANTIATE_TEST_SUITE_P(Devices, Reduce, SX_DEVICES, sx::test::device_name);

// ---- gradients (float64, CPU) -------------------------------------------------------------------
namespace {
using Fn = std::function<Tensor(const std::vector<Tensor>&)>;
Tensor leaf(const Shape& s, double lo, double hi, uint64_t seed) { return rnd(s, lo, hi, seed).set_requires_grad(); }
}  // namespace

TEST(ReduceGrad, SumMeanVar) {
  Tensor x = leaf({3, 4, 5}, -1, 1, 11);
  for (const auto& dims : kDimSets) {
    for (bool keep : {false, true}) {
      SCOPED_TRACE(testing::Message() << "dims " << dims.size() << " keep " << keep);
      SX_EXPECT_GRADCHECK([dims, keep](const std::vector<Tensor>& t) { return sum(t[0], dims, keep); }, {x});
      SX_EXPECT_GRADCHECK([dims, keep](const std::vector<Tensor>& t) { return mean(t[0], dims, keep); }, {x});
      SX_EXPECT_GRADCHECK([dims, keep](const std::vector<Tensor>& t) { return var(t[0], dims, true, keep); }, {x});
    }
  }
  SX_EXPECT_GRADCHECK([](const std::vector<Tensor>& t) { return var(t[0], {1}, false); }, {x});
  // Non-contiguous input (a view built inside f).
  SX_EXPECT_GRADCHECK([](const std::vector<Tensor>& t) { return sum(t[0].permute({2, 0, 1}).narrow(0, 1, 3), {0, 2}); }, {x});
  SX_EXPECT_GRADCHECK([](const std::vector<Tensor>& t) { return var(t[0].transpose(0, 2), {0, 1}); }, {x});
}

TEST(ReduceGrad, MaxMinSelectTheFirstIndex) {
  // Distinct values (no ties) so central differences are well defined.
  Tensor x = leaf({3, 4, 5}, -1, 1, 12);
  for (int64_t d : {0, 1, 2}) {
    SCOPED_TRACE(d);
    SX_EXPECT_GRADCHECK([d](const std::vector<Tensor>& t) { return max(t[0], d).first; }, {x});
    SX_EXPECT_GRADCHECK([d](const std::vector<Tensor>& t) { return min(t[0], d, true).first; }, {x});
  }
  SX_EXPECT_GRADCHECK([](const std::vector<Tensor>& t) { return max(t[0]); }, {x});
  SX_EXPECT_GRADCHECK([](const std::vector<Tensor>& t) { return min(t[0].transpose(0, 1)); }, {x});
  SX_EXPECT_GRADCHECK([](const std::vector<Tensor>& t) { return max(t[0].transpose(1, 2), 1).first; }, {x});
  // With ties the whole gradient goes to the first occurrence.
  Tensor tie = Tensor::from_vector({2, 5, 5, 1}, {4}, DType::Float64).set_requires_grad();
  max(tie, 0).first.backward();
  EXPECT_EQ(tie.grad().to_vector(), (std::vector<double>{0, 1, 0, 0}));
  Tensor tie2 = Tensor::from_vector({2, 5, 5, 1}, {2, 2}, DType::Float64).set_requires_grad();
  max(tie2).backward();
  EXPECT_EQ(tie2.grad().to_vector(), (std::vector<double>{0, 1, 0, 0}));
  EXPECT_FALSE(argmax(x, 0).requires_grad());
  EXPECT_FALSE(max(x, 0).second.requires_grad());
}

TEST(ReduceGrad, SoftmaxAndLogSoftmax) {
  Tensor x = leaf({3, 4, 5}, -2, 2, 13);
  for (int64_t d : {0, 1, 2}) {
    SCOPED_TRACE(d);
    SX_EXPECT_GRADCHECK([d](const std::vector<Tensor>& t) { return softmax(t[0], d); }, {x});
    SX_EXPECT_GRADCHECK([d](const std::vector<Tensor>& t) { return log_softmax(t[0], d); }, {x});
  }
  SX_EXPECT_GRADCHECK([](const std::vector<Tensor>& t) { return log_softmax(t[0].transpose(0, 2), -1); }, {x});
  // A typical loss: cross entropy of softmax over classes, with large logits.
  Tensor big = leaf({2, 3}, 50, 60, 14);
  SX_EXPECT_GRADCHECK([](const std::vector<Tensor>& t) { return mean(neg(log_softmax(t[0], 1))); }, {big});
}

// ---- CUDA vs CPU parity --------------------------------------------------------------------------
TEST(ReduceParity, CudaMatchesCpu) {
  SX_REQUIRE_CUDA();
  const Device gpu = Device::cuda(0);
  struct Case {
    Shape shape;
    std::vector<int64_t> dims;
  };
  // Row, column (many and few outputs), split (one long row), permuted, empty.
  std::vector<Case> cases = {{{64, 1000}, {1}},    {{5000, 8}, {0}},      {{3, 4000, 700}, {1}},
                             {{3, 300, 5}, {1}},   {{1 << 21}, {0}},      {{7, 9, 11}, {0, 2}},
                             {{2, 3, 4, 5}, {1, 3}}, {{0, 5}, {0}},       {{4, 0}, {1}},
                             {{33, 65, 3}, {}}};
  for (DType dt : {DType::Float32, DType::Float64}) {
    const double tol = dt == DType::Float32 ? 1e-5 : 1e-12;
    for (const auto& c : cases) {
      SCOPED_TRACE(testing::Message() << shape_str(c.shape) << " " << dtype_name(dt));
      Tensor x = rnd(c.shape, -1, 1, 21, dt);
      Tensor xg = x.to(gpu);
      expect_near_vec(sum(xg, c.dims).to_vector(), sum(x, c.dims).to_vector(), tol, "sum");
      expect_near_vec(mean(xg, c.dims, true).to_vector(), mean(x, c.dims, true).to_vector(), tol, "mean");
      if (c.dims.size() == 1 && x.size(c.dims[0]) > 0) {
        const int64_t d = c.dims[0];
        auto g = max(xg, d), h = max(x, d);
        expect_near_vec(g.first.to_vector(), h.first.to_vector(), 0, "max");
        EXPECT_EQ(g.second.to_vector(), h.second.to_vector());
        EXPECT_EQ(argmin(xg, d).to_vector(), argmin(x, d).to_vector());
        expect_near_vec(softmax(xg, d).to_vector(), softmax(x, d).to_vector(), tol, "softmax");
        expect_near_vec(log_softmax(xg, d).to_vector(), log_softmax(x, d).to_vector(), tol, "log_softmax");
      }
      if (x.numel() > 0) {
        EXPECT_EQ(max(xg).item(), max(x).item());
        EXPECT_EQ(min(xg).item(), min(x).item());
      }
    }
    // Integer sums and backward on the GPU.
    Tensor xi = Tensor::arange(0, 100000, 1, DType::Int32);
    EXPECT_EQ(sum(xi.to(gpu)).item(), sum(xi).item());
    Tensor x = rnd({6, 50}, -2, 2, 22, dt);
    for (auto f : std::vector<std::function<Tensor(const Tensor&)>>{
             [](const Tensor& t) { return sum(t, {0}); },
             [](const Tensor& t) { return var(t, {1}); },
             [](const Tensor& t) { return max(t, 1).first; },
             [](const Tensor& t) { return max(t); },
             [](const Tensor& t) { return softmax(t, 1); },
             [](const Tensor& t) { return log_softmax(t, 0); }}) {
      Tensor a = x.clone().set_requires_grad();
      Tensor b = x.to(gpu).set_requires_grad();
      Tensor oa = f(a), ob = f(b);
      Tensor w = rnd(oa.shape(), -1, 1, 23, dt);
      oa.backward(w);
      ob.backward(w.to(gpu));
      EXPECT_TRUE(b.grad().is_cuda());
      expect_near_vec(b.grad().to_vector(), a.grad().to_vector(), tol, "grad");
    }
  }
}
