// Indexing ops: index_select, gather, scatter_add (out of place), masked_select, nonzero; their CPU
// loops, their autograd, and the dispatch to the CUDA twins (index_cuda.cu).
//
// Algorithms (the same on both devices, over the shared addressing in index_math.h):
//   gather       out[p] = src[p with p[dim] replaced by index[p]]          (p over index's shape)
//   index_select = gather with the 1-D index broadcast (stride 0) over every dim but `dim`
//   scatter_add  out = copy of a; out[p with p[dim] := index[p]] += src[p] (p over index's shape)
//   masked_select: walk the broadcast shape in row-major order, keep a's values where mask is set
//   nonzero      : the row-major coordinates of the non-zero elements, [count, ndim] int64
// The CPU loops are the reference: gather runs in parallel (OpenMP; writes are disjoint), scatter_add
// sequentially (writes may collide), the selections in two passes (count, then fill).
//
// Gradients: gather/index_select -> scatter_add of the gradient into zeros (index_add);
// scatter_add -> the gradient itself for `a`, gather(grad) for `src` (zero where src was not read);
// masked_select -> the gradient placed back at the masked positions, summed to a's shape.
#include <string>

#include "tensor/index.h"

#include "tensor/dispatch.h"
#include "tensor/ops.h"

namespace sx {
namespace detail {

IndexGeom make_index_geom(const Shape& shape, const Tensor& t0, const Tensor& t1, const Tensor& t2,
                          int64_t zero_dim_t2) {
  SX_CHECK(shape.size() <= static_cast<size_t>(kIndexMaxDims), "indexing: at most ", kIndexMaxDims,
           " dims are supported, got ", shape.size());
  IndexGeom g;
  g.ndim = static_cast<int>(shape.size());
  const Tensor* ts[3] = {&t0, &t1, &t2};
  for (int d = 0; d < g.ndim; ++d) {
    g.size[d] = shape[d];
    for (int k = 0; k < 3; ++k) {
      const Tensor& t = *ts[k];
      g.stride[k][d] = t.defined() ? t.stride(d) : 0;
    }
  }
  if (zero_dim_t2 >= 0) g.stride[2][zero_dim_t2] = 0;
  return g;
}

namespace {

[[noreturn]] void throw_index_error(const char* op, const Tensor& index, const IndexGeom& g, int64_t dim,
                                    int64_t size) {
  const int64_t* ip = index.data<int64_t>();
  const int64_t n = shape_numel(index.shape());
  for (int64_t i = 0; i < n; ++i) {
    int64_t o0, o1, o2;
    g.offsets(i, o0, o1, o2);
    if (!index_in_range(ip[o1], size))
      SX_THROW(ValueError, op, ": index ", ip[o1], " is out of range for dim ", dim, " of size ", size);
  }
  SX_THROW(ValueError, op, ": index out of range for dim ", dim, " of size ", size);
}

template <class T>
bool gather_loop(const IndexGeom& g, int64_t n, T* op, const T* sp, const int64_t* ip, int64_t sstride,
                 int64_t ssize) {
  bool bad = false;
#pragma omp parallel for reduction(|| : bad) if (n > 32768)
  for (int64_t i = 0; i < n; ++i) {
    int64_t o0, o1, o2;
    g.offsets(i, o0, o1, o2);
    const int64_t idx = ip[o1];
    if (!index_in_range(idx, ssize)) {
      bad = true;
      continue;
    }
    op[o0] = sp[o2 + idx * sstride];
  }
  return bad;
}

void gather_cpu(const Tensor& out, const Tensor& src, int64_t dim, const Tensor& index) {
  const IndexGeom g = make_index_geom(index.shape(), out, index, src, dim);
  const int64_t n = index.numel(), sstride = src.stride(dim), ssize = src.size(dim);
  const int64_t* ip = index.data<int64_t>();
  bool bad = false;
  SX_DISPATCH_ALL(src.dtype(), "gather", [&] {
    bad = gather_loop(g, n, static_cast<scalar_t*>(out.data_ptr()), static_cast<const scalar_t*>(src.data_ptr()),
                      ip, sstride, ssize);
  });
  if (bad) throw_index_error("gather", index, g, dim, ssize);
}

void scatter_add_cpu(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) {
  const IndexGeom g = make_index_geom(index.shape(), src, index, out, dim);
  const int64_t n = index.numel(), ostride = out.stride(dim), osize = out.size(dim);
  const int64_t* ip = index.data<int64_t>();
  SX_DISPATCH_ALL(out.dtype(), "scatter_add", [&] {
    const scalar_t* sp = static_cast<const scalar_t*>(src.data_ptr());
    scalar_t* op = static_cast<scalar_t*>(out.data_ptr());
    for (int64_t i = 0; i < n; ++i) {
      int64_t o0, o1, o2;
      g.offsets(i, o0, o1, o2);
      const int64_t idx = ip[o1];
      if (!index_in_range(idx, osize)) throw_index_error("scatter_add", index, g, dim, osize);
      op[o2 + idx * ostride] = static_cast<scalar_t>(op[o2 + idx * ostride] + sp[o0]);
    }
  });
}

Tensor masked_select_cpu(const Tensor& a, const Tensor& mask) {
  const IndexGeom g = make_index_geom(a.shape(), a, mask, Tensor());
  const int64_t n = shape_numel(a.shape());
  const uint8_t* mp = static_cast<const uint8_t*>(mask.data_ptr());
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i) {
    int64_t o0, o1, o2;
    g.offsets(i, o0, o1, o2);
    count += is_nonzero(mp[o1]) ? 1 : 0;
  }
  Tensor out = Tensor::empty({count}, a.dtype(), a.device());
  if (count == 0) return out;
  SX_DISPATCH_ALL(a.dtype(), "masked_select", [&] {
    const scalar_t* ap = static_cast<const scalar_t*>(a.data_ptr());
    scalar_t* op = out.data<scalar_t>();
    int64_t j = 0;
    for (int64_t i = 0; i < n; ++i) {
      int64_t o0, o1, o2;
      g.offsets(i, o0, o1, o2);
      if (is_nonzero(mp[o1])) op[j++] = ap[o0];
    }
  });
  return out;
}

Tensor masked_scatter_zeros_cpu(const Tensor& mask, const Tensor& src, DType dtype) {
  Tensor out = Tensor::zeros(mask.shape(), dtype, mask.device());
  const IndexGeom g = make_index_geom(mask.shape(), mask, Tensor(), Tensor());
  const int64_t n = shape_numel(mask.shape());
  const uint8_t* mp = static_cast<const uint8_t*>(mask.data_ptr());
  Tensor s = src.contiguous();
  SX_DISPATCH_ALL(dtype, "masked_select backward", [&] {
    const scalar_t* sp = s.data<scalar_t>();
    scalar_t* op = out.data<scalar_t>();
    int64_t j = 0;
    for (int64_t i = 0; i < n; ++i) {
      int64_t o0, o1, o2;
      g.offsets(i, o0, o1, o2);
      if (is_nonzero(mp[o0])) op[i] = sp[j++];
    }
  });
  return out;
}

Tensor nonzero_cpu(const Tensor& a) {
  const IndexGeom g = make_index_geom(a.shape(), a, Tensor(), Tensor());
  const int64_t n = a.numel(), nd = a.dim();
  std::vector<int64_t> hits;
  SX_DISPATCH_ALL(a.dtype(), "nonzero", [&] {
    const scalar_t* ap = static_cast<const scalar_t*>(a.data_ptr());
    for (int64_t i = 0; i < n; ++i) {
      int64_t o0, o1, o2;
      g.offsets(i, o0, o1, o2);
      if (is_nonzero(ap[o0])) hits.push_back(i);
    }
  });
  Tensor out = Tensor::empty({static_cast<int64_t>(hits.size()), nd}, DType::Int64, a.device());
  int64_t* op = out.data<int64_t>();
  for (size_t j = 0; j < hits.size(); ++j) g.coords(hits[j], op + j * nd);
  return out;
}

}  // namespace

void gather_into(const Tensor& out, const Tensor& src, int64_t dim, const Tensor& index) {
  if (index.numel() == 0) return;
  backend<IndexBackend>(out.device(), "gather").gather(out, src, dim, index);
}

void scatter_add_into(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) {
  if (index.numel() == 0) return;
  backend<IndexBackend>(out.device(), "scatter_add").scatter_add(out, dim, index, src);
}

Tensor scatter_add_zeros(const Shape& shape, int64_t dim, const Tensor& index, const Tensor& src) {
  Tensor out = Tensor::zeros(shape, src.dtype(), src.device());
  scatter_add_into(out, dim, index, src);
  return out;
}

Tensor masked_select_impl(const Tensor& a, const Tensor& mask) {
  return backend<IndexBackend>(a.device(), "masked_select").masked_select(a, mask);
}

Tensor masked_scatter_zeros(const Tensor& mask, const Tensor& src, DType dtype) {
  return backend<IndexBackend>(mask.device(), "masked_select backward")
      .masked_scatter_zeros(mask, src, dtype);
}

Tensor nonzero_impl(const Tensor& a) {
  return backend<IndexBackend>(a.device(), "nonzero").nonzero(a);
}

const IndexBackend IndexBackend::cpu = {gather_cpu, scatter_add_cpu, masked_select_cpu,
                                        masked_scatter_zeros_cpu, nonzero_cpu};

}  // namespace detail

