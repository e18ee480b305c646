// Tensor metadata, views, copies and printing. Views share storage; each differentiable view
// records a node whose backward maps the gradient back to the input's geometry.
#include "tensor/tensor.h"

#include <algorithm>
#include <cmath>
#include <iomanip>
#include <numeric>
#include <ostream>
#include <sstream>

#include "tensor/autograd.h"
#include "tensor/copy.h"
#include "tensor/ops.h"

namespace sx {

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << "]";
  return os.str();
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (int64_t i = static_cast<int64_t>(s.size()) - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= std::max<int64_t>(s[i], 1);
  }
  return st;
}

namespace {
int64_t wrap_dim(int64_t d, int64_t ndim, const char* what) {
  int64_t n = std::max<int64_t>(ndim, 1);
  if (d < -n || d >= n) SX_THROW(ValueError, what, ": dim ", d, " out of range for a ", ndim, "-d tensor");
  return d < 0 ? d + n : d;
}
}  // namespace

TensorImpl* Tensor::impl() const {
  if (!impl_) throw ValueError("use of an undefined Tensor");
  return impl_.get();
}

int64_t Tensor::size(int64_t d) const { return shape()[wrap_dim(d, dim(), "size")]; }
int64_t Tensor::stride(int64_t d) const { return strides()[wrap_dim(d, dim(), "stride")]; }

bool Tensor::is_contiguous() const {
  int64_t expected = 1;
  const Shape& s = shape();
  const Shape& st = strides();
  for (int64_t i = dim() - 1; i >= 0; --i) {
    if (s[i] == 1) continue;
    if (st[i] != expected) return false;
    expected *= s[i];
  }
  return true;
}

void* Tensor::data_ptr() const {
  return static_cast<char*>(impl()->storage->data()) + impl()->offset * static_cast<int64_t>(element_size());
}

void Tensor::check_dtype(DType expected, const char* what) const {
  if (dtype() != expected)
    SX_THROW(ValueError, what, ": tensor has dtype ", dtype_name(dtype()), ", expected ", dtype_name(expected));
}

Tensor Tensor::make_view(const Tensor& base, const Shape& shape, const Shape& strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.storage();
  impl->shape = shape;
  impl->strides = strides;
  impl->offset = offset;
  impl->dtype = base.dtype();
  return Tensor(impl);
}

// ---- values ---------------------------------------------------------------------------------
double Tensor::item() const {
  SX_CHECK(numel() == 1, "item: tensor must hold exactly one element, got shape ", shape_str(shape()));
  Tensor c = to(Device::cpu());
  double v = 0;
  SX_DISPATCH_ALL(dtype(), "item", [&] { v = static_cast<double>(*static_cast<const scalar_t*>(c.data_ptr())); });
  return v;
}

std::vector<double> Tensor::to_vector() const {
  Tensor c = detach().to(Device::cpu()).contiguous();
  std::vector<double> out(static_cast<size_t>(c.numel()));
  SX_DISPATCH_ALL(dtype(), "to_vector", [&] {
    const scalar_t* p = static_cast<const scalar_t*>(c.data_ptr());
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<double>(p[i]);
  });
  return out;
}

// ---- copies ---------------------------------------------------------------------------------
Tensor Tensor::to(Device dev, DType dt) const {
  if (dev == device() && dt == dtype()) return *this;
  Tensor out = empty(shape(), dt, dev);
  {
    NoGradGuard ng;
    out.copy_(*this);
  }
  if (is_floating(dt) && is_floating(dtype())) {
    const Device src_dev = device();
    const DType src_dt = dtype();
    return attach_grad(out, "to", {*this}, [src_dev, src_dt](const Tensor& g) {
      return std::vector<Tensor>{g.to(src_dev, src_dt)};
    });
  }
  return out;
}
Tensor Tensor::to(Device dev) const { return to(dev, dtype()); }
Tensor Tensor::to(DType dt) const { return to(device(), dt); }

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), dtype(), device());
  {
    NoGradGuard ng;
    out.copy_(*this);
  }
  return attach_grad(out, "clone", {*this}, [](const Tensor& g) { return std::vector<Tensor>{g}; });
}

Tensor Tensor::contiguous() const { return is_contiguous() ? *this : clone(); }

