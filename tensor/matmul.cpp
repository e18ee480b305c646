// matmul: torch.matmul semantics over a batched GEMM (OpenBLAS on the CPU, cuBLAS on CUDA).
//
// Forms (as torch.matmul):
//   [k] x [k]            -> []            (dot product)
//   [n,k] x [k]          -> [n]           (matrix-vector)
//   [k] x [k,m]          -> [m]           (vector-matrix)
//   [...,n,k] x [...,k,m] -> [...,n,m]    (batch dims broadcast NumPy-style)
// The vector forms are reduced to the matrix form with unsqueeze/squeeze views, so their gradients
// come for free from the views' autograd.
//
// Operands are handed to BLAS without copies whenever possible:
//   - last two dims row-major (stride[-1] == 1)           -> BLAS "N" with ld = stride[-2]
//   - last two dims a plain transpose (stride[-2] == 1)   -> BLAS "T" with ld = stride[-1]
//   - batch dims that collapse to one stride (including 0 for a broadcast operand) -> strided batch.
// Anything else (e.g. a slice with step) is made contiguous first.
// When B is shared by every batch (stride 0) and A's matrices are stacked rows, the whole batch
// folds into one big GEMM ([batch*n, k] x [k, m]): the common "activations @ weight" case.
//
// Backward (for C = A @ B): dA = dC @ B^T, dB = A^T @ dC, each summed back over broadcast batch
// dims with sum_to. B^T and A^T are transposed views, so backward passes BLAS transposes too.
#include <climits>
#include <string>

#include <cblas.h>

#include "tensor/dispatch.h"
#include "tensor/matmul.h"
#include "tensor/ops.h"

namespace sx {
namespace {

// Batch shapes broadcast like NumPy; the error names the full operand shapes.
Shape broadcast_batch(const Shape& a, const Shape& b, const Tensor& ta, const Tensor& tb) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n, 1);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1)
      SX_THROW(ValueError, "matmul: batch dims of ", shape_str(ta.shape()), " and ", shape_str(tb.shape()),
               " do not broadcast");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// Layout of a rows x cols matrix with strides (s_r, s_c) as BLAS sees it.
// Returns false when neither row-major nor transposed storage fits.
bool matrix_layout(int64_t rows, int64_t cols, int64_t s_r, int64_t s_c, bool& trans, int64_t& ld) {
  if ((cols == 1 || s_c == 1) && (rows == 1 || s_r >= std::max<int64_t>(1, cols))) {
    trans = false;
    ld = rows == 1 ? std::max<int64_t>(1, cols) : s_r;
    return true;
  }
  if ((rows == 1 || s_r == 1) && (cols == 1 || s_c >= std::max<int64_t>(1, rows))) {
    trans = true;
    ld = cols == 1 ? std::max<int64_t>(1, rows) : s_c;
    return true;
  }
  return false;
}

// One stride that walks all batch matrices in row-major batch order, if there is one.
bool collapse_batch(const Tensor& x, int64_t nbatch_dims, int64_t& stride) {
  stride = 0;
  int64_t prev = -1;  // the last (innermost) batch dim of size > 1 seen so far
  for (int64_t d = nbatch_dims - 1; d >= 0; --d) {
    if (x.size(d) == 1) continue;
    if (prev < 0) {
      stride = x.stride(d);
    } else if (x.stride(d) != x.stride(prev) * x.size(prev)) {
      return false;
    }
    prev = d;
  }
  return true;
}

// Prepare one operand (a rows x cols matrix batch) expanded to `batch`; may replace `x` by a copy.
detail::GemmOperand prepare(Tensor& x, const Shape& batch, int64_t rows, int64_t cols) {
  Shape full = batch;
  full.push_back(rows);
  full.push_back(cols);
  const int64_t nb = static_cast<int64_t>(batch.size());
  detail::GemmOperand op;
  Tensor e = x.expand(full);
  if (!matrix_layout(rows, cols, e.stride(nb), e.stride(nb + 1), op.trans, op.ld)) {
    e = x.contiguous().expand(full);
    matrix_layout(rows, cols, e.stride(nb), e.stride(nb + 1), op.trans, op.ld);
  }
  if (!collapse_batch(e, nb, op.batch_stride)) {
    e = e.contiguous();
    matrix_layout(rows, cols, e.stride(nb), e.stride(nb + 1), op.trans, op.ld);
    collapse_batch(e, nb, op.batch_stride);
  }
  x = e;  // keep the storage alive while the GEMM runs
  op.ptr = e.data_ptr();
  return op;
}

void check_blas_int(int64_t v, const char* what, const Tensor& a, const Tensor& b) {
  if (v > INT_MAX)
    SX_THROW(ValueError, "matmul: ", what, " = ", v, " exceeds the 32-bit BLAS limit (operands ",
             shape_str(a.shape()), " and ", shape_str(b.shape()), ")");
}

