// Per-element math of the elementwise ops, written once and compiled for both the CPU loops
// (elementwise_cpu.cpp) and the CUDA kernels (elementwise_cuda.cu).
//
// Each op is a small functor templated on the element type T. Parameters (a scalar operand, a
// slope, clamp bounds) are members, converted to T when the functor is built, so the CPU and the
// GPU evaluate exactly the same expression. Forward functors come first, then the backward
// functors: backward(grad, saved...) -> grad_input, used by the autograd closures in
// elementwise.cpp through the same iterator and kernels (so CUDA backward runs on the GPU).
//
// Conventions shared with PyTorch:
//   - NaN propagates through relu, clamp, minimum and maximum;
//   - sigmoid uses the two-branch stable form; softplus returns x above the threshold;
//   - the gradient of maximum/minimum goes to the selected input, split half/half at ties;
//   - the gradient of clamp passes where lo <= x <= hi; of abs is sign(x) (0 at 0).
#pragma once
#include <math.h>

#include <cstdint>
#include <type_traits>

#include "tensor/host_device.h"

namespace sx::ew {

// ---- overloads that resolve to the float or double libm / CUDA math functions ---------------
HOST_DEVICE float m_exp(float x) { return ::expf(x); }
HOST_DEVICE double m_exp(double x) { return ::exp(x); }
HOST_DEVICE float m_log(float x) { return ::logf(x); }
HOST_DEVICE double m_log(double x) { return ::log(x); }
HOST_DEVICE float m_log1p(float x) { return ::log1pf(x); }
HOST_DEVICE double m_log1p(double x) { return ::log1p(x); }
HOST_DEVICE float m_sqrt(float x) { return ::sqrtf(x); }
HOST_DEVICE double m_sqrt(double x) { return ::sqrt(x); }
HOST_DEVICE float m_tanh(float x) { return ::tanhf(x); }
HOST_DEVICE double m_tanh(double x) { return ::tanh(x); }
HOST_DEVICE float m_pow(float a, float b) { return ::powf(a, b); }
HOST_DEVICE double m_pow(double a, double b) { return ::pow(a, b); }
// Finite test without libm: inf - inf and NaN - NaN are NaN, finite x - x is 0.
template <class T>
HOST_DEVICE bool m_isfinite(T x) { return (x - x) == T(0); }
template <class T>
HOST_DEVICE bool m_isnan(T x) { return x != x; }  // always false for integers
// x < 0 without "pointless comparison" warnings for unsigned types.
template <class T>
HOST_DEVICE bool m_negative(T x) {
  if constexpr (std::is_unsigned<T>::value) {
    return false;
  } else {
    return x < T(0);
  }
}

template <class T>
HOST_DEVICE T m_sigmoid(T x) {
  if (x >= T(0)) return T(1) / (T(1) + m_exp(-x));
  T e = m_exp(x);
  return e / (T(1) + e);
}

// ---- unary forward (T -> T) -----------------------------------------------------------------
template <class T> struct AddS { T s; HOST_DEVICE T operator()(T a) const { return static_cast<T>(a + s); } };
template <class T> struct MulS { T s; HOST_DEVICE T operator()(T a) const { return static_cast<T>(a * s); } };
template <class T> struct RSubS { T s; HOST_DEVICE T operator()(T a) const { return static_cast<T>(s - a); } };
template <class T> struct DivS { T s; HOST_DEVICE T operator()(T a) const { return a / s; } };
template <class T> struct PowS {
  T e;
  HOST_DEVICE T operator()(T a) const {
    if (e == T(2)) return a * a;  // the common case, exact and fast
    return m_pow(a, e);
  }
};
template <class T> struct Neg { HOST_DEVICE T operator()(T a) const { return static_cast<T>(-a); } };
template <class T> struct Abs { HOST_DEVICE T operator()(T a) const { return m_negative(a) ? static_cast<T>(-a) : a; } };
template <class T> struct Exp { HOST_DEVICE T operator()(T a) const { return m_exp(a); } };
template <class T> struct Log { HOST_DEVICE T operator()(T a) const { return m_log(a); } };
template <class T> struct Sqrt { HOST_DEVICE T operator()(T a) const { return m_sqrt(a); } };
template <class T> struct Relu { HOST_DEVICE T operator()(T a) const { return m_negative(a) ? T(0) : a; } };
template <class T> struct LeakyRelu {
  T slope;
  HOST_DEVICE T operator()(T a) const { return a < T(0) ? a * slope : a; }
};
template <class T> struct Sigmoid { HOST_DEVICE T operator()(T a) const { return m_sigmoid(a); } };
template <class T> struct Tanh { HOST_DEVICE T operator()(T a) const { return m_tanh(a); } };
// softplus(x) = log(1 + exp(beta x)) / beta, or x where beta x > threshold (linear regime).
template <class T> struct Softplus {
  T beta, threshold;
  HOST_DEVICE T operator()(T a) const {
    T bx = a * beta;
    if (bx > threshold) return a;
    return m_log1p(m_exp(bx)) / beta;
  }
};
template <class T> struct Clamp {
  T lo, hi;
  bool has_lo, has_hi;
  HOST_DEVICE T operator()(T a) const {
    if (m_isnan(a)) return a;
    if (has_lo && a < lo) return lo;
    if (has_hi && a > hi) return hi;
    return a;
  }
};

// ---- unary -> Bool --------------------------------------------------------------------------
// Scalar comparisons compare in double, so an integer tensor against 0.5 behaves as in NumPy.
enum class Cmp : int { Eq, Ne, Lt, Le, Gt, Ge };
template <class A, class B>
HOST_DEVICE bool compare(Cmp c, A a, B b) {
  switch (c) {
    case Cmp::Eq: return a == b;
    case Cmp::Ne: return a != b;
    case Cmp::Lt: return a < b;
    case Cmp::Le: return a <= b;
    case Cmp::Gt: return a > b;
    default: return a >= b;
  }
}
template <Cmp C, class T> struct CmpS {
  double s;
  HOST_DEVICE bool operator()(T a) const { return compare(C, static_cast<double>(a), s); }
};
template <class T> struct IsFinite { HOST_DEVICE bool operator()(T a) const { return m_isfinite(a); } };
template <class T> struct LogicalNot { HOST_DEVICE bool operator()(T a) const { return !(a != T(0)); } };

// ---- binary forward (T, T -> T) -------------------------------------------------------------
template <class T> struct Add { HOST_DEVICE T operator()(T a, T b) const { return static_cast<T>(a + b); } };
template <class T> struct Sub { HOST_DEVICE T operator()(T a, T b) const { return static_cast<T>(a - b); } };
template <class T> struct Mul { HOST_DEVICE T operator()(T a, T b) const { return static_cast<T>(a * b); } };
template <class T> struct Div { HOST_DEVICE T operator()(T a, T b) const { return a / b; } };
template <class T> struct Pow { HOST_DEVICE T operator()(T a, T b) const { return m_pow(a, b); } };
// a + alpha * b (the in-place add_ of optimizers).
template <class T> struct AddAlpha {
  T alpha;
  HOST_DEVICE T operator()(T a, T b) const { return static_cast<T>(a + alpha * b); }
};
template <class T> struct Maximum {
  HOST_DEVICE T operator()(T a, T b) const { return (a > b || m_isnan(a)) ? a : b; }
};
template <class T> struct Minimum {
  HOST_DEVICE T operator()(T a, T b) const { return (a < b || m_isnan(a)) ? a : b; }
};

// ---- binary -> Bool -------------------------------------------------------------------------
template <Cmp C, class T> struct CmpT { HOST_DEVICE bool operator()(T a, T b) const { return compare(C, a, b); } };
template <class T> struct LogicalAnd {
  HOST_DEVICE bool operator()(T a, T b) const { return (a != T(0)) && (b != T(0)); }
};
template <class T> struct LogicalOr {
  HOST_DEVICE bool operator()(T a, T b) const { return (a != T(0)) || (b != T(0)); }
};

// ---- ternary forward ------------------------------------------------------------------------
template <class T> struct Where {
  HOST_DEVICE T operator()(bool c, T a, T b) const { return c ? a : b; }
};

// ---- backward: (grad, saved...) -> grad_input ------------------------------------------------
// d relu / dx from the output y: 1 where y > 0.
template <class T> struct ReluBwd { HOST_DEVICE T operator()(T g, T y) const { return y > T(0) ? g : T(0); } };
template <class T> struct LeakyReluBwd {
  T slope;
  HOST_DEVICE T operator()(T g, T x) const { return x > T(0) ? g : g * slope; }
};
// sigmoid' = y (1 - y), from the output y.
template <class T> struct SigmoidBwd { HOST_DEVICE T operator()(T g, T y) const { return g * y * (T(1) - y); } };
// tanh' = 1 - y^2, from the output y.
template <class T> struct TanhBwd { HOST_DEVICE T operator()(T g, T y) const { return g * (T(1) - y * y); } };
template <class T> struct SoftplusBwd {
  T beta, threshold;
  HOST_DEVICE T operator()(T g, T x) const {
    T bx = x * beta;
    return bx > threshold ? g : g * m_sigmoid(bx);
  }
};
template <class T> struct ClampBwd {
  T lo, hi;
  bool has_lo, has_hi;
  HOST_DEVICE T operator()(T g, T x) const {
    if (has_lo && x < lo) return T(0);
    if (has_hi && x > hi) return T(0);
    return g;
  }
};
template <class T> struct AbsBwd {
  HOST_DEVICE T operator()(T g, T x) const { return x > T(0) ? g : (x < T(0) ? -g : T(0)); }
};
// sqrt' = 1 / (2 y), from the output y.
template <class T> struct SqrtBwd { HOST_DEVICE T operator()(T g, T y) const { return g / (T(2) * y); } };
// d x^e / dx = e x^(e-1) (0 when e == 0, as in PyTorch).
template <class T> struct PowSBwd {
  T e;
  HOST_DEVICE T operator()(T g, T x) const {
    if (e == T(0)) return T(0);
    if (e == T(2)) return g * T(2) * x;
    return g * e * m_pow(x, e - T(1));
  }
};

// ---- ternary backward: (grad, a, b) -> grad_input ---------------------------------------------
// d a^b / da = b a^(b-1)
template <class T> struct PowBwdBase {
  HOST_DEVICE T operator()(T g, T a, T b) const {
    if (b == T(0)) return T(0);
    return g * b * m_pow(a, b - T(1));
  }
};
// d a^b / db = a^b log(a); taken as 0 where a == 0 and b >= 0 (PyTorch's convention).
template <class T> struct PowBwdExp {
  HOST_DEVICE T operator()(T g, T a, T b) const {
    if (a == T(0) && b >= T(0)) return T(0);
    return g * m_pow(a, b) * m_log(a);
  }
};
// d (a / b) / db = -a / b^2
template <class T> struct DivBwdDen {
  HOST_DEVICE T operator()(T g, T a, T b) const { return -g * a / (b * b); }
};
// Gradient of maximum(self, other) with respect to self: 1 where self wins, 1/2 at ties.
template <class T> struct MaxBwd {
  HOST_DEVICE T operator()(T g, T self, T other) const {
    return self > other ? g : (self == other ? g / T(2) : T(0));
  }
};
template <class T> struct MinBwd {
  HOST_DEVICE T operator()(T g, T self, T other) const {
    return self < other ? g : (self == other ? g / T(2) : T(0));
  }
};

// ---- strided indexing, shared by the CPU row loop and the CUDA strided kernel ------------------
// Element offsets of linear index i in each of N operands: i is decomposed over the ndim dims
// (sizes outermost first, a divmod per dim from the innermost out) and off[k] accumulates
// coordinate * strides[k][d]. Returns the coordinate along the innermost dim.
#ifdef __CUDA_ARCH__
#define SX_EW_UNROLL _Pragma("unroll")
#else
#define SX_EW_UNROLL
#endif
template <int N, int D>
HOST_DEVICE int64_t linear_to_offsets(int64_t i, int ndim, const int64_t* sizes, const int64_t (*strides)[D],
                                      int64_t* off) {
  SX_EW_UNROLL
  for (int k = 0; k < N; ++k) off[k] = 0;
  int64_t rem = i, col = 0;
  for (int d = ndim - 1; d >= 0; --d) {
    const int64_t q = rem / sizes[d];
    const int64_t r = rem - q * sizes[d];
    if (d == ndim - 1) col = r;
    SX_EW_UNROLL
    for (int k = 0; k < N; ++k) off[k] += r * strides[k][d];
    rem = q;
  }
  return col;
}
#undef SX_EW_UNROLL

}  // namespace sx::ew
