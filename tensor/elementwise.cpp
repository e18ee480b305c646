// Elementwise ops of ops.h: broadcasting, type promotion, device dispatch and autograd.
//
// Each op (1) checks devices and dtypes, (2) casts its operands to the common dtype (NumPy rules,
// promote_types), (3) allocates the output with the broadcast shape, (4) builds the iterator and
// launches the shared functor on the operands' device, and (5) attaches an autograd node whose
// backward is written with these same ops (so it runs on the same device). Gradients of broadcast
// operands are summed back to the operand's shape with sum_to and cast back to its dtype.
#include <algorithm>
#include <cmath>
#include <string>

#include "tensor/autograd.h"
#include "tensor/dispatch.h"
#include "tensor/elementwise.h"
#include "tensor/ops.h"

namespace sx {
namespace ew {

void check_compute_dtype(const char* op, DType dt) {
  if (dt == DType::Float16 || dt == DType::BFloat16)
    throw ValueError(std::string(op) + ": " + dtype_name(dt) +
                     " is a storage-only dtype; convert with to(DType::Float32) first");
}

Iter make_iter(const char* op, const Tensor& out, std::initializer_list<Tensor> inputs) {
  Iter it;
  it.nargs = 1 + static_cast<int>(inputs.size());
  it.numel = out.numel();
  it.device = out.device();
  const Shape& shape = out.shape();
  const int nd = static_cast<int>(shape.size());
  // 1. strides of every operand in the output's dims (0 where broadcast).
  std::vector<std::vector<int64_t>> st(it.nargs, std::vector<int64_t>(nd, 0));
  for (int d = 0; d < nd; ++d) st[0][d] = out.strides()[d];
  it.ptrs[0] = out.data_ptr();
  int k = 1;
  for (const Tensor& t : inputs) {
    const int td = static_cast<int>(t.dim());
    SX_CHECK(td <= nd, op, ": cannot broadcast ", shape_str(t.shape()), " to ", shape_str(shape));
    for (int d = 0; d < td; ++d) {
      const int od = nd - td + d;
      if (t.shape()[d] == shape[od]) {
        st[k][od] = t.shape()[d] == 1 ? 0 : t.strides()[d];
      } else {
        SX_CHECK(t.shape()[d] == 1, op, ": cannot broadcast ", shape_str(t.shape()), " to ",
                 shape_str(shape));
        st[k][od] = 0;
      }
    }
    it.ptrs[k] = t.data_ptr();
    ++k;
  }
  // 2. drop size-1 dims, merge neighbours whose strides chain.
  std::vector<int64_t> sizes;
  std::vector<std::vector<int64_t>> ms(it.nargs);
  for (int d = 0; d < nd; ++d) {
    if (shape[d] == 1) continue;
    if (!sizes.empty()) {
      bool mergeable = true;
      for (int a = 0; a < it.nargs; ++a)
        if (ms[a].back() != st[a][d] * shape[d]) mergeable = false;
      if (mergeable) {
        sizes.back() *= shape[d];
        for (int a = 0; a < it.nargs; ++a) ms[a].back() = st[a][d];
        continue;
      }
    }
    sizes.push_back(shape[d]);
    for (int a = 0; a < it.nargs; ++a) ms[a].push_back(st[a][d]);
  }
  if (sizes.empty()) {  // 0-d or all-ones shape: one element
    sizes.push_back(1);
    for (int a = 0; a < it.nargs; ++a) ms[a].push_back(1);
  }
  if (static_cast<int>(sizes.size()) > kMaxDims) {
    if (!out.is_contiguous())
      throw ValueError(std::string(op) + ": more than " + std::to_string(kMaxDims) +
                       " non-mergeable dims in a strided output (shape " + shape_str(shape) + ")");
    // Dense copies of the inputs in the output's shape merge into a single dim.
    std::vector<Tensor> dense;
    for (const Tensor& t : inputs) dense.push_back(t.expand(shape).contiguous());
    Iter d;
    if (dense.size() == 1) d = make_iter(op, out, {dense[0]});
    else if (dense.size() == 2) d = make_iter(op, out, {dense[0], dense[1]});
    else d = make_iter(op, out, {dense[0], dense[1], dense[2]});
    d.keep_alive = std::move(dense);
    return d;
  }
  it.ndim = static_cast<int>(sizes.size());
  for (int d = 0; d < it.ndim; ++d) {
    it.sizes[d] = sizes[d];
    for (int a = 0; a < it.nargs; ++a) it.strides[a][d] = ms[a][d];
  }
  // 3. contiguous: one dim, unit strides everywhere.
  it.contiguous = it.ndim == 1;
  for (int a = 0; a < it.nargs && it.contiguous; ++a)
    if (it.strides[a][0] != 1 && it.sizes[0] != 1) it.contiguous = false;
  return it;
}

void launch_unary(UOp op, const Params& p, DType dtype, const Iter& it) {
  if (it.numel == 0) return;
  backend<ElementwiseBackend>(it.device, "elementwise").unary(op, p, dtype, it);
}
void launch_binary(BOp op, const Params& p, DType dtype, const Iter& it) {
  if (it.numel == 0) return;
  backend<ElementwiseBackend>(it.device, "elementwise").binary(op, p, dtype, it);
}
void launch_ternary(TOp op, const Params& p, DType dtype, const Iter& it) {
  if (it.numel == 0) return;
  backend<ElementwiseBackend>(it.device, "elementwise").ternary(op, p, dtype, it);
}

}  // namespace ew

using ew::BOp;
using ew::Params;
using ew::TOp;
using ew::UOp;

// ---- broadcasting helpers ------------------------------------------------------------------
Shape broadcast_shapes(const Shape& a, const Shape& b) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n, 1);
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da == db || db == 1) {
      out[i] = da;
    } else if (da == 1) {
      out[i] = db;
    } else {
      throw ValueError("broadcast_shapes: shapes " + shape_str(a) + " and " + shape_str(b) +
                       " are not broadcastable (dim " + std::to_string(i) + ": " +
                       std::to_string(da) + " vs " + std::to_string(db) + ")");
    }
  }
  return out;
}

