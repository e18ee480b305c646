// Internal: the batched GEMM behind sx::matmul (ops.h), shared by the CPU (OpenBLAS) and CUDA
// (cuBLAS) backends.
//
// A GemmProblem describes C[b] = A[b] @ B[b] for b in [0, batch), row-major thinking:
//   A[b] is n x k, B[b] is k x m, C[b] is n x m, C contiguous (ldc = m, batch stride n*m).
// Each operand is read in place: `trans` says that its storage holds the transpose in row-major
// order (a plain transposed view such as x.transpose(-1, -2)), `ld` is the row pitch of what is
// stored, and `batch_stride` the distance between consecutive matrices (0 for a broadcast operand).
// So no transposed or broadcast operand is ever copied.
#pragma once
#include <cstdint>

#include "tensor/tensor.h"

namespace sx::detail {

struct GemmOperand {
  const void* ptr = nullptr;
  bool trans = false;
  int64_t ld = 1;
  int64_t batch_stride = 0;
};

struct GemmProblem {
  DType dtype = DType::Float32;
  int64_t batch = 1, n = 0, m = 0, k = 0;
  GemmOperand a, b;
  void* c = nullptr;  // contiguous [batch, n, m]
};

// The backend functions (tensor/dispatch.h): matmul.cpp defines the CPU table (OpenBLAS; `device`
// unused), matmul_cuda.cu the CUDA one (cuBLAS on CUDA device `device`).
struct MatmulBackend {
  void (*gemm)(const GemmProblem& p, int device);
  static const MatmulBackend cpu, cuda;
};

}  // namespace sx::detail
