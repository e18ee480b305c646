// Kernel lab, sigmoid focal loss forward + backward: the versions from naive to fast, side by side
// (docs/labs.md tells the story, bench/bench_labs.cpp times them, tests/kernels/test_labs.cpp
// checks they agree).
//
// Each version returns the loss (reduced as FocalLossParams says) and d loss / d logits for an
// upstream gradient of 1 (all ones for FocalReduction::None): one training step's worth of work.
//   v1 composed : written from elementary tensor ops as a user would (sigmoid, BCE-with-logits,
//                 p_t, pow, alpha weights, mask, sum) and differentiated by autograd: ~15 passes
//                 over [N, C], each allocating its result, plus as many backward nodes. It needs
//                 the autograd layers, so it lives above the kernels: tests/ops/op_naive_twins.cpp
//                 (twins::focal_composed, also the op registry's naive twin of the fused op).
//   v2 fused    : one pass over the elements computing loss and gradient together from the shared
//                 per-element math (focal_loss_math.h: one exp, one log1p per element, stable at
//                 any |x|). Scalar loop, one thread. Written here.
//   v3 simd_1t  : the product kernel (focal_loss_cpu.cpp) on one thread: blocks of rows, targets
//                 expanded to one float code per element so the element loop is branch-free
//                 straight-line code that `omp simd` vectorises; forward and backward are two such
//                 passes.
//   v4 simd     : the same with OpenMP threads over blocks (deterministic: block sums are added in
//                 block order).
#pragma once
#include <vector>

#include "kernels/focal_loss/focal_loss.h"
#include "tensor/tensor.h"

namespace sx::kernels::labs {

struct FocalResult {
  Tensor loss;  // [N, C] for None, a scalar otherwise
  Tensor grad;  // [N, C]
};

FocalResult focal_v2_fused(const Tensor& logits, const Tensor& targets, const FocalLossParams& p);
FocalResult focal_v3_simd_1thread(const Tensor& logits, const Tensor& targets, const FocalLossParams& p);
FocalResult focal_v4_simd(const Tensor& logits, const Tensor& targets, const FocalLossParams& p);

// v2 .. v4 (v1 is in tests/ops, see above; the benchmark and the tests put it first).
struct FocalVersion {
  const char* name;
  const char* step;
  FocalResult (*fn)(const Tensor& logits, const Tensor& targets, const FocalLossParams& p);
};
const std::vector<FocalVersion>& focal_versions();

}  // namespace sx::kernels::labs
