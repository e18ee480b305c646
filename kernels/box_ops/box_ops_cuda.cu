// CUDA kernels for box_ops.h over the shared math in box_ops_math.h.
//
// Every op is embarrassingly parallel: one thread per box (area, clip, encode, decode) or per pair
// (IoU/GIoU matrix, j fastest so a warp writes 32 consecutive outputs and reads 32 consecutive
// boxes of the second set). remove_small_boxes marks the kept boxes and compacts their indices with
// cub::DeviceSelect::Flagged on the device; only the count is read back to size the result.
#include <thrust/iterator/counting_iterator.h>

#include <cub/cub.cuh>

#include "kernels/box_ops/box_ops.h"
#include "kernels/box_ops/box_ops_math.h"
#include "tensor/cuda_context.h"

namespace sx::kernels::cuda {
namespace {

template <class T>
__global__ void area_kernel(const T* b, T* o, int64_t n) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    o[i] = boxmath::area(b + 4 * i);
}

template <class T>
__global__ void pairwise_kernel(const T* a, const T* b, T* o, int64_t n, int64_t m, bool giou) {
  const int64_t total = n * m;
  for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < total;
       t += (int64_t)gridDim.x * blockDim.x) {
    const int64_t i = t / m, j = t - i * m;
    const T* bi = a + 4 * i;
    const T* bj = b + 4 * j;
    const T ai = boxmath::area(bi), aj = boxmath::area(bj);
    o[t] = giou ? boxmath::giou(bi, bj, ai, aj) : boxmath::iou(bi, bj, ai, aj);
  }
}

template <class T>
__global__ void clip_kernel(const T* b, T* o, int64_t n, T h, T w) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    o[4 * i + 0] = boxmath::clip(b[4 * i + 0], w);
    o[4 * i + 1] = boxmath::clip(b[4 * i + 1], h);
    o[4 * i + 2] = boxmath::clip(b[4 * i + 2], w);
    o[4 * i + 3] = boxmath::clip(b[4 * i + 3], h);
  }
}

template <class T>
__global__ void small_flags_kernel(const T* b, uint8_t* flags, int64_t n, T s) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x) {
    const T ws = b[4 * i + 2] - b[4 * i + 0], hs = b[4 * i + 3] - b[4 * i + 1];
    flags[i] = (ws >= s && hs >= s) ? 1 : 0;
  }
}

struct W4 {
  double v[4];
};

template <class T>
__global__ void encode_kernel(const T* g, const T* p, T* o, int64_t n, W4 w) {
  const T wt[4] = {T(w.v[0]), T(w.v[1]), T(w.v[2]), T(w.v[3])};
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    boxmath::encode(g + 4 * i, p + 4 * i, wt, o + 4 * i);
}

template <class T>
__global__ void decode_kernel(const T* c, const T* b, T* o, int64_t n, int64_t k, W4 w, T clip) {
  const T wt[4] = {T(w.v[0]), T(w.v[1]), T(w.v[2]), T(w.v[3])};
  for (int64_t t = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; t < n * k;
       t += (int64_t)gridDim.x * blockDim.x)
    boxmath::decode(c + 4 * t, b + 4 * (t / k), wt, clip, o + 4 * t);
}

}  // namespace

Tensor box_area(const Tensor& boxes) {
  const int64_t n = boxes.size(0);
  Tensor out = Tensor::empty({n}, boxes.dtype(), boxes.device());
  if (n == 0) return out;
  const int dev = boxes.device().index;
  sx::cuda::set_device(dev);
  SX_DISPATCH_FLOAT(boxes.dtype(), "box_area", [&] {
    area_kernel<<<sx::cuda::blocks_for(n), 256, 0, sx::cuda::current_stream(dev)>>>(
        boxes.data<scalar_t>(), out.data<scalar_t>(), n);
    SX_CUDA_CHECK_LAUNCH();
  });
  return out;
}

Tensor pairwise(const Tensor& a, const Tensor& b, PairwiseBoxOp op) {
  const int64_t n = a.size(0), m = b.size(0);
  Tensor out = Tensor::empty({n, m}, a.dtype(), a.device());
  if (n == 0 || m == 0) return out;
  const int dev = a.device().index;
  sx::cuda::set_device(dev);
  SX_DISPATCH_FLOAT(a.dtype(), "box_iou", [&] {
    pairwise_kernel<<<sx::cuda::blocks_for(n * m), 256, 0, sx::cuda::current_stream(dev)>>>(
        a.data<scalar_t>(), b.data<scalar_t>(), out.data<scalar_t>(), n, m,
        op == PairwiseBoxOp::GIoU);
    SX_CUDA_CHECK_LAUNCH();
  });
  return out;
}

