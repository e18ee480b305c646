// Internal machinery of the elementwise ops (the public API is ops.h).
//
// The elementwise iterator
// ------------------------
// An elementwise op writes out[i] = f(in0[i], in1[i], ...) for every index i of the output shape.
// The operands may be broadcast (a size-1 or missing dim repeats) and may be arbitrary strided
// views (transposed, narrowed, expanded). make_iter() turns all that into one small description:
//
//   1. every operand gets a stride per output dim, in elements; a broadcast dim gets stride 0;
//   2. size-1 dims are dropped, and neighbouring dims d, d+1 are merged wherever every operand has
//      stride[d] == stride[d+1] * size[d+1] (they walk memory as one longer dim);
//   3. if one dim remains and every operand has stride 1, the op is "contiguous": the backends then
//      run a plain flat loop (vectorised on the CPU, one element per thread on the GPU). Otherwise
//      they decompose the linear index over at most kMaxDims dims to find each operand's offset.
//
// Type promotion happens before the iterator: the ops in elementwise.cpp cast operands to the
// common dtype (promote_types, NumPy rules), so a kernel sees inputs of one C++ type T and writes T
// or bool. The (op, dtype) -> functor mapping lives in elementwise_dispatch.h, shared by the CPU
// and CUDA launchers.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "tensor/tensor.h"

namespace sx::ew {

constexpr int kMaxDims = 8;  // after merging dims; more throws ValueError
constexpr int kMaxArgs = 4;  // output + up to three inputs

struct Iter {
  int nargs = 0;  // output first, then the inputs
  int ndim = 1;
  int64_t numel = 0;
  bool contiguous = false;
  int64_t sizes[kMaxDims] = {};               // outermost first
  int64_t strides[kMaxArgs][kMaxDims] = {};   // in elements
  void* ptrs[kMaxArgs] = {};                  // first element of each operand (storage + offset)
  Device device;
  std::vector<Tensor> keep_alive;  // dense copies made when more than kMaxDims dims remained
};

// `out` already has the broadcast shape; each input must broadcast to it. When more than kMaxDims
// dims remain after merging (a rare >8-d strided case), the inputs are first copied dense in the
// output's shape; if the output itself is such a view (in-place ops), ValueError.
Iter make_iter(const char* op, const Tensor& out, std::initializer_list<Tensor> inputs);

// Op codes. Parameters (scalars, slopes, bounds) travel in Params::p[0..3].
enum class UOp : int {
  AddS, MulS, RSubS, DivS, PowS, Neg, Abs, Exp, Log, Sqrt, Relu, LeakyRelu, Sigmoid, Tanh,
  Softplus, Clamp,
  // -> bool
  EqS, NeS, LtS, LeS, GtS, GeS, IsFinite, LogicalNot,
};
enum class BOp : int {
  Add, Sub, Mul, Div, Pow, Maximum, Minimum, AddAlpha,
  // -> bool
  Eq, Ne, Lt, Le, Gt, Ge, LogicalAnd, LogicalOr,
  // backward (grad, saved)
  ReluBwd, LeakyReluBwd, SigmoidBwd, TanhBwd, SoftplusBwd, ClampBwd, AbsBwd, SqrtBwd, PowSBwd,
};
enum class TOp : int {
  Where,  // (bool cond, T a, T b)
  // backward (grad, a, b)
  PowBwdBase, PowBwdExp, DivBwdDen, MaxBwd, MinBwd,
};

struct Params {
  double p[4] = {0, 0, 0, 0};
};

// `dtype` is the dtype of the (promoted) value inputs. Dispatch on it.device.
void launch_unary(UOp op, const Params& p, DType dtype, const Iter& it);
void launch_binary(BOp op, const Params& p, DType dtype, const Iter& it);
void launch_ternary(TOp op, const Params& p, DType dtype, const Iter& it);

// The backend functions (tensor/dispatch.h): elementwise_cpu.cpp defines the CPU table,
// elementwise_cuda.cu the CUDA one.
struct ElementwiseBackend {
  void (*unary)(UOp op, const Params& p, DType dtype, const Iter& it);
  void (*binary)(BOp op, const Params& p, DType dtype, const Iter& it);
  void (*ternary)(TOp op, const Params& p, DType dtype, const Iter& it);
  static const ElementwiseBackend cpu, cuda;
};

// Float16/BFloat16 are storage-only for now: every arithmetic op refuses them with this message.
void check_compute_dtype(const char* op, DType dt);

}  // namespace sx::ew
