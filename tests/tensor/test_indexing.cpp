// Joining and indexing ops: cat, stack, index_select, gather, scatter_add, masked_select, nonzero,
// topk, sort. Values against plain loops (on every device: the CUDA cases are the parity tests),
// edge cases (empty, k = 0, ties, NaN), errors, and gradients (gradcheck, float64, CPU).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <type_traits>
#include <vector>

#include "tensor/ops.h"
#include "tensor/random.h"
#include "tensor/sort_math.h"
#include "tests/common/devices.h"
#include "tests/common/gradcheck.h"

namespace sx {
namespace {

class IndexingTest : public ::testing::TestWithParam<Device> {};

Tensor vec(const std::vector<double>& v, const Shape& s, DType dt, Device dev) {
  return Tensor::from_vector(v, s, dt).to(dev);
}
Tensor ivec(const std::vector<double>& v, const Shape& s, Device dev) { return vec(v, s, DType::Int64, dev); }

// Row-major multi-index of linear index i (for the plain-loop references).
std::vector<int64_t> unravel(int64_t i, const Shape& s) {
  std::vector<int64_t> c(s.size());
  for (int64_t d = static_cast<int64_t>(s.size()) - 1; d >= 0; --d) {
    c[d] = i % s[d];
    i /= s[d];
  }
  return c;
}

void expect_values(const Tensor& t, const std::vector<double>& ref, double tol = 0.0) {
  std::vector<double> v = t.to_vector();
  ASSERT_EQ(v.size(), ref.size());
  for (size_t i = 0; i < v.size(); ++i) {
    if (std::isnan(ref[i])) {
      EXPECT_TRUE(std::isnan(v[i])) << "element " << i;
    } else {
      EXPECT_NEAR(v[i], ref[i], tol) << "element " << i;
    }
  }
}

// ---- cat / stack ---------------------------------------------------------------------------------

TEST_P(IndexingTest, CatValues) {
  const Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  Generator g(1);
  Tensor a = randn({2, 3}, g, DType::Float32, dev), b = randn({2, 1}, g, DType::Float32, dev);
  Tensor c = randn({4, 2}, g, DType::Float32, dev).t();  // non-contiguous [2, 4]
  Tensor r = cat({a, b, c}, 1);
  ASSERT_EQ(r.shape(), (Shape{2, 8}));
  auto av = a.to_vector(), bv = b.to_vector(), cv = c.to_vector();
  std::vector<double> ref;
  for (int i = 0; i < 2; ++i) {
    for (int j = 0; j < 3; ++j) ref.push_back(av[i * 3 + j]);
    ref.push_back(bv[i]);
    for (int j = 0; j < 4; ++j) ref.push_back(cv[i * 4 + j]);
  }
  expect_values(r, ref);
  // negative dim, dim 0
  Tensor r0 = cat({a, a}, -2);
  ASSERT_EQ(r0.shape(), (Shape{4, 3}));
  std::vector<double> ref0 = av;
  ref0.insert(ref0.end(), av.begin(), av.end());
  expect_values(r0, ref0);
  // promotion and the legacy [0] placeholder
  Tensor ri = cat({Tensor::empty({0}, DType::Float32, dev), ivec({1, 2}, {1, 2}, dev), vec({0.5, 1.5}, {1, 2}, DType::Float64, dev)}, 0);
  EXPECT_EQ(ri.dtype(), DType::Float64);
  EXPECT_EQ(ri.device(), dev);
  expect_values(ri, {1, 2, 0.5, 1.5});
  // empty pieces
  Tensor re = cat({Tensor::empty({2, 0}, DType::Float32, dev), a}, 1);
  expect_values(re, av);
  EXPECT_EQ(cat({Tensor::empty({0, 3}, DType::Float32, dev)}, 0).shape(), (Shape{0, 3}));
}

TEST_P(IndexingTest, StackValuesAndErrors) {
  const Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  Tensor a = vec({1, 2, 3}, {3}, DType::Float32, dev), b = vec({4, 5, 6}, {3}, DType::Float32, dev);
  Tensor s0 = stack({a, b}, 0);
  ASSERT_EQ(s0.shape(), (Shape{2, 3}));
  expect_values(s0, {1, 2, 3, 4, 5, 6});
  Tensor s1 = stack({a, b}, -1);
  ASSERT_EQ(s1.shape(), (Shape{3, 2}));
  expect_values(s1, {1, 4, 2, 5, 3, 6});
  EXPECT_THROW(stack({a, vec({1, 2}, {2}, DType::Float32, dev)}, 0), ValueError);
  EXPECT_THROW(stack({a, b}, 2), ValueError);
  EXPECT_THROW(cat({a.reshape({1, 3}), vec({1, 2}, {1, 2}, DType::Float32, dev)}, 0), ValueError);
  EXPECT_THROW(cat({}, 0), ValueError);
}

TEST(JoinGrad, CatAndStack) {
  Generator g(2);
  auto f = [](const std::vector<Tensor>& x) { return cat({x[0], x[1].t(), x[2]}, 1); };
  SX_EXPECT_GRADCHECK(f, {randn({2, 3}, g, DType::Float64).set_requires_grad(),
                          randn({4, 2}, g, DType::Float64).set_requires_grad(),
                          randn({2, 1}, g, DType::Float64).set_requires_grad()});
  auto h = [](const std::vector<Tensor>& x) { return stack({x[0], x[1].slice(0, 0, 6, 2)}, 1); };
  SX_EXPECT_GRADCHECK(h, {randn({3, 2}, g, DType::Float64).set_requires_grad(),
                          randn({6, 2}, g, DType::Float64).set_requires_grad()});
}

// ---- index_select / gather / scatter_add ---------------------------------------------------------

TEST_P(IndexingTest, IndexSelectValues) {
  const Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  Generator g(3);
  Tensor a = randn({6, 4}, g, DType::Float32, dev).t();  // [4, 6], non-contiguous
  std::vector<double> av = a.to_vector();
  Tensor idx = ivec({5, 0, 5, 2}, {4}, dev);
  Tensor r1 = index_select(a, 1, idx);
  ASSERT_EQ(r1.shape(), (Shape{4, 4}));
  std::vector<double> ref;
  for (int i = 0; i < 4; ++i)
    for (int j : {5, 0, 5, 2}) ref.push_back(av[i * 6 + j]);
  expect_values(r1, ref);
  Tensor r0 = index_select(a, -2, ivec({3, 1}, {2}, dev));
  ref.clear();
  for (int i : {3, 1})
    for (int j = 0; j < 6; ++j) ref.push_back(av[i * 6 + j]);
  expect_values(r0, ref);
  EXPECT_EQ(index_select(a, 0, Tensor::empty({0}, DType::Int64, dev)).shape(), (Shape{0, 6}));
  // integer data
  Tensor ai = ivec({10, 11, 12}, {3}, dev);
  expect_values(index_select(ai, 0, ivec({2, 2, 0}, {3}, dev)), {12, 12, 10});
  EXPECT_THROW(index_select(a, 0, vec({1}, {1}, DType::Float32, dev)), ValueError);
  if (dev.is_cpu()) {
    EXPECT_THROW(index_select(a, 0, ivec({4}, {1}, dev)), ValueError);
  }
}

TEST_P(IndexingTest, GatherValues) {
  const Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  Generator g(4);
  Tensor a = randn({3, 5}, g, DType::Float64, dev);
  std::vector<double> av = a.to_vector();
  // index smaller than a in the non-gathered dim, with repeats
  Tensor idx = ivec({4, 4, 0, 1, 2, 3}, {2, 3}, dev);
  Tensor r = gather(a, 1, idx);
  ASSERT_EQ(r.shape(), (Shape{2, 3}));
  expect_values(r, {av[4], av[4], av[0], av[5 + 1], av[5 + 2], av[5 + 3]});
  Tensor r0 = gather(a, 0, ivec({2, 0, 1, 1}, {1, 4}, dev));
  expect_values(r0, {av[10], av[1], av[7], av[8]});
  EXPECT_EQ(gather(a, 0, Tensor::empty({0, 5}, DType::Int64, dev)).shape(), (Shape{0, 5}));
  EXPECT_THROW(gather(a, 0, ivec({0}, {1}, dev)), ValueError);               // rank differs
  EXPECT_THROW(gather(a, 1, ivec({0, 0, 0, 0}, {4, 1}, dev)), ValueError);   // larger than a in dim 0
  if (dev.is_cpu()) {
    try {
      gather(a, 1, ivec({7}, {1, 1}, dev));
      FAIL() << "expected ValueError";
    } catch (const ValueError& e) {
      EXPECT_NE(std::string(e.what()).find("index 7"), std::string::npos) << e.what();
    }
  }
}

TEST_P(IndexingTest, ScatterAddValues) {
  const Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  Generator g(5);
  for (DType dt : {DType::Float32, DType::Float64, DType::Int64}) {
    Tensor a = dt == DType::Int64 ? randint(-5, 5, {3, 4}, g, dt, dev) : randn({3, 4}, g, dt, dev);
    Tensor src = dt == DType::Int64 ? randint(-5, 5, {3, 5}, g, dt, dev) : randn({3, 5}, g, dt, dev);
    Tensor idx = randint(0, 4, {2, 5}, g, DType::Int64, dev);  // smaller than src in dim 0; repeats
    Tensor r = scatter_add(a, 1, idx, src);
    std::vector<double> ref = a.to_vector(), sv = src.to_vector(), iv = idx.to_vector();
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 5; ++j) ref[i * 4 + static_cast<int>(iv[i * 5 + j])] += sv[i * 5 + j];
    ASSERT_EQ(r.shape(), (Shape{3, 4}));
    EXPECT_EQ(r.dtype(), dt);
    expect_values(r, ref, dt == DType::Float32 ? 1e-5 : 1e-12);
  }
  // dim 0 with a non-contiguous src
  Tensor a = Tensor::zeros({2, 3}, DType::Float32, dev);
  Tensor src = vec({1, 2, 3, 4, 5, 6}, {3, 2}, DType::Float32, dev).t();  // [[1,3,5],[2,4,6]]
  Tensor r = scatter_add(a, 0, ivec({1, 1, 0, 1, 0, 0}, {2, 3}, dev), src);
  expect_values(r, {0, 4, 11, 3, 3, 0});
  EXPECT_THROW(scatter_add(a, 0, ivec({0}, {1, 1}, dev), vec({1}, {1, 1}, DType::Float64, dev)), ValueError);
}

TEST(IndexingGrad, IndexSelectGatherScatterAdd) {
  Generator g(6);
  Tensor idx = Tensor::from_vector({2, 0, 2, 3}, {4}, DType::Int64);
  auto fs = [idx](const std::vector<Tensor>& x) { return index_select(x[0], 1, idx); };
  SX_EXPECT_GRADCHECK(fs, {randn({3, 4}, g, DType::Float64).set_requires_grad()});
  auto fs_nc = [idx](const std::vector<Tensor>& x) { return index_select(x[0].t(), 0, idx); };
  SX_EXPECT_GRADCHECK(fs_nc, {randn({3, 4}, g, DType::Float64).set_requires_grad()});

  Tensor gidx = Tensor::from_vector({1, 1, 0, 3, 2, 2}, {2, 3}, DType::Int64);
  auto fg = [gidx](const std::vector<Tensor>& x) { return gather(x[0], 1, gidx); };
  SX_EXPECT_GRADCHECK(fg, {randn({3, 4}, g, DType::Float64).set_requires_grad()});

  Tensor sidx = Tensor::from_vector({0, 3, 3, 1, 2, 0}, {2, 3}, DType::Int64);
  auto fsa = [sidx](const std::vector<Tensor>& x) { return scatter_add(x[0], 1, sidx, x[1]); };
  SX_EXPECT_GRADCHECK(fsa, {randn({3, 4}, g, DType::Float64).set_requires_grad(),
                            randn({3, 4}, g, DType::Float64).set_requires_grad()});
}

// ---- masked_select / nonzero ---------------------------------------------------------------------

TEST_P(IndexingTest, MaskedSelectValues) {
  const Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  Tensor a = vec({1, 2, 3, 4, 5, 6}, {2, 3}, DType::Float32, dev);
  Tensor m = vec({1, 0, 1, 0, 0, 1}, {2, 3}, DType::Bool, dev);
  expect_values(masked_select(a, m), {1, 3, 6});
  // mask broadcast over rows; input broadcast over a mask with more dims
  Tensor mrow = vec({0, 1, 1}, {3}, DType::Bool, dev);
  expect_values(masked_select(a, mrow), {2, 3, 5, 6});
  Tensor m3 = vec({1, 0}, {2, 1, 1}, DType::Bool, dev);
  Tensor r3 = masked_select(a.t(), m3);  // a.t() is [3,2] non-contiguous; broadcast to [2,3,2]
  expect_values(r3, {1, 4, 2, 5, 3, 6});
  Tensor none = masked_select(a, Tensor::zeros({2, 3}, DType::Bool, dev));
  EXPECT_EQ(none.shape(), (Shape{0}));
  EXPECT_EQ(none.device(), dev);
  EXPECT_EQ(masked_select(Tensor::empty({0, 3}, DType::Float32, dev), mrow).shape(), (Shape{0}));
  EXPECT_THROW(masked_select(a, vec({1, 0}, {2}, DType::Bool, dev)), ValueError);
  EXPECT_THROW(masked_select(a, vec({1, 0, 1}, {3}, DType::Float32, dev)), ValueError);
}

TEST_P(IndexingTest, NonzeroValues) {
  const Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  Generator g(7);
  Tensor a = randint(0, 3, {4, 5, 3}, g, DType::Int32, dev);
  std::vector<double> av = a.to_vector();
  std::vector<double> ref;
  for (int64_t i = 0; i < 60; ++i)
    if (av[i] != 0)
      for (int64_t c : unravel(i, {4, 5, 3})) ref.push_back(static_cast<double>(c));
  Tensor nz = nonzero(a);
  ASSERT_EQ(nz.shape(), (Shape{static_cast<int64_t>(ref.size() / 3), 3}));
  EXPECT_EQ(nz.dtype(), DType::Int64);
  expect_values(nz, ref);
  // float (NaN counts as non-zero), non-contiguous, bool
  Tensor f = vec({0, -1.5, 0, std::nan(""), 0, 2}, {3, 2}, DType::Float64, dev).t();  // [[0,0,0],[-1.5,nan,2]]
  expect_values(nonzero(f), {1, 0, 1, 1, 1, 2});
  expect_values(nonzero(vec({0, 1, 1}, {3}, DType::Bool, dev)), {1, 2});
  EXPECT_EQ(nonzero(Tensor::zeros({3, 4}, DType::Float32, dev)).shape(), (Shape{0, 2}));
  EXPECT_EQ(nonzero(Tensor::empty({0, 4}, DType::Float32, dev)).shape(), (Shape{0, 2}));
  EXPECT_EQ(nonzero(Tensor::scalar(3.0, DType::Float32, dev)).shape(), (Shape{1, 0}));
}

TEST(IndexingGrad, MaskedSelect) {
  Generator g(8);
  Tensor m = Tensor::from_vector({1, 0, 1, 1}, {4}, DType::Bool);
  auto f = [m](const std::vector<Tensor>& x) { return masked_select(x[0], m); };
  SX_EXPECT_GRADCHECK(f, {randn({3, 4}, g, DType::Float64).set_requires_grad()});
  // input broadcast by the mask: gradients summed back
  Tensor m2 = Tensor::from_vector({1, 0, 1, 1, 1, 0}, {2, 3}, DType::Bool);
  auto f2 = [m2](const std::vector<Tensor>& x) { return masked_select(x[0], m2); };
  SX_EXPECT_GRADCHECK(f2, {randn({3}, g, DType::Float64).set_requires_grad()});
}

// ---- topk / sort ---------------------------------------------------------------------------------

// Reference: stable order of each row along the last dim (value, then original index).
void ref_sort_rows(const std::vector<double>& v, int64_t rows, int64_t len, bool desc, int64_t k,
                   std::vector<double>& vals, std::vector<double>& idx) {
  vals.clear();
  idx.clear();
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<int64_t> p(len);
    std::iota(p.begin(), p.end(), 0);
    auto key = [&](int64_t i) { return v[r * len + i]; };
    std::stable_sort(p.begin(), p.end(), [&](int64_t i, int64_t j) {
      double x = key(i), y = key(j);
      if (std::isnan(x) || std::isnan(y)) return desc ? (std::isnan(x) && !std::isnan(y)) : (!std::isnan(x) && std::isnan(y));
      return desc ? x > y : x < y;
    });
    for (int64_t j = 0; j < k; ++j) {
      vals.push_back(key(p[j]));
      idx.push_back(static_cast<double>(p[j]));
    }
  }
}

