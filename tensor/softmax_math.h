// Per-element math of softmax and log_softmax, shared by the CPU loops (reduce_cpu.cpp) and the
// CUDA kernels (reduce_cuda.cu).
//
// Numerically stable form: with m = max_r x_r and s = sum_r exp(x_r - m),
//   softmax(x)_r     = exp(x_r - m) / s
//   log_softmax(x)_r = x_r - m - log(s)
// Every exponent is <= 0, so nothing overflows even for logits of 1e30, and s >= 1 (the maximum
// contributes exp(0)), so log(s) is finite. NaN anywhere in a line makes the whole line NaN.
#pragma once
#include "tensor/elementwise_math.h"
#include "tensor/host_device.h"

namespace sx::red {

template <class T>
HOST_DEVICE T softmax_max(T a, T b) {
  return (b > a || b != b) ? b : a;
}
template <class T>
HOST_DEVICE T softmax_value(T x, T m, T s) {
  return ew::m_exp(x - m) / s;
}
template <class T>
HOST_DEVICE T log_softmax_value(T x, T m, T s) {
  return x - m - ew::m_log(s);
}

}  // namespace sx::red
