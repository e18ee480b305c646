// Kernel lab, NMS: v1 (argmax scans) and v3 (the bitmask algorithm on the CPU); v2 and v4 are the
// product's two CPU algorithms, called as they are. See nms_lab.h for the list and docs/labs.md.
#include "kernels/labs/nms_lab.h"

#include <algorithm>
#include <vector>

#include "kernels/box_ops/checks.h"
#include "kernels/nms/nms_math.h"
#include "tensor/dispatch.h"

namespace sx::kernels::labs {
namespace {

void check_args(const Tensor& boxes, const Tensor& scores, const char* op) {
  detail::check_boxes(boxes, op, "boxes");
  detail::check_float(scores, op, "scores");
  detail::check_same_dtype(boxes, scores, op);
  SX_CHECK(scores.dim() == 1 && scores.size(0) == boxes.size(0), op, ": scores must be [",
           boxes.size(0), "], got ", shape_str(scores.shape()));
  SX_CHECK(!boxes.is_cuda() && !scores.is_cuda(), op, ": the labs run on the CPU only");
}

Tensor to_tensor(const std::vector<int64_t>& v) {
  Tensor t = Tensor::empty({static_cast<int64_t>(v.size())}, DType::Int64);
  std::copy(v.begin(), v.end(), t.data<int64_t>());
  return t;
}

// ---- v1: no sort, argmax scans -------------------------------------------------------------
// Step: the greedy rule read literally. "Take the best remaining box, keep it, throw away
// everything it overlaps, repeat." Each round scans all N boxes twice (find the best, suppress its
// overlaps), so K kept boxes cost 2 * N * K visits: quadratic as soon as most boxes survive (sparse
// scenes, the usual case). Every box still remaining when `best` is picked comes after it in the
// sorted order, so suppressing all of them is exactly the sorted greedy rule.
template <class T>
std::vector<int64_t> argmax_loop(const T* b, const T* s, int64_t n, double thr) {
  std::vector<T> area(n);
  for (int64_t i = 0; i < n; ++i) area[i] = (b[4 * i + 2] - b[4 * i]) * (b[4 * i + 3] - b[4 * i + 1]);
  std::vector<uint8_t> gone(n, 0);  // kept or suppressed
  std::vector<int64_t> keep;
  for (;;) {
    int64_t best = -1;  // strict "before": ties keep the lowest index (the stable sort's order)
    for (int64_t i = 0; i < n; ++i)
      if (!gone[i] && (best < 0 || nmsmath::score_before(s[i], s[best]))) best = i;
    if (best < 0) break;
    keep.push_back(best);
    gone[best] = 1;
    const T* p = b + 4 * best;
    for (int64_t j = 0; j < n; ++j) {
      if (gone[j]) continue;
      const T* q = b + 4 * j;
      if (nmsmath::suppresses(p[0], p[1], p[2], p[3], area[best], q[0], q[1], q[2], q[3], area[j], thr))
        gone[j] = 1;
    }
  }
  return keep;
}

// ---- v3: sort once, suppression bitmask, grouped reduction ---------------------------------
// Step: split the work into a big parallel part and a small sequential part. After one stable
// sort, bit t of word mask[r][g] says "sorted box r suppresses sorted box 64 g + t" (only pairs
// r < j: the diagonal group starts at r + 1). Rows are independent, so they run on OpenMP threads
// (on the GPU: one thread per row, one block per 64 x 64 tile). Then the greedy decisions: walk
// the groups of 64 in order; `removed[g]` collects the bits of boxes already suppressed, and
// resolve_group decides the 64 boxes of a group from it and their diagonal words; the rows of the
// boxes just kept are ORed into every later group's `removed` word. The sequential part is
// K * N / 64 word ORs instead of N^2 / 2 IoUs. The price: all N^2 / 2 IoUs are computed even for
// boxes that a v2 sweep would skip, and the mask takes N^2 / 8 bytes (12.5 MB at 10k, 312 MB at
// 50k).
template <class T>
std::vector<int64_t> bitmask_loop(const T* b, const T* s, const int64_t* cats, int64_t n, double thr,
                                  int64_t max_out) {
  std::vector<int64_t> order(n);
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t x, int64_t y) { return nmsmath::score_before(s[x], s[y]); });
  // Sorted boxes, 5 values each (x1 y1 x2 y2 area): the layout mask_word reads a group from.
  std::vector<T> sorted(5 * n);
  std::vector<int64_t> scat(cats ? n : 0);
  for (int64_t r = 0; r < n; ++r) {
    const T* p = b + 4 * order[r];
    T* q = &sorted[5 * r];
    q[0] = p[0], q[1] = p[1], q[2] = p[2], q[3] = p[3];
    q[4] = (p[2] - p[0]) * (p[3] - p[1]);
    if (cats) scat[r] = cats[order[r]];
  }
  const int64_t groups = (n + 63) / 64;
  std::vector<unsigned long long> mask(static_cast<size_t>(n * groups), 0ULL);
#pragma omp parallel for schedule(dynamic, 64) if (n >= 2048)
  for (int64_t r = 0; r < n; ++r) {
    const T* q = &sorted[5 * r];
    for (int64_t g = r / 64; g < groups; ++g) {
      const int count = static_cast<int>(std::min<int64_t>(64, n - 64 * g));
      const int start = g == r / 64 ? static_cast<int>(r % 64) + 1 : 0;
      mask[r * groups + g] = nmsmath::mask_word(q[0], q[1], q[2], q[3], q[4], &sorted[5 * 64 * g], start,
                                                count, thr, cats ? &scat[64 * g] : nullptr,
                                                cats ? scat[r] : 0);
    }
  }
  std::vector<unsigned long long> removed(groups, 0ULL);
  std::vector<int64_t> keep(n);
  int64_t nk = 0;
  bool done = false;
  for (int64_t g = 0; g < groups && !done; ++g) {
    unsigned long long diag[64] = {};
    const int rows = static_cast<int>(std::min<int64_t>(64, n - 64 * g));
    for (int t = 0; t < rows; ++t) diag[t] = mask[(64 * g + t) * groups + g];
    unsigned long long kept = nmsmath::resolve_group(removed[g], diag, rows, max_out, &nk, g, keep.data(), &done);
    while (kept) {  // OR the rows of the boxes just kept into the later groups
      const int t = __builtin_ctzll(kept);
      kept &= kept - 1;
      const unsigned long long* row = &mask[(64 * g + t) * groups];
      for (int64_t w = g + 1; w < groups; ++w) removed[w] |= row[w];
    }
  }
  std::vector<int64_t> out(nk);
  for (int64_t r = 0; r < nk; ++r) out[r] = order[keep[r]];
  return out;
}

}  // namespace

