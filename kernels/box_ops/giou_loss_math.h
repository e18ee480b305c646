// The GIoU loss of one box pair and its gradient, shared by the CPU loop and the CUDA kernel.
//
// With a = (x1, y1, x2, y2), b = (x1g, y1g, x2g, y2g), as torchvision.ops.generalized_box_iou_loss:
//   I = (min(x2, x2g) - max(x1, x1g)) * (min(y2, y2g) - max(y1, y1g)) if both factors are > 0, else 0
//   U = area(a) + area(b) - I,   C = (max(x2, x2g) - min(x1, x1g)) * (max(y2, y2g) - min(y1, y1g))
//   loss = 1 - (I / (U + eps) - (C - U) / (C + eps))
// The gradient, by the chain rule through I, U and C:
//   dL/dI|U = -1 / (U + eps)          dL/dU = I / (U + eps)^2 - 1 / (C + eps)
//   dL/dC   = (U + eps) / (C + eps)^2
// and since U = area(a) + area(b) - I, I's total weight is dL/dI|U - dL/dU. A max/min routes its
// gradient to the larger/smaller argument, half to each on a tie (torch.maximum's rule); the
// intersection passes no gradient when the boxes do not overlap (torchvision's mask).
#pragma once
#include "tensor/host_device.h"

namespace sx::kernels::gioumath {

// d max(p, q) / dp and / dq (torch.maximum: a tie splits the gradient); min is max with the roles swapped.
template <class T> HOST_DEVICE T w_first_max(T p, T q) { return p > q ? T(1) : (p < q ? T(0) : T(0.5)); }

template <class T>
struct Terms {
  T kx1, ky1, kx2, ky2;  // intersection corners
  T cx1, cy1, cx2, cy2;  // enclosing-box corners
  bool overlap;
  T inter, uni, enc;
};

template <class T>
HOST_DEVICE Terms<T> terms(const T* a, const T* b) {
  Terms<T> t;
  t.kx1 = a[0] > b[0] ? a[0] : b[0];
  t.ky1 = a[1] > b[1] ? a[1] : b[1];
  t.kx2 = a[2] < b[2] ? a[2] : b[2];
  t.ky2 = a[3] < b[3] ? a[3] : b[3];
  t.overlap = t.ky2 > t.ky1 && t.kx2 > t.kx1;
  t.inter = t.overlap ? (t.kx2 - t.kx1) * (t.ky2 - t.ky1) : T(0);
  t.uni = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - t.inter;
  t.cx1 = a[0] < b[0] ? a[0] : b[0];
  t.cy1 = a[1] < b[1] ? a[1] : b[1];
  t.cx2 = a[2] > b[2] ? a[2] : b[2];
  t.cy2 = a[3] > b[3] ? a[3] : b[3];
  t.enc = (t.cx2 - t.cx1) * (t.cy2 - t.cy1);
  return t;
}

// 1 - GIoU of one pair.
template <class T>
HOST_DEVICE T loss(const T* a, const T* b, T eps) {
  const Terms<T> t = terms(a, b);
  const T iou = t.inter / (t.uni + eps);
  const T miou = iou - (t.enc - t.uni) / (t.enc + eps);
  return T(1) - miou;
}

// g * d loss / d a into ga[4], g * d loss / d b into gb[4] (written, not accumulated).
template <class T>
HOST_DEVICE void grad(const T* a, const T* b, T eps, T g, T* ga, T* gb) {
  const Terms<T> t = terms(a, b);
  const T ue = t.uni + eps, ce = t.enc + eps;
  const T dU = g * (t.inter / (ue * ue) - T(1) / ce);
  const T dI = g * (-T(1) / ue) - dU;  // I also enters through U = A + B - I
  const T dC = g * (ue / (ce * ce));
  // Areas: d area / d (x1, y1, x2, y2) = (-(h), -(w), h, w).
  const T ha = a[3] - a[1], wa = a[2] - a[0], hb = b[3] - b[1], wb = b[2] - b[0];
  ga[0] = -dU * ha, ga[1] = -dU * wa, ga[2] = dU * ha, ga[3] = dU * wa;
  gb[0] = -dU * hb, gb[1] = -dU * wb, gb[2] = dU * hb, gb[3] = dU * wb;
  if (t.overlap) {  // I = (kx2 - kx1)(ky2 - ky1); kx1 = max(x1, x1g), kx2 = min(x2, x2g), ...
    const T gkx = dI * (t.ky2 - t.ky1), gky = dI * (t.kx2 - t.kx1);
    T w = w_first_max(a[0], b[0]);
    ga[0] -= gkx * w, gb[0] -= gkx * (T(1) - w);
    w = w_first_max(a[1], b[1]);
    ga[1] -= gky * w, gb[1] -= gky * (T(1) - w);
    w = w_first_max(b[2], a[2]);  // min(x2, x2g): the smaller one gets it
    ga[2] += gkx * w, gb[2] += gkx * (T(1) - w);
    w = w_first_max(b[3], a[3]);
    ga[3] += gky * w, gb[3] += gky * (T(1) - w);
  }
  // C = (cx2 - cx1)(cy2 - cy1); cx1 = min(x1, x1g), cx2 = max(x2, x2g), ...
  const T gcx = dC * (t.cy2 - t.cy1), gcy = dC * (t.cx2 - t.cx1);
  T w = w_first_max(b[0], a[0]);
  ga[0] -= gcx * w, gb[0] -= gcx * (T(1) - w);
  w = w_first_max(b[1], a[1]);
  ga[1] -= gcy * w, gb[1] -= gcy * (T(1) - w);
  w = w_first_max(a[2], b[2]);
  ga[2] += gcx * w, gb[2] += gcx * (T(1) - w);
  w = w_first_max(a[3], b[3]);
  ga[3] += gcy * w, gb[3] += gcy * (T(1) - w);
}

}  // namespace sx::kernels::gioumath