// ---- views ----------------------------------------------------------------------------------
namespace {
Tensor view_of(const Tensor& base, Shape shape, Shape strides, int64_t offset) {
  return Tensor::make_view(base, std::move(shape), std::move(strides), offset);
}

Shape infer_shape(const Shape& shape, int64_t numel, const char* what, const Shape& from) {
  Shape out = shape;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      if (infer >= 0) SX_THROW(ValueError, what, ": only one dimension can be -1, got ", shape_str(shape));
      infer = static_cast<int64_t>(i);
    } else {
      SX_CHECK(out[i] >= 0, what, ": invalid size ", out[i], " in ", shape_str(shape));
      known *= out[i];
    }
  }
  if (infer >= 0) {
    SX_CHECK(known != 0 && numel % known == 0, what, ": cannot reshape ", shape_str(from), " into ",
             shape_str(shape));
    out[infer] = numel / known;
  }
  SX_CHECK(shape_numel(out) == numel, what, ": cannot reshape ", shape_str(from), " (", numel,
           " elements) into ", shape_str(shape));
  return out;
}
}  // namespace

Tensor Tensor::view(const Shape& new_shape) const {
  Shape s = infer_shape(new_shape, numel(), "view", shape());
  SX_CHECK(is_contiguous(), "view: tensor of shape ", shape_str(shape()),
           " is not contiguous; use reshape() or contiguous()");
  Tensor out = view_of(*this, s, contiguous_strides(s), offset());
  Shape in_shape = shape();
  return attach_grad(out, "view", {*this}, [in_shape](const Tensor& g) {
    return std::vector<Tensor>{g.reshape(in_shape)};
  });
}

Tensor Tensor::reshape(const Shape& new_shape) const {
  if (is_contiguous()) return view(new_shape);
  return contiguous().view(new_shape);
}

Tensor Tensor::flatten(int64_t start_dim, int64_t end_dim) const {
  if (dim() == 0) return reshape({1});
  int64_t s = wrap_dim(start_dim, dim(), "flatten"), e = wrap_dim(end_dim, dim(), "flatten");
  SX_CHECK(s <= e, "flatten: start_dim ", start_dim, " > end_dim ", end_dim);
  Shape ns;
  for (int64_t i = 0; i < s; ++i) ns.push_back(size(i));
  int64_t m = 1;
  for (int64_t i = s; i <= e; ++i) m *= size(i);
  ns.push_back(m);
  for (int64_t i = e + 1; i < dim(); ++i) ns.push_back(size(i));
  return reshape(ns);
}

Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  SX_CHECK(static_cast<int64_t>(dims.size()) == dim(), "permute: got ", dims.size(), " dims for a ", dim(),
           "-d tensor");
  Shape ns(dim()), nst(dim());
  std::vector<int64_t> inv(dim(), -1);
  for (int64_t i = 0; i < dim(); ++i) {
    int64_t d = wrap_dim(dims[i], dim(), "permute");
    SX_CHECK(inv[d] < 0, "permute: dim ", d, " repeated");
    inv[d] = i;
    ns[i] = size(d);
    nst[i] = stride(d);
  }
  Tensor out = view_of(*this, ns, nst, offset());
  return attach_grad(out, "permute", {*this}, [inv](const Tensor& g) { return std::vector<Tensor>{g.permute(inv)}; });
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  std::vector<int64_t> p(dim());
  std::iota(p.begin(), p.end(), 0);
  if (dim() == 0) return *this;
  std::swap(p[wrap_dim(d0, dim(), "transpose")], p[wrap_dim(d1, dim(), "transpose")]);
  return permute(p);
}

Tensor Tensor::t() const {
  SX_CHECK(dim() <= 2, "t: expected a tensor of at most 2 dims, got ", shape_str(shape()));
  return dim() < 2 ? *this : transpose(0, 1);
}

