// Conv2d on the CPU through oneDNN (float32): the fast path beside the im2col + GEMM reference in
// conv2d_cpu.cpp, which decides when to take it (conv2d_cpu.cpp, choose_algo). Shapes, semantics
// and the gradient rules are those of conv2d.h; the pointers are contiguous NCHW / KCRS arrays of
// the shapes given, and every output is written (never accumulated into).
#pragma once
#include "kernels/conv2d/conv2d.h"

namespace sx::kernels::cpu::dnnl_conv {

// y = conv(x, w) + b  (b may be null)
void forward(const float* x, const float* w, const float* b, float* y, const Shape& xs, const Shape& ws,
             const Conv2dParams& p);
// dx from dy
void backward_input(const float* dy, const float* w, float* dx, const Shape& xs, const Shape& ws,
                    const Conv2dParams& p);
// dw from dy and x
void backward_weight(const float* dy, const float* x, float* dw, const Shape& xs, const Shape& ws,
                     const Conv2dParams& p);

// Which oneDNN implementation runs one direction of a case ("jit:avx512_core", "gemm:jit", ...),
// for benchmarks and curious readers. dir: 0 forward, 1 backward data, 2 backward weights.
std::string implementation(int dir, const Shape& xs, const Shape& ws, const Conv2dParams& p);

}  // namespace sx::kernels::cpu::dnnl_conv