// The CUDA sort orders floats by sortmath::sortable_key (sort_math.h). Sorting special values by
// that key (stably, as CUB does) must give exactly the CPU sort's order: NaN of either sign
// largest and tied in index order, -0 tied with +0, infinities and denormals in place.
template <class T>
void check_sortable_keys() {
  const T nan = std::numeric_limits<T>::quiet_NaN(), inf = std::numeric_limits<T>::infinity();
  const T den = std::numeric_limits<T>::denorm_min();
  std::vector<double> v = {3, -nan, 1, -0.0, nan, -inf, 0.0, inf, -1, den, -den, 2, -nan, 1e30, -1e30, 0.0};
  for (bool desc : {false, true}) {
    std::vector<int64_t> pos(v.size());
    std::iota(pos.begin(), pos.end(), 0);
    std::stable_sort(pos.begin(), pos.end(), [&](int64_t a, int64_t b) {
      const auto ka = sortmath::sortable_key(static_cast<T>(v[a])), kb = sortmath::sortable_key(static_cast<T>(v[b]));
      return desc ? ka > kb : ka < kb;
    });
    const DType dt = std::is_same<T, float>::value ? DType::Float32 : DType::Float64;
    auto [vals, idx] = sort(Tensor::from_vector(v, {static_cast<int64_t>(v.size())}, dt), 0, desc);
    std::vector<double> iv = idx.to_vector();
    ASSERT_EQ(iv.size(), pos.size());
    for (size_t i = 0; i < pos.size(); ++i) EXPECT_EQ(iv[i], pos[i]) << "position " << i << (desc ? " desc" : " asc");
  }
}

