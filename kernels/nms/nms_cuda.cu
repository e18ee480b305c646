// CUDA NMS: sort, bitmask, and the keep reduction on the device.
//
// 1. keys: scores below the score threshold become -inf (and are not counted); NaN is made a
//    positive quiet NaN and -0 becomes +0, so cub's radix sort orders keys like torch.sort (NaN
//    largest). A stable descending radix sort (cub::DeviceRadixSort::SortPairsDescending) gives the
//    visiting order, ties in increasing index order: the same order as the CPU's stable sort.
// 2. The candidate count m = min(#passing, pre_nms_top_k) stays on the device.
// 3. The sorted boxes (and, for batched NMS, their categories) are gathered, and the bitmask kernel
//    (as in torchvision) fills, for each box i and each block of 64 later boxes, a 64-bit word whose
//    bit t says "box i suppresses box 64*b + t" (IoU from nms_math.h, the CPU's arithmetic; never
//    across categories). Only blocks on or above the diagonal are computed: N * ceil(N/64) words,
//    ~313 MB for 50k boxes. (No coordinate-offset trick: it lets categories collide when coordinates
//    are negative and rounds the shifted boxes when they are large; issue 15.6.)
// 4. Keep reduction, one thread block. The classic implementation (torchvision <= 0.14, kept here
//    as NmsAlgo::Naive) copies the whole mask to the host and walks it there: a ~313 MB PCIe copy
//    for 50k boxes, a host sync, and a host->device copy of the result. Here it stays on the
//    device: the block walks the boxes in groups of 64. For group b, one thread resolves the 64
//    sequential decisions from the word `removed[b]` and the group's 64 diagonal words (all in
//    shared memory, a few register operations each), then all threads OR the rows of the boxes
//    just kept into removed[w] for every later group w (independent loads, one __syncthreads per
//    group rather than per box). The kept indices and their count are written on the device, so
//    nms_padded() issues no host sync; nms() reads the count once to size its result.
#include <cub/cub.cuh>

#include <cmath>
#include <vector>

#include "kernels/nms/nms.h"
#include "kernels/nms/nms_math.h"
#include "tensor/cuda_context.h"
#include "tensor/sort_math.h"

namespace sx::kernels::cuda {
namespace {

constexpr int kBits = 64;

template <class T>
__global__ void keys_kernel(const T* scores, int64_t n, bool has_thr, T thr, T* keys, int64_t* vals,
                            unsigned long long* count) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    T k = scores[i];
    const bool valid = !has_thr || k > thr;
    if (!valid) {
      k = -INFINITY;
    } else {
      k = sortmath::canonical_key(k);  // NaN -> +qNaN, -0 -> +0 (tensor/sort_math.h)
      atomicAdd(count, 1ULL);
    }
    keys[i] = k;
    vals[i] = i;
  }
}

// m = min(count, top_k) as int64 on the device.
__global__ void candidates_kernel(const unsigned long long* count, int64_t top_k, int64_t* m) {
  int64_t c = static_cast<int64_t>(*count);
  m[0] = (top_k > 0 && c > top_k) ? top_k : c;
}

// Boxes (and categories, when idxs is given) in visiting order.
template <class T>
__global__ void gather_kernel(const T* boxes, const int64_t* order, const int64_t* idxs,
                              const int64_t* m_ptr, int64_t n, T* sorted, int64_t* sorted_cat) {
  const int64_t m = *m_ptr;
  for (int64_t r = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; r < n && r < m;
       r += (int64_t)gridDim.x * blockDim.x) {
    const int64_t i = order[r];
    for (int k = 0; k < 4; ++k) sorted[4 * r + k] = boxes[4 * i + k];
    if (idxs) sorted_cat[r] = idxs[i];
  }
}

template <class T>
__global__ void mask_kernel(const T* sb, const int64_t* scat, const int64_t* m_ptr, int64_t col_blocks,
                            double thr, unsigned long long* mask) {
  const int64_t m = *m_ptr;
  const int64_t row_start = blockIdx.y, col_start = blockIdx.x;
  if (row_start > col_start) return;
  const int64_t row_size = min(m - row_start * kBits, (int64_t)kBits);
  const int64_t col_size = min(m - col_start * kBits, (int64_t)kBits);
  if (row_size <= 0 || col_size <= 0) return;
  __shared__ T cb[kBits * 5];
  __shared__ int64_t cc[kBits];
  if (threadIdx.x < col_size) {
    if (scat) cc[threadIdx.x] = scat[col_start * kBits + threadIdx.x];
    const T* p = sb + 4 * (col_start * kBits + threadIdx.x);
    cb[threadIdx.x * 5 + 0] = p[0];
    cb[threadIdx.x * 5 + 1] = p[1];
    cb[threadIdx.x * 5 + 2] = p[2];
    cb[threadIdx.x * 5 + 3] = p[3];
    cb[threadIdx.x * 5 + 4] = (p[2] - p[0]) * (p[3] - p[1]);
  }
  __syncthreads();
  if (threadIdx.x < row_size) {
    const int64_t cur = row_start * kBits + threadIdx.x;
    const T* p = sb + 4 * cur;
    const T x1 = p[0], y1 = p[1], x2 = p[2], y2 = p[3];
    const T a = (x2 - x1) * (y2 - y1);
    const int start = (row_start == col_start) ? threadIdx.x + 1 : 0;
    const unsigned long long t =
        nmsmath::mask_word(x1, y1, x2, y2, a, cb, start, static_cast<int>(col_size), thr,
                           scat ? cc : nullptr, scat ? scat[cur] : 0);
    mask[cur * col_blocks + col_start] = t;
  }
}

