// The IoU test of NMS, shared by the CPU loops and the CUDA bitmask kernel.
//
// Written exactly as torchvision's CPU kernel (csrc/ops/cpu/nms_kernel.cpp): std::max/std::min
// semantics ((a < b) ? b : a), overlap clamped at 0, iou = inter / (area_i + area_j - inter),
// suppression when iou > threshold (compared in double, the threshold's type there).
// The test is symmetric in (i, j) (max/min and + commute), which the CPU grid variant relies on.
#pragma once
#include <cstdint>

#include "tensor/host_device.h"

namespace sx::kernels::nmsmath {

template <class T> HOST_DEVICE T smax(T a, T b) { return (a < b) ? b : a; }
template <class T> HOST_DEVICE T smin(T a, T b) { return (b < a) ? b : a; }

// Box i: (ix1, iy1, ix2, iy2) with area iarea; box j likewise.
template <class T>
HOST_DEVICE bool suppresses(T ix1, T iy1, T ix2, T iy2, T iarea, T jx1, T jy1, T jx2, T jy2,
                            T jarea, double threshold) {
  T xx1 = smax(ix1, jx1);
  T yy1 = smax(iy1, jy1);
  T xx2 = smin(ix2, jx2);
  T yy2 = smin(iy2, jy2);
  T w = smax(T(0), xx2 - xx1);
  T h = smax(T(0), yy2 - yy1);
  T inter = w * h;
  T ovr = inter / (iarea + jarea - inter);
  return static_cast<double>(ovr) > threshold;
}

// torch.sort(descending=True) order with a stable tie rule: NaN first, then by value; equal keys
// keep index order (the caller sorts stably).
template <class T> HOST_DEVICE bool score_before(T a, T b) {
  if (a != a) return !(b != b);
  if (b != b) return false;
  return a > b;
}

// ---- bitmask NMS pieces (the CUDA kernels' per-thread work; also exercised by a CPU test) ----

// Word of the bitmask for box (x1, y1, x2, y2, area) against the boxes of one column group, stored
// as 5 values each (x1 y1 x2 y2 area) in `cols`: bit t set when the box suppresses column box t,
// for t in [start, count). With categories (col_cats non-null; `cat` is the row box's), only a
// column box of the same category can be suppressed (batched NMS).
template <class T>
HOST_DEVICE unsigned long long mask_word(T x1, T y1, T x2, T y2, T area, const T* cols, int start,
                                         int count, double threshold, const int64_t* col_cats = nullptr,
                                         int64_t cat = 0) {
  unsigned long long word = 0;
  for (int t = start; t < count; ++t) {
    const T* q = cols + 5 * t;
    if (col_cats && col_cats[t] != cat) continue;
    if (suppresses(x1, y1, x2, y2, area, q[0], q[1], q[2], q[3], q[4], threshold)) word |= 1ULL << t;
  }
  return word;
}

// The sequential decisions inside one group of 64 sorted boxes. `removed` has a bit for each box
// already suppressed by kept boxes of earlier groups; diag[t] is row (64*group + t)'s word for its
// own group. Boxes are visited in order; a box not removed is kept, appended to keep_rows, and
// removes the boxes its diag word marks. Stops after `rows` boxes or when *nkeep reaches max_out
// (> 0), then sets *done. Returns the word of kept boxes (whose rows the caller ORs into the
// later groups).
HOST_DEVICE unsigned long long resolve_group(unsigned long long removed, const unsigned long long* diag,
                                             int rows, int64_t max_out, int64_t* nkeep, int64_t group,
                                             int64_t* keep_rows, bool* done) {
  unsigned long long kept = 0;
  for (int t = 0; t < rows; ++t) {
    if ((removed >> t) & 1ULL) continue;
    kept |= 1ULL << t;
    keep_rows[(*nkeep)++] = group * 64 + t;
    removed |= diag[t];
    if (max_out > 0 && *nkeep >= max_out) {
      *done = true;
      break;
    }
  }
  return kept;
}

}  // namespace sx::kernels::nmsmath