TEST(SortMath, SortableKeysGiveTheCpuSortOrder) {
  check_sortable_keys<float>();
  check_sortable_keys<double>();
}

TEST_P(IndexingTest, SortValuesStableWithTiesAndNaN) {
  const Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  std::vector<double> v = {3, 1, 2, 1, nan, 3, 0, -1, 2, 2, 2, -1, 5, 5, 1, 1, 0, 1};
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (bool desc : {false, true}) {
      Tensor a = vec(v, {3, 6}, dt, dev);
      auto [vals, idx] = sort(a, -1, desc);
      std::vector<double> rv, ri;
      ref_sort_rows(v, 3, 6, desc, 6, rv, ri);
      expect_values(vals, rv);
      expect_values(idx, ri);
      EXPECT_EQ(idx.dtype(), DType::Int64);
      // ties keep their original order: row 0 ascending puts index 1 before index 3
      if (!desc) {
        auto iv = idx.to_vector();
        EXPECT_EQ(iv[0], 1);
        EXPECT_EQ(iv[1], 3);
      }
    }
  }
  // along dim 0 of a non-contiguous tensor, integer dtype
  Tensor ai = vec(v, {3, 6}, DType::Int64, dev).slice(1, 0, 6, 2);  // nan -> whatever int; skip col 2
  Tensor at = ai.t();                                              // [3, 3]
  auto [sv, si] = sort(at, 0, false);
  std::vector<double> tv = at.contiguous().to_vector();
  for (int c = 0; c < 3; ++c) {
    std::vector<double> col = {tv[c], tv[3 + c], tv[6 + c]}, rv, ri;
    ref_sort_rows(col, 1, 3, false, 3, rv, ri);
    auto svv = sv.to_vector(), siv = si.to_vector();
    for (int r = 0; r < 3; ++r) {
      EXPECT_EQ(svv[r * 3 + c], rv[r]);
      EXPECT_EQ(siv[r * 3 + c], ri[r]);
    }
  }
  auto [ev, ei] = sort(Tensor::empty({2, 0}, DType::Float32, dev), 1);
  EXPECT_EQ(ev.shape(), (Shape{2, 0}));
  EXPECT_EQ(ei.shape(), (Shape{2, 0}));
}

