// Internal: the kernels behind the indexing ops of ops.h (index_select, gather, scatter_add,
// masked_select, nonzero) and the backward helpers they share with topk/sort.
//
// All entry points take tensors already checked by index.cpp (dtypes, devices, shapes) and run on
// the CPU or CUDA by the tensors' device. None records autograd.
#pragma once
#include "tensor/index_math.h"
#include "tensor/tensor.h"

namespace sx::detail {

// Geometry over `shape` for up to three operands (unused ones: pass an undefined Tensor); operand
// t's stride along `zero_dim_of[k]` (>= 0) is forced to 0.
IndexGeom make_index_geom(const Shape& shape, const Tensor& t0, const Tensor& t1, const Tensor& t2,
                          int64_t zero_dim_t2 = -1);

// out[i...] = src[i..., index[i...] at dim, ...] for every position of index's shape.
// out: contiguous with index's shape. Out-of-range indices throw on the CPU; on CUDA (which cannot
// throw without a synchronisation) they leave out's element unwritten (zero-initialised by callers
// that care).
void gather_into(const Tensor& out, const Tensor& src, int64_t dim, const Tensor& index);
// out[..., index[i...] at dim, ...] += src[i...] for every position of index's shape (in place).
// Out-of-range indices throw on the CPU and are skipped on CUDA.
void scatter_add_into(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src);
// zeros(shape) with src scatter-added at index along dim: the backward of gather, index_select,
// topk and sort.
Tensor scatter_add_zeros(const Shape& shape, int64_t dim, const Tensor& index, const Tensor& src);

// a and mask broadcast to one shape already (expanded views); returns the selected values (1-D).
Tensor masked_select_impl(const Tensor& a, const Tensor& mask);
// zeros(mask.shape) whose masked positions take src's values in row-major order (masked_select's
// backward); mask: an expanded view of the full shape.
Tensor masked_scatter_zeros(const Tensor& mask, const Tensor& src, DType dtype);
Tensor nonzero_impl(const Tensor& a);

// The backend functions (tensor/dispatch.h): index.cpp defines the CPU table, index_cuda.cu the
// CUDA one.
struct IndexBackend {
  void (*gather)(const Tensor& out, const Tensor& src, int64_t dim, const Tensor& index);
  void (*scatter_add)(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src);
  Tensor (*masked_select)(const Tensor& a, const Tensor& mask);
  Tensor (*masked_scatter_zeros)(const Tensor& mask, const Tensor& src, DType dtype);
  Tensor (*nonzero)(const Tensor& a);
  static const IndexBackend cpu, cuda;
};

}  // namespace sx::detail
