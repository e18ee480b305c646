// Internal: row-wise sorting behind sort and topk (ops.h).
//
// Rows are the contiguous last dim of `keys` ([rows, len]); the public ops move the sorted dim to the
// end first. Order: ascending or descending by value, NaN counted larger than every number, and
// equal values keep their original order (stable) in both directions. topk(k) returns exactly the
// first k entries of that order.
#pragma once
#include "tensor/tensor.h"

namespace sx::detail {

// The backend functions (tensor/dispatch.h): sort.cpp defines the CPU table, sort_cuda.cu the CUDA
// one (a full stable sort of every row with CUB's segmented radix sort; for k < len it sorts into
// temporaries and copies their first k columns).
struct SortBackend {
  // keys: contiguous [rows, len]; values/indices: contiguous [rows, k] (k <= len; k == len sorts).
  void (*sort_rows)(const Tensor& keys, const Tensor& values, const Tensor& indices, int64_t k,
                    bool descending);
  static const SortBackend cpu, cuda;
};

}  // namespace sx::detail