Tensor sum_to(const Tensor& t, const Shape& shape) {
  if (t.shape() == shape) return t;
  const int64_t nd = t.dim();
  const int64_t sd = static_cast<int64_t>(shape.size());
  if (sd > nd) {  // only leading 1s may be added
    for (int64_t i = 0; i < sd - nd; ++i)
      SX_CHECK(shape[i] == 1, "sum_to: cannot reduce ", shape_str(t.shape()), " to ", shape_str(shape));
    return t.reshape(shape);
  }
  const int64_t lead = nd - sd;
  std::vector<int64_t> dims;
  for (int64_t i = 0; i < lead; ++i) dims.push_back(i);
  for (int64_t i = 0; i < sd; ++i) {
    const int64_t ts = t.size(lead + i);
    if (shape[i] == ts) continue;
    SX_CHECK(shape[i] == 1, "sum_to: cannot reduce ", shape_str(t.shape()), " to ", shape_str(shape));
    dims.push_back(lead + i);
  }
  if (dims.empty()) return t.reshape(shape);
  return sum(t, dims, /*keepdim=*/true).reshape(shape);
}

namespace {

Device common_device(const char* op, std::initializer_list<const Tensor*> ts) {
  const Tensor* first = nullptr;
  for (const Tensor* t : ts) {
    SX_CHECK(t->defined(), op, ": undefined tensor argument");
    if (!first) {
      first = t;
    } else if (t->device() != first->device()) {
      throw ValueError(std::string(op) + ": all tensors must be on one device, got " +
                       first->device().str() + " and " + t->device().str());
    }
  }
  return first->device();
}

// A value tensor in dtype dt (no autograd history: kernels work on raw values).
Tensor as_dtype(const Tensor& t, DType dt) {
  Tensor d = t.detach();
  return d.dtype() == dt ? d : d.to(dt);
}

// Computes op(a, b) with both cast to `compute`, output dtype `out_dtype`.
Tensor binary_raw(const char* name, BOp op, const Params& p, const Tensor& a, const Tensor& b,
                  DType compute, DType out_dtype) {
  Device dev = common_device(name, {&a, &b});
  ew::check_compute_dtype(name, a.dtype());
  ew::check_compute_dtype(name, b.dtype());
  Shape shape = broadcast_shapes(a.shape(), b.shape());
  Tensor out = Tensor::empty(shape, out_dtype, dev);
  if (out.numel() == 0) return out;
  Tensor ac = as_dtype(a, compute), bc = as_dtype(b, compute);
  ew::Iter it = ew::make_iter(name, out, {ac, bc});
  ew::launch_binary(op, p, compute, it);
  return out;
}

Tensor ternary_raw(const char* name, TOp op, const Tensor& a, const Tensor& b, const Tensor& c,
                   DType compute, DType dtype_a) {
  Device dev = common_device(name, {&a, &b, &c});
  Shape shape = broadcast_shapes(broadcast_shapes(a.shape(), b.shape()), c.shape());
  Tensor out = Tensor::empty(shape, compute, dev);
  if (out.numel() == 0) return out;
  Tensor ac = as_dtype(a, dtype_a), bc = as_dtype(b, compute), cc = as_dtype(c, compute);
  ew::Iter it = ew::make_iter(name, out, {ac, bc, cc});
  ew::launch_ternary(op, Params{}, compute, it);
  return out;
}

Params params(double p0 = 0, double p1 = 0, double p2 = 0, double p3 = 0) {
  Params p;
  p.p[0] = p0;
  p.p[1] = p1;
  p.p[2] = p2;
  p.p[3] = p3;
  return p;
}

// The gradient of an operand that was broadcast and possibly promoted.
Tensor grad_for(const Tensor& g, const Shape& shape, DType dt) {
  Tensor r = sum_to(g, shape);
  return r.dtype() == dt ? r : r.to(dt);
}

struct Meta {
  Shape shape;
  DType dtype;
  bool needs;
};
Meta meta(const Tensor& t) { return {t.shape(), t.dtype(), t.requires_grad()}; }

DType arith_dtype(const char* op, const Tensor& a, const Tensor& b) {
  ew::check_compute_dtype(op, a.dtype());
  ew::check_compute_dtype(op, b.dtype());
  DType dt = promote_types(a.dtype(), b.dtype());
  if (dt == DType::Bool)
    throw ValueError(std::string(op) + ": arithmetic on two bool tensors is not supported; "
                     "convert one with to(dtype)");
  return dt;
}

DType float_dtype(DType dt) { return is_floating(dt) ? dt : DType::Float32; }

}  // namespace