TEST_P(IndexingTest, TopkValues) {
  const Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  Generator g(9);
  // values with ties: randint cast to float
  Tensor a = randint(0, 6, {4, 50}, g, DType::Float32, dev);
  std::vector<double> av = a.to_vector();
  for (bool largest : {true, false}) {
    for (int64_t k : {int64_t{0}, int64_t{1}, int64_t{7}, int64_t{50}}) {
      auto [vals, idx] = topk(a, k, -1, largest);
      ASSERT_EQ(vals.shape(), (Shape{4, k}));
      std::vector<double> rv, ri;
      ref_sort_rows(av, 4, 50, largest, k, rv, ri);
      expect_values(vals, rv);
      expect_values(idx, ri);
    }
  }
  // along dim 0
  auto [v0, i0] = topk(a.t().contiguous().t(), 2, 0, true);  // dims [4,50], topk over the 4 rows
  ASSERT_EQ(v0.shape(), (Shape{2, 50}));
  auto v0v = v0.to_vector(), i0v = i0.to_vector();
  for (int c = 0; c < 50; ++c) {
    std::vector<double> col = {av[c], av[50 + c], av[100 + c], av[150 + c]}, rv, ri;
    ref_sort_rows(col, 1, 4, true, 2, rv, ri);
    EXPECT_EQ(v0v[c], rv[0]);
    EXPECT_EQ(v0v[50 + c], rv[1]);
    EXPECT_EQ(i0v[c], ri[0]);
    EXPECT_EQ(i0v[50 + c], ri[1]);
  }
  EXPECT_THROW(topk(a, 51), ValueError);
  EXPECT_THROW(topk(a, -1), ValueError);
  EXPECT_THROW(topk(a, 1, 2), ValueError);
}

