// The op registry: every differentiable op of the engine, listed once, with how to feed it.
//
// In the style of ggml's test-backend-ops: one table (op_registry.cpp) and the programs that walk it:
//   tests/ops/test_ops.cpp   - for every entry: float64 gradcheck on the CPU (Gradcheck), the
//                              naive twin against the fast path where one exists (NaiveVsFast),
//                              CPU against CUDA, forward and every input gradient (CudaParity,
//                              SKIPPED without a GPU), and the coverage test: every autograd node
//                              name in the product sources must be recorded by some entry's graph.
//   bench/bench_ops.cpp      - forward + backward of every entry, float32, CPU and CUDA.
// Adding an op to the table gives it all four.
//
// How to add an op
// ----------------
// 1. Append an OpCase in op_registry.cpp (the list in build_registry(), grouped by source file):
//      c.name   unique, a valid gtest name ([A-Za-z0-9_]); usually the op, plus a variant suffix
//               ("matmul_batched_broadcast").
//      c.nodes  the autograd node names (the `name` passed to attach_grad) the case must record;
//               test_ops checks that the graph really contains them, and the coverage test
//               fails until some entry records every node name found in the product sources.
//      c.inputs a builder: Generator& -> the input values as float64 CPU tensors (InputSpec),
//               each flagged `grad` if it is differentiated. Integer / bool inputs (indices,
//               targets, masks) keep their dtype. Choose values away from kinks and ties (see the
//               helpers below: away(), distinct(), positive()): the gradcheck uses central
//               differences with step `gc.eps`, and CPU vs CUDA must pick the same branch.
//               `transposed` makes the leaf a non-contiguous (last two dims swapped) view.
//      c.fn     std::vector<Tensor> -> Tensor, the op applied to the inputs (dtype-agnostic: it
//               runs in float64 for the gradcheck and float32 for parity and the benchmark).
//      c.gc     gradcheck eps / atol / rtol (float64); c.parity rtol / atol (float32 CPU vs CUDA,
//               |cuda - cpu| <= atol + rtol * |cpu| per element, forward and every gradient).
//      c.naive  optional twin computing the same thing another way (a slow path of the product,
//               or a composition of primitive ops written in the test), c.naive_what says which;
//               compared in float32 with c.naive_tol, forward and gradients.
//      c.cuda   false only for an op that has no CUDA path (the parity case then says so).
// 2. If the op attaches a new node name, the coverage test fails until an entry records it.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tensor/device.h"
#include "tensor/dtype.h"
#include "tensor/random.h"
#include "tensor/tensor.h"

namespace sx::test {

struct InputSpec {
  Tensor value;             // float64 (or integer / bool) CPU tensor, contiguous
  bool grad = false;        // differentiated by the checks
  bool transposed = false;  // the leaf is value.transpose(-1, -2) of a [.., b, a] buffer: non-contiguous
};

struct Tolerance {
  double atol, rtol;
};

struct GradcheckTol {
  double eps = 1e-6, atol = 1e-5, rtol = 1e-4;
};

using OpFn = std::function<Tensor(const std::vector<Tensor>&)>;

struct OpCase {
  std::string name;
  std::vector<std::string> nodes;
  std::function<std::vector<InputSpec>(Generator&)> inputs;
  OpFn fn;
  GradcheckTol gc;
  Tolerance parity{1e-5, 1e-4};
  OpFn naive;              // optional
  std::string naive_what;  // what the twin is (printed by NaiveVsFast)
  Tolerance naive_tol{1e-5, 1e-4};
  bool cuda = true;
};

// The table (built once).
const std::vector<OpCase>& op_registry();

// The inputs of `c` for (dtype, device): the builder's values drawn with Generator(seed), floating
// ones cast to `dtype`, all moved to `device`, transposed where asked, `grad` ones made leaves
// that require grad. The same seed gives the same values on every device and dtype.
std::vector<Tensor> make_inputs(const OpCase& c, DType dtype, Device device, uint64_t seed = 7);

// The node names recorded in out's autograd graph (out's grad_fn and everything reachable).
std::vector<std::string> graph_node_names(const Tensor& out);

// Forward, then backward with a fixed weight of the output's shape (seeded; the same on every
// device); returns {output, grad of every `grad` input in order} (all moved to the CPU).
std::vector<Tensor> forward_backward(const OpFn& fn, const std::vector<Tensor>& inputs, uint64_t seed = 11);

// ---- input helpers (float64 CPU tensors) -------------------------------------------------------
Tensor uniform(Generator& g, const Shape& s, double lo, double hi);
// Uniform in [lo, hi] but at least `margin` from every kink.
Tensor away(Generator& g, const Shape& s, double lo, double hi, const std::vector<double>& kinks,
            double margin = 0.05);
// Values of [lo, hi] that are pairwise at least (hi - lo) / (2 numel) apart, in random order
// (no ties for max / sort / pooling).
Tensor distinct(Generator& g, const Shape& s, double lo, double hi);
Tensor positive(Generator& g, const Shape& s, double lo = 0.5, double hi = 2.0);
Tensor randint_t(Generator& g, const Shape& s, int64_t lo, int64_t hi);  // int64
Tensor bool_mask(Generator& g, const Shape& s, double p_true = 0.5);

}  // namespace sx::test