// ---- binary arithmetic ------------------------------------------------------------------------
Tensor add(const Tensor& a, const Tensor& b) {
  DType dt = arith_dtype("add", a, b);
  Tensor out = binary_raw("add", BOp::Add, {}, a, b, dt, dt);
  Meta ma = meta(a), mb = meta(b);
  return attach_grad(out, "add", {a, b}, [ma, mb](const Tensor& g) -> std::vector<Tensor> {
    return {ma.needs ? grad_for(g, ma.shape, ma.dtype) : Tensor(),
            mb.needs ? grad_for(g, mb.shape, mb.dtype) : Tensor()};
  });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  DType dt = arith_dtype("sub", a, b);
  Tensor out = binary_raw("sub", BOp::Sub, {}, a, b, dt, dt);
  Meta ma = meta(a), mb = meta(b);
  return attach_grad(out, "sub", {a, b}, [ma, mb](const Tensor& g) -> std::vector<Tensor> {
    return {ma.needs ? grad_for(g, ma.shape, ma.dtype) : Tensor(),
            mb.needs ? grad_for(neg(g), mb.shape, mb.dtype) : Tensor()};
  });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  DType dt = arith_dtype("mul", a, b);
  Tensor out = binary_raw("mul", BOp::Mul, {}, a, b, dt, dt);
  Meta ma = meta(a), mb = meta(b);
  Tensor ad = a.detach(), bd = b.detach();
  return attach_grad(out, "mul", {a, b}, [ma, mb, ad, bd](const Tensor& g) -> std::vector<Tensor> {
    return {ma.needs ? grad_for(mul(g, bd), ma.shape, ma.dtype) : Tensor(),
            mb.needs ? grad_for(mul(g, ad), mb.shape, mb.dtype) : Tensor()};
  });
}

