// Per-box and per-pair arithmetic for box_ops, shared by the CPU loops and the CUDA kernels.
//
// The helpers follow torch's elementwise semantics, which matter for NaN: torch.max/torch.min of two
// tensors and torch.clamp propagate NaN (std::max would silently drop it). The order of operations
// mirrors torchvision/ops/boxes.py and models/detection/_utils.py (BoxCoder) so the CPU gives the
// same floating-point results.
#pragma once
#include <math.h>

#include <cmath>

#include "tensor/host_device.h"

namespace sx::kernels::boxmath {

template <class T> HOST_DEVICE bool is_nan(T v) { return v != v; }
// torch.maximum / torch.minimum: NaN wins.
template <class T> HOST_DEVICE T tmax(T a, T b) { return is_nan(a) ? a : (is_nan(b) ? b : (a > b ? a : b)); }
template <class T> HOST_DEVICE T tmin(T a, T b) { return is_nan(a) ? a : (is_nan(b) ? b : (a < b ? a : b)); }
// x.clamp(min=lo): NaN stays NaN.
template <class T> HOST_DEVICE T clamp_min(T v, T lo) { return (v < lo) ? lo : v; }
template <class T> HOST_DEVICE T clamp_max(T v, T hi) { return (v > hi) ? hi : v; }

// Single/double precision exp and log under one name (expf/logf for float, as torch computes).
HOST_DEVICE float mexp(float x) { return expf(x); }
HOST_DEVICE double mexp(double x) { return exp(x); }
HOST_DEVICE float mlog(float x) { return logf(x); }
HOST_DEVICE double mlog(double x) { return log(x); }

template <class T> HOST_DEVICE T area(const T* b) { return (b[2] - b[0]) * (b[3] - b[1]); }

// Plain max/min (no NaN rule) for the overlap terms of IoU/GIoU: a NaN coordinate makes its box's
// area NaN, hence the union and the result NaN whichever way max/min treat it, so the result equals
// torch's, and the branch-free form lets the compiler vectorise the matrix loops.
template <class T> HOST_DEVICE T pmax(T a, T b) { return a > b ? a : b; }
template <class T> HOST_DEVICE T pmin(T a, T b) { return a < b ? a : b; }

// IoU of one pair from coordinates and areas, torchvision.ops.box_iou: inter / ((area_a + area_b) - inter).
template <class T>
HOST_DEVICE T iou_c(T ax1, T ay1, T ax2, T ay2, T area_a, T bx1, T by1, T bx2, T by2, T area_b) {
  T w = pmin(ax2, bx2) - pmax(ax1, bx1);
  T h = pmin(ay2, by2) - pmax(ay1, by1);
  w = w < T(0) ? T(0) : w;
  h = h < T(0) ? T(0) : h;
  const T inter = w * h;
  const T uni = area_a + area_b - inter;
  return inter / uni;
}

// GIoU of one pair, torchvision.ops.generalized_box_iou: iou - (enclosing - union) / enclosing.
template <class T>
HOST_DEVICE T giou_c(T ax1, T ay1, T ax2, T ay2, T area_a, T bx1, T by1, T bx2, T by2, T area_b) {
  T w = pmin(ax2, bx2) - pmax(ax1, bx1);
  T h = pmin(ay2, by2) - pmax(ay1, by1);
  w = w < T(0) ? T(0) : w;
  h = h < T(0) ? T(0) : h;
  const T inter = w * h;
  const T uni = area_a + area_b - inter;
  const T iou_v = inter / uni;
  T we = pmax(ax2, bx2) - pmin(ax1, bx1);
  T he = pmax(ay2, by2) - pmin(ay1, by1);
  we = we < T(0) ? T(0) : we;
  he = he < T(0) ? T(0) : he;
  const T enc = we * he;
  return iou_v - (enc - uni) / enc;
}

template <class T> HOST_DEVICE T iou(const T* a, const T* b, T area_a, T area_b) {
  return iou_c(a[0], a[1], a[2], a[3], area_a, b[0], b[1], b[2], b[3], area_b);
}
template <class T> HOST_DEVICE T giou(const T* a, const T* b, T area_a, T area_b) {
  return giou_c(a[0], a[1], a[2], a[3], area_a, b[0], b[1], b[2], b[3], area_b);
}

template <class T> HOST_DEVICE T clip(T v, T hi) { return clamp_max(clamp_min(v, T(0)), hi); }

// BoxCoder.encode_single for one (gt, proposal) pair; w = (wx, wy, ww, wh).
template <class T> HOST_DEVICE void encode(const T* gt, const T* p, const T* w, T* out) {
  T ex_w = p[2] - p[0];
  T ex_h = p[3] - p[1];
  T ex_cx = p[0] + T(0.5) * ex_w;
  T ex_cy = p[1] + T(0.5) * ex_h;
  T gt_w = gt[2] - gt[0];
  T gt_h = gt[3] - gt[1];
  T gt_cx = gt[0] + T(0.5) * gt_w;
  T gt_cy = gt[1] + T(0.5) * gt_h;
  out[0] = w[0] * (gt_cx - ex_cx) / ex_w;
  out[1] = w[1] * (gt_cy - ex_cy) / ex_h;
  out[2] = w[2] * mlog(gt_w / ex_w);
  out[3] = w[3] * mlog(gt_h / ex_h);
}

// BoxCoder.decode_single for one code against one anchor box.
template <class T> HOST_DEVICE void decode(const T* code, const T* box, const T* w, T clip_v, T* out) {
  T widths = box[2] - box[0];
  T heights = box[3] - box[1];
  T ctr_x = box[0] + T(0.5) * widths;
  T ctr_y = box[1] + T(0.5) * heights;
  T dx = code[0] / w[0];
  T dy = code[1] / w[1];
  T dw = clamp_max(code[2] / w[2], clip_v);
  T dh = clamp_max(code[3] / w[3], clip_v);
  T pcx = dx * widths + ctr_x;
  T pcy = dy * heights + ctr_y;
  T pw = mexp(dw) * widths;
  T ph = mexp(dh) * heights;
  T cw = T(0.5) * pw;
  T ch = T(0.5) * ph;
  out[0] = pcx - cw;
  out[1] = pcy - ch;
  out[2] = pcx + cw;
  out[3] = pcy + ch;
}

}  // namespace sx::kernels::boxmath
