// Per-element sigmoid focal loss and its derivative, shared by the CPU loops and the CUDA kernels.
//
// One element: logit x, target code k (+1 positive class, 0 negative, -1 ignored row), and with
// y = [k > 0], s = y ? -x : x (exactly x * (1 - 2y)):
//   loss    = alpha_t * softplus(s) * sigmoid(s)^gamma,  alpha_t = y ? alpha : 1 - alpha (1 if alpha < 0)
//   dloss/dx = (1 - 2y) * alpha_t * sigmoid(s)^gamma * (sigmoid(s) + gamma * softplus(s) * sigmoid(-s))
// and both are +0 for an ignored row, whatever x is.
//
// Stable forms from ONE exp and ONE log1p per element: with a = |s| = |x| and e = exp(-a) in
// (0, 1] (never overflows),
//   sigmoid(s)  = s >= 0 ? 1 / (1 + e) : e / (1 + e)      sigmoid(-s) = the other one
//   softplus(s) = max(s, 0) + log1p(e)
// No 1 - sigmoid cancellation and no log(0) at any |x| (1e4 and beyond give the exact limits).
//
// sigmoid(s)^gamma: gamma = 2, 1, 0 (compile-time G) multiply; other gammas call pow.
//
// float: exp and log1p are the polynomial forms below (relative error < 3e-7), and 1 / (1 + e)
// and e / (2 + e) share one division. Every choice is a bit-level blend (select_neg below) rather
// than a C++ ?: , so a loop over elements is straight-line code: no calls, no branches, and GCC
// vectorises it (for gamma 2, 1, 0). (With ?: GCC turns a choice whose arm is a constant, or whose arms are only used
// there, into a branch, moving the arithmetic into it; under the default -ftrapping-math its
// if-conversion then refuses to execute that arithmetic unconditionally, and the loop stays
// scalar.) The CUDA kernels run the identical arithmetic. double (used for gradient checks): the C
// library's exp and log1p, the same blends.
#pragma once
#include <math.h>

#include <cstdint>
#include <cstring>

#include "tensor/host_device.h"

