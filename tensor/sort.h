// Internal: row-wise sorting behind sort and topk (ops.h).
//
// Rows are the contiguous last dim of `keys` ([rows, len]); the public ops move the sorted dim to the
// end first. Order: ascending or descending by value, NaN counted larger than every number, and
// equal values keep their original order (stable) in both directions. topk(k) returns exactly the
// first k entries of that order.
#pragma once
#include "tensor/tensor.h"

namespace sx::detail {

// keys: contiguous [rows, len]; values/indices: contiguous [rows, k] (k <= len; k == len sorts).
void sort_rows_cpu(const Tensor& keys, const Tensor& values, const Tensor& indices, int64_t k, bool descending);
#ifdef SX_WITH_CUDA
// Full stable sort of every row (k == len) with CUB's segmented radix sort.
void sort_rows_cuda(const Tensor& keys, const Tensor& values, const Tensor& indices, bool descending);
#endif

}  // namespace sx::detail