namespace {

int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op) {
  const int64_t n = std::max<int64_t>(ndim, 1);
  if (dim < -n || dim >= n) SX_THROW(ValueError, op, ": dim ", dim, " out of range for a ", ndim, "-D tensor");
  return dim < 0 ? dim + n : dim;
}

void check_index(const char* op, const Tensor& a, const Tensor& index) {
  SX_CHECK(a.defined() && index.defined(), op, ": undefined tensor");
  SX_CHECK(index.dtype() == DType::Int64, op, ": index must be int64, got ", dtype_name(index.dtype()));
  SX_CHECK(index.device() == a.device(), op, ": index is on ", index.device().str(), ", input on ",
           a.device().str());
}

}  // namespace

Tensor index_select(const Tensor& a, int64_t dim, const Tensor& index) {
  check_index("index_select", a, index);
  SX_CHECK(a.dim() >= 1, "index_select: input must have at least 1 dim, got ", shape_str(a.shape()));
  SX_CHECK(index.dim() <= 1, "index_select: index must be 0-D or 1-D, got ", shape_str(index.shape()));
  const int64_t d = wrap_dim(dim, a.dim(), "index_select");
  const int64_t len = index.numel();
  Shape out_shape = a.shape();
  out_shape[d] = len;
  Shape idx_shape(a.dim(), 1);
  idx_shape[d] = len;
  // The index seen as a tensor of out's shape: stride 0 everywhere but along dim.
  Tensor idx = index.detach().reshape(idx_shape).expand(out_shape);
  Tensor out = Tensor::empty(out_shape, a.dtype(), a.device());
  detail::gather_into(out, a.detach(), d, idx);
  if (!is_floating(a.dtype())) return out;
  const Shape sa = a.shape();
  return attach_grad(out, "index_select", {a}, [sa, d, idx](const Tensor& g) {
    return std::vector<Tensor>{detail::scatter_add_zeros(sa, d, idx, g)};
  });
}