Tensor clip_boxes_to_image(const Tensor& boxes, int64_t height, int64_t width) {
  const int64_t n = boxes.size(0);
  Tensor out = Tensor::empty({n, 4}, boxes.dtype(), boxes.device());
  if (n == 0) return out;
  const int dev = boxes.device().index;
  sx::cuda::set_device(dev);
  SX_DISPATCH_FLOAT(boxes.dtype(), "clip_boxes_to_image", [&] {
    clip_kernel<<<sx::cuda::blocks_for(n), 256, 0, sx::cuda::current_stream(dev)>>>(
        boxes.data<scalar_t>(), out.data<scalar_t>(), n, scalar_t(height), scalar_t(width));
    SX_CUDA_CHECK_LAUNCH();
  });
  return out;
}

Tensor remove_small_boxes(const Tensor& boxes, double min_size) {
  const int64_t n = boxes.size(0);
  const Device d = boxes.device();
  if (n == 0) return Tensor::empty({0}, DType::Int64, d);
  SX_CHECK(n < (int64_t(1) << 31), "remove_small_boxes: at most 2^31 boxes on CUDA, got ", n);
  const int dev = d.index;
  sx::cuda::set_device(dev);
  cudaStream_t stream = sx::cuda::current_stream(dev);
  Tensor flags = Tensor::empty({n}, DType::UInt8, d);
  SX_DISPATCH_FLOAT(boxes.dtype(), "remove_small_boxes", [&] {
    small_flags_kernel<<<sx::cuda::blocks_for(n), 256, 0, stream>>>(
        boxes.data<scalar_t>(), flags.data<uint8_t>(), n, scalar_t(min_size));
    SX_CUDA_CHECK_LAUNCH();
  });
  Tensor idx = Tensor::empty({n}, DType::Int64, d);
  Tensor count = Tensor::empty({1}, DType::Int64, d);
  thrust::counting_iterator<int64_t> it(0);
  size_t tmp_bytes = 0;
  SX_CUDA_CHECK(cub::DeviceSelect::Flagged(nullptr, tmp_bytes, it, flags.data<uint8_t>(),
                                           idx.data<int64_t>(), count.data<int64_t>(), (int)n,
                                           stream));
  Tensor tmp = Tensor::empty({static_cast<int64_t>(tmp_bytes) + 1}, DType::UInt8, d);
  SX_CUDA_CHECK(cub::DeviceSelect::Flagged(tmp.data_ptr(), tmp_bytes, it, flags.data<uint8_t>(),
                                           idx.data<int64_t>(), count.data<int64_t>(), (int)n,
                                           stream));
  const int64_t k = static_cast<int64_t>(count.item());  // the one explicit sync
  return idx.narrow(0, 0, k);
}

Tensor encode_boxes(const Tensor& gt, const Tensor& proposals, const BoxCoderWeights& w) {
  const int64_t n = gt.size(0);
  Tensor out = Tensor::empty({n, 4}, gt.dtype(), gt.device());
  if (n == 0) return out;
  const int dev = gt.device().index;
  sx::cuda::set_device(dev);
  W4 wv{{w[0], w[1], w[2], w[3]}};
  SX_DISPATCH_FLOAT(gt.dtype(), "encode_boxes", [&] {
    encode_kernel<<<sx::cuda::blocks_for(n), 256, 0, sx::cuda::current_stream(dev)>>>(
        gt.data<scalar_t>(), proposals.data<scalar_t>(), out.data<scalar_t>(), n, wv);
    SX_CUDA_CHECK_LAUNCH();
  });
  return out;
}

Tensor decode_boxes(const Tensor& codes, const Tensor& boxes, const BoxCoderWeights& w, double clip) {
  const int64_t n = codes.size(0), k = codes.size(1) / 4;
  Tensor out = Tensor::empty({n, 4 * k}, codes.dtype(), codes.device());
  if (n == 0) return out;
  const int dev = codes.device().index;
  sx::cuda::set_device(dev);
  W4 wv{{w[0], w[1], w[2], w[3]}};
  SX_DISPATCH_FLOAT(codes.dtype(), "decode_boxes", [&] {
    decode_kernel<<<sx::cuda::blocks_for(n * k), 256, 0, sx::cuda::current_stream(dev)>>>(
        codes.data<scalar_t>(), boxes.data<scalar_t>(), out.data<scalar_t>(), n, k, wv,
        scalar_t(clip));
    SX_CUDA_CHECK_LAUNCH();
  });
  return out;
}

}  // namespace sx::kernels::cuda

namespace sx::kernels {
const BoxOpsBackend BoxOpsBackend::cuda = {
    cuda::box_area,
    cuda::pairwise,
    cuda::clip_boxes_to_image,
    cuda::remove_small_boxes,
    cuda::encode_boxes,
    cuda::decode_boxes};
}  // namespace sx::kernels
