// Per-element sigmoid focal loss and its derivative, shared by the CPU loops and the CUDA kernels.
// Stable forms: softplus(s) = max(s, 0) + log1p(exp(-|s|)); sigmoid(s) from exp(-|s|) on the
// side that cannot overflow.
#pragma once
#include <math.h>

#include <cstdint>

#include "tensor/host_device.h"

namespace sx::kernels::focalmath {

HOST_DEVICE float mexp(float v) { return expf(v); }
HOST_DEVICE double mexp(double v) { return exp(v); }
HOST_DEVICE float mlog1p(float v) { return log1pf(v); }
HOST_DEVICE double mlog1p(double v) { return log1p(v); }
HOST_DEVICE float mpow(float a, float b) { return powf(a, b); }
HOST_DEVICE double mpow(double a, double b) { return pow(a, b); }

template <class T> HOST_DEVICE T softplus(T s) {
  const T a = s < T(0) ? -s : s;
  return (s > T(0) ? s : T(0)) + mlog1p(mexp(-a));
}
template <class T> HOST_DEVICE T sigmoid(T s) {
  if (s >= T(0)) return T(1) / (T(1) + mexp(-s));
  const T e = mexp(s);
  return e / (T(1) + e);
}

// Is class c of a row with target t positive? Ignored rows (t < 0) are handled by the caller.
HOST_DEVICE bool positive(int64_t t, int64_t c) { return t == c; }

template <class T>
HOST_DEVICE T alpha_t(bool pos, T alpha) {
  return alpha < T(0) ? T(1) : (pos ? alpha : T(1) - alpha);
}

template <class T>
HOST_DEVICE T loss(T x, bool pos, T alpha, T gamma) {
  const T s = pos ? -x : x;
  const T sig = sigmoid(s);
  const T mod = gamma == T(0) ? T(1) : mpow(sig, gamma);
  return alpha_t(pos, alpha) * softplus(s) * mod;
}

template <class T>
HOST_DEVICE T dloss_dx(T x, bool pos, T alpha, T gamma) {
  const T s = pos ? -x : x;
  const T sig = sigmoid(s);
  const T mod = gamma == T(0) ? T(1) : mpow(sig, gamma);
  const T d = alpha_t(pos, alpha) * mod * (sig + gamma * softplus(s) * sigmoid(-s));
  return pos ? -d : d;
}

}  // namespace sx::kernels::focalmath