Tensor div(const Tensor& a, const Tensor& b) {
  DType dt = float_dtype(arith_dtype("div", a, b));
  Tensor out = binary_raw("div", BOp::Div, {}, a, b, dt, dt);
  Meta ma = meta(a), mb = meta(b);
  Tensor ad = a.detach(), bd = b.detach();
  return attach_grad(out, "div", {a, b}, [ma, mb, ad, bd](const Tensor& g) -> std::vector<Tensor> {
    return {ma.needs ? grad_for(div(g, bd), ma.shape, ma.dtype) : Tensor(),
            mb.needs ? grad_for(ternary_raw("div_backward", TOp::DivBwdDen, g, ad, bd, g.dtype(), g.dtype()),
                                mb.shape, mb.dtype)
                     : Tensor()};
  });
}

Tensor pow(const Tensor& a, const Tensor& b) {
  DType dt = float_dtype(arith_dtype("pow", a, b));
  Tensor out = binary_raw("pow", BOp::Pow, {}, a, b, dt, dt);
  Meta ma = meta(a), mb = meta(b);
  Tensor ad = a.detach(), bd = b.detach();
  return attach_grad(out, "pow", {a, b}, [ma, mb, ad, bd](const Tensor& g) -> std::vector<Tensor> {
    DType gd = g.dtype();
    return {ma.needs ? grad_for(ternary_raw("pow_backward", TOp::PowBwdBase, g, ad, bd, gd, gd), ma.shape, ma.dtype)
                     : Tensor(),
            mb.needs ? grad_for(ternary_raw("pow_backward", TOp::PowBwdExp, g, ad, bd, gd, gd), mb.shape, mb.dtype)
                     : Tensor()};
  });
}

namespace {
Tensor minmax(const char* name, BOp op, TOp bwd, const Tensor& a, const Tensor& b) {
  DType dt = arith_dtype(name, a, b);
  Tensor out = binary_raw(name, op, {}, a, b, dt, dt);
  Meta ma = meta(a), mb = meta(b);
  Tensor ad = a.detach(), bd = b.detach();
  return attach_grad(out, name, {a, b}, [ma, mb, ad, bd, bwd](const Tensor& g) -> std::vector<Tensor> {
    DType gd = g.dtype();
    return {ma.needs ? grad_for(ternary_raw("minmax_backward", bwd, g, ad, bd, gd, gd), ma.shape, ma.dtype)
                     : Tensor(),
            mb.needs ? grad_for(ternary_raw("minmax_backward", bwd, g, bd, ad, gd, gd), mb.shape, mb.dtype)
                     : Tensor()};
  });
}
}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b) { return minmax("maximum", BOp::Maximum, TOp::MaxBwd, a, b); }
Tensor minimum(const Tensor& a, const Tensor& b) { return minmax("minimum", BOp::Minimum, TOp::MinBwd, a, b); }

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  SX_CHECK(cond.defined() && cond.dtype() == DType::Bool, "where: cond must be a bool tensor, got ",
           cond.defined() ? dtype_name(cond.dtype()) : "undefined");
  ew::check_compute_dtype("where", a.dtype());
  ew::check_compute_dtype("where", b.dtype());
  DType dt = promote_types(a.dtype(), b.dtype());
  Tensor out = ternary_raw("where", TOp::Where, cond, a, b, dt, DType::Bool);
  Meta ma = meta(a), mb = meta(b);
  Tensor cd = cond.detach();
  return attach_grad(out, "where", {Tensor(), a, b}, [ma, mb, cd](const Tensor& g) -> std::vector<Tensor> {
    Tensor zero = Tensor::scalar(0.0, g.dtype(), g.device());
    return {Tensor(),
            ma.needs ? grad_for(where(cd, g, zero), ma.shape, ma.dtype) : Tensor(),
            mb.needs ? grad_for(where(cd, zero, g), mb.shape, mb.dtype) : Tensor()};
  });
}