// a, b: at least 2-D.
Tensor matmul_nd(const Tensor& a, const Tensor& b) {
  const int64_t n = a.size(-2), k = a.size(-1), m = b.size(-1);
  if (b.size(-2) != k)
    SX_THROW(ValueError, "matmul: inner dims differ: ", shape_str(a.shape()), " x ", shape_str(b.shape()));
  Shape ba(a.shape().begin(), a.shape().end() - 2), bb(b.shape().begin(), b.shape().end() - 2);
  Shape batch = broadcast_batch(ba, bb, a, b);
  Shape out_shape = batch;
  out_shape.push_back(n);
  out_shape.push_back(m);
  Tensor out = Tensor::empty(out_shape, a.dtype(), a.device());
  const int64_t nbatch = shape_numel(batch);

  if (out.numel() > 0) {
    if (k == 0) {
      out.zero_();
    } else {
      Tensor ae = a.detach(), be = b.detach();
      detail::GemmProblem p;
      p.dtype = a.dtype();
      p.batch = nbatch;
      p.n = n;
      p.m = m;
      p.k = k;
      p.a = prepare(ae, batch, n, k);
      p.b = prepare(be, batch, k, m);
      p.c = out.data_ptr();
      // Fold a batch that shares B into one taller GEMM.
      if (p.batch > 1 && p.b.batch_stride == 0 && !p.a.trans && p.a.batch_stride == n * p.a.ld) {
        p.n = n * p.batch;
        p.batch = 1;
        p.a.batch_stride = 0;
      }
      for (int64_t v : {p.n, p.m, p.k, p.a.ld, p.b.ld, p.batch}) check_blas_int(v, "a dimension", a, b);
      backend<detail::MatmulBackend>(a.device(), "matmul").gemm(p, a.device().index);
    }
  }

  const bool ra = a.requires_grad(), rb = b.requires_grad();
  Tensor ad = a.detach(), bd = b.detach();
  const Shape sa = a.shape(), sb = b.shape();
  return attach_grad(out, "matmul", {a, b}, [ad, bd, ra, rb, sa, sb](const Tensor& g) {
    Tensor ga, gb;
    if (ra) ga = sum_to(matmul(g, bd.transpose(-1, -2)), sa);
    if (rb) gb = sum_to(matmul(ad.transpose(-1, -2), g), sb);
    return std::vector<Tensor>{ga, gb};
  });
}

}  // namespace

namespace detail {

void gemm_cpu(const GemmProblem& p, int /*device: the CPU*/) {
  const CBLAS_TRANSPOSE ta = p.a.trans ? CblasTrans : CblasNoTrans;
  const CBLAS_TRANSPOSE tb = p.b.trans ? CblasTrans : CblasNoTrans;
  const int n = static_cast<int>(p.n), m = static_cast<int>(p.m), k = static_cast<int>(p.k);
  const int lda = static_cast<int>(p.a.ld), ldb = static_cast<int>(p.b.ld);
  for (int64_t i = 0; i < p.batch; ++i) {
    if (p.dtype == DType::Float32) {
      const float* A = static_cast<const float*>(p.a.ptr) + i * p.a.batch_stride;
      const float* B = static_cast<const float*>(p.b.ptr) + i * p.b.batch_stride;
      float* C = static_cast<float*>(p.c) + i * p.n * p.m;
      cblas_sgemm(CblasRowMajor, ta, tb, n, m, k, 1.0f, A, lda, B, ldb, 0.0f, C, m);
    } else {
      const double* A = static_cast<const double*>(p.a.ptr) + i * p.a.batch_stride;
      const double* B = static_cast<const double*>(p.b.ptr) + i * p.b.batch_stride;
      double* C = static_cast<double*>(p.c) + i * p.n * p.m;
      cblas_dgemm(CblasRowMajor, ta, tb, n, m, k, 1.0, A, lda, B, ldb, 0.0, C, m);
    }
  }
}

const MatmulBackend MatmulBackend::cpu = {gemm_cpu};

}  // namespace detail

Tensor matmul(const Tensor& a, const Tensor& b) {
  SX_CHECK(a.defined() && b.defined(), "matmul: undefined operand");
  SX_CHECK(a.device() == b.device(), "matmul: operands on different devices: ", a.device().str(), " and ",
           b.device().str());
  SX_CHECK(a.dtype() == b.dtype(), "matmul: dtypes differ: ", dtype_name(a.dtype()), " and ",
           dtype_name(b.dtype()));
  SX_CHECK(a.dtype() == DType::Float32 || a.dtype() == DType::Float64,
           "matmul: expected float32 or float64, got ", dtype_name(a.dtype()));
  SX_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul: both operands need at least 1 dim, got ",
           shape_str(a.shape()), " and ", shape_str(b.shape()));
  if (a.dim() == 1 && b.dim() == 1) {
    SX_CHECK(a.size(0) == b.size(0), "matmul: vector sizes differ: ", shape_str(a.shape()), " and ",
             shape_str(b.shape()));
    return matmul_nd(a.unsqueeze(0), b.unsqueeze(1)).squeeze(1).squeeze(0);
  }
  if (a.dim() == 1) {
    SX_CHECK(a.size(0) == b.size(-2), "matmul: inner dims differ: ", shape_str(a.shape()), " x ",
             shape_str(b.shape()));
    return matmul_nd(a.unsqueeze(0), b).squeeze(-2);
  }
  if (b.dim() == 1) {
    SX_CHECK(a.size(-1) == b.size(0), "matmul: inner dims differ: ", shape_str(a.shape()), " x ",
             shape_str(b.shape()));
    return matmul_nd(a, b.unsqueeze(1)).squeeze(-1);
  }
  return matmul_nd(a, b);
}

}  // namespace sx
