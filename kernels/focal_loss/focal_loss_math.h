// Per-element sigmoid focal loss and its derivative, shared by the CPU loops and the CUDA kernels.
//
// Stable forms: with a = |x| and e = exp(-a) (never overflows),
//   softplus(s) = max(s, 0) + log1p(e),  sigmoid(s) = s >= 0 ? 1 / (1 + e) : e / (1 + e)
// for s = +-x. The transcendental part (e, log1p(e), 1 / (1 + e)) depends on |x| only, not on the
// target, so the CPU computes it for a block of logits in a branch-free loop the compiler
// vectorises, then applies the target-dependent arithmetic.
// float: exp and log1p are the branch-free polynomial forms below (relative error < 2e-7,
// vectorisable, identical on host and device); double: the C library's exp and log1p.
#pragma once
#include <math.h>

#include <cstdint>
#include <cstring>

#include "tensor/host_device.h"

namespace sx::kernels::focalmath {

HOST_DEVICE float mpow(float a, float b) { return powf(a, b); }
HOST_DEVICE double mpow(double a, double b) { return pow(a, b); }

HOST_DEVICE float bits_to_float(int32_t b) {
#ifdef __CUDA_ARCH__
  return __int_as_float(b);
#else
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
#endif
}

// exp(x) for x in [-87, 0] in float: x = n ln2 + r with |r| <= ln2 / 2 (Cody-Waite split of ln2),
// a degree-7 Taylor polynomial for exp(r) (truncation < 5e-9), times 2^n built in the exponent
// bits. The caller clamps x at -87 (exp(-87) ~ 1.6e-38: e only matters next to 1 or multiplied by
// another tiny factor, so results are unaffected). No branches: the compiler vectorises it.
HOST_DEVICE float exp_nonpos(float x) {
  const float shifter = 12582912.0f;  // 1.5 * 2^23: adding and subtracting it rounds to an integer
  const float n = (x * 1.44269504088896341f + shifter) - shifter;
  float r = x - n * 0.693145751953125f;
  r = r - n * 1.428606765330187045e-06f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  return p * bits_to_float((static_cast<int32_t>(n) + 127) << 23);
}

// log1p(e) for e in [0, 1] in float: log(1 + e) = 2 atanh(u), u = e / (2 + e) in [0, 1/3], the odd
// series to u^15 (truncation < 1e-9 relative). Exact as e -> 0 (no 1 + e rounding).
HOST_DEVICE float log1p_unit(float e) {
  const float u = e / (2.0f + e);
  const float u2 = u * u;
  float p = 1.0f / 15.0f;
  p = p * u2 + 1.0f / 13.0f;
  p = p * u2 + 1.0f / 11.0f;
  p = p * u2 + 1.0f / 9.0f;
  p = p * u2 + 1.0f / 7.0f;
  p = p * u2 + 1.0f / 5.0f;
  p = p * u2 + 1.0f / 3.0f;
  p = p * u2 + 1.0f;
  return 2.0f * u * p;
}

// The target-independent terms of one logit.
template <class T>
struct XTerms {
  T e;    // exp(-|x|)
  T lp;   // log1p(e)
  T inv;  // 1 / (1 + e)
};
// |x| clamped to 87 for the float polynomial exp (NaN stays NaN).
HOST_DEVICE float clamped_abs(float x) {
  const float a = x < 0.0f ? -x : x;
  return a > 87.0f ? 87.0f : a;
}
HOST_DEVICE XTerms<float> x_terms_from_abs(float a) {
  XTerms<float> t;
  t.e = exp_nonpos(-a);
  t.lp = log1p_unit(t.e);
  t.inv = 1.0f / (1.0f + t.e);
  return t;
}
HOST_DEVICE XTerms<float> x_terms(float x) { return x_terms_from_abs(clamped_abs(x)); }
HOST_DEVICE XTerms<double> x_terms(double x) {
  const double a = x < 0.0 ? -x : x;
  XTerms<double> t;
  t.e = exp(-a);
  t.lp = log1p(t.e);
  t.inv = 1.0 / (1.0 + t.e);
  return t;
}

// Is class c of a row with target t positive? Ignored rows (t < 0) are handled by the caller.
HOST_DEVICE bool positive(int64_t t, int64_t c) { return t == c; }

template <class T>
HOST_DEVICE T alpha_t(bool pos, T alpha) {
  return alpha < T(0) ? T(1) : (pos ? alpha : T(1) - alpha);
}

// sigmoid^gamma for a gamma known at compile time (G = 0, 1, 2; G < 0: any gamma via pow).
template <int G, class T> HOST_DEVICE T modulator_k(T sig, T gamma) {
  if constexpr (G == 0) return T(1);
  else if constexpr (G == 1) return sig;
  else if constexpr (G == 2) return sig * sig;
  else return mpow(sig, gamma);
}

// The per-element formulas with the target as a number y (1: positive, 0: negative), written
// without data-dependent branches (s = x * (1 - 2y) is exactly +-x; alpha_t is exact for y in
// {0, 1}) so the CPU loop vectorises; the CUDA kernels call the very same functions.
// loss = alpha_t * softplus(s) * sigmoid(s)^gamma, s = y ? -x : x.
template <int G, class T>
HOST_DEVICE T loss_yk(T x, const XTerms<T>& t, T y, T alpha, T gamma) {
  const T s = x * (T(1) - T(2) * y);
  const T sp = (s > T(0) ? s : T(0)) + t.lp;
  const T sig = s >= T(0) ? t.inv : t.e * t.inv;
  const T at = alpha < T(0) ? T(1) : y * alpha + (T(1) - y) * (T(1) - alpha);
  return at * sp * modulator_k<G>(sig, gamma);
}

// d loss / dx = -+ alpha_t * sigmoid(s)^gamma * (sigmoid(s) + gamma * softplus(s) * sigmoid(-s)).
template <int G, class T>
HOST_DEVICE T dloss_yk(T x, const XTerms<T>& t, T y, T alpha, T gamma) {
  const T sign = T(1) - T(2) * y;
  const T s = x * sign;
  const T sp = (s > T(0) ? s : T(0)) + t.lp;
  const T sig = s >= T(0) ? t.inv : t.e * t.inv;
  const T sig_neg = s >= T(0) ? t.e * t.inv : t.inv;
  const T at = alpha < T(0) ? T(1) : y * alpha + (T(1) - y) * (T(1) - alpha);
  return at * modulator_k<G>(sig, gamma) * (sig + gamma * sp * sig_neg) * sign;
}

// Which compile-time modulator a gamma uses.
inline int gamma_kind(double gamma) { return gamma == 0 ? 0 : gamma == 1 ? 1 : gamma == 2 ? 2 : -1; }

template <class T>
HOST_DEVICE T loss_y(T x, const XTerms<T>& t, T y, T alpha, T gamma) {
  if (gamma == T(2)) return loss_yk<2>(x, t, y, alpha, gamma);
  if (gamma == T(1)) return loss_yk<1>(x, t, y, alpha, gamma);
  if (gamma == T(0)) return loss_yk<0>(x, t, y, alpha, gamma);
  return loss_yk<-1>(x, t, y, alpha, gamma);
}
template <class T>
HOST_DEVICE T dloss_y(T x, const XTerms<T>& t, T y, T alpha, T gamma) {
  if (gamma == T(2)) return dloss_yk<2>(x, t, y, alpha, gamma);
  if (gamma == T(1)) return dloss_yk<1>(x, t, y, alpha, gamma);
  if (gamma == T(0)) return dloss_yk<0>(x, t, y, alpha, gamma);
  return dloss_yk<-1>(x, t, y, alpha, gamma);
}

template <class T>
HOST_DEVICE T loss_from(T x, const XTerms<T>& t, bool pos, T alpha, T gamma) {
  return loss_y(x, t, pos ? T(1) : T(0), alpha, gamma);
}
template <class T>
HOST_DEVICE T dloss_from(T x, const XTerms<T>& t, bool pos, T alpha, T gamma) {
  return dloss_y(x, t, pos ? T(1) : T(0), alpha, gamma);
}

template <class T>
HOST_DEVICE T loss(T x, bool pos, T alpha, T gamma) {
  return loss_from(x, x_terms(x), pos, alpha, gamma);
}
template <class T>
HOST_DEVICE T dloss_dx(T x, bool pos, T alpha, T gamma) {
  return dloss_from(x, x_terms(x), pos, alpha, gamma);
}

}  // namespace sx::kernels::focalmath
