// CUDA row sort behind sort and topk: CUB's stable segmented sort of (value, index) pairs.
//
// Algorithm (differs from the CPU's comparison sort in sort.cpp, same resulting order):
//   1. one thread per element writes its position within its row (0..len-1), the "values" of the
//      pairs; one thread per row boundary writes the segment offsets r*len;
//   2. cub::DeviceSegmentedSort::StableSortPairs[Descending] sorts every row's keys, carrying the
//      positions along. It is a radix sort on the keys' bit patterns (floats are bit-twiddled so that
//      the unsigned order is the numeric order), and stable, so equal keys keep their original
//      order in both directions -- the same total order (value, then index) as the CPU's.
//      Floating keys are never sorted as floats: on the first GPU runs CUB put NaN in the middle of
//      short rows (6 elements), even with every NaN made the positive quiet NaN first, so its
//      short-segment path does not give NaN the CPU's place.
//      They are turned into sortable unsigned integers (sort_math.h: NaN largest, -0 == +0, the
//      CPU's order), those are sorted, and the original values are gathered by the sorted
//      positions, so -0 and NaN bits come out unchanged, as torch.sort's do.
// topk uses the full sort and keeps the first k columns (simple; O(len log len) per row rather than
// a selection, acceptable for the detector's top-k of a few thousand candidates).
// Temporary storage comes from the caching allocator (Tensor::empty), on the device's stream.
#include <cub/device/device_segmented_sort.cuh>

#include <algorithm>
#include <type_traits>

#include "tensor/cuda_context.h"
#include "tensor/sort.h"
#include "tensor/sort_math.h"

namespace sx::detail {
namespace {

constexpr int kThreads = 256;

__global__ void iota_rows_kernel(int64_t n, int64_t len, int64_t* idx) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)
    idx[i] = i % len;
}
__global__ void offsets_kernel(int64_t rows, int64_t len, int64_t* off) {
  for (int64_t r = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; r <= rows;
       r += static_cast<int64_t>(blockDim.x) * gridDim.x)
    off[r] = r * len;
}

// Floating keys -> their sortable unsigned integers (sort_math.h).
template <class T>
__global__ void sortable_keys_kernel(const T* in, typename sortmath::SortableBits<T>::type* out, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)
    out[i] = sortmath::sortable_key(in[i]);
}
// values[i] = keys[row(i) * len + indices[i]]: the original keys in sorted order.
template <class T>
__global__ void gather_rows_kernel(const T* keys, const int64_t* idx, T* out, int64_t n, int64_t len) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)
    out[i] = keys[(i / len) * len + idx[i]];
}

// CUB's stable segmented sort of (key, position) pairs; temporary storage from the caching allocator.
template <class K>
void cub_sort(const K* kin, K* kout, const int64_t* idx_in, int64_t* iout, bool descending, const int64_t* offsets,
              int64_t n, int64_t rows, Device dev, cudaStream_t s) {
  size_t bytes = 0;
  if (descending)
    SX_CUDA_CHECK(cub::DeviceSegmentedSort::StableSortPairsDescending(nullptr, bytes, kin, kout, idx_in, iout, n, rows,
                                                                      offsets, offsets + 1, s));
  else
    SX_CUDA_CHECK(cub::DeviceSegmentedSort::StableSortPairs(nullptr, bytes, kin, kout, idx_in, iout, n, rows,
                                                            offsets, offsets + 1, s));
  Tensor tmp = Tensor::empty({static_cast<int64_t>(std::max<size_t>(bytes, 1))}, DType::UInt8, dev);
  if (descending)
    SX_CUDA_CHECK(cub::DeviceSegmentedSort::StableSortPairsDescending(tmp.data_ptr(), bytes, kin, kout, idx_in, iout,
                                                                      n, rows, offsets, offsets + 1, s));
  else
    SX_CUDA_CHECK(cub::DeviceSegmentedSort::StableSortPairs(tmp.data_ptr(), bytes, kin, kout, idx_in, iout, n, rows,
                                                            offsets, offsets + 1, s));
}