Tensor gather(const Tensor& a, int64_t dim, const Tensor& index) {
  check_index("gather", a, index);
  SX_CHECK(index.dim() == a.dim(), "gather: index ", shape_str(index.shape()), " and input ",
           shape_str(a.shape()), " must have the same number of dims");
  const int64_t d = wrap_dim(dim, a.dim(), "gather");
  for (int64_t k = 0; k < a.dim(); ++k)
    if (k != d && index.size(k) > a.size(k))
      SX_THROW(ValueError, "gather: index ", shape_str(index.shape()), " is larger than input ",
               shape_str(a.shape()), " in dim ", k);
  Tensor out = Tensor::empty(index.shape(), a.dtype(), a.device());
  Tensor idx = index.detach();
  if (a.dim() == 0) {  // a scalar: index must be 0
    detail::gather_into(out.reshape({1}), a.detach().reshape({1}), 0, idx.reshape({1}));
  } else {
    detail::gather_into(out, a.detach(), d, idx);
  }
  if (!is_floating(a.dtype())) return out;
  const Shape sa = a.shape();
  return attach_grad(out, "gather", {a}, [sa, d, idx](const Tensor& g) {
    if (sa.empty()) return std::vector<Tensor>{g.clone()};
    return std::vector<Tensor>{detail::scatter_add_zeros(sa, d, idx, g.contiguous())};
  });
}

