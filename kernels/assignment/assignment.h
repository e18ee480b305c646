// Linear sum assignment (the Hungarian problem), scipy.optimize.linear_sum_assignment semantics.
//
// cost [n, m] (float32 or float64, CPU): choose a set of (row, col) pairs, each row and each column
// used at most once, with min(n, m) pairs (every row assigned when n <= m, else every column), that
// minimises the total cost. Returns (rows, cols) as int64 [min(n, m)] tensors, sorted by row, as scipy.
//   +inf entries are forbidden pairs; if no assignment of finite total exists this throws
//   ValueError("... cost matrix is infeasible", like scipy). NaN or -inf entries throw ValueError.
//   n == 0 or m == 0: two empty int64 tensors. Ties: one of the optimal assignments (the total is
//   the optimum; which optimum is the algorithm's choice, as in scipy).
//
// CPU only, on purpose: the matrices are small (Sparse R-CNN's / DETR's matcher: ~100 proposals x
// a few ground-truth boxes, per image), the algorithm is a sequence of dependent shortest-path
// steps with little parallelism, and DETR-style matchers copy the cost matrix to the host for it
// too. A CUDA tensor is refused with a clear error rather than copied silently (no hidden syncs).
// The algorithm (O(n^2 m), shortest augmenting paths with potentials) is explained in assignment.cpp.
#pragma once
#include <cstdint>
#include <vector>

#include "tensor/tensor.h"

namespace sx::kernels {

struct Assignment {
  Tensor rows;  // int64 [k], increasing
  Tensor cols;  // int64 [k], cols[i] is the column assigned to rows[i]
};

Assignment linear_sum_assignment(const Tensor& cost);

// The same on a row-major host buffer of n * m doubles; returns, for each row, its column (-1 for a
// row left unassigned when n > m). The building block of the Tensor form above.
std::vector<int64_t> linear_sum_assignment(const double* cost, int64_t n, int64_t m);

}  // namespace sx::kernels
