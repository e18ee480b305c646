// (op code, dtype) -> (functor, output type, input types), shared by the CPU and CUDA launchers.
//
// A launcher is a generic callable L(functor, Tag<Out>{}, Tag<In>{}...). The CPU launcher runs
// the OpenMP loop over the iterator, the CUDA launcher the grid-stride kernels; both get the very
// same functor object from here, so which op supports which dtype is decided in one place:
//   numeric = float32, float64, int32, int64, uint8;  floating = float32, float64;
//   all = numeric + bool (comparisons, logical ops, where).
#pragma once
#include <string>

#include "tensor/dtype.h"
#include "tensor/elementwise.h"
#include "tensor/elementwise_math.h"
#include "tensor/errors.h"

namespace sx::ew {

template <class T>
struct Tag {
  using type = T;
};

inline const char* uop_name(UOp op) {
  static const char* n[] = {"add", "mul", "rsub", "div", "pow", "neg", "abs", "exp", "log", "sqrt",
                            "relu", "leaky_relu", "sigmoid", "tanh", "softplus", "clamp", "eq",
                            "ne", "lt", "le", "gt", "ge", "isfinite", "logical_not"};
  return n[static_cast<int>(op)];
}
inline const char* bop_name(BOp op) {
  static const char* n[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum", "add_",
                            "eq", "ne", "lt", "le", "gt", "ge", "logical_and", "logical_or",
                            "relu_backward", "leaky_relu_backward", "sigmoid_backward",
                            "tanh_backward", "softplus_backward", "clamp_backward",
                            "abs_backward", "sqrt_backward", "pow_backward"};
  return n[static_cast<int>(op)];
}
inline const char* top_name(TOp op) {
  static const char* n[] = {"where", "pow_backward", "pow_backward", "div_backward",
                            "maximum_backward", "minimum_backward"};
  return n[static_cast<int>(op)];
}

[[noreturn]] inline void bad_dtype(const char* op, const char* allowed, DType dt) {
  throw ValueError(std::string(op) + ": expected " + allowed + ", got " + dtype_name(dt));
}

template <class F>
void for_floating(DType dt, const char* op, F&& f) {
  switch (dt) {
    case DType::Float32: f(Tag<float>{}); break;
    case DType::Float64: f(Tag<double>{}); break;
    default: bad_dtype(op, "float32 or float64", dt);
  }
}
template <class F>
void for_numeric(DType dt, const char* op, F&& f) {
  switch (dt) {
    case DType::Float32: f(Tag<float>{}); break;
    case DType::Float64: f(Tag<double>{}); break;
    case DType::Int32: f(Tag<int32_t>{}); break;
    case DType::Int64: f(Tag<int64_t>{}); break;
    case DType::UInt8: f(Tag<uint8_t>{}); break;
    default: bad_dtype(op, "a numeric dtype (float32, float64, int32, int64, uint8)", dt);
  }
}
template <class F>
void for_all(DType dt, const char* op, F&& f) {
  if (dt == DType::Bool) {
    f(Tag<bool>{});
    return;
  }
  switch (dt) {
    case DType::Float32: f(Tag<float>{}); break;
    case DType::Float64: f(Tag<double>{}); break;
    case DType::Int32: f(Tag<int32_t>{}); break;
    case DType::Int64: f(Tag<int64_t>{}); break;
    case DType::UInt8: f(Tag<uint8_t>{}); break;
    default: bad_dtype(op, "float32, float64, int32, int64, uint8 or bool", dt);
  }
}

// Shorthands inside the dispatchers: T is the element type bound by for_*.
#define SX_EW_T using T = typename decltype(tag)::type
#define SX_EW_P(i) static_cast<T>(p.p[i])

template <class L>
void dispatch_unary(UOp op, const Params& p, DType dt, L&& launch) {
  const char* name = uop_name(op);
  auto same = [&](auto f, auto tag) { launch(f, tag, tag); };
  auto to_bool = [&](auto f, auto tag) { launch(f, Tag<bool>{}, tag); };
  switch (op) {
    case UOp::AddS: for_numeric(dt, name, [&](auto tag) { SX_EW_T; same(AddS<T>{SX_EW_P(0)}, tag); }); break;
    case UOp::MulS: for_numeric(dt, name, [&](auto tag) { SX_EW_T; same(MulS<T>{SX_EW_P(0)}, tag); }); break;
    case UOp::RSubS: for_numeric(dt, name, [&](auto tag) { SX_EW_T; same(RSubS<T>{SX_EW_P(0)}, tag); }); break;
    case UOp::DivS: for_floating(dt, name, [&](auto tag) { SX_EW_T; same(DivS<T>{SX_EW_P(0)}, tag); }); break;
    case UOp::PowS: for_floating(dt, name, [&](auto tag) { SX_EW_T; same(PowS<T>{SX_EW_P(0)}, tag); }); break;
    case UOp::Neg: for_numeric(dt, name, [&](auto tag) { SX_EW_T; same(Neg<T>{}, tag); }); break;
    case UOp::Abs: for_numeric(dt, name, [&](auto tag) { SX_EW_T; same(Abs<T>{}, tag); }); break;
    case UOp::Exp: for_floating(dt, name, [&](auto tag) { SX_EW_T; same(Exp<T>{}, tag); }); break;
    case UOp::Log: for_floating(dt, name, [&](auto tag) { SX_EW_T; same(Log<T>{}, tag); }); break;
    case UOp::Sqrt: for_floating(dt, name, [&](auto tag) { SX_EW_T; same(Sqrt<T>{}, tag); }); break;
    case UOp::Relu: for_numeric(dt, name, [&](auto tag) { SX_EW_T; same(Relu<T>{}, tag); }); break;
    case UOp::LeakyRelu: for_floating(dt, name, [&](auto tag) { SX_EW_T; same(LeakyRelu<T>{SX_EW_P(0)}, tag); }); break;
    case UOp::Sigmoid: for_floating(dt, name, [&](auto tag) { SX_EW_T; same(Sigmoid<T>{}, tag); }); break;
    case UOp::Tanh: for_floating(dt, name, [&](auto tag) { SX_EW_T; same(Tanh<T>{}, tag); }); break;
    case UOp::Softplus: for_floating(dt, name, [&](auto tag) { SX_EW_T; same(Softplus<T>{SX_EW_P(0), SX_EW_P(1)}, tag); }); break;
    case UOp::Clamp:
      for_numeric(dt, name, [&](auto tag) {
        SX_EW_T;
        same(Clamp<T>{SX_EW_P(0), SX_EW_P(1), p.p[2] != 0, p.p[3] != 0}, tag);
      });
      break;
    case UOp::EqS: for_all(dt, name, [&](auto tag) { SX_EW_T; to_bool(CmpS<Cmp::Eq, T>{p.p[0]}, tag); }); break;
    case UOp::NeS: for_all(dt, name, [&](auto tag) { SX_EW_T; to_bool(CmpS<Cmp::Ne, T>{p.p[0]}, tag); }); break;
    case UOp::LtS: for_all(dt, name, [&](auto tag) { SX_EW_T; to_bool(CmpS<Cmp::Lt, T>{p.p[0]}, tag); }); break;
    case UOp::LeS: for_all(dt, name, [&](auto tag) { SX_EW_T; to_bool(CmpS<Cmp::Le, T>{p.p[0]}, tag); }); break;
    case UOp::GtS: for_all(dt, name, [&](auto tag) { SX_EW_T; to_bool(CmpS<Cmp::Gt, T>{p.p[0]}, tag); }); break;
    case UOp::GeS: for_all(dt, name, [&](auto tag) { SX_EW_T; to_bool(CmpS<Cmp::Ge, T>{p.p[0]}, tag); }); break;
    case UOp::IsFinite: for_floating(dt, name, [&](auto tag) { SX_EW_T; to_bool(IsFinite<T>{}, tag); }); break;
    case UOp::LogicalNot: for_all(dt, name, [&](auto tag) { SX_EW_T; to_bool(LogicalNot<T>{}, tag); }); break;
  }
}

template <class L>
void dispatch_binary(BOp op, const Params& p, DType dt, L&& launch) {
  const char* name = bop_name(op);
  auto same = [&](auto f, auto tag) { launch(f, tag, tag, tag); };
  auto to_bool = [&](auto f, auto tag) { launch(f, Tag<bool>{}, tag, tag); };
  switch (op) {
    case BOp::Add: for_numeric(dt, name, [&](auto tag) { SX_EW_T; same(Add<T>{}, tag); }); break;
    case BOp::Sub: for_numeric(dt, name, [&](auto tag) { SX_EW_T; same(Sub<T>{}, tag); }); break;
    case BOp::Mul: for_numeric(dt, name, [&](auto tag) { SX_EW_T; same(Mul<T>{}, tag); }); break;
    case BOp::Div: for_floating(dt, name, [&](auto tag) { SX_EW_T; same(Div<T>{}, tag); }); break;
    case BOp::Pow: for_floating(dt, name, [&](auto tag) { SX_EW_T; same(Pow<T>{}, tag); }); break;
    case BOp::Maximum: for_numeric(dt, name, [&](auto tag) { SX_EW_T; same(Maximum<T>{}, tag); }); break;
    case BOp::Minimum: for_numeric(dt, name, [&](auto tag) { SX_EW_T; same(Minimum<T>{}, tag); }); break;
    case BOp::AddAlpha: for_numeric(dt, name, [&](auto tag) { SX_EW_T; same(AddAlpha<T>{SX_EW_P(0)}, tag); }); break;
    case BOp::Eq: for_all(dt, name, [&](auto tag) { SX_EW_T; to_bool(CmpT<Cmp::Eq, T>{}, tag); }); break;
    case BOp::Ne: for_all(dt, name, [&](auto tag) { SX_EW_T; to_bool(CmpT<Cmp::Ne, T>{}, tag); }); break;
    case BOp::Lt: for_all(dt, name, [&](auto tag) { SX_EW_T; to_bool(CmpT<Cmp::Lt, T>{}, tag); }); break;
    case BOp::Le: for_all(dt, name, [&](auto tag) { SX_EW_T; to_bool(CmpT<Cmp::Le, T>{}, tag); }); break;
    case BOp::Gt: for_all(dt, name, [&](auto tag) { SX_EW_T; to_bool(CmpT<Cmp::Gt, T>{}, tag); }); break;
    case BOp::Ge: for_all(dt, name, [&](auto tag) { SX_EW_T; to_bool(CmpT<Cmp::Ge, T>{}, tag); }); break;
    case BOp::LogicalAnd: for_all(dt, name, [&](auto tag) { SX_EW_T; to_bool(LogicalAnd<T>{}, tag); }); break;
    case BOp::LogicalOr: for_all(dt, name, [&](auto tag) { SX_EW_T; to_bool(LogicalOr<T>{}, tag); }); break;
    case BOp::ReluBwd: for_floating(dt, name, [&](auto tag) { SX_EW_T; same(ReluBwd<T>{}, tag); }); break;
    case BOp::LeakyReluBwd: for_floating(dt, name, [&](auto tag) { SX_EW_T; same(LeakyReluBwd<T>{SX_EW_P(0)}, tag); }); break;
    case BOp::SigmoidBwd: for_floating(dt, name, [&](auto tag) { SX_EW_T; same(SigmoidBwd<T>{}, tag); }); break;
    case BOp::TanhBwd: for_floating(dt, name, [&](auto tag) { SX_EW_T; same(TanhBwd<T>{}, tag); }); break;
    case BOp::SoftplusBwd: for_floating(dt, name, [&](auto tag) { SX_EW_T; same(SoftplusBwd<T>{SX_EW_P(0), SX_EW_P(1)}, tag); }); break;
    case BOp::ClampBwd:
      for_floating(dt, name, [&](auto tag) {
        SX_EW_T;
        same(ClampBwd<T>{SX_EW_P(0), SX_EW_P(1), p.p[2] != 0, p.p[3] != 0}, tag);
      });
      break;
    case BOp::AbsBwd: for_floating(dt, name, [&](auto tag) { SX_EW_T; same(AbsBwd<T>{}, tag); }); break;
    case BOp::SqrtBwd: for_floating(dt, name, [&](auto tag) { SX_EW_T; same(SqrtBwd<T>{}, tag); }); break;
    case BOp::PowSBwd: for_floating(dt, name, [&](auto tag) { SX_EW_T; same(PowSBwd<T>{SX_EW_P(0)}, tag); }); break;
  }
}

template <class L>
void dispatch_ternary(TOp op, const Params& p, DType dt, L&& launch) {
  const char* name = top_name(op);
  auto same = [&](auto f, auto tag) { launch(f, tag, tag, tag, tag); };
  switch (op) {
    case TOp::Where: for_all(dt, name, [&](auto tag) { SX_EW_T; launch(Where<T>{}, tag, Tag<bool>{}, tag, tag); }); break;
    case TOp::PowBwdBase: for_floating(dt, name, [&](auto tag) { SX_EW_T; same(PowBwdBase<T>{}, tag); }); break;
    case TOp::PowBwdExp: for_floating(dt, name, [&](auto tag) { SX_EW_T; same(PowBwdExp<T>{}, tag); }); break;
    case TOp::DivBwdDen: for_floating(dt, name, [&](auto tag) { SX_EW_T; same(DivBwdDen<T>{}, tag); }); break;
    case TOp::MaxBwd: for_floating(dt, name, [&](auto tag) { SX_EW_T; same(MaxBwd<T>{}, tag); }); break;
    case TOp::MinBwd: for_floating(dt, name, [&](auto tag) { SX_EW_T; same(MinBwd<T>{}, tag); }); break;
  }
}

#undef SX_EW_T
#undef SX_EW_P

}  // namespace sx::ew
