// Per-element math of softmax and log_softmax, shared by the CPU loops (reduce_cpu.cpp) and the
// CUDA kernels (reduce_cuda.cu).
//
// Numerically stable form: with m = max_r x_r and s = sum_r exp(x_r - m),
//   softmax(x)_r     = exp(x_r - m) * (1 / s)
//   log_softmax(x)_r = x_r - m - log(s)
// Every exponent is <= 0, so nothing overflows even for logits of 1e30, and s >= 1 (the maximum
// contributes exp(0)), so log(s) is finite. NaN anywhere in a line makes the whole line NaN.
// 1/s and log(s) are computed once per line; the CPU loop stores exp(x_r - m) while summing and
// scales it afterwards (one exp per element), the GPU recomputes it in the write pass (cheaper
// than a second trip through memory).
#pragma once
#include "tensor/elementwise_math.h"
#include "tensor/host_device.h"

namespace sx::red {

template <class T>
HOST_DEVICE T softmax_max(T a, T b) {
  return (b > a || b != b) ? b : a;
}
template <class T>
HOST_DEVICE T softmax_exp(T x, T m) {
  return ew::m_exp(x - m);
}
// e = softmax_exp(x, m), inv_s = 1 / s
template <class T>
HOST_DEVICE T softmax_value(T e, T inv_s) {
  return e * inv_s;
}
// log_s = log(s)
template <class T>
HOST_DEVICE T log_softmax_value(T x, T m, T log_s) {
  return x - m - log_s;
}

}  // namespace sx::red
