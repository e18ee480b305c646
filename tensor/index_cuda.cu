// CUDA twins of the indexing kernels (index.cpp has the CPU reference and the op semantics).
//
// gather / index_select: one thread per index element (grid-stride loop); each decodes its
//   position with IndexGeom::offsets (index_math.h, the very code the CPU loop runs) and copies one
//   value. Writes are disjoint, so no atomics.
// scatter_add: the same walk, but several index elements may hit one output element, so the add is
//   an atomicAdd (float and double atomics exist on sm_60+; int64 goes through the unsigned 64-bit
//   atomic, which wraps identically in two's complement). The order of the additions is therefore
//   unspecified: float results may differ from the CPU's sequential sum in the last bits.
// Out-of-range indices cannot raise an exception from a kernel without a host synchronisation, so
//   on CUDA they are not checked: gather writes 0 for them and scatter_add skips them. (The CPU
//   throws; run on the CPU to debug an index.)
//
// masked_select / nonzero: the output size depends on the data. Stream compaction in three steps:
//   1. flags[i] = (element i is selected)                      (one thread per element)
//   2. pos = inclusive prefix sum of flags                     (cub::DeviceScan::InclusiveSum)
//   3. count = pos[n-1]  -- THE ONE EXPLICIT SYNC of these ops: the host must learn the output size
//      to allocate it (Tensor::item on a one-element view);
//      then out[pos[i]-1] = value (or coordinates) of i where flags[i]    (one thread per element)
// masked_select's backward (masked_scatter into zeros) already knows the size, so it runs steps
// 1, 2 and an inverse of step 3 with no sync at all.
#include <cub/device/device_scan.cuh>

#include "tensor/cuda_context.h"
#include "tensor/index.h"

