// Sortable integer keys for floating-point values, shared by the CUDA sort (sort_cuda.cu) and the
// CPU tests that pin its order.
//
// The CPU sorts with a comparator that treats NaN as larger than everything and -0 == +0. On the
// first GPU runs the CUDA sort (CUB's segmented sort of float keys) put NaN in the middle of short
// rows, even after every NaN was made the positive quiet NaN. So the CUDA sort never sorts floats:
// it sorts these unsigned integers, whose plain unsigned order is the CPU's total order:
//   - every NaN becomes the positive quiet NaN and -0 becomes +0 (canonical form);
//   - non-negative values get their sign bit set (so they order above all negatives, by magnitude);
//   - negative values are bit-inverted (larger magnitude -> smaller key).
// Result: -inf < negatives < +0 = -0 < positives < +inf < NaN (all NaNs equal), so a stable
// integer sort keeps ties (and NaNs) in index order, like the CPU's stable_sort.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "tensor/host_device.h"

namespace sx::sortmath {

template <class T> struct SortableBits;
template <> struct SortableBits<float> { using type = uint32_t; };
template <> struct SortableBits<double> { using type = uint64_t; };

// Canonical form of a floating key: every NaN becomes the positive quiet NaN, -0 becomes +0. Also
// what the CUDA NMS applies to its scores before its radix sort (nms_cuda.cu).
template <class T>
HOST_DEVICE T canonical_key(T v) {
  if (v != v) return std::numeric_limits<T>::quiet_NaN();
  return v == T(0) ? T(0) : v;
}

template <class T>
HOST_DEVICE typename SortableBits<T>::type sortable_key(T v) {
  using U = typename SortableBits<T>::type;
  v = canonical_key(v);
  U u;
  memcpy(&u, &v, sizeof(U));
  const U sign = U(1) << (sizeof(U) * 8 - 1);
  return (u & sign) ? U(~u) : U(u | sign);
}

}  // namespace sx::sortmath
