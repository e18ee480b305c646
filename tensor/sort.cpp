// sort and topk along any dim, CPU loops and dispatch (CUDA: sort_cuda.cu).
//
// Both ops move `dim` to the end (transpose + contiguous), sort each row, and move it back.
// CPU algorithm: per row (rows in parallel with OpenMP), a permutation 0..len-1 ordered by
//   std::stable_sort                (sort: O(len log len), stable)
//   std::partial_sort               (topk: O(len log k)), with ties broken by the smaller index,
// which yields exactly the first k entries of the stable order.
// CUDA algorithm (differs, see sort_cuda.cu): CUB's stable segmented radix sort of (value, index)
// pairs; topk sorts the whole row and keeps the first k. Both orders are the same total order
// (value, then original index), so CPU and CUDA results agree exactly, ties included.
// NaN compares larger than every number (last ascending, first descending), as in torch.
//
// Gradient of the values: the incoming gradient scattered back to the positions the values came
// from (scatter_add into zeros at the returned indices). Indices carry no gradient.
#include <algorithm>
#include <numeric>

#include "tensor/dispatch.h"
#include "tensor/index.h"
#include "tensor/ops.h"
#include "tensor/sort.h"

namespace sx {
namespace detail {
namespace {

template <class T>
bool is_nan(T v) {
  return v != v;
}
// Strict "comes before" of the ascending / descending order; NaN largest.
template <class T>
bool before_asc(T x, T y) {
  return (!is_nan(x) && is_nan(y)) || x < y;
}
template <class T>
bool before_desc(T x, T y) {
  return (is_nan(x) && !is_nan(y)) || x > y;
}

}  // namespace

namespace {

template <class T>
void sort_rows_loop(const T* kp, T* vp, int64_t* ip, int64_t rows, int64_t len, int64_t k, bool descending) {
#pragma omp parallel for if (rows > 1 && rows * len > 16384)
  for (int64_t r = 0; r < rows; ++r) {
    const T* row = kp + r * len;
    std::vector<int64_t> perm(len);
    std::iota(perm.begin(), perm.end(), int64_t{0});
    if (k == len) {
      if (descending)
        std::stable_sort(perm.begin(), perm.end(), [row](int64_t i, int64_t j) { return before_desc(row[i], row[j]); });
      else
        std::stable_sort(perm.begin(), perm.end(), [row](int64_t i, int64_t j) { return before_asc(row[i], row[j]); });
    } else {
      // Total order: value, then index (equals the stable order).
      if (descending)
        std::partial_sort(perm.begin(), perm.begin() + k, perm.end(), [row](int64_t i, int64_t j) {
          if (before_desc(row[i], row[j])) return true;
          if (before_desc(row[j], row[i])) return false;
          return i < j;
        });
      else
        std::partial_sort(perm.begin(), perm.begin() + k, perm.end(), [row](int64_t i, int64_t j) {
          if (before_asc(row[i], row[j])) return true;
          if (before_asc(row[j], row[i])) return false;
          return i < j;
        });
    }
    for (int64_t j = 0; j < k; ++j) {
      vp[r * k + j] = row[perm[j]];
      ip[r * k + j] = perm[j];
    }
  }
}

}  // namespace

void sort_rows_cpu(const Tensor& keys, const Tensor& values, const Tensor& indices, int64_t k, bool descending) {
  const int64_t rows = keys.size(0), len = keys.size(1);
  if (rows == 0 || k == 0) return;
  int64_t* ip = indices.data<int64_t>();
  SX_DISPATCH_ALL(keys.dtype(), "sort", [&] {
    sort_rows_loop(keys.data<scalar_t>(), values.data<scalar_t>(), ip, rows, len, k, descending);
  });
}


const SortBackend SortBackend::cpu = {sort_rows_cpu};

}  // namespace detail

namespace {

int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op) {
  const int64_t n = std::max<int64_t>(ndim, 1);
  if (dim < -n || dim >= n) SX_THROW(ValueError, op, ": dim ", dim, " out of range for a ", ndim, "-D tensor");
  return dim < 0 ? dim + n : dim;
}

// Sort (k == len) or top-k of every row along dim d of a (a has >= 1 dim).
std::pair<Tensor, Tensor> sort_along(const Tensor& a, int64_t d, int64_t k, bool descending, const char* op) {
  const int64_t last = a.dim() - 1;
  const int64_t len = a.size(d);
  Tensor keys = a.detach().transpose(d, last).contiguous();
  Shape tshape = keys.shape();  // a's shape with d and last swapped
  const int64_t rows = len == 0 ? 0 : keys.numel() / len;
  Shape oshape = tshape;
  oshape[last] = k;
  Tensor vals = Tensor::empty(oshape, a.dtype(), a.device());
  Tensor idx = Tensor::empty(oshape, DType::Int64, a.device());
  if (vals.numel() > 0) {
    backend<detail::SortBackend>(a.device(), op)
        .sort_rows(keys.view({rows, len}), vals.view({rows, k}), idx.view({rows, k}), k, descending);
  }
  vals = vals.transpose(d, last).contiguous();
  idx = idx.transpose(d, last).contiguous();
  if (!is_floating(a.dtype())) return {vals, idx};
  const Shape sa = a.shape();
  vals = attach_grad(vals, op, {a}, [sa, d, idx](const Tensor& g) {
    return std::vector<Tensor>{detail::scatter_add_zeros(sa, d, idx, g.contiguous())};
  });
  return {vals, idx};
}

}  // namespace

std::pair<Tensor, Tensor> sort(const Tensor& a, int64_t dim, bool descending) {
  SX_CHECK(a.defined(), "sort: undefined tensor");
  const int64_t d = wrap_dim(dim, a.dim(), "sort");
  if (a.dim() == 0) {
    auto r = sort_along(a.reshape({1}), 0, 1, descending, "sort");
    return {r.first.reshape({}), r.second.reshape({})};
  }
  return sort_along(a, d, a.size(d), descending, "sort");
}

std::pair<Tensor, Tensor> topk(const Tensor& a, int64_t k, int64_t dim, bool largest) {
  SX_CHECK(a.defined(), "topk: undefined tensor");
  const int64_t d = wrap_dim(dim, a.dim(), "topk");
  const int64_t len = a.dim() == 0 ? 1 : a.size(d);
  SX_CHECK(k >= 0 && k <= len, "topk: k = ", k, " out of range for dim ", d, " of size ", len, " (shape ",
           shape_str(a.shape()), ")");
  if (a.dim() == 0) {
    auto r = sort_along(a.reshape({1}), 0, k, largest, "topk");
    const Shape s = k == 0 ? Shape{0} : Shape{};
    return {r.first.reshape(s), r.second.reshape(s)};
  }
  return sort_along(a, d, k, largest, "topk");
}

}  // namespace sx