namespace sx::detail {
namespace {

constexpr int kThreads = 256;

#define SX_GRID_STRIDE_LOOP(i, n) \
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < (n); \
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)

template <class T>
__global__ void gather_kernel(IndexGeom g, int64_t n, T* out, const T* src, const int64_t* index,
                              int64_t sstride, int64_t ssize) {
  SX_GRID_STRIDE_LOOP(i, n) {
    int64_t o0, o1, o2;
    g.offsets(i, o0, o1, o2);
    const int64_t k = index[o1];
    out[o0] = index_in_range(k, ssize) ? src[o2 + k * sstride] : T(0);
  }
}

__device__ __forceinline__ void atomic_add(float* p, float v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(double* p, double v) { atomicAdd(p, v); }
__device__ __forceinline__ void atomic_add(int32_t* p, int32_t v) { atomicAdd(reinterpret_cast<int*>(p), v); }
__device__ __forceinline__ void atomic_add(int64_t* p, int64_t v) {
  atomicAdd(reinterpret_cast<unsigned long long*>(p), static_cast<unsigned long long>(v));
}

template <class T>
__global__ void scatter_add_kernel(IndexGeom g, int64_t n, T* out, const T* src, const int64_t* index,
                                   int64_t ostride, int64_t osize) {
  SX_GRID_STRIDE_LOOP(i, n) {
    int64_t o0, o1, o2;
    g.offsets(i, o0, o1, o2);
    const int64_t k = index[o1];
    if (index_in_range(k, osize)) atomic_add(out + o2 + k * ostride, src[o0]);
  }
}

template <class T>
__global__ void flags_kernel(IndexGeom g, int64_t n, const T* x, int64_t* flags) {
  SX_GRID_STRIDE_LOOP(i, n) {
    int64_t o0, o1, o2;
    g.offsets(i, o0, o1, o2);
    flags[i] = is_nonzero(x[o0]) ? 1 : 0;
  }
}

template <class T>
__global__ void select_kernel(IndexGeom g, int64_t n, const T* a, const int64_t* flags, const int64_t* pos,
                              T* out) {
  SX_GRID_STRIDE_LOOP(i, n) {
    if (!flags[i]) continue;
    int64_t o0, o1, o2;
    g.offsets(i, o0, o1, o2);
    out[pos[i] - 1] = a[o0];
  }
}

template <class T>
__global__ void unselect_kernel(int64_t n, const int64_t* flags, const int64_t* pos, const T* src, T* out) {
  SX_GRID_STRIDE_LOOP(i, n) {
    if (flags[i]) out[i] = src[pos[i] - 1];
  }
}

__global__ void coords_kernel(IndexGeom g, int64_t n, const int64_t* flags, const int64_t* pos, int64_t* out) {
  SX_GRID_STRIDE_LOOP(i, n) {
    if (!flags[i]) continue;
    g.coords(i, out + (pos[i] - 1) * g.ndim);
  }
}

// flags over x (a strided view of `shape`), and their inclusive prefix sum.
struct Compaction {
  Tensor flags, pos;
};
template <class T>
Compaction compact(const Tensor& x, const Shape& shape, const T* xp) {
  const int dev = x.device().index;
  cudaStream_t s = cuda::current_stream(dev);
  const int64_t n = shape_numel(shape);
  const IndexGeom g = make_index_geom(shape, x, Tensor(), Tensor());
  Compaction c;
  c.flags = Tensor::empty({n}, DType::Int64, x.device());
  c.pos = Tensor::empty({n}, DType::Int64, x.device());
  int64_t* fp = c.flags.data<int64_t>();
  int64_t* pp = c.pos.data<int64_t>();
  flags_kernel<T><<<cuda::blocks_for(n, kThreads), kThreads, 0, s>>>(g, n, xp, fp);
  SX_CUDA_CHECK_LAUNCH();
  size_t bytes = 0;
  SX_CUDA_CHECK(cub::DeviceScan::InclusiveSum(nullptr, bytes, fp, pp, n, s));
  Tensor tmp = Tensor::empty({static_cast<int64_t>(std::max<size_t>(bytes, 1))}, DType::UInt8, x.device());
  SX_CUDA_CHECK(cub::DeviceScan::InclusiveSum(tmp.data_ptr(), bytes, fp, pp, n, s));
  return c;
}

}  // namespace

void gather_cuda(const Tensor& out, const Tensor& src, int64_t dim, const Tensor& index) {
  const int dev = out.device().index;
  cuda::set_device(dev);
  cudaStream_t s = cuda::current_stream(dev);
  const IndexGeom g = make_index_geom(index.shape(), out, index, src, dim);
  const int64_t n = index.numel();
  SX_DISPATCH_ALL(src.dtype(), "gather", [&] {
    gather_kernel<scalar_t><<<cuda::blocks_for(n, kThreads), kThreads, 0, s>>>(
        g, n, static_cast<scalar_t*>(out.data_ptr()), static_cast<const scalar_t*>(src.data_ptr()),
        index.data<int64_t>(), src.stride(dim), src.size(dim));
    SX_CUDA_CHECK_LAUNCH();
  });
}

void scatter_add_cuda(const Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) {
  const int dev = out.device().index;
  cuda::set_device(dev);
  cudaStream_t s = cuda::current_stream(dev);
  const IndexGeom g = make_index_geom(index.shape(), src, index, out, dim);
  const int64_t n = index.numel();
  auto launch = [&](auto* tag) {
    using T = std::remove_pointer_t<decltype(tag)>;
    scatter_add_kernel<T><<<cuda::blocks_for(n, kThreads), kThreads, 0, s>>>(
        g, n, static_cast<T*>(out.data_ptr()), static_cast<const T*>(src.data_ptr()), index.data<int64_t>(),
        out.stride(dim), out.size(dim));
    SX_CUDA_CHECK_LAUNCH();
  };
  switch (out.dtype()) {
    case DType::Float32: launch(static_cast<float*>(nullptr)); break;
    case DType::Float64: launch(static_cast<double*>(nullptr)); break;
    case DType::Int32: launch(static_cast<int32_t*>(nullptr)); break;
    case DType::Int64: launch(static_cast<int64_t*>(nullptr)); break;
    default:
      SX_THROW(ValueError, "scatter_add: CUDA supports float32, float64, int32 and int64, got ",
               dtype_name(out.dtype()));
  }
}

Tensor masked_select_cuda(const Tensor& a, const Tensor& mask) {
  const int dev = a.device().index;
  cuda::set_device(dev);
  cudaStream_t s = cuda::current_stream(dev);
  const int64_t n = a.numel();
  if (n == 0) return Tensor::empty({0}, a.dtype(), a.device());
  Compaction c = compact(mask, mask.shape(), static_cast<const uint8_t*>(mask.data_ptr()));
  const int64_t count = static_cast<int64_t>(c.pos.narrow(0, n - 1, 1).item());  // the one sync
  Tensor out = Tensor::empty({count}, a.dtype(), a.device());
  if (count == 0) return out;
  const IndexGeom g = make_index_geom(a.shape(), a, Tensor(), Tensor());
  SX_DISPATCH_ALL(a.dtype(), "masked_select", [&] {
    select_kernel<scalar_t><<<cuda::blocks_for(n, kThreads), kThreads, 0, s>>>(
        g, n, static_cast<const scalar_t*>(a.data_ptr()), c.flags.data<int64_t>(), c.pos.data<int64_t>(),
        out.data<scalar_t>());
    SX_CUDA_CHECK_LAUNCH();
  });
  return out;
}

Tensor masked_scatter_zeros_cuda(const Tensor& mask, const Tensor& src, DType dtype) {
  const int dev = mask.device().index;
  cuda::set_device(dev);
  cudaStream_t s = cuda::current_stream(dev);
  Tensor out = Tensor::zeros(mask.shape(), dtype, mask.device());
  const int64_t n = mask.numel();
  if (n == 0 || src.numel() == 0) return out;
  Compaction c = compact(mask, mask.shape(), static_cast<const uint8_t*>(mask.data_ptr()));
  Tensor sc = src.contiguous();
  SX_DISPATCH_ALL(dtype, "masked_select backward", [&] {
    unselect_kernel<scalar_t><<<cuda::blocks_for(n, kThreads), kThreads, 0, s>>>(
        n, c.flags.data<int64_t>(), c.pos.data<int64_t>(), sc.data<scalar_t>(), out.data<scalar_t>());
    SX_CUDA_CHECK_LAUNCH();
  });
  return out;
}

Tensor nonzero_cuda(const Tensor& a) {
  const int dev = a.device().index;
  cuda::set_device(dev);
  cudaStream_t s = cuda::current_stream(dev);
  const int64_t n = a.numel(), nd = a.dim();
  if (n == 0) return Tensor::empty({0, nd}, DType::Int64, a.device());
  Compaction c;
  SX_DISPATCH_ALL(a.dtype(), "nonzero", [&] { c = compact(a, a.shape(), static_cast<const scalar_t*>(a.data_ptr())); });
  const int64_t count = static_cast<int64_t>(c.pos.narrow(0, n - 1, 1).item());  // the one sync
  Tensor out = Tensor::empty({count, nd}, DType::Int64, a.device());
  if (count == 0 || nd == 0) return out;
  const IndexGeom g = make_index_geom(a.shape(), a, Tensor(), Tensor());
  coords_kernel<<<cuda::blocks_for(n, kThreads), kThreads, 0, s>>>(g, n, c.flags.data<int64_t>(),
                                                                    c.pos.data<int64_t>(), out.data<int64_t>());
  SX_CUDA_CHECK_LAUNCH();
  return out;
}

const IndexBackend IndexBackend::cuda = {gather_cuda, scatter_add_cuda, masked_select_cuda,
                                         masked_scatter_zeros_cuda, nonzero_cuda};

}  // namespace sx::detail