TEST(IndexingGrad, TopkAndSort) {
  Generator g(10);
  // distinct values (no ties: the gradient is then well defined for finite differences)
  auto ft = [](const std::vector<Tensor>& x) { return topk(x[0], 3, 1, true).first; };
  SX_EXPECT_GRADCHECK(ft, {randn({3, 6}, g, DType::Float64).set_requires_grad()});
  auto ft0 = [](const std::vector<Tensor>& x) { return topk(x[0].t(), 2, 0, false).first; };
  SX_EXPECT_GRADCHECK(ft0, {randn({3, 5}, g, DType::Float64).set_requires_grad()});
  auto fs = [](const std::vector<Tensor>& x) { return sort(x[0], 0, true).first; };
  SX_EXPECT_GRADCHECK(fs, {randn({5, 3}, g, DType::Float64).set_requires_grad()});
  auto fs1 = [](const std::vector<Tensor>& x) { return sort(x[0], -1, false).first; };
  SX_EXPECT_GRADCHECK(fs1, {randn({2, 7}, g, DType::Float64).set_requires_grad()});
}

INSTANTIATE_TEST_SUITE_P(Devices, IndexingTest, SX_DEVICES, test::device_name);

// Inputs large enough for the CPU loops' OpenMP paths (parallel rows / elements), against the
// plain references.
TEST(IndexingLarge, ParallelCpuPathsMatchReference) {
  Generator g(12);
  Tensor a = randint(0, 50, {64, 600}, g, DType::Float32);  // many ties
  std::vector<double> av = a.to_vector(), rv, ri;
  auto [v, i] = topk(a, 20, 1, true);
  ref_sort_rows(av, 64, 600, true, 20, rv, ri);
  EXPECT_EQ(v.to_vector(), rv);
  EXPECT_EQ(i.to_vector(), ri);
  auto [sv, si] = sort(a, 1, false);
  ref_sort_rows(av, 64, 600, false, 600, rv, ri);
  EXPECT_EQ(sv.to_vector(), rv);
  EXPECT_EQ(si.to_vector(), ri);
  Tensor idx = randint(0, 600, {64, 700}, g);
  std::vector<double> iv = idx.to_vector(), gv = gather(a, 1, idx).to_vector();
  ASSERT_EQ(gv.size(), 64u * 700u);
  for (int64_t r = 0; r < 64; ++r)
    for (int64_t c = 0; c < 700; ++c)
      ASSERT_EQ(gv[r * 700 + c], av[r * 600 + static_cast<int64_t>(iv[r * 700 + c])]);
}