Tensor Tensor::slice(int64_t d, int64_t start, int64_t end, int64_t step) const {
  SX_CHECK(dim() > 0, "slice: cannot slice a 0-d tensor");
  d = wrap_dim(d, dim(), "slice");
  SX_CHECK(step > 0, "slice: step must be positive, got ", step);
  const int64_t n = size(d);
  if (start < 0) start += n;
  if (end < 0) end += n;
  start = std::clamp<int64_t>(start, 0, n);
  end = std::clamp<int64_t>(end, start, n);
  const int64_t len = (end - start + step - 1) / step;
  Shape ns = shape(), nst = strides();
  ns[d] = len;
  nst[d] = stride(d) * step;
  Tensor out = view_of(*this, ns, nst, offset() + start * stride(d));
  Shape in_shape = shape();
  DType dt = dtype();
  Device dev = device();
  return attach_grad(out, "slice", {*this}, [=](const Tensor& g) {
    Tensor z = Tensor::zeros(in_shape, dt, dev);
    z.slice(d, start, end, step).copy_(g);
    return std::vector<Tensor>{z};
  });
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  d = wrap_dim(d, dim(), "narrow");
  SX_CHECK(start >= 0 && length >= 0 && start + length <= size(d), "narrow: range [", start, ", ",
           start + length, ") out of bounds for dim ", d, " of size ", size(d));
  return slice(d, start, start + length, 1);
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  d = wrap_dim(d, dim(), "select");
  const int64_t n = size(d);
  SX_CHECK(index >= -n && index < n, "select: index ", index, " out of range for dim ", d, " of size ", n);
  if (index < 0) index += n;
  return narrow(d, index, 1).squeeze(d);
}

Tensor Tensor::squeeze(int64_t d) const {
  if (dim() == 0) return *this;
  d = wrap_dim(d, dim(), "squeeze");
  if (size(d) != 1) return *this;
  Shape ns = shape(), nst = strides();
  ns.erase(ns.begin() + d);
  nst.erase(nst.begin() + d);
  Tensor out = view_of(*this, ns, nst, offset());
  Shape in_shape = shape();
  return attach_grad(out, "squeeze", {*this}, [in_shape](const Tensor& g) {
    return std::vector<Tensor>{g.reshape(in_shape)};
  });
}

Tensor Tensor::squeeze() const {
  Shape ns, nst;
  for (int64_t i = 0; i < dim(); ++i)
    if (size(i) != 1) {
      ns.push_back(size(i));
      nst.push_back(stride(i));
    }
  Tensor out = view_of(*this, ns, nst, offset());
  Shape in_shape = shape();
  return attach_grad(out, "squeeze", {*this}, [in_shape](const Tensor& g) {
    return std::vector<Tensor>{g.reshape(in_shape)};
  });
}

Tensor Tensor::unsqueeze(int64_t d) const {
  d = wrap_dim(d, dim() + 1, "unsqueeze");
  Shape ns = shape(), nst = strides();
  int64_t st = d < dim() ? stride(d) * size(d) : 1;
  ns.insert(ns.begin() + d, 1);
  nst.insert(nst.begin() + d, st);
  Tensor out = view_of(*this, ns, nst, offset());
  Shape in_shape = shape();
  return attach_grad(out, "unsqueeze", {*this}, [in_shape](const Tensor& g) {
    return std::vector<Tensor>{g.reshape(in_shape)};
  });
}

Tensor Tensor::expand(const Shape& target) const {
  SX_CHECK(target.size() >= static_cast<size_t>(dim()), "expand: cannot expand ", shape_str(shape()), " to ",
           shape_str(target));
  const int64_t lead = static_cast<int64_t>(target.size()) - dim();
  Shape ns(target.size()), nst(target.size());
  for (int64_t i = 0; i < static_cast<int64_t>(target.size()); ++i) {
    int64_t si = i - lead;
    if (si < 0) {
      SX_CHECK(target[i] >= 0, "expand: size -1 not allowed for a new leading dim in ", shape_str(target));
      ns[i] = target[i];
      nst[i] = 0;
    } else {
      int64_t want = target[i] == -1 ? size(si) : target[i];
      SX_CHECK(size(si) == want || size(si) == 1, "expand: cannot expand ", shape_str(shape()), " to ",
               shape_str(target));
      ns[i] = want;
      nst[i] = size(si) == want ? stride(si) : 0;
    }
  }
  if (ns == shape()) return *this;
  Tensor out = view_of(*this, ns, nst, offset());
  Shape in_shape = shape();
  return attach_grad(out, "expand", {*this}, [in_shape](const Tensor& g) {
    return std::vector<Tensor>{sum_to(g, in_shape)};
  });
}

