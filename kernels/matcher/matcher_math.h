// Matcher per-anchor and per-ground-truth reductions, shared by the CPU loops and CUDA kernels.
#pragma once
#include <cstdint>

#include "tensor/host_device.h"

namespace sx::kernels::matchmath {

// torch.max semantics for a running maximum: the first NaN wins and stays; otherwise strictly
// greater replaces (so the first maximum keeps its index).
template <class T> HOST_DEVICE bool replaces(T v, T best) { return !(best != best) && (v != v || v > best); }

// Column a of q [G, A]: best value and its index (G > 0).
template <class T>
HOST_DEVICE void column_max(const T* q, int64_t G, int64_t A, int64_t a, T* best, int64_t* idx) {
  T b = q[a];
  int64_t bi = 0;
  for (int64_t g = 1; g < G; ++g) {
    const T v = q[g * A + a];
    if (replaces(v, b)) {
      b = v;
      bi = g;
    }
  }
  *best = b;
  *idx = bi;
}

template <class T>
HOST_DEVICE int64_t classify(T best, int64_t argmax, double low, double high) {
  // Compared in the quality dtype, as torch compares a float tensor with a Python float.
  const T lo = static_cast<T>(low), hi = static_cast<T>(high);
  if (best < lo) return -1;
  if (best >= lo && best < hi) return -2;
  return argmax;
}

// Low-quality restore for anchor a: true when some ground truth g has q[g, a] equal to its row
// maximum hq[g] (the anchor is one of that ground truth's best), so the anchor keeps its argmax.
template <class T>
HOST_DEVICE bool is_low_quality_best(const T* q, const T* hq, int64_t G, int64_t A, int64_t a) {
  for (int64_t g = 0; g < G; ++g)
    if (q[g * A + a] == hq[g]) return true;
  return false;
}

}  // namespace sx::kernels::matchmath
