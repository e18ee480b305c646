// Linear sum assignment by shortest augmenting paths with potentials (Kuhn-Munkres in the form of
// Jonker-Volgenant / e-maxx's "Hungarian algorithm in O(n^2 m)"); see assignment.h for the contract.
//
// The problem as a bipartite graph: rows on one side, columns on the other, edge (i, j) of weight
// cost[i][j]. Let n <= m (otherwise solve the transpose). Rows are added one at a time; after row i
// is added, rows 1..i are matched optimally among themselves. Adding a row means finding the
// cheapest *augmenting path*: from the new row to some free column, alternating unmatched and
// matched edges; flipping the path matches the new row and keeps every earlier row matched.
//
// Potentials make that search a Dijkstra. We keep u[i] (rows) and v[j] (columns) with
//   cost[i][j] - u[i] - v[j] >= 0 for every pair          (dual feasibility)
//   cost[i][j] - u[i] - v[j] == 0 for every matched pair  (complementary slackness)
// so the "reduced costs" are non-negative edge weights and the matched edges weigh zero. The search
// grows a tree of visited columns from the new row: minv[j] is the smallest reduced cost seen from
// a visited row to the unvisited column j, way[j] the column through which it was reached. Each
// step takes the unvisited column with the smallest minv (delta), shifts the potentials of the
// tree by delta (visited rows up, visited columns down: every tree edge stays tight, every other
// reduced cost drops by delta), and either stops at a free column or continues from the row
// matched to it. Then the path is read back through way[] and flipped. By LP duality the final
// matching is optimal: its cost equals sum(u) + sum(v) of a feasible dual.
// Each row costs at most m steps of O(m) work: O(n^2 m) in all (e-maxx.ru/algo/assignment_hungary,
// and Crouse 2016, "On implementing 2D rectangular assignment algorithms", which scipy follows).
//
// Forbidden pairs (+inf): a reduced cost of +inf never becomes the minimum, so such an edge is
// never used unless delta itself is +inf, which means no free column is reachable from the new
// row through finite edges: no assignment of finite total exists (scipy: "infeasible").
// Ties are broken by the first column with the smallest minv (deterministic).
#include "kernels/assignment/assignment.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "tensor/errors.h"

namespace sx::kernels {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// n <= m. a(i, j) reads cost entry (i, j) (0-based). Returns the column of each row.
template <class Cost>
std::vector<int64_t> solve_rows(const Cost& a, int64_t n, int64_t m) {
  // 1-based as in the classic formulation: column 0 is a virtual column holding the new row.
  std::vector<double> u(n + 1, 0.0), v(m + 1, 0.0), minv(m + 1);
  std::vector<int64_t> p(m + 1, 0);    // p[j]: the row matched to column j (0: free)
  std::vector<int64_t> way(m + 1, 0);  // way[j]: the previous column on the path to j
  std::vector<char> used(m + 1);
  for (int64_t i = 1; i <= n; ++i) {
    p[0] = i;
    int64_t j0 = 0;
    std::fill(minv.begin(), minv.end(), kInf);
    std::fill(used.begin(), used.end(), 0);
    do {  // Dijkstra over the reduced costs until a free column is reached
      used[j0] = 1;
      const int64_t i0 = p[j0];
      double delta = kInf;
      int64_t j1 = -1;
      for (int64_t j = 1; j <= m; ++j) {
        if (used[j]) continue;
        const double cur = a(i0 - 1, j - 1) - u[i0] - v[j];
        if (cur < minv[j]) {
          minv[j] = cur;
          way[j] = j0;
        }
        if (minv[j] < delta) {
          delta = minv[j];
          j1 = j;
        }
      }
      SX_CHECK(j1 >= 0, "linear_sum_assignment: cost matrix is infeasible (no assignment has a finite total)");
      for (int64_t j = 0; j <= m; ++j) {
        if (used[j]) {
          u[p[j]] += delta;
          v[j] -= delta;
        } else {
          minv[j] -= delta;
        }
      }
      j0 = j1;
    } while (p[j0] != 0);
    do {  // flip the augmenting path
      const int64_t j1 = way[j0];
      p[j0] = p[j1];
      j0 = j1;
    } while (j0 != 0);
  }
  std::vector<int64_t> col_of_row(n, -1);
  for (int64_t j = 1; j <= m; ++j)
    if (p[j] != 0) col_of_row[p[j] - 1] = j - 1;
  return col_of_row;
}

}  // namespace

std::vector<int64_t> linear_sum_assignment(const double* cost, int64_t n, int64_t m) {
  SX_CHECK(n >= 0 && m >= 0, "linear_sum_assignment: bad shape [", n, ", ", m, "]");
  for (int64_t k = 0; k < n * m; ++k)
    SX_CHECK(!std::isnan(cost[k]) && cost[k] != -kInf, "linear_sum_assignment: cost matrix contains invalid "
             "numeric entries (", cost[k], " at row ", k / m, ", column ", k % m, ")");
  if (n == 0 || m == 0) return std::vector<int64_t>(n, -1);
  if (n <= m) return solve_rows([&](int64_t i, int64_t j) { return cost[i * m + j]; }, n, m);
  // More rows than columns: assign every column (solve the transpose), then invert.
  const std::vector<int64_t> row_of_col = solve_rows([&](int64_t i, int64_t j) { return cost[j * m + i]; }, m, n);
  std::vector<int64_t> col_of_row(n, -1);
  for (int64_t j = 0; j < m; ++j) col_of_row[row_of_col[j]] = j;
  return col_of_row;
}

Assignment linear_sum_assignment(const Tensor& cost) {
  SX_CHECK(cost.defined(), "linear_sum_assignment: cost is undefined");
  SX_CHECK(cost.dim() == 2, "linear_sum_assignment: cost must be [n, m], got ", shape_str(cost.shape()));
  SX_CHECK(cost.dtype() == DType::Float32 || cost.dtype() == DType::Float64,
           "linear_sum_assignment: cost must be float32 or float64, got ", dtype_name(cost.dtype()));
  SX_CHECK(cost.device().is_cpu(), "linear_sum_assignment: CPU only (small per-image matrices); got a ",
           cost.device().str(), " tensor: move it with .cpu()");
  const int64_t n = cost.size(0), m = cost.size(1);
  const std::vector<double> c = cost.to_vector();  // row-major, float64
  const std::vector<int64_t> col_of_row = linear_sum_assignment(c.data(), n, m);
  std::vector<double> rows, cols;
  for (int64_t i = 0; i < n; ++i) {
    if (col_of_row[i] < 0) continue;
    rows.push_back(static_cast<double>(i));
    cols.push_back(static_cast<double>(col_of_row[i]));
  }
  const int64_t k = static_cast<int64_t>(rows.size());
  return {Tensor::from_vector(rows, {k}, DType::Int64), Tensor::from_vector(cols, {k}, DType::Int64)};
}

}  // namespace sx::kernels
