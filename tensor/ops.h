// Differentiable tensor ops. Every op runs on the CPU or CUDA according to its inputs' device
// (all inputs must share one device), supports float32 and float64 (and integer dtypes where that
// makes sense), and records autograd (autograd.h) when an input requires grad.
//
// Broadcasting follows NumPy: shapes are aligned from the right, size-1 dims stretch. Gradients of
// broadcast inputs are summed back to the input's shape (sum_to).
#pragma once
#include <optional>
#include <utility>
#include <vector>

#include "tensor/autograd.h"
#include "tensor/tensor.h"

namespace sx {

// ---- broadcasting helpers ------------------------------------------------------------------
Shape broadcast_shapes(const Shape& a, const Shape& b);  // throws ValueError naming both shapes
Tensor sum_to(const Tensor& t, const Shape& shape);      // reduce a broadcast result to shape

// ---- elementwise binary (broadcasting, type promotion) -------------------------------------
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& a, double exponent);
Tensor minimum(const Tensor& a, const Tensor& b);  // gradient to a where a<b, to b where b<a, half at ties
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);  // cond: Bool

// scalar forms (the scalar takes the tensor's dtype)
Tensor add(const Tensor& a, double s);
Tensor sub(const Tensor& a, double s);
Tensor rsub(double s, const Tensor& a);  // s - a
Tensor mul(const Tensor& a, double s);
Tensor div(const Tensor& a, double s);

// ---- elementwise unary ----------------------------------------------------------------------
Tensor neg(const Tensor& a);
Tensor abs(const Tensor& a);
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor sqrt(const Tensor& a);
Tensor clamp(const Tensor& a, std::optional<double> lo, std::optional<double> hi);
Tensor relu(const Tensor& a);
Tensor leaky_relu(const Tensor& a, double negative_slope = 0.01);
Tensor sigmoid(const Tensor& a);
Tensor tanh(const Tensor& a);
Tensor softplus(const Tensor& a, double beta = 1.0, double threshold = 20.0);

// ---- comparisons and logic (no gradient; result dtype Bool) --------------------------------
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor eq(const Tensor& a, double s);
Tensor ne(const Tensor& a, double s);
Tensor lt(const Tensor& a, double s);
Tensor le(const Tensor& a, double s);
Tensor gt(const Tensor& a, double s);
Tensor ge(const Tensor& a, double s);
Tensor logical_and(const Tensor& a, const Tensor& b);
Tensor logical_or(const Tensor& a, const Tensor& b);
Tensor logical_not(const Tensor& a);
Tensor isfinite(const Tensor& a);

// ---- reductions (dims may be negative; empty dims = all) -----------------------------------
Tensor sum(const Tensor& a, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& a, const std::vector<int64_t>& dims = {}, bool keepdim = false);
// Variance with Bessel's correction when unbiased (torch.var's default).
Tensor var(const Tensor& a, const std::vector<int64_t>& dims = {}, bool unbiased = true,
           bool keepdim = false);
// max/min over one dim: values (differentiable) and int64 indices (first occurrence).
std::pair<Tensor, Tensor> max(const Tensor& a, int64_t dim, bool keepdim = false);
std::pair<Tensor, Tensor> min(const Tensor& a, int64_t dim, bool keepdim = false);
Tensor max(const Tensor& a);  // over all elements
Tensor min(const Tensor& a);
Tensor argmax(const Tensor& a, int64_t dim, bool keepdim = false);
Tensor argmin(const Tensor& a, int64_t dim, bool keepdim = false);
Tensor softmax(const Tensor& a, int64_t dim);      // numerically stable (max subtracted)
Tensor log_softmax(const Tensor& a, int64_t dim);  // log-sum-exp form

// ---- linear algebra --------------------------------------------------------------------------
// matmul: [n,k]x[k,m], batched [...,n,k]x[...,k,m] with broadcast batch dims, vector forms as
// torch.matmul. OpenBLAS sgemm/dgemm on the CPU, cuBLAS on CUDA (TF32 only when allowed).
Tensor matmul(const Tensor& a, const Tensor& b);

// ---- joining ---------------------------------------------------------------------------------
Tensor cat(const std::vector<Tensor>& ts, int64_t dim);
Tensor stack(const std::vector<Tensor>& ts, int64_t dim);

// ---- indexing (indices are Int64 on the input's device) ------------------------------------
Tensor index_select(const Tensor& a, int64_t dim, const Tensor& index);
Tensor gather(const Tensor& a, int64_t dim, const Tensor& index);
// Returns a copy of `a` with src added at index along dim (out-of-place scatter_add).
Tensor scatter_add(const Tensor& a, int64_t dim, const Tensor& index, const Tensor& src);
Tensor masked_select(const Tensor& a, const Tensor& mask);  // 1-D result; mask broadcasts
Tensor nonzero(const Tensor& a);                            // [n, ndim] int64
// topk along dim: values (differentiable) and int64 indices; largest first by default; sorted.
std::pair<Tensor, Tensor> topk(const Tensor& a, int64_t k, int64_t dim = -1, bool largest = true);
// Stable sort along dim: values and int64 indices.
std::pair<Tensor, Tensor> sort(const Tensor& a, int64_t dim = -1, bool descending = false);

// ---- random (Generator in random.h) ------------------------------------------------------------
class Generator;
Tensor rand(const Shape& shape, Generator& gen, DType dtype = DType::Float32, Device device = Device::cpu());
Tensor randn(const Shape& shape, Generator& gen, DType dtype = DType::Float32, Device device = Device::cpu());
Tensor randint(int64_t low, int64_t high, const Shape& shape, Generator& gen,
               DType dtype = DType::Int64, Device device = Device::cpu());
Tensor bernoulli(const Tensor& p, Generator& gen);  // same shape/device, values 0/1 in p's dtype

// ---- in-place helpers for optimizers (no autograd; see Tensor::copy_) ----------------------
void add_(Tensor& a, const Tensor& b, double alpha = 1.0);  // a += alpha * b
void mul_(Tensor& a, double s);

// ---- operators -------------------------------------------------------------------------------
inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator-(const Tensor& a) { return neg(a); }
inline Tensor operator+(const Tensor& a, double s) { return add(a, s); }
inline Tensor operator-(const Tensor& a, double s) { return sub(a, s); }
inline Tensor operator*(const Tensor& a, double s) { return mul(a, s); }
inline Tensor operator/(const Tensor& a, double s) { return div(a, s); }
inline Tensor operator+(double s, const Tensor& a) { return add(a, s); }
inline Tensor operator-(double s, const Tensor& a) { return rsub(s, a); }
inline Tensor operator*(double s, const Tensor& a) { return mul(a, s); }

}  // namespace sx
