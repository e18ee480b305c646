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

// Is class c of a row with target t positive? Ignored rows (t < 0) are handled by the caller.
HOST_DEVICE bool positive(int64_t t, int64_t c) { return t == c; }

template <class T>
HOST_DEVICE T alpha_t(bool pos, T alpha) {
  return alpha < T(0) ? T(1) : (pos ? alpha : T(1) - alpha);
}

// softplus(s), sigmoid(s) and sigmoid(-s) from a single exp(-|s|).
template <class T>
struct Terms {
  T softplus, sig, sig_neg;
};
template <class T> HOST_DEVICE Terms<T> terms(T s) {
  const T a = s < T(0) ? -s : s;
  const T e = mexp(-a);
  const T inv = T(1) / (T(1) + e);
  Terms<T> r;
  r.softplus = (s > T(0) ? s : T(0)) + mlog1p(e);
  r.sig = s >= T(0) ? inv : e * inv;
  r.sig_neg = s >= T(0) ? e * inv : inv;
  return r;
}
// sigmoid(s)^gamma with the common exponents done by multiplication.
template <class T> HOST_DEVICE T modulator(T sig, T gamma) {
  if (gamma == T(2)) return sig * sig;
  if (gamma == T(1)) return sig;
  if (gamma == T(0)) return T(1);
  return mpow(sig, gamma);
}

template <class T>
HOST_DEVICE T loss(T x, bool pos, T alpha, T gamma) {
  const T s = pos ? -x : x;
  const Terms<T> t = terms(s);
  return alpha_t(pos, alpha) * t.softplus * modulator(t.sig, gamma);
}

template <class T>
HOST_DEVICE T dloss_dx(T x, bool pos, T alpha, T gamma) {
  const T s = pos ? -x : x;
  const Terms<T> t = terms(s);
  const T d = alpha_t(pos, alpha) * modulator(t.sig, gamma) * (t.sig + gamma * t.softplus * t.sig_neg);
  return pos ? -d : d;
}

}  // namespace sx::kernels::focalmath