Tensor nms_v1_argmax(const Tensor& boxes, const Tensor& scores, double iou_threshold) {
  check_args(boxes, scores, "nms_v1_argmax");
  Tensor b = boxes.contiguous(), s = scores.contiguous();
  std::vector<int64_t> keep;
  SX_DISPATCH_FLOAT(b.dtype(), "nms_v1_argmax", [&] {
    keep = argmax_loop(b.data<scalar_t>(), s.data<scalar_t>(), b.size(0), iou_threshold);
  });
  return to_tensor(keep);
}

// v2: the product's NmsAlgo::Naive. Step over v1: sort once (N log N), then the sweep visits each
// box once and only tests it against the LATER boxes of each kept box: N^2 / 2 IoUs at worst, no
// repeated search for the maximum.
Tensor nms_v2_sort_sweep(const Tensor& boxes, const Tensor& scores, double iou_threshold) {
  check_args(boxes, scores, "nms_v2_sort_sweep");
  return nms(boxes, scores, iou_threshold, NmsAlgo::Naive);
}

Tensor nms_v3_bitmask(const Tensor& boxes, const Tensor& scores, double iou_threshold, const Tensor& idxs,
                      int64_t max_output) {
  check_args(boxes, scores, "nms_v3_bitmask");
  if (idxs.defined())
    SX_CHECK(idxs.dtype() == DType::Int64 && idxs.dim() == 1 && idxs.size(0) == boxes.size(0),
             "nms_v3_bitmask: idxs must be int64 [", boxes.size(0), "], got ", dtype_name(idxs.dtype()), " ",
             shape_str(idxs.shape()));
  Tensor b = boxes.contiguous(), s = scores.contiguous(), c = idxs.defined() ? idxs.contiguous() : Tensor();
  std::vector<int64_t> keep;
  SX_DISPATCH_FLOAT(b.dtype(), "nms_v3_bitmask", [&] {
    keep = bitmask_loop(b.data<scalar_t>(), s.data<scalar_t>(), c.defined() ? c.data<int64_t>() : nullptr,
                        b.size(0), iou_threshold, max_output);
  });
  return to_tensor(keep);
}

// v4: the product's NmsAlgo::Fast. Step over v2: kept boxes are written into the cells of a
// uniform grid (cell ~ a typical box); a candidate is tested only against the kept boxes sharing
// a cell with it (a positive overlap implies a shared cell), so sparse scenes cost O(N * local
// density). Same IoU arithmetic, same order, same kept set (nms_cpu.cpp).
Tensor nms_v4_grid(const Tensor& boxes, const Tensor& scores, double iou_threshold) {
  check_args(boxes, scores, "nms_v4_grid");
  return nms(boxes, scores, iou_threshold, NmsAlgo::Fast);
}

const std::vector<NmsVersion>& nms_versions() {
  static const std::vector<NmsVersion> v = {
      {"v1_argmax", "no sort: scan for the best remaining box, keep it, scan to suppress", nms_v1_argmax, 10000},
      {"v2_sort_sweep", "sort once, one greedy sweep with a suppressed flag (product Naive)", nms_v2_sort_sweep,
       10000},
      {"v3_bitmask", "sort once, parallel suppression bitmask, grouped 64-bit reduction (the CUDA structure)",
       [](const Tensor& b, const Tensor& s, double t) { return nms_v3_bitmask(b, s, t); }, 10000},
      {"v4_grid", "sort once, kept boxes in a uniform grid, test only neighbours (product Fast)", nms_v4_grid,
       50000},
  };
  return v;
}

}  // namespace sx::kernels::labs