// One block walks the groups of 64 boxes; see the note at the top of the file.
__global__ void keep_kernel(const unsigned long long* mask, int64_t n, int64_t col_blocks,
                            const int64_t* m_ptr, int64_t max_out, const int64_t* order,
                            unsigned long long* removed_global, bool use_shared, int64_t* keep,
                            int64_t* count) {
  extern __shared__ unsigned long long removed_shared[];
  __shared__ unsigned long long diag[kBits];
  __shared__ unsigned long long kept_word;
  __shared__ int64_t s_nkeep;
  __shared__ int s_done;
  unsigned long long* removed = use_shared ? removed_shared : removed_global;
  const int64_t m = *m_ptr;
  const int64_t groups = (m + kBits - 1) / kBits;
  for (int64_t w = threadIdx.x; w < groups; w += blockDim.x) removed[w] = 0;
  if (threadIdx.x == 0) {
    s_nkeep = 0;
    s_done = 0;
  }
  __syncthreads();
  for (int64_t b = 0; b < groups; ++b) {
    if (threadIdx.x < kBits) {
      const int64_t r = b * kBits + threadIdx.x;
      diag[threadIdx.x] = (r < m) ? mask[r * col_blocks + b] : 0ULL;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      // keep_rows receives sorted positions; they are mapped to box indices below.
      int64_t nk = s_nkeep;
      bool done = false;
      const int rows = static_cast<int>(min(m - b * kBits, (int64_t)kBits));
      kept_word = nmsmath::resolve_group(removed[b], diag, rows, max_out, &nk, b, keep, &done);
      for (int64_t r = s_nkeep; r < nk; ++r) keep[r] = order[keep[r]];
      s_nkeep = nk;
      s_done = done ? 1 : 0;
    }
    __syncthreads();
    if (s_done) break;
    const unsigned long long kw = kept_word;
    for (int64_t w = b + 1 + threadIdx.x; w < groups; w += blockDim.x) {
      unsigned long long acc = removed[w];
      unsigned long long bits = kw;
      while (bits) {
        const int t = __ffsll(static_cast<long long>(bits)) - 1;
        bits &= bits - 1;
        acc |= mask[(b * kBits + t) * col_blocks + w];
      }
      removed[w] = acc;
    }
    __syncthreads();
  }
  const int64_t nk = s_nkeep;
  for (int64_t r = nk + threadIdx.x; r < n; r += blockDim.x) keep[r] = -1;
  if (threadIdx.x == 0) count[0] = nk;
}

}  // namespace

