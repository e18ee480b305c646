// matmul on CUDA: one cuBLAS strided-batched GEMM per call (no hand-written kernel).
//
// cuBLAS is column-major, our tensors row-major. A row-major n x m matrix C is, read column-major,
// the m x n matrix C^T; and C = A B  <=>  C^T = B^T A^T. So we ask cuBLAS for C^T = op(B) op(A)
// with the operands in swapped order: a row-major operand stored as-is is, seen column-major,
// already its own transpose (op N), and an operand stored transposed needs op T. ldc = m.
//
// TF32 tensor-core math for float32 is used only when sx::cuda::allow_tf32() is set; float64 is
// always exact IEEE. The handle is bound to the device's current stream, so the call is ordered
// after the kernels that produced A and B, with no synchronisation.
#include "tensor/cuda_context.h"
#include "tensor/matmul.h"

namespace sx::detail {

void gemm_cuda(const GemmProblem& p, int device) {
  cuda::set_device(device);
  cublasHandle_t h = cuda::cublas_handle(device);
  SX_CUBLAS_CHECK(cublasSetStream(h, cuda::current_stream(device)));
  const cublasOperation_t opa = p.a.trans ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t opb = p.b.trans ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int n = static_cast<int>(p.n), m = static_cast<int>(p.m), k = static_cast<int>(p.k);
  const int lda = static_cast<int>(p.a.ld), ldb = static_cast<int>(p.b.ld);
  const long long sa = p.a.batch_stride, sb = p.b.batch_stride, sc = p.n * p.m;
  const int batch = static_cast<int>(p.batch);
  if (p.dtype == DType::Float32) {
    SX_CUBLAS_CHECK(
        cublasSetMathMode(h, cuda::allow_tf32() ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
    const float alpha = 1.0f, beta = 0.0f;
    SX_CUBLAS_CHECK(cublasSgemmStridedBatched(h, opb, opa, m, n, k, &alpha,
                                              static_cast<const float*>(p.b.ptr), ldb, sb,
                                              static_cast<const float*>(p.a.ptr), lda, sa, &beta,
                                              static_cast<float*>(p.c), m, sc, batch));
  } else {
    SX_CUBLAS_CHECK(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
    const double alpha = 1.0, beta = 0.0;
    SX_CUBLAS_CHECK(cublasDgemmStridedBatched(h, opb, opa, m, n, k, &alpha,
                                              static_cast<const double*>(p.b.ptr), ldb, sb,
                                              static_cast<const double*>(p.a.ptr), lda, sa, &beta,
                                              static_cast<double*>(p.c), m, sc, batch));
  }
}

const MatmulBackend MatmulBackend::cuda = {gemm_cuda};

}  // namespace sx::detail