// ---- scalar forms -----------------------------------------------------------------------------
namespace {
Tensor unary_op(const char* name, UOp op, const Params& p, const Tensor& a, DType out_dtype) {
  SX_CHECK(a.defined(), name, ": undefined tensor argument");
  ew::check_compute_dtype(name, a.dtype());
  Tensor out = Tensor::empty(a.shape(), out_dtype, a.device());
  if (out.numel() == 0) return out;
  ew::Iter it = ew::make_iter(name, out, {a.detach()});
  ew::launch_unary(op, p, a.dtype(), it);
  return out;
}
Tensor binary_same(const char* name, BOp op, const Params& p, const Tensor& a, const Tensor& b) {
  return binary_raw(name, op, p, a, b, a.dtype(), a.dtype());
}
}  // namespace

Tensor add(const Tensor& a, double s) {
  Tensor out = unary_op("add", UOp::AddS, params(s), a, a.dtype());
  return attach_grad(out, "add", {a}, [](const Tensor& g) -> std::vector<Tensor> { return {g}; });
}
Tensor sub(const Tensor& a, double s) {
  Tensor out = unary_op("sub", UOp::AddS, params(-s), a, a.dtype());
  return attach_grad(out, "sub", {a}, [](const Tensor& g) -> std::vector<Tensor> { return {g}; });
}
Tensor rsub(double s, const Tensor& a) {
  Tensor out = unary_op("rsub", UOp::RSubS, params(s), a, a.dtype());
  return attach_grad(out, "rsub", {a}, [](const Tensor& g) -> std::vector<Tensor> { return {neg(g)}; });
}
Tensor mul(const Tensor& a, double s) {
  Tensor out = unary_op("mul", UOp::MulS, params(s), a, a.dtype());
  return attach_grad(out, "mul", {a}, [s](const Tensor& g) -> std::vector<Tensor> { return {mul(g, s)}; });
}
Tensor div(const Tensor& a, double s) {
  // Integer tensors divide in float32, like div(Tensor, Tensor).
  Tensor x = is_floating(a.dtype()) ? a : as_dtype(a, DType::Float32);
  Tensor out = unary_op("div", UOp::DivS, params(s), x, x.dtype());
  return attach_grad(out, "div", {a}, [s](const Tensor& g) -> std::vector<Tensor> { return {div(g, s)}; });
}
Tensor pow(const Tensor& a, double e) {
  Tensor out = unary_op("pow", UOp::PowS, params(e), a, a.dtype());
  Tensor ad = a.detach();
  return attach_grad(out, "pow", {a}, [ad, e](const Tensor& g) -> std::vector<Tensor> {
    return {binary_same("pow_backward", BOp::PowSBwd, params(e), g, ad)};
  });
}

