// The IoU test of NMS, shared by the CPU loops and the CUDA bitmask kernel.
//
// Written exactly as torchvision's CPU kernel (csrc/ops/cpu/nms_kernel.cpp): std::max/std::min
// semantics ((a < b) ? b : a), overlap clamped at 0, iou = inter / (area_i + area_j - inter),
// suppression when iou > threshold (compared in double, the threshold's type there).
// The test is symmetric in (i, j) (max/min and + commute), which the CPU grid variant relies on.
#pragma once
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

}  // namespace sx::kernels::nmsmath