template <class T>
void segmented_sort(const Tensor& keys, const Tensor& values, const Tensor& indices, bool descending,
                    const int64_t* idx_in, const int64_t* offsets, int64_t n, int64_t rows, cudaStream_t s) {
  int64_t* iout = indices.data<int64_t>();
  if constexpr (std::is_floating_point<T>::value) {
    // Sort the sortable integer keys, then gather the original values by the sorted positions
    // (so -0 and NaN bits come out unchanged, as torch.sort's do).
    using U = typename sortmath::SortableBits<T>::type;
    const DType ud = sizeof(U) == 4 ? DType::Int32 : DType::Int64;
    Tensor ukeys = Tensor::empty({n}, ud, keys.device()), usorted = Tensor::empty({n}, ud, keys.device());
    U* uk = static_cast<U*>(ukeys.data_ptr());
    sortable_keys_kernel<T><<<cuda::blocks_for(n, kThreads), kThreads, 0, s>>>(keys.data<T>(), uk, n);
    SX_CUDA_CHECK_LAUNCH();
    cub_sort<U>(uk, static_cast<U*>(usorted.data_ptr()), idx_in, iout, descending, offsets, n, rows, keys.device(), s);
    gather_rows_kernel<T><<<cuda::blocks_for(n, kThreads), kThreads, 0, s>>>(keys.data<T>(), iout, values.data<T>(), n,
                                                                               n / rows);
    SX_CUDA_CHECK_LAUNCH();
  } else {
    cub_sort<T>(keys.data<T>(), values.data<T>(), idx_in, iout, descending, offsets, n, rows, keys.device(), s);
  }
}

}  // namespace

namespace {

// A full stable sort of every row of keys [rows, len] into values/indices [rows, len].
void sort_full_rows(const Tensor& keys, const Tensor& values, const Tensor& indices, bool descending) {
  const int dev = keys.device().index;
  cuda::set_device(dev);
  cudaStream_t s = cuda::current_stream(dev);
  const int64_t rows = keys.size(0), len = keys.size(1), n = rows * len;
  if (n == 0) return;
  Tensor idx_in = Tensor::empty({n}, DType::Int64, keys.device());
  Tensor offsets = Tensor::empty({rows + 1}, DType::Int64, keys.device());
  iota_rows_kernel<<<cuda::blocks_for(n, kThreads), kThreads, 0, s>>>(n, len, idx_in.data<int64_t>());
  SX_CUDA_CHECK_LAUNCH();
  offsets_kernel<<<cuda::blocks_for(rows + 1, kThreads), kThreads, 0, s>>>(rows, len, offsets.data<int64_t>());
  SX_CUDA_CHECK_LAUNCH();
  const int64_t* ip = idx_in.data<int64_t>();
  const int64_t* op = offsets.data<int64_t>();
  switch (keys.dtype()) {
    case DType::Float32: segmented_sort<float>(keys, values, indices, descending, ip, op, n, rows, s); break;
    case DType::Float64: segmented_sort<double>(keys, values, indices, descending, ip, op, n, rows, s); break;
    case DType::Int32: segmented_sort<int32_t>(keys, values, indices, descending, ip, op, n, rows, s); break;
    case DType::Int64: segmented_sort<int64_t>(keys, values, indices, descending, ip, op, n, rows, s); break;
    case DType::UInt8: segmented_sort<uint8_t>(keys, values, indices, descending, ip, op, n, rows, s); break;
    default:
      SX_THROW(ValueError, "sort: CUDA supports float32, float64, int32, int64 and uint8, got ",
               dtype_name(keys.dtype()));
  }
}

}  // namespace

void sort_rows_cuda(const Tensor& keys, const Tensor& values, const Tensor& indices, int64_t k,
                    bool descending) {
  const int64_t len = keys.size(1);
  if (k == len) return sort_full_rows(keys, values, indices, descending);
  // topk: sort whole rows into temporaries, keep their first k columns.
  Tensor fv = Tensor::empty(keys.shape(), values.dtype(), keys.device());
  Tensor fi = Tensor::empty(keys.shape(), DType::Int64, keys.device());
  sort_full_rows(keys, fv, fi, descending);
  Tensor v = values, i = indices;
  v.copy_(fv.narrow(1, 0, k));
  i.copy_(fi.narrow(1, 0, k));
}

const SortBackend SortBackend::cuda = {sort_rows_cuda};

}  // namespace sx::detail