std::pair<Tensor, Tensor> nms_padded(const Tensor& boxes, const Tensor& scores, const Tensor& idxs,
                                     const NmsOptions& o) {
  const int64_t n = boxes.size(0);
  const Device d = boxes.device();
  const int dev = d.index;
  sx::cuda::set_device(dev);
  cudaStream_t stream = sx::cuda::current_stream(dev);
  Tensor keep = Tensor::empty({n}, DType::Int64, d);
  Tensor count = Tensor::zeros({1}, DType::Int64, d);
  if (n == 0) return {keep, count};
  SX_CHECK(n <= 65535LL * kBits, "nms: at most ", 65535LL * kBits, " boxes on CUDA, got ", n);
  const int64_t col_blocks = (n + kBits - 1) / kBits;

  SX_DISPATCH_FLOAT(boxes.dtype(), "nms", [&] {
    // 1. keys + stable descending sort.
    Tensor keys = Tensor::empty({n}, boxes.dtype(), d);
    Tensor vals = Tensor::empty({n}, DType::Int64, d);
    Tensor passing = Tensor::zeros({1}, DType::Int64, d);
    auto* passing_p = reinterpret_cast<unsigned long long*>(passing.data<int64_t>());
    keys_kernel<<<sx::cuda::blocks_for(n), 256, 0, stream>>>(
        scores.data<scalar_t>(), n, o.score_threshold.has_value(),
        static_cast<scalar_t>(o.score_threshold.value_or(0.0)), keys.data<scalar_t>(),
        vals.data<int64_t>(), passing_p);
    SX_CUDA_CHECK_LAUNCH();
    Tensor keys_sorted = Tensor::empty({n}, boxes.dtype(), d);
    Tensor order = Tensor::empty({n}, DType::Int64, d);
    size_t tmp_bytes = 0;
    SX_CUDA_CHECK(cub::DeviceRadixSort::SortPairsDescending(
        nullptr, tmp_bytes, keys.data<scalar_t>(), keys_sorted.data<scalar_t>(),
        vals.data<int64_t>(), order.data<int64_t>(), static_cast<int>(n), 0,
        int(sizeof(scalar_t) * 8), stream));
    Tensor tmp = Tensor::empty({static_cast<int64_t>(tmp_bytes) + 1}, DType::UInt8, d);
    SX_CUDA_CHECK(cub::DeviceRadixSort::SortPairsDescending(
        tmp.data_ptr(), tmp_bytes, keys.data<scalar_t>(), keys_sorted.data<scalar_t>(),
        vals.data<int64_t>(), order.data<int64_t>(), static_cast<int>(n), 0,
        int(sizeof(scalar_t) * 8), stream));
    // 2. candidate count.
    Tensor m_t = Tensor::empty({1}, DType::Int64, d);
    candidates_kernel<<<1, 1, 0, stream>>>(passing_p, o.pre_nms_top_k, m_t.data<int64_t>());
    SX_CUDA_CHECK_LAUNCH();
    const int64_t* idx_p = idxs.defined() ? idxs.data<int64_t>() : nullptr;
    // 3. sorted boxes (and categories) and the bitmask.
    Tensor sorted = Tensor::empty({n, 4}, boxes.dtype(), d);
    Tensor sorted_cat = idx_p ? Tensor::empty({n}, DType::Int64, d) : Tensor();
    int64_t* scat_p = idx_p ? sorted_cat.data<int64_t>() : nullptr;
    gather_kernel<<<sx::cuda::blocks_for(n), 256, 0, stream>>>(
        boxes.data<scalar_t>(), order.data<int64_t>(), idx_p, m_t.data<int64_t>(), n,
        sorted.data<scalar_t>(), scat_p);
    SX_CUDA_CHECK_LAUNCH();
    Tensor mask = Tensor::empty({n, col_blocks}, DType::Int64, d);
    auto* mask_p = reinterpret_cast<unsigned long long*>(mask.data<int64_t>());
    dim3 grid(static_cast<unsigned>(col_blocks), static_cast<unsigned>(col_blocks));
    mask_kernel<<<grid, kBits, 0, stream>>>(sorted.data<scalar_t>(), scat_p, m_t.data<int64_t>(),
                                             col_blocks, o.iou_threshold, mask_p);
    SX_CUDA_CHECK_LAUNCH();
    // 4. keep reduction.
    if (o.algo == NmsAlgo::Fast) {
      const size_t smem = static_cast<size_t>(col_blocks) * sizeof(unsigned long long);
      const bool use_shared = smem <= 40 * 1024;
      Tensor removed_g;
      unsigned long long* removed_p = nullptr;
      if (!use_shared) {
        removed_g = Tensor::empty({col_blocks}, DType::Int64, d);
        removed_p = reinterpret_cast<unsigned long long*>(removed_g.data<int64_t>());
      }
      keep_kernel<<<1, 512, use_shared ? smem : 0, stream>>>(
          mask_p, n, col_blocks, m_t.data<int64_t>(), o.max_output, order.data<int64_t>(),
          removed_p, use_shared, keep.data<int64_t>(), count.data<int64_t>());
      SX_CUDA_CHECK_LAUNCH();
    } else {
      // Classic: copy the mask and the order to the host and walk them there.
      const int64_t m = static_cast<int64_t>(m_t.item());
      Tensor mask_h = mask.cpu();
      Tensor order_h = order.cpu();
      const auto* mh = reinterpret_cast<const unsigned long long*>(mask_h.data<int64_t>());
      const int64_t* oh = order_h.data<int64_t>();
      std::vector<unsigned long long> removed(col_blocks, 0);
      Tensor keep_h = Tensor::full({n}, -1.0, DType::Int64);
      int64_t* kh = keep_h.data<int64_t>();
      int64_t nk = 0;
      const int64_t groups = (m + kBits - 1) / kBits;  // words beyond the candidates are unset
      for (int64_t i = 0; i < m; ++i) {
        const int64_t b = i / kBits, t = i % kBits;
        if ((removed[b] >> t) & 1ULL) continue;
        kh[nk++] = oh[i];
        if (o.max_output > 0 && nk >= o.max_output) break;
        const unsigned long long* row = mh + i * col_blocks;
        for (int64_t w = b; w < groups; ++w) removed[w] |= row[w];
      }
      keep.copy_(keep_h);
      count.copy_(Tensor::full({1}, static_cast<double>(nk), DType::Int64));
    }
  });
  return {keep, count};
}

}  // namespace sx::kernels::cuda

namespace sx::kernels {
const NmsBackend NmsBackend::cuda = {cuda::nms_padded};
}  // namespace sx::kernels
