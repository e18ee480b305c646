// Internal machinery of the reductions and softmax (the public API is ops.h).
//
// The [A, R, B] layout
// --------------------
// Every reduction here reduces a *contiguous* tensor viewed as [A, R, B] over its middle extent R:
//   out[a, b] = reduce_r x[a, r, b].
// reduce.cpp brings any request into that form:
//   - the reduced dims form one consecutive block of a contiguous tensor: A = product of the dims
//     before the block, R = the block, B = the dims after it (no copy: sum over dim 0 of [N, C] is
//     A=1, R=N, B=C, a "column" reduction);
//   - otherwise the kept dims are permuted first and the reduced dims last, and contiguous() makes
//     the copy: A = kept, R = reduced, B = 1 (a "row" reduction).
// The output is contiguous [A*B] in the kept dims' order (kept before the block, then after it),
// which is exactly the output shape's row-major order in both cases.
#pragma once
#include <cstdint>

#include "tensor/tensor.h"

namespace sx::red {

// The backend functions (tensor/dispatch.h): reduce_cpu.cpp defines the CPU table, reduce_cuda.cu
// the CUDA one.
struct ReduceBackend {
  // out: contiguous, A*B elements; dtype float32 for float32 input, float64 for float64, int64 for
  // integer and bool inputs.
  void (*sum)(const Tensor& x, int64_t A, int64_t R, int64_t B, const Tensor& out);
  // values (x's dtype) may be undefined (argmax/argmin); indices (int64) may be undefined (max over
  // all elements). R >= 1.
  void (*arg)(const Tensor& x, int64_t A, int64_t R, int64_t B, bool is_max, const Tensor& values,
              const Tensor& indices);
  // softmax / log_softmax along R; out has x's shape and dtype (float32/float64).
  void (*softmax)(const Tensor& x, int64_t A, int64_t R, int64_t B, bool log, const Tensor& out);
  static const ReduceBackend cpu, cuda;
};

}  // namespace sx::red
