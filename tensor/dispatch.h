// Device dispatch: the one way an op goes from a tensor's device to its CPU or CUDA code.
//
// 1. An op family declares its backend once, in its header, as a table of function pointers: one
//    member per backend function, plus the two tables as static members.
//
//      struct BoxOpsBackend {                                           // kernels/box_ops/box_ops.h
//        Tensor (*box_area)(const Tensor& boxes);
//        Tensor (*pairwise)(const Tensor& a, const Tensor& b, PairwiseBoxOp op);
//        static const BoxOpsBackend cpu, cuda;
//      };
//
// 2. Each backend file defines the functions and, at its end, fills its table, in member order:
//
//      const BoxOpsBackend BoxOpsBackend::cpu = {cpu::box_area, cpu::pairwise};     // *_cpu.cpp
//      const BoxOpsBackend BoxOpsBackend::cuda = {cuda::box_area, cuda::pairwise};  // *_cuda.cu
//
//    Both tables have the same type, so the compiler checks that every CUDA function has exactly
//    the signature of its CPU twin (a mismatch does not compile). The tables hold addresses of
//    functions, so they are constant-initialised: usable from any static initialiser.
//
// 3. The op (checks, shapes, autograd) picks the table from the device and calls through it:
//
//      return backend<BoxOpsBackend>(b.device(), "box_area").box_area(b);
//
// A CPU-only build compiles no *.cu (and no *_cuda.cpp), so BoxOpsBackend::cuda is declared but
// defined nowhere. It still links: backend<>() reaches Ops::cuda only in an `if constexpr
// (kCudaBuilt)` branch of a template, and a discarded branch of a template is never instantiated,
// so nothing refers to the missing table. In its place that build throws
// NotBuiltError("<op>: CUDA requested but spinexr was built without CUDA"). That one throw is the
// stub of every CUDA function of every op: no signature is written a third time, there is no stubs
// file to keep in step, and nothing relies on static-initialiser registration (which the linker
// drops from static libraries when no other symbol of the object file is used).
//
// This header is the only place an op's dispatch looks at SX_WITH_CUDA; op files never do.
#pragma once
#include "tensor/device.h"
#include "tensor/errors.h"

namespace sx {

#ifdef SX_WITH_CUDA
inline constexpr bool kCudaBuilt = true;
#else
inline constexpr bool kCudaBuilt = false;
#endif

// Throws NotBuiltError naming `op` (the CUDA side of a CPU-only build).
[[noreturn]] inline void throw_not_built(const char* op) {
  SX_THROW(NotBuiltError, op, ": CUDA requested but spinexr was built without CUDA");
}

// The backend table of op family `Ops` for `device`: Ops::cpu or Ops::cuda. `op` names the op in
// the NotBuiltError of a CPU-only build.
template <class Ops>
const Ops& backend(const Device& device, const char* op) {
  if (device.is_cuda()) {
    if constexpr (kCudaBuilt) {
      return Ops::cuda;
    } else {
      throw_not_built(op);
    }
  }
  return Ops::cpu;
}

}  // namespace sx