namespace sx::kernels::focalmath {

// ---- bit-level helpers --------------------------------------------------------------------
HOST_DEVICE int32_t to_bits(float f) {
#ifdef __CUDA_ARCH__
  return __float_as_int(f);
#else
  int32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
#endif
}
HOST_DEVICE int64_t to_bits(double f) {
#ifdef __CUDA_ARCH__
  return __double_as_longlong(f);
#else
  int64_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
#endif
}
HOST_DEVICE float from_bits(int32_t b) {
#ifdef __CUDA_ARCH__
  return __int_as_float(b);
#else
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
#endif
}
HOST_DEVICE double from_bits(int64_t b) {
#ifdef __CUDA_ARCH__
  return __longlong_as_double(b);
#else
  double f;
  std::memcpy(&f, &b, sizeof f);
  return f;
#endif
}

// select_neg(v, a, b) = a if v's sign bit is set (v < 0, -0, -NaN), else b: the sign bit smeared
// over the word by an arithmetic shift masks the bits of a and b.
template <class T>
HOST_DEVICE T select_neg(T v, T a, T b) {
  const auto m = to_bits(v) >> (8 * sizeof(T) - 1);  // all ones or all zeros
  return from_bits((to_bits(a) & m) | (to_bits(b) & ~m));
}
// max(v, 0) for any v not -NaN (+0 for -0 and -inf, NaN stays NaN).
template <class T>
HOST_DEVICE T relu(T v) {
  return from_bits(to_bits(v) & ~(to_bits(v) >> (8 * sizeof(T) - 1)));
}

// ---- float exp and log1p ------------------------------------------------------------------
// exp(x) for x in [-87, 0] in float: x = n ln2 + r with |r| <= ln2 / 2 (Cody-Waite split of ln2),
// exp(r) = 1 + r + r^2 P(r) with P a degree-4 near-minimax fit (relative error of exp ~1.2e-7, the
// float evaluation floor; a Taylor series needs two more terms for it), times 2^n built in the
// exponent bits. n is found by adding 1.5 * 2^23 ("shifter"): the sum rounds to an integer, which
// sits in the low mantissa bits, so n = bits(sum) - bits(shifter) in integer arithmetic (no
// float -> int conversion). P is evaluated in Estrin's form, (c0 + c1 r) + r^2 ((c2 + c3 r) + r^2
// c4): a shorter chain of dependent operations than Horner's, which is what bounds the loop.
// The caller keeps x >= -87 (2^n stays a normal number).
HOST_DEVICE float exp_nonpos(float x) {
  const float shifter = 12582912.0f;  // 1.5 * 2^23
  const float sum = x * 1.44269504088896341f + shifter;
  const float n = sum - shifter;
  const int32_t ni = to_bits(sum) - 0x4B400000;  // 0x4B400000 = bits(shifter)
  float r = x - n * 0.693145751953125f;
  r = r - n * 1.428606765330187045e-06f;
  const float r2 = r * r;
  const float p = (0.49999988079071045f + 0.166665181517601f * r) +
                  r2 * ((0.041669487953186035f + 0.008368910290300846f * r) + r2 * 0.0013753952225670218f);
  return (1.0f + r + r2 * p) * from_bits((ni + 127) << 23);
}

// log(1 + e) for e in [0, 1] from u = e / (2 + e) in [0, 1/3]: log(1 + e) = 2 atanh(u) =
// 2u Q(u^2), Q a degree-4 near-minimax fit of atanh(u)/u (relative error ~2e-7 in float, set by
// the rounding of u; the plain series needs 8 terms for it), in Estrin's form. Exact as e -> 0
// (no 1 + e rounding).
HOST_DEVICE float log1p_from_u(float u) {
  const float z = u * u, z2 = z * z;
  const float q = (1.0f + 0.3333316147327423f * z) +
                  z2 * ((0.20012329518795013f + 0.13982123136520386f * z) + z2 * 0.14080947637557983f);
  return 2.0f * u * q;
}

// min(|x|, 87), NaN kept: exp(-87) ~ 1.6e-38 stands in for anything smaller (it only ever meets
// 1 + e, or multiplies another factor that is as small). On the bits: non-negative floats order
// like their bit patterns, so it is an integer min (and NaNs, above the bits of inf, pass).
HOST_DEVICE float clamped_abs(float x) {
  const int32_t b = to_bits(x) & 0x7FFFFFFF;
  const int32_t c = b < 0x42AE0000 ? b : 0x42AE0000;  // 0x42AE0000 = bits(87.0f)
  return from_bits(b > 0x7F800000 ? b : c);          // b > bits(inf): NaN
}

// ---- the transcendental part of one logit: e = exp(-|x|), lp = log1p(e), inv = 1 / (1 + e) ----
template <class T>
struct XTerms {
  T e, lp, inv;
};
HOST_DEVICE XTerms<float> x_terms(float x) {
  XTerms<float> t;
  t.e = exp_nonpos(-clamped_abs(x));
  // One division for both 1 / (1 + e) and e / (2 + e): q = 1 / ((1 + e)(2 + e)).
  const float q = 1.0f / ((1.0f + t.e) * (2.0f + t.e));
  t.inv = (2.0f + t.e) * q;
  t.lp = log1p_from_u(t.e * (1.0f + t.e) * q);
  return t;
}
HOST_DEVICE XTerms<double> x_terms(double x) {
  XTerms<double> t;
  t.e = exp(-fabs(x));
  t.lp = log1p(t.e);
  t.inv = 1.0 / (1.0 + t.e);
  return t;
}

// sigmoid(s)^gamma for a general gamma: the C library's pow (a call, so that loop stays scalar).
// exp(-gamma * softplus(-s)) would vectorise, but rounding its argument (up to ~87) costs up to
// ~5e-6 relative; gamma = 2, 1, 0 are the fast paths.
HOST_DEVICE float mpow(float a, float b) { return powf(a, b); }
HOST_DEVICE double mpow(double a, double b) { return pow(a, b); }

HOST_DEVICE float mabs(float v) { return fabsf(v); }
HOST_DEVICE double mabs(double v) { return fabs(v); }

// ---- targets and constants ----------------------------------------------------------------
// The target code of element (n, c) of a row with target tn: +1 positive, 0 negative, -1 ignored.
template <class T>
HOST_DEVICE T target_code(int64_t tn, int64_t c) {
  return tn < 0 ? T(-1) : (tn == c ? T(1) : T(0));
}

// Loop-invariant constants: alpha_t of a positive and of a negative element, and gamma.
template <class T>
struct Consts {
  T a_pos, a_neg, gamma;
};
template <class T>
Consts<T> make_consts(double alpha, double gamma) {
  Consts<T> k;
  k.a_pos = alpha < 0 ? T(1) : T(alpha);
  k.a_neg = alpha < 0 ? T(1) : T(1 - alpha);
  k.gamma = T(gamma);
  return k;
}

// Which compile-time modulator a gamma uses (G = 0, 1, 2 multiply; G = -1: any gamma via exp).
inline int gamma_kind(double gamma) { return gamma == 0 ? 0 : gamma == 1 ? 1 : gamma == 2 ? 2 : -1; }

// ---- one element --------------------------------------------------------------------------
template <class T>
struct Elem {
  T sign;     // d s / d x = 1 - 2y
  T at;       // alpha_t, or 0 for an ignored row
  T sp;       // softplus(s)
  T sig;      // sigmoid(s)
  T sig_neg;  // sigmoid(-s)
  T mod;      // sigmoid(s)^gamma
};
template <int G, class T>
HOST_DEVICE Elem<T> elem(T x, T code, const Consts<T>& k) {
  // From code in {-1, 0, 1}, exactly, by arithmetic: y = [code > 0], valid = [code >= 0].
  const T y = T(0.5) * (code + mabs(code));
  const T valid = T(1) + code - y;
  const XTerms<T> t = x_terms(x);
  Elem<T> r;
  r.sign = T(1) - T(2) * y;
  r.at = y * k.a_pos + (valid - y) * k.a_neg;
  const T s = x * r.sign;
  const T e_inv = t.e * t.inv;
  r.sp = relu(s) + t.lp;
  r.sig = select_neg(s, e_inv, t.inv);  // (s = -0 takes e_inv: the same 1/2)
  r.sig_neg = select_neg(s, t.inv, e_inv);
  if constexpr (G == 0) r.mod = T(1);
  else if constexpr (G == 1) r.mod = r.sig;
  else if constexpr (G == 2) r.mod = r.sig * r.sig;
  else r.mod = mpow(r.sig, k.gamma);
  return r;
}

// loss of one element (+0 for an ignored row, whatever x is).
template <int G, class T>
HOST_DEVICE T loss(T x, T code, const Consts<T>& k) {
  const Elem<T> r = elem<G>(x, code, k);
  return select_neg(code, T(0), r.at * r.sp * r.mod);
}

// d loss / d x of one element (+0 for an ignored row).
template <int G, class T>
HOST_DEVICE T dloss_dx(T x, T code, const Consts<T>& k) {
  const Elem<T> r = elem<G>(x, code, k);
  T inner;
  if constexpr (G == 0) inner = r.sig;
  else if constexpr (G == 1 || G == 2) inner = r.sig + T(G) * r.sp * r.sig_neg;
  else inner = r.sig + k.gamma * r.sp * r.sig_neg;
  return select_neg(code, T(0), r.sign * r.at * r.mod * inner);
}

}  // namespace sx::kernels::focalmath
