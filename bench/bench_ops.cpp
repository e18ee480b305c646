// The op registry's quick performance mode: one benchmark per registry entry (tests/ops/op_registry.h)
// and device, timing forward + backward (float32, the entry's own small shapes, so the figures are
// per-op overheads and small-kernel times, not bandwidth). Adding an op to the registry adds it here.
//
//   Ops/<entry>/CPU   - wall time per forward + backward
//   Ops/<entry>/CUDA  - cudaEvents around forward + backward on the current stream (manual time);
//                       reports an error, not a number, without CUDA or without a GPU.
//
// Quick run: ./bench_ops --benchmark_min_time=0.01s  (filter: --benchmark_filter=Ops/conv2d)
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "bench/bench_timing.h"
#include "tensor/autograd.h"
#include "tests/ops/op_registry.h"
#ifdef SX_WITH_CUDA
#include <cuda_runtime.h>

#include "tensor/cuda_context.h"
#endif

namespace sx {
namespace {

using test::OpCase;

void BM_Op(benchmark::State& state, size_t index, Device dev) {
  if (dev.is_cuda() && !cuda_built()) {
    state.SkipWithError("built without CUDA");
    return;
  }
  if (dev.is_cuda() && !cuda_available()) {
    state.SkipWithError("no CUDA GPU");
    return;
  }
  const OpCase& c = test::op_registry()[index];
  if (dev.is_cuda() && !c.cuda) {
    state.SkipWithError("no CUDA path");
    return;
  }
  std::vector<Tensor> in = test::make_inputs(c, DType::Float32, dev);
  Tensor w;
  {
    Tensor out = c.fn(in);  // warm-up, and the backward weight's shape
    Generator g(11);
    w = test::uniform(g, out.shape(), -1.0, 1.0).to(dev, DType::Float32);
  }
  auto step = [&] {
    for (Tensor& x : in)
      if (x.requires_grad()) x.zero_grad();
    Tensor out = c.fn(in);
    out.backward(w);
  };
  bench::run_timed(state, dev, step);
}

int register_all() {
  const auto& reg = test::op_registry();
  for (size_t i = 0; i < reg.size(); ++i) {
    for (Device dev : {Device::cpu(), Device::cuda(0)}) {
      const std::string name = "Ops/" + reg[i].name + (dev.is_cuda() ? "/CUDA" : "/CPU");
      auto* b = benchmark::RegisterBenchmark(name.c_str(), BM_Op, i, dev)->Unit(benchmark::kMicrosecond);
      if (dev.is_cuda()) b->UseManualTime();
      else b->UseRealTime();
    }
  }
  return 0;
}
const int kRegistered = register_all();

}  // namespace
}  // namespace sx

BENCHMARK_MAIN();
