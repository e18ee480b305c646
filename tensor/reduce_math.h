// Per-element math of the reductions, shared by the CPU loops (reduce_cpu.cpp) and the CUDA
// kernels (reduce_cuda.cu).
//
// Every reduction is written as a "reduction op" with four HOST_DEVICE members:
//   identity()          the neutral accumulator,
//   load(lin, r)        the accumulator of one input element (lin: its linear index in the
//                       contiguous input, r: its position along the reduced extent),
//   combine(x, y)       merge two accumulators (associative; for arg-reductions also commutative
//                       thanks to the index tie-break, so any combination order gives the same
//                       result: the first occurrence of the extreme value),
//   write(o, acc)       store the final accumulator of output o.
// The backends only decide which elements go into which accumulator and in what order they are
// combined (sequential lanes on the CPU, threads and a shared-memory tree on the GPU); the
// arithmetic lives here.
//
// Accumulator types: float sums accumulate in double (so a sum of 10^7 float32 values is exact to
// float precision on both backends), integer and bool sums in int64.
#pragma once
#include <cstdint>

#include "tensor/host_device.h"

namespace sx::red {

template <class T>
struct Tag {
  using type = T;
};

template <class T> struct SumAcc { using type = T; };
template <> struct SumAcc<float> { using type = double; };
template <> struct SumAcc<int32_t> { using type = int64_t; };
template <> struct SumAcc<uint8_t> { using type = int64_t; };
template <> struct SumAcc<bool> { using type = int64_t; };

// Sum of In values into Acc, written as Out. Pass 1 of a split reduction writes Acc partials
// (Out = Acc); pass 2 sums the partials (In = Acc).
template <class In, class Acc, class Out>
struct SumOp {
  using acc_t = Acc;
  const In* in;
  Out* out;
  HOST_DEVICE acc_t identity() const { return acc_t(0); }
  HOST_DEVICE acc_t load(int64_t lin, int64_t) const { return static_cast<acc_t>(in[lin]); }
  HOST_DEVICE acc_t combine(acc_t x, acc_t y) const { return x + y; }
  HOST_DEVICE void write(int64_t o, acc_t a) const { out[o] = static_cast<Out>(a); }
};

template <class T>
struct ValIdx {
  T v;
  int64_t i;  // -1: empty accumulator
};

// max/min with the index of the first occurrence; NaN counts as the extreme (it propagates).
// Pass 1 loads (value, r); pass 2 of a split reduction loads (partial value, partial index).
template <class T, bool IsMax>
struct ArgOp {
  using acc_t = ValIdx<T>;
  const T* in;
  const int64_t* in_idx;  // null in pass 1
  T* vals;                // may be null (argmax)
  int64_t* idx;           // may be null (max over all)
  HOST_DEVICE acc_t identity() const { return acc_t{T(0), -1}; }
  HOST_DEVICE acc_t load(int64_t lin, int64_t r) const {
    return acc_t{in[lin], in_idx ? in_idx[lin] : r};
  }
  HOST_DEVICE static bool nan(T x) { return x != x; }
  HOST_DEVICE acc_t combine(acc_t x, acc_t y) const {
    if (x.i < 0) return y;
    if (y.i < 0) return x;
    const bool xn = nan(x.v), yn = nan(y.v);
    if (xn || yn) {
      if (xn && yn) return x.i <= y.i ? x : y;
      return xn ? x : y;
    }
    if (IsMax ? (y.v > x.v) : (y.v < x.v)) return y;
    if (y.v == x.v && y.i < x.i) return y;
    return x;
  }
  HOST_DEVICE void write(int64_t o, acc_t a) const {
    if (vals) vals[o] = a.v;
    if (idx) idx[o] = a.i;
  }
};

}  // namespace sx::red
