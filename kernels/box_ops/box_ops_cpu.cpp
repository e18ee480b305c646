// CPU loops for box_ops.h over the shared math in box_ops_math.h.
//
// The IoU/GIoU matrix is the only sizable one (1k x 10k pairs in the benchmark): rows are split over
// OpenMP threads, the areas of both sets are computed once, and each pair reads 2 x 4 coordinates
// from cache. torchvision builds the same matrix from broadcast tensor ops, materialising several
// [N, M, 2] temporaries; one fused loop writes the [N, M] result once.
#include <omp.h>

#include <vector>

#include "kernels/box_ops/box_ops.h"
#include "kernels/box_ops/box_ops_math.h"

namespace sx::kernels::cpu {

Tensor box_area(const Tensor& boxes) {
  const int64_t n = boxes.size(0);
  Tensor out = Tensor::empty({n}, boxes.dtype());
  SX_DISPATCH_FLOAT(boxes.dtype(), "box_area", [&] {
    const scalar_t* b = boxes.data<scalar_t>();
    scalar_t* o = out.data<scalar_t>();
    for (int64_t i = 0; i < n; ++i) o[i] = boxmath::area(b + 4 * i);
  });
  return out;
}

template <class T>
static void pairwise_impl(const T* pa, const T* pb, T* o, int64_t n, int64_t m, bool giou) {
  // The second set as structure-of-arrays, so the inner loop is unit-stride and vectorises.
  std::vector<T> bx1(m), by1(m), bx2(m), by2(m), barea(m);
  for (int64_t j = 0; j < m; ++j) {
    bx1[j] = pb[4 * j];
    by1[j] = pb[4 * j + 1];
    bx2[j] = pb[4 * j + 2];
    by2[j] = pb[4 * j + 3];
    barea[j] = boxmath::area(pb + 4 * j);
  }
  const T* X1 = bx1.data();
  const T* Y1 = by1.data();
  const T* X2 = bx2.data();
  const T* Y2 = by2.data();
  const T* AR = barea.data();
#pragma omp parallel for schedule(static) if (n * m > 16384)
  for (int64_t i = 0; i < n; ++i) {
    const T ax1 = pa[4 * i], ay1 = pa[4 * i + 1], ax2 = pa[4 * i + 2], ay2 = pa[4 * i + 3];
    const T ai = boxmath::area(pa + 4 * i);
    T* row = o + i * m;
    if (giou) {
#pragma omp simd
      for (int64_t j = 0; j < m; ++j)
        row[j] = boxmath::giou_c(ax1, ay1, ax2, ay2, ai, X1[j], Y1[j], X2[j], Y2[j], AR[j]);
    } else {
#pragma omp simd
      for (int64_t j = 0; j < m; ++j)
        row[j] = boxmath::iou_c(ax1, ay1, ax2, ay2, ai, X1[j], Y1[j], X2[j], Y2[j], AR[j]);
    }
  }
}

Tensor pairwise(const Tensor& a, const Tensor& b, PairwiseBoxOp op) {
  const int64_t n = a.size(0), m = b.size(0);
  Tensor out = Tensor::empty({n, m}, a.dtype());
  if (n == 0 || m == 0) return out;
  SX_DISPATCH_FLOAT(a.dtype(), "box_iou", [&] {
    pairwise_impl(a.data<scalar_t>(), b.data<scalar_t>(), out.data<scalar_t>(), n, m,
                  op == PairwiseBoxOp::GIoU);
  });
  return out;
}

Tensor clip_boxes_to_image(const Tensor& boxes, int64_t height, int64_t width) {
  const int64_t n = boxes.size(0);
  Tensor out = Tensor::empty({n, 4}, boxes.dtype());
  SX_DISPATCH_FLOAT(boxes.dtype(), "clip_boxes_to_image", [&] {
    const scalar_t* b = boxes.data<scalar_t>();
    scalar_t* o = out.data<scalar_t>();
    const scalar_t w = static_cast<scalar_t>(width), h = static_cast<scalar_t>(height);
    for (int64_t i = 0; i < n; ++i) {
      o[4 * i + 0] = boxmath::clip(b[4 * i + 0], w);
      o[4 * i + 1] = boxmath::clip(b[4 * i + 1], h);
      o[4 * i + 2] = boxmath::clip(b[4 * i + 2], w);
      o[4 * i + 3] = boxmath::clip(b[4 * i + 3], h);
    }
  });
  return out;
}

Tensor remove_small_boxes(const Tensor& boxes, double min_size) {
  const int64_t n = boxes.size(0);
  std::vector<int64_t> keep;
  SX_DISPATCH_FLOAT(boxes.dtype(), "remove_small_boxes", [&] {
    const scalar_t* b = boxes.data<scalar_t>();
    const scalar_t s = static_cast<scalar_t>(min_size);
    for (int64_t i = 0; i < n; ++i) {
      const scalar_t ws = b[4 * i + 2] - b[4 * i + 0], hs = b[4 * i + 3] - b[4 * i + 1];
      if (ws >= s && hs >= s) keep.push_back(i);
    }
  });
  Tensor out = Tensor::empty({static_cast<int64_t>(keep.size())}, DType::Int64);
  std::copy(keep.begin(), keep.end(), out.data<int64_t>());
  return out;
}

Tensor encode_boxes(const Tensor& gt, const Tensor& proposals, const BoxCoderWeights& w) {
  const int64_t n = gt.size(0);
  Tensor out = Tensor::empty({n, 4}, gt.dtype());
  SX_DISPATCH_FLOAT(gt.dtype(), "encode_boxes", [&] {
    const scalar_t wt[4] = {scalar_t(w[0]), scalar_t(w[1]), scalar_t(w[2]), scalar_t(w[3])};
    const scalar_t* g = gt.data<scalar_t>();
    const scalar_t* p = proposals.data<scalar_t>();
    scalar_t* o = out.data<scalar_t>();
    for (int64_t i = 0; i < n; ++i) boxmath::encode(g + 4 * i, p + 4 * i, wt, o + 4 * i);
  });
  return out;
}

Tensor decode_boxes(const Tensor& codes, const Tensor& boxes, const BoxCoderWeights& w, double clip) {
  const int64_t n = codes.size(0), k = codes.size(1) / 4;
  Tensor out = Tensor::empty({n, 4 * k}, codes.dtype());
  SX_DISPATCH_FLOAT(codes.dtype(), "decode_boxes", [&] {
    const scalar_t wt[4] = {scalar_t(w[0]), scalar_t(w[1]), scalar_t(w[2]), scalar_t(w[3])};
    const scalar_t* c = codes.data<scalar_t>();
    const scalar_t* b = boxes.data<scalar_t>();
    scalar_t* o = out.data<scalar_t>();
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < k; ++j)
        boxmath::decode(c + 4 * (i * k + j), b + 4 * i, wt, scalar_t(clip), o + 4 * (i * k + j));
  });
  return out;
}

}  // namespace sx::kernels::cpu

namespace sx::kernels {
const BoxOpsBackend BoxOpsBackend::cpu = {
    cpu::box_area,
    cpu::pairwise,
    cpu::clip_boxes_to_image,
    cpu::remove_small_boxes,
    cpu::encode_boxes,
    cpu::decode_boxes};
}  // namespace sx::kernels