// ---- unary --------------------------------------------------------------------------------------
Tensor neg(const Tensor& a) {
  SX_CHECK(!a.defined() || a.dtype() != DType::Bool, "neg: not defined for bool tensors (use logical_not)");
  Tensor out = unary_op("neg", UOp::Neg, {}, a, a.dtype());
  return attach_grad(out, "neg", {a}, [](const Tensor& g) -> std::vector<Tensor> { return {neg(g)}; });
}
Tensor abs(const Tensor& a) {
  Tensor out = unary_op("abs", UOp::Abs, {}, a, a.dtype());
  Tensor ad = a.detach();
  return attach_grad(out, "abs", {a}, [ad](const Tensor& g) -> std::vector<Tensor> {
    return {binary_same("abs_backward", BOp::AbsBwd, {}, g, ad)};
  });
}
Tensor exp(const Tensor& a) {
  Tensor out = unary_op("exp", UOp::Exp, {}, a, a.dtype());
  Tensor y = out.detach();
  return attach_grad(out, "exp", {a}, [y](const Tensor& g) -> std::vector<Tensor> { return {mul(g, y)}; });
}
Tensor log(const Tensor& a) {
  Tensor out = unary_op("log", UOp::Log, {}, a, a.dtype());
  Tensor ad = a.detach();
  return attach_grad(out, "log", {a}, [ad](const Tensor& g) -> std::vector<Tensor> { return {div(g, ad)}; });
}
Tensor sqrt(const Tensor& a) {
  Tensor out = unary_op("sqrt", UOp::Sqrt, {}, a, a.dtype());
  Tensor y = out.detach();
  return attach_grad(out, "sqrt", {a}, [y](const Tensor& g) -> std::vector<Tensor> {
    return {binary_same("sqrt_backward", BOp::SqrtBwd, {}, g, y)};
  });
}
Tensor clamp(const Tensor& a, std::optional<double> lo, std::optional<double> hi) {
  Params p = params(lo.value_or(0.0), hi.value_or(0.0), lo ? 1.0 : 0.0, hi ? 1.0 : 0.0);
  Tensor out = unary_op("clamp", UOp::Clamp, p, a, a.dtype());
  Tensor ad = a.detach();
  return attach_grad(out, "clamp", {a}, [ad, p](const Tensor& g) -> std::vector<Tensor> {
    return {binary_same("clamp_backward", BOp::ClampBwd, p, g, ad)};
  });
}
Tensor relu(const Tensor& a) {
  Tensor out = unary_op("relu", UOp::Relu, {}, a, a.dtype());
  Tensor y = out.detach();
  return attach_grad(out, "relu", {a}, [y](const Tensor& g) -> std::vector<Tensor> {
    return {binary_same("relu_backward", BOp::ReluBwd, {}, g, y)};
  });
}
Tensor leaky_relu(const Tensor& a, double negative_slope) {
  Tensor out = unary_op("leaky_relu", UOp::LeakyRelu, params(negative_slope), a, a.dtype());
  Tensor ad = a.detach();
  return attach_grad(out, "leaky_relu", {a}, [ad, negative_slope](const Tensor& g) -> std::vector<Tensor> {
    return {binary_same("leaky_relu_backward", BOp::LeakyReluBwd, params(negative_slope), g, ad)};
  });
}
Tensor sigmoid(const Tensor& a) {
  Tensor out = unary_op("sigmoid", UOp::Sigmoid, {}, a, a.dtype());
  Tensor y = out.detach();
  return attach_grad(out, "sigmoid", {a}, [y](const Tensor& g) -> std::vector<Tensor> {
    return {binary_same("sigmoid_backward", BOp::SigmoidBwd, {}, g, y)};
  });
}
Tensor tanh(const Tensor& a) {
  Tensor out = unary_op("tanh", UOp::Tanh, {}, a, a.dtype());
  Tensor y = out.detach();
  return attach_grad(out, "tanh", {a}, [y](const Tensor& g) -> std::vector<Tensor> {
    return {binary_same("tanh_backward", BOp::TanhBwd, {}, g, y)};
  });
}
Tensor softplus(const Tensor& a, double beta, double threshold) {
  SX_CHECK(beta != 0.0, "softplus: beta must be non-zero");
  Tensor out = unary_op("softplus", UOp::Softplus, params(beta, threshold), a, a.dtype());
  Tensor ad = a.detach();
  return attach_grad(out, "softplus", {a}, [ad, beta, threshold](const Tensor& g) -> std::vector<Tensor> {
    return {binary_same("softplus_backward", BOp::SoftplusBwd, params(beta, threshold), g, ad)};
  });
}