// ---- autograd accessors ------------------------------------------------------------------
bool Tensor::requires_grad() const { return impl()->autograd && impl()->autograd->requires_grad; }

Tensor& Tensor::set_requires_grad(bool r) {
  SX_CHECK(is_leaf(), "set_requires_grad: only leaf tensors can be changed (this one comes from ",
           grad_fn()->name, ")");
  if (r) SX_CHECK(is_floating(dtype()), "set_requires_grad: only floating-point tensors can require grad, got ",
                  dtype_name(dtype()));
  if (!impl()->autograd) impl()->autograd = std::make_unique<AutogradMeta>();
  impl()->autograd->requires_grad = r;
  return *this;
}

bool Tensor::is_leaf() const { return !impl()->autograd || !impl()->autograd->grad_fn; }

Tensor Tensor::grad() const {
  if (!impl()->autograd || !impl()->autograd->grad) return Tensor();
  return Tensor(impl()->autograd->grad);
}

void Tensor::set_grad(const Tensor& g) {
  if (!impl()->autograd) impl()->autograd = std::make_unique<AutogradMeta>();
  if (g.defined())
    SX_CHECK(g.shape() == shape(), "set_grad: gradient shape ", shape_str(g.shape()), " != tensor shape ",
             shape_str(shape()));
  impl()->autograd->grad = g.defined() ? g.impl_ptr() : nullptr;
}

void Tensor::zero_grad() {
  if (impl()->autograd) impl()->autograd->grad = nullptr;
}

void Tensor::retain_grad() {
  if (is_leaf()) return;
  impl()->autograd->retain_grad = true;
  impl()->autograd->grad_fn->retained_output = impl_;
}

const std::shared_ptr<Node>& Tensor::grad_fn() const {
  static const std::shared_ptr<Node> none;
  return impl()->autograd ? impl()->autograd->grad_fn : none;
}

void Tensor::set_grad_fn(std::shared_ptr<Node> fn) {
  if (!impl()->autograd) impl()->autograd = std::make_unique<AutogradMeta>();
  impl()->autograd->grad_fn = std::move(fn);
  impl()->autograd->requires_grad = impl()->autograd->grad_fn != nullptr || impl()->autograd->requires_grad;
}

Tensor Tensor::detach() const {
  return make_view(*this, shape(), strides(), offset());
}

bool any_requires_grad(std::initializer_list<Tensor> ts) {
  if (!GradMode::is_enabled()) return false;
  for (const auto& t : ts)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

// ---- printing -------------------------------------------------------------------------------
std::string Tensor::str(int64_t max_per_dim) const {
  if (!defined()) return "Tensor(undefined)";
  std::ostringstream os;
  os << "Tensor(shape=" << shape_str(shape()) << ", dtype=" << dtype_name(dtype()) << ", device=" << device().str();
  if (requires_grad()) os << ", requires_grad";
  os << ")\n";
  if (dtype() == DType::Float16 || dtype() == DType::BFloat16) {
    os << "[values not printable for " << dtype_name(dtype()) << "]";
    return os.str();
  }
  Tensor c = detach().to(Device::cpu()).contiguous();
  std::vector<double> v = c.to_vector();
  const int64_t nd = dim();
  const int64_t edge = std::max<int64_t>(1, max_per_dim / 2);
  os << std::setprecision(6);
  std::function<void(int64_t, int64_t, int)> rec = [&](int64_t d, int64_t base, int indent) {
    if (d == nd) {
      double x = v[base];
      if (dtype() == DType::Bool) os << (x != 0 ? "true" : "false");
      else os << x;
      return;
    }
    const int64_t n = size(d);
    const int64_t step = shape_numel(Shape(shape().begin() + d + 1, shape().end()));
    os << "[";
    for (int64_t i = 0; i < n; ++i) {
      if (n > max_per_dim && i == edge) {
        os << (d + 1 == nd ? "..., " : "...,\n" + std::string(indent + 1, ' '));
        i = n - edge - 1;
        continue;
      }
      rec(d + 1, base + i * step, indent + 1);
      if (i + 1 < n) os << (d + 1 == nd ? ", " : ",\n" + std::string(indent + 1, ' '));
    }
    os << "]";
  };
  if (numel() == 0) os << "[]";
  else rec(0, 0, 0);
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.str(); }

}  // namespace sx
