// Linear sum assignment (kernels/assignment): scipy's answers on random, tied, degenerate,
// rectangular, forbidden (+inf) and empty cost matrices (tests/data/kernels/hungarian_scipy.txt,
// written by scripts/fixtures/hungarian_scipy.py), a brute-force optimum on small random
// matrices, float32 input, and the error cases.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/assignment/assignment.h"
#include "tensor/errors.h"
#include "tensor/random.h"

namespace sx::kernels {
namespace {

struct Case {
  std::string name;
  int64_t n = 0, m = 0;
  bool integer = false, unique = false, feasible = false;
  std::vector<double> cost;
  double total = 0;
  std::vector<int64_t> rows, cols;
};

std::vector<double> parse_doubles(const std::string& line) {
  std::vector<double> v;
  if (line == "-") return v;
  std::istringstream s(line);
  std::string tok;
  while (s >> tok) v.push_back(tok == "inf" ? std::numeric_limits<double>::infinity() : std::stod(tok));
  return v;
}

std::vector<int64_t> parse_ints(const std::string& line) {
  std::vector<int64_t> v;
  for (double d : parse_doubles(line)) v.push_back(static_cast<int64_t>(d));
  return v;
}

std::vector<Case> load_cases() {
  const std::string path = std::string(SX_TEST_DATA_DIR) + "/kernels/hungarian_scipy.txt";
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot open fixture " + path);
  std::vector<Case> cases;
  std::string line;
  while (std::getline(f, line)) {
    if (line.empty() || line[0] == '#') continue;
    Case c;
    std::istringstream h(line);
    std::string tag;
    int integer = 0, unique = 0, feasible = 0;
    h >> tag >> c.name >> c.n >> c.m >> integer >> unique >> feasible;
    c.integer = integer, c.unique = unique, c.feasible = feasible;
    std::string costs, total, rows, cols;
    std::getline(f, costs), std::getline(f, total), std::getline(f, rows), std::getline(f, cols);
    c.cost = parse_doubles(costs);
    if (static_cast<int64_t>(c.cost.size()) != c.n * c.m) throw std::runtime_error("bad fixture case " + c.name);
    if (c.feasible) c.total = std::stod(total), c.rows = parse_ints(rows), c.cols = parse_ints(cols);
    cases.push_back(std::move(c));
  }
  return cases;
}

double total_of(const std::vector<double>& cost, int64_t m, const Assignment& a) {
  const std::vector<int64_t> r = a.rows.to_vector_as<int64_t>(), c = a.cols.to_vector_as<int64_t>();
  double s = 0;
  for (size_t k = 0; k < r.size(); ++k) s += cost[r[k] * m + c[k]];
  return s;
}

// A valid assignment: min(n, m) pairs, rows strictly increasing, columns distinct and in range.
void expect_valid(const Assignment& a, int64_t n, int64_t m, const std::string& what) {
  const std::vector<int64_t> r = a.rows.to_vector_as<int64_t>(), c = a.cols.to_vector_as<int64_t>();
  ASSERT_EQ(static_cast<int64_t>(r.size()), std::min(n, m)) << what;
  ASSERT_EQ(r.size(), c.size()) << what;
  std::vector<char> col_used(static_cast<size_t>(m), 0);
  for (size_t k = 0; k < r.size(); ++k) {
    EXPECT_TRUE(r[k] >= 0 && r[k] < n && (k == 0 || r[k] > r[k - 1])) << what << ": rows not increasing";
    ASSERT_TRUE(c[k] >= 0 && c[k] < m) << what;
    EXPECT_FALSE(col_used[c[k]]) << what << ": column " << c[k] << " used twice";
    col_used[c[k]] = 1;
  }
}

TEST(LinearSumAssignment, MatchesScipy) {
  const std::vector<Case> cases = load_cases();
  ASSERT_GE(cases.size(), 40u);
  for (const Case& c : cases) {
    const Tensor cost = Tensor::from_vector(c.cost, {c.n, c.m}, DType::Float64);
    if (!c.feasible) {
      EXPECT_THROW(linear_sum_assignment(cost), ValueError) << c.name;
      continue;
    }
    const Assignment a = linear_sum_assignment(cost);
    expect_valid(a, c.n, c.m, c.name);
    const double total = total_of(c.cost, c.m, a);
    if (c.integer) EXPECT_EQ(total, c.total) << c.name;
    else EXPECT_NEAR(total, c.total, 1e-12 * std::max(1.0, std::fabs(c.total))) << c.name;
    if (c.unique) {
      EXPECT_EQ(a.rows.to_vector_as<int64_t>(), c.rows) << c.name;
      EXPECT_EQ(a.cols.to_vector_as<int64_t>(), c.cols) << c.name;
    }
    if (c.integer && std::all_of(c.cost.begin(), c.cost.end(), [](double v) { return std::isfinite(v); })) {
      // float32 holds these integers exactly: the same optimum.
      const Assignment f = linear_sum_assignment(cost.to(DType::Float32));
      EXPECT_EQ(total_of(c.cost, c.m, f), c.total) << c.name << " (float32)";
    }
  }
}

// The optimum over all injections of the smaller side into the larger, by enumeration.
double brute_force(const std::vector<double>& cost, int64_t n, int64_t m) {
  const bool t = n > m;
  const int64_t a = t ? m : n, b = t ? n : m;
  std::vector<int64_t> perm(b);
  std::iota(perm.begin(), perm.end(), 0);
  double best = std::numeric_limits<double>::infinity();
  do {  // the first a entries of each permutation of b (repeats are harmless)
    double s = 0;
    for (int64_t i = 0; i < a; ++i) s += t ? cost[perm[i] * m + i] : cost[i * m + perm[i]];
    best = std::min(best, s);
  } while (std::next_permutation(perm.begin(), perm.end()));
  return best;
}

TEST(LinearSumAssignment, OptimalAgainstBruteForce) {
  Generator g(5);
  for (int trial = 0; trial < 60; ++trial) {
    const int64_t n = g.randint(1, 7), m = g.randint(1, 7);
    std::vector<double> cost(static_cast<size_t>(n * m));
    // Half the trials with small integers (many ties), half continuous.
    for (double& v : cost) v = trial % 2 ? static_cast<double>(g.randint(0, 3)) : g.uniform() * 10 - 5;
    const Assignment a = linear_sum_assignment(Tensor::from_vector(cost, {n, m}, DType::Float64));
    const std::string what = "trial " + std::to_string(trial) + " " + std::to_string(n) + "x" + std::to_string(m);
    expect_valid(a, n, m, what);
    EXPECT_NEAR(total_of(cost, m, a), brute_force(cost, n, m), 1e-9) << what;
  }
}

TEST(LinearSumAssignment, EmptyAndErrors) {
  for (const Shape& s : {Shape{0, 0}, Shape{0, 4}, Shape{4, 0}}) {
    const Assignment a = linear_sum_assignment(Tensor::zeros(s, DType::Float32));
    EXPECT_EQ(a.rows.numel(), 0);
    EXPECT_EQ(a.cols.numel(), 0);
    EXPECT_EQ(a.rows.dtype(), DType::Int64);
  }
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  EXPECT_THROW(linear_sum_assignment(Tensor::from_vector({1, nan, 2, 3}, {2, 2}, DType::Float64)), ValueError);
  EXPECT_THROW(linear_sum_assignment(Tensor::from_vector({1, -inf, 2, 3}, {2, 2}, DType::Float64)), ValueError);
  EXPECT_THROW(linear_sum_assignment(Tensor::zeros({2, 2, 2})), ValueError);
  EXPECT_THROW(linear_sum_assignment(Tensor::zeros({2, 2}, DType::Int64)), ValueError);
  // A row of +inf beside finite ones is fine when it has more columns than rows... until it is not.
  const Assignment ok = linear_sum_assignment(Tensor::from_vector({inf, 1, 2, inf, inf, 5}, {2, 3}, DType::Float64));
  EXPECT_EQ(ok.cols.to_vector_as<int64_t>(), (std::vector<int64_t>{1, 2}));
  EXPECT_THROW(linear_sum_assignment(Tensor::from_vector({inf, 1, inf, inf, 2, inf}, {2, 3}, DType::Float64)),
               ValueError);
}

}  // namespace
}  // namespace sx::kernels