// ---- comparisons and logic ----------------------------------------------------------------------
namespace {
Tensor compare_tt(const char* name, BOp op, const Tensor& a, const Tensor& b) {
  ew::check_compute_dtype(name, a.dtype());
  ew::check_compute_dtype(name, b.dtype());
  DType dt = promote_types(a.dtype(), b.dtype());
  return binary_raw(name, op, {}, a, b, dt, DType::Bool);
}
}  // namespace

Tensor eq(const Tensor& a, const Tensor& b) { return compare_tt("eq", BOp::Eq, a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return compare_tt("ne", BOp::Ne, a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return compare_tt("lt", BOp::Lt, a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return compare_tt("le", BOp::Le, a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { return compare_tt("gt", BOp::Gt, a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return compare_tt("ge", BOp::Ge, a, b); }
Tensor eq(const Tensor& a, double s) { return unary_op("eq", UOp::EqS, params(s), a, DType::Bool); }
Tensor ne(const Tensor& a, double s) { return unary_op("ne", UOp::NeS, params(s), a, DType::Bool); }
Tensor lt(const Tensor& a, double s) { return unary_op("lt", UOp::LtS, params(s), a, DType::Bool); }
Tensor le(const Tensor& a, double s) { return unary_op("le", UOp::LeS, params(s), a, DType::Bool); }
Tensor gt(const Tensor& a, double s) { return unary_op("gt", UOp::GtS, params(s), a, DType::Bool); }
Tensor ge(const Tensor& a, double s) { return unary_op("ge", UOp::GeS, params(s), a, DType::Bool); }
Tensor logical_and(const Tensor& a, const Tensor& b) { return compare_tt("logical_and", BOp::LogicalAnd, a, b); }
Tensor logical_or(const Tensor& a, const Tensor& b) { return compare_tt("logical_or", BOp::LogicalOr, a, b); }
Tensor logical_not(const Tensor& a) { return unary_op("logical_not", UOp::LogicalNot, {}, a, DType::Bool); }
Tensor isfinite(const Tensor& a) {
  SX_CHECK(a.defined(), "isfinite: undefined tensor argument");
  ew::check_compute_dtype("isfinite", a.dtype());
  if (!is_floating(a.dtype())) return Tensor::full(a.shape(), 1.0, DType::Bool, a.device());
  return unary_op("isfinite", UOp::IsFinite, {}, a, DType::Bool);
}

// ---- in-place helpers ---------------------------------------------------------------------------
namespace {
void check_inplace(const char* name, const Tensor& a) {
  SX_CHECK(a.defined(), name, ": undefined tensor argument");
  if (GradMode::is_enabled() && a.requires_grad())
    throw ValueError(std::string(name) + ": in-place update of a tensor that requires grad while "
                     "grad mode is on (wrap the update in NoGradGuard)");
}
}  // namespace

void add_(Tensor& a, const Tensor& b, double alpha) {
  check_inplace("add_", a);
  common_device("add_", {&a, &b});
  ew::check_compute_dtype("add_", a.dtype());
  ew::check_compute_dtype("add_", b.dtype());
  Shape bs = broadcast_shapes(a.shape(), b.shape());
  SX_CHECK(bs == a.shape(), "add_: cannot broadcast ", shape_str(b.shape()), " into ", shape_str(a.shape()));
  if (a.numel() == 0) return;
  a.storage()->bump_version();
  Tensor bc = as_dtype(b, a.dtype());
  ew::Iter it = ew::make_iter("add_", a, {a, bc});
  ew::launch_binary(BOp::AddAlpha, params(alpha), a.dtype(), it);
}

void mul_(Tensor& a, double s) {
  check_inplace("mul_", a);
  ew::check_compute_dtype("mul_", a.dtype());
  if (a.numel() == 0) return;
  a.storage()->bump_version();
  ew::Iter it = ew::make_iter("mul_", a, {a});
  ew::launch_unary(UOp::MulS, params(s), a.dtype(), it);
}

}  // namespace sx