Tensor scatter_add(const Tensor& a, int64_t dim, const Tensor& index, const Tensor& src) {
  check_index("scatter_add", a, index);
  SX_CHECK(src.defined(), "scatter_add: undefined src");
  SX_CHECK(src.device() == a.device(), "scatter_add: src is on ", src.device().str(), ", input on ",
           a.device().str());
  SX_CHECK(src.dtype() == a.dtype(), "scatter_add: src dtype ", dtype_name(src.dtype()),
           " differs from input dtype ", dtype_name(a.dtype()));
  SX_CHECK(a.dtype() != DType::Bool, "scatter_add: bool tensors cannot be added");
  SX_CHECK(a.dim() >= 1 && index.dim() == a.dim() && src.dim() == a.dim(), "scatter_add: input ",
           shape_str(a.shape()), ", index ", shape_str(index.shape()), " and src ", shape_str(src.shape()),
           " must have the same number of dims (>= 1)");
  const int64_t d = wrap_dim(dim, a.dim(), "scatter_add");
  for (int64_t k = 0; k < a.dim(); ++k) {
    if (index.size(k) > src.size(k) || (k != d && index.size(k) > a.size(k)))
      SX_THROW(ValueError, "scatter_add: index ", shape_str(index.shape()), " is larger than src ",
               shape_str(src.shape()), " or input ", shape_str(a.shape()), " in dim ", k);
  }
  Tensor out = Tensor::empty(a.shape(), a.dtype(), a.device());
  out.copy_(a.detach());
  Tensor idx = index.detach();
  detail::scatter_add_into(out, d, idx, src.detach());
  if (!is_floating(a.dtype())) return out;
  const Shape ss = src.shape();
  const bool rs = src.requires_grad();
  return attach_grad(out, "scatter_add", {a, src}, [d, idx, ss, rs](const Tensor& g) {
    Tensor gs;
    if (rs) {
      Tensor part = Tensor::empty(idx.shape(), g.dtype(), g.device());
      detail::gather_into(part, g, d, idx);
      if (idx.shape() == ss) {
        gs = part;
      } else {  // src elements outside index's extent were never read: zero gradient
        gs = Tensor::zeros(ss, g.dtype(), g.device());
        Tensor region = gs;
        for (int64_t k = 0; k < static_cast<int64_t>(ss.size()); ++k) region = region.narrow(k, 0, idx.size(k));
        if (part.numel() > 0) region.copy_(part);
      }
    }
    return std::vector<Tensor>{g, gs};
  });
}

Tensor masked_select(const Tensor& a, const Tensor& mask) {
  SX_CHECK(a.defined() && mask.defined(), "masked_select: undefined tensor");
  SX_CHECK(mask.dtype() == DType::Bool || mask.dtype() == DType::UInt8,
           "masked_select: mask must be bool (or uint8), got ", dtype_name(mask.dtype()));
  SX_CHECK(mask.device() == a.device(), "masked_select: mask is on ", mask.device().str(), ", input on ",
           a.device().str());
  const Shape shape = broadcast_shapes(a.shape(), mask.shape());
  Tensor ae = a.detach().expand(shape), me = mask.detach().expand(shape);
  Tensor out = detail::masked_select_impl(ae, me);
  if (!is_floating(a.dtype())) return out;
  const Shape sa = a.shape();
  const DType dt = a.dtype();
  return attach_grad(out, "masked_select", {a}, [sa, me, dt](const Tensor& g) {
    return std::vector<Tensor>{sum_to(detail::masked_scatter_zeros(me, g, dt), sa)};
  });
}

Tensor nonzero(const Tensor& a) {
  SX_CHECK(a.defined(), "nonzero: undefined tensor");
  return detail::nonzero_impl(a);
}

}  // namespace sx