// Larger inputs, CUDA against the CPU (run only with a GPU): exercises multi-block launches, the
// device prefix sum and CUB's segmented sort on several thousand elements per row.
TEST(IndexingParity, LargeInputsCudaMatchesCpu) {
  SX_REQUIRE_CUDA();
  Generator g(11);
  Tensor a = randn({16, 3000}, g);
  Tensor ac = a.cuda();
  auto [v, i] = topk(a, 100, 1);
  auto [vc, ic] = topk(ac, 100, 1);
  EXPECT_EQ(v.to_vector(), vc.to_vector());
  EXPECT_EQ(i.to_vector(), ic.to_vector());
  auto [s, si] = sort(a, 0, true);
  auto [sc, sic] = sort(ac, 0, true);
  EXPECT_EQ(s.to_vector(), sc.to_vector());
  EXPECT_EQ(si.to_vector(), sic.to_vector());
  Tensor m = gt(a, 0.5);
  EXPECT_EQ(masked_select(a, m).to_vector(), masked_select(ac, m.cuda()).to_vector());
  EXPECT_EQ(nonzero(m).to_vector(), nonzero(m.cuda()).to_vector());
  Tensor idx = randint(0, 3000, {16, 5000}, g);
  Tensor src = randn({16, 5000}, g, DType::Float64);
  Tensor z = Tensor::zeros({16, 3000}, DType::Float64);
  std::vector<double> r_cpu = scatter_add(z, 1, idx, src).to_vector();
  std::vector<double> r_gpu = scatter_add(z.cuda(), 1, idx.cuda(), src.cuda()).to_vector();
  for (size_t k = 0; k < r_cpu.size(); ++k) EXPECT_NEAR(r_cpu[k], r_gpu[k], 1e-12);
  EXPECT_EQ(gather(a, 1, idx.narrow(1, 0, 3000)).to_vector(),
            gather(ac, 1, idx.narrow(1, 0, 3000).cuda()).to_vector());
}

}  // namespace
}  // namespace sx
