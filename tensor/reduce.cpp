// Reductions and softmax of ops.h: dim handling, the [A, R, B] layout (reduce.h), device dispatch
// and autograd.
//
// Backward rules, written with the ops themselves so they run on the input's device:
//   sum:      the gradient, with the reduced dims re-inserted, expanded to the input's shape;
//   mean:     sum / n (composed, so autograd derives it); var: composed from mean, sub, mul, sum;
//   max/min over a dim: the gradient goes to the selected (first) index only:
//             grad_in = where(arange(n) along dim == index, grad, 0);
//   softmax:  dx = y * (g - sum(g * y, dim));   log_softmax: dx = g - exp(y) * sum(g, dim).
#include <algorithm>
#include <numeric>
#include <string>

#include "tensor/autograd.h"
#include "tensor/dispatch.h"
#include "tensor/elementwise.h"
#include "tensor/ops.h"
#include "tensor/reduce.h"

namespace sx {
namespace {

// Normalised, sorted, unique dims (empty request = all dims).
std::vector<int64_t> norm_dims(const char* op, const Tensor& a, const std::vector<int64_t>& dims) {
  const int64_t nd = a.dim();
  std::vector<int64_t> out;
  if (dims.empty()) {
    for (int64_t d = 0; d < nd; ++d) out.push_back(d);
    return out;
  }
  for (int64_t d : dims) {
    const int64_t lim = std::max<int64_t>(nd, 1);  // a 0-d tensor accepts dim 0 / -1
    SX_CHECK(d >= -lim && d < lim, op, ": dim ", d, " out of range for a tensor of shape ",
             shape_str(a.shape()));
    if (nd == 0) continue;
    const int64_t n = d < 0 ? d + nd : d;
    SX_CHECK(std::find(out.begin(), out.end(), n) == out.end(), op, ": dim ", d, " repeated");
    out.push_back(n);
  }
  std::sort(out.begin(), out.end());
  return out;
}

struct Plan {
  Tensor x;              // contiguous input in [A, R, B] order
  int64_t A = 1, R = 1, B = 1;
  Shape out_shape;       // keepdim or not, as requested
  Shape keep_shape;      // reduced dims as size 1
};

Plan plan(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
  Plan p;
  const int64_t nd = a.dim();
  std::vector<bool> red(nd, false);
  for (int64_t d : dims) red[d] = true;
  for (int64_t d = 0; d < nd; ++d) {
    p.keep_shape.push_back(red[d] ? 1 : a.size(d));
    if (!red[d] || keepdim) p.out_shape.push_back(red[d] ? 1 : a.size(d));
  }
  if (dims.empty()) {  // 0-d tensor (or nothing to reduce)
    p.x = a.detach().contiguous();
    p.A = a.numel();
    return p;
  }
  const bool block = dims.back() - dims.front() + 1 == static_cast<int64_t>(dims.size());
  int64_t lo = dims.front(), hi = dims.back();
  int64_t A = 1, R = 1, B = 1;
  for (int64_t d = 0; d < nd; ++d) {
    if (red[d]) R *= a.size(d);
    else if (d < lo) A *= a.size(d);
    else B *= a.size(d);
  }
  // Column reductions on the GPU need enough outputs to keep it busy; otherwise transpose.
  const bool cols_ok = B == 1 || !a.is_cuda() || A * B >= 2048;
  if (block && cols_ok) {
    p.x = a.detach().contiguous();
    p.A = A;
    p.R = R;
    p.B = B;
    (void)hi;
    return p;
  }
  std::vector<int64_t> perm;
  for (int64_t d = 0; d < nd; ++d)
    if (!red[d]) perm.push_back(d);
  for (int64_t d : dims) perm.push_back(d);
  p.x = a.detach().permute(perm).contiguous();
  p.A = A * B;
  p.R = R;
  p.B = 1;
  return p;
}

void check_float(const char* op, const Tensor& a) {
  ew::check_compute_dtype(op, a.dtype());
  SX_CHECK(a.dtype() == DType::Float32 || a.dtype() == DType::Float64, op,
           ": expected float32 or float64, got ", dtype_name(a.dtype()));
}

DType sum_dtype(DType dt) { return is_floating(dt) ? dt : DType::Int64; }

Tensor sum_raw(const Plan& p, DType in_dtype, Device dev) {
  Tensor out = Tensor::empty(p.out_shape, sum_dtype(in_dtype), dev);
  if (out.numel() == 0) return out;
  if (p.R == 0) return out.fill_(0.0);
  backend<red::ReduceBackend>(dev, "sum").sum(p.x, p.A, p.R, p.B, out);
  return out;
}

// The gradient of a keepdim-less reduction, reshaped to keep_shape and expanded to the input's.
Tensor expand_back(const Tensor& g, const Shape& keep_shape, const Shape& in_shape) {
  return g.reshape(keep_shape).expand(in_shape);
}

// max/min over one dim (values and indices) or, with values undefined, argmax/argmin.
void arg_raw(const char* op, const Tensor& a, int64_t dim, bool keepdim, bool is_max, bool want_values,
             Tensor& values, Tensor& indices, Plan& p) {
  ew::check_compute_dtype(op, a.dtype());
  SX_CHECK(a.dtype() != DType::Bool, op, ": not supported for bool tensors");
  std::vector<int64_t> dims = norm_dims(op, a, {dim});
  p = plan(a, dims, keepdim);
  SX_CHECK(p.R > 0 || p.A * p.B == 0, op, ": cannot reduce over a zero-size dim (shape ",
           shape_str(a.shape()), ")");
  if (want_values) values = Tensor::empty(p.out_shape, a.dtype(), a.device());
  indices = Tensor::empty(p.out_shape, DType::Int64, a.device());
  if (indices.numel() == 0) return;
  backend<red::ReduceBackend>(a.device(), "arg").arg(p.x, p.A, p.R, p.B, is_max, values, indices);
}

// where(arange(n) along dim == index, g, 0), the input-shaped gradient of a selection.
Tensor scatter_selected(const Tensor& g_keep, const Tensor& idx_keep, const Shape& in_shape, int64_t dim) {
  const int64_t nd = static_cast<int64_t>(in_shape.size());
  Shape iota_shape(std::max<int64_t>(nd, 0), 1);
  Tensor iota = Tensor::arange(nd == 0 ? 1 : in_shape[dim], DType::Int64, g_keep.device());
  if (nd > 0) {
    iota_shape[dim] = in_shape[dim];
    iota = iota.reshape(iota_shape);
  } else {
    iota = iota.reshape({});
  }
  Tensor mask = eq(iota, idx_keep);
  Tensor zero = Tensor::scalar(0.0, g_keep.dtype(), g_keep.device());
  return where(mask, g_keep, zero);
}

std::pair<Tensor, Tensor> max_min_dim(const char* op, const Tensor& a, int64_t dim, bool keepdim, bool is_max) {
  SX_CHECK(a.defined(), op, ": undefined tensor argument");
  Tensor values, indices;
  Plan p;
  arg_raw(op, a, dim, keepdim, is_max, true, values, indices, p);
  const int64_t d = a.dim() == 0 ? 0 : (dim < 0 ? dim + a.dim() : dim);
  Shape in_shape = a.shape(), keep_shape = p.keep_shape;
  Tensor idx_keep = indices.reshape(keep_shape);
  values = attach_grad(values, op, {a}, [in_shape, keep_shape, idx_keep, d](const Tensor& g) -> std::vector<Tensor> {
    return {scatter_selected(g.reshape(keep_shape), idx_keep, in_shape, d)};
  });
  return {values, indices};
}

Tensor max_min_all(const char* op, const Tensor& a, bool is_max) {
  SX_CHECK(a.defined(), op, ": undefined tensor argument");
  SX_CHECK(a.numel() > 0, op, ": the tensor is empty (shape ", shape_str(a.shape()), ")");
  Tensor flat = a.detach().reshape({a.numel()});
  Tensor values, indices;
  Plan p;
  arg_raw(op, flat, 0, false, is_max, true, values, indices, p);
  Shape in_shape = a.shape();
  Tensor idx = indices;
  return attach_grad(values, op, {a}, [in_shape, idx](const Tensor& g) -> std::vector<Tensor> {
    const int64_t n = shape_numel(in_shape);
    Tensor flat_g = scatter_selected(g.reshape({1}), idx.reshape({1}), Shape{n}, 0);
    return {flat_g.reshape(in_shape)};
  });
}

Tensor softmax_impl(const char* op, const Tensor& a, int64_t dim, bool log) {
  SX_CHECK(a.defined(), op, ": undefined tensor argument");
  check_float(op, a);
  std::vector<int64_t> dims = norm_dims(op, a, {dim});
  const int64_t d = dims.empty() ? -1 : dims[0];
  Tensor out = Tensor::empty(a.shape(), a.dtype(), a.device());
  if (out.numel() > 0) {
    if (d < 0) {  // 0-d: a single-element line
      Tensor x = a.detach().contiguous();
      backend<red::ReduceBackend>(a.device(), "softmax").softmax(x, 1, 1, 1, log, out);
    } else {
      int64_t A = 1, B = 1;
      for (int64_t i = 0; i < d; ++i) A *= a.size(i);
      for (int64_t i = d + 1; i < a.dim(); ++i) B *= a.size(i);
      Tensor x = a.detach().contiguous();
      backend<red::ReduceBackend>(a.device(), "softmax").softmax(x, A, a.size(d), B, log, out);
    }
  }
  Tensor y = out.detach();
  const int64_t gd = d < 0 ? 0 : d;
  const bool zero_d = d < 0;
  return attach_grad(out, op, {a}, [y, gd, zero_d, log](const Tensor& g) -> std::vector<Tensor> {
    std::vector<int64_t> rd = zero_d ? std::vector<int64_t>{} : std::vector<int64_t>{gd};
    if (log) return {sub(g, mul(exp(y), sum(g, rd, true)))};
    return {mul(y, sub(g, sum(mul(g, y), rd, true)))};
  });
}

}  // namespace

// ---- public ops --------------------------------------------------------------------------------
Tensor sum(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
  SX_CHECK(a.defined(), "sum: undefined tensor argument");
  ew::check_compute_dtype("sum", a.dtype());
  std::vector<int64_t> nd = norm_dims("sum", a, dims);
  Plan p = plan(a, nd, keepdim);
  Tensor out = sum_raw(p, a.dtype(), a.device());
  Shape in_shape = a.shape(), keep_shape = p.keep_shape;
  return attach_grad(out, "sum", {a}, [in_shape, keep_shape](const Tensor& g) -> std::vector<Tensor> {
    return {expand_back(g, keep_shape, in_shape)};
  });
}

Tensor mean(const Tensor& a, const std::vector<int64_t>& dims, bool keepdim) {
  SX_CHECK(a.defined(), "mean: undefined tensor argument");
  check_float("mean", a);
  std::vector<int64_t> nd = norm_dims("mean", a, dims);
  int64_t n = 1;
  for (int64_t d : nd) n *= a.size(d);
  return div(sum(a, dims, keepdim), static_cast<double>(n));
}

Tensor var(const Tensor& a, const std::vector<int64_t>& dims, bool unbiased, bool keepdim) {
  SX_CHECK(a.defined(), "var: undefined tensor argument");
  check_float("var", a);
  std::vector<int64_t> nd = norm_dims("var", a, dims);
  int64_t n = 1;
  for (int64_t d : nd) n *= a.size(d);
  Tensor centered = sub(a, mean(a, dims, /*keepdim=*/true));
  const double denom = static_cast<double>(n) - (unbiased ? 1.0 : 0.0);
  // n - ddof <= 0 gives inf/NaN, as in PyTorch.
  return div(sum(mul(centered, centered), dims, keepdim), denom);
}

std::pair<Tensor, Tensor> max(const Tensor& a, int64_t dim, bool keepdim) {
  return max_min_dim("max", a, dim, keepdim, true);
}
std::pair<Tensor, Tensor> min(const Tensor& a, int64_t dim, bool keepdim) {
  return max_min_dim("min", a, dim, keepdim, false);
}
Tensor max(const Tensor& a) { return max_min_all("max", a, true); }
Tensor min(const Tensor& a) { return max_min_all("min", a, false); }

Tensor argmax(const Tensor& a, int64_t dim, bool keepdim) {
  SX_CHECK(a.defined(), "argmax: undefined tensor argument");
  Tensor values, indices;
  Plan p;
  arg_raw("argmax", a, dim, keepdim, true, false, values, indices, p);
  return indices;
}
Tensor argmin(const Tensor& a, int64_t dim, bool keepdim) {
  SX_CHECK(a.defined(), "argmin: undefined tensor argument");
  Tensor values, indices;
  Plan p;
  arg_raw("argmin", a, dim, keepdim, false, false, values, indices, p);
  return indices;
}

Tensor softmax(const Tensor& a, int64_t dim) { return softmax_impl("softmax", a, dim, false); }
Tensor log_softmax(const Tensor& a, int64_t dim) { return softmax_impl("log_softmax", a, dim, true); }

}  // namespace sx
