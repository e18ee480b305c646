// Elementwise and reduction throughput, CPU and CUDA, in bytes/s (bytes the op must move at least:
// every input read once plus the output written once).
//
//   BM_MemcpyCPU/n, BM_MemcpyCPUParallel/n   the ceiling: std::memcpy of n floats (one thread, and
//                                            split over the OpenMP threads); counts read + write.
//   BM_AddCPU/n          c = a + b, contiguous float32 (allocates the output, as the op does)
//   BM_AddInplaceCPU/n   add_(a, b): a += b, no allocation
//   BM_MulScalarCPU/n    a * 2 (unary functor path);   BM_ExpCPU/n: exp(a)
//   BM_AddBroadcastCPU/n [n/1024, 1024] + [1024];       BM_AddTransposedCPU/n: a^T + b^T (strided)
//   BM_SumCPU/n          sum over everything;            BM_SumRowsCPU/n: [n/1024, 1024] over dim 1
//   BM_SumColsCPU/n      [n/1024, 1024] over dim 0;      BM_MaxDimCPU/n: max + argmax over dim 1
//   BM_SoftmaxCPU/n      softmax over rows of 1000 (bytes: read + write once)
//   ..._CUDA twins, timed with cudaEvents on the device's stream (manual time); in a build without
//   CUDA or on a machine without a GPU they report an error (skipped), never a number.
// CPU benchmarks use wall-clock time (UseRealTime): the work runs on OpenMP threads, so the main
// thread's CPU time would overstate the rate.
// Target (issue 2): contiguous float32 elementwise on the CPU >= 50% of memcpy bandwidth.
// Run: ./bench_tensor_ops --benchmark_format=json
#include <benchmark/benchmark.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <vector>

#include "bench/bench_timing.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "tensor/tensor.h"
#ifdef SX_WITH_CUDA
#include <cuda_runtime.h>

#include "tensor/cuda_context.h"
#endif

namespace {

using namespace sx;

Tensor filled(int64_t n, double lo, double hi, uint64_t seed, Device dev = Device::cpu()) {
  Generator g(seed);
  Tensor t = Tensor::empty({n});
  float* p = t.data<float>();
  for (int64_t i = 0; i < n; ++i) p[i] = static_cast<float>(lo + (hi - lo) * g.uniform());
  return dev.is_cpu() ? t : t.to(dev);
}

void set_bytes(benchmark::State& state, int64_t bytes_per_iter) {
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * bytes_per_iter);
}

// ---- CPU --------------------------------------------------------------------------------------
void BM_MemcpyCPU(benchmark::State& state) {
  const int64_t n = state.range(0);
  std::vector<float> a(n, 1.0f), b(n, 0.0f);
  for (auto _ : state) {
    std::memcpy(b.data(), a.data(), n * sizeof(float));
    benchmark::DoNotOptimize(b.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, 2 * n * 4);
}
void BM_MemcpyCPUParallel(benchmark::State& state) {
  const int64_t n = state.range(0);
  std::vector<float> a(n, 1.0f), b(n, 0.0f);
  for (auto _ : state) {
    const int64_t nt = omp_get_max_threads();
    const int64_t chunk = (n + nt - 1) / nt;
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < nt; ++t) {
      const int64_t lo = t * chunk, hi = std::min(n, lo + chunk);
      if (hi > lo) std::memcpy(b.data() + lo, a.data() + lo, (hi - lo) * sizeof(float));
    }
    benchmark::DoNotOptimize(b.data());
    benchmark::ClobberMemory();
  }
  set_bytes(state, 2 * n * 4);
}

void run_cpu(benchmark::State& state, int64_t bytes_per_elem, const std::function<Tensor()>& f) {
  const int64_t n = state.range(0);
  for (auto _ : state) {
    Tensor r = f();
    benchmark::DoNotOptimize(r.data_ptr());
  }
  set_bytes(state, bytes_per_elem * n);
}

void BM_AddCPU(benchmark::State& state) {
  Tensor a = filled(state.range(0), -1, 1, 1), b = filled(state.range(0), -1, 1, 2);
  run_cpu(state, 12, [&] { return add(a, b); });
}
void BM_AddInplaceCPU(benchmark::State& state) {
  Tensor a = filled(state.range(0), -1, 1, 1), b = filled(state.range(0), -1, 1, 2);
  run_cpu(state, 12, [&] {
    add_(a, b, 1e-6);
    return a;
  });
}
void BM_MulScalarCPU(benchmark::State& state) {
  Tensor a = filled(state.range(0), -1, 1, 1);
  run_cpu(state, 8, [&] { return mul(a, 2.0); });
}
void BM_ExpCPU(benchmark::State& state) {
  Tensor a = filled(state.range(0), -1, 1, 1);
  run_cpu(state, 8, [&] { return exp(a); });
}
void BM_AddBroadcastCPU(benchmark::State& state) {
  const int64_t n = state.range(0);
  Tensor a = filled(n, -1, 1, 1).reshape({n / 1024, 1024}), b = filled(1024, -1, 1, 2);
  run_cpu(state, 8, [&] { return add(a, b); });
}
void BM_AddTransposedCPU(benchmark::State& state) {
  const int64_t n = state.range(0);
  Tensor a = filled(n, -1, 1, 1).reshape({1024, n / 1024}).t(), b = filled(n, -1, 1, 2).reshape({1024, n / 1024}).t();
  run_cpu(state, 12, [&] { return add(a, b); });
}
void BM_SumCPU(benchmark::State& state) {
  Tensor a = filled(state.range(0), -1, 1, 1);
  run_cpu(state, 4, [&] { return sum(a); });
}
void BM_SumRowsCPU(benchmark::State& state) {
  const int64_t n = state.range(0);
  Tensor a = filled(n, -1, 1, 1).reshape({n / 1024, 1024});
  run_cpu(state, 4, [&] { return sum(a, {1}); });
}
void BM_SumColsCPU(benchmark::State& state) {
  const int64_t n = state.range(0);
  Tensor a = filled(n, -1, 1, 1).reshape({n / 1024, 1024});
  run_cpu(state, 4, [&] { return sum(a, {0}); });
}
void BM_MaxDimCPU(benchmark::State& state) {
  const int64_t n = state.range(0);
  Tensor a = filled(n, -1, 1, 1).reshape({n / 1024, 1024});
  run_cpu(state, 4, [&] { return max(a, 1).first; });
}
void BM_SoftmaxCPU(benchmark::State& state) {
  const int64_t n = state.range(0);
  Tensor a = filled(n / 1000 * 1000, -5, 5, 1).reshape({n / 1000, 1000});
  run_cpu(state, 8, [&] { return softmax(a, 1); });
}

// ---- CUDA -------------------------------------------------------------------------------------
#ifdef SX_WITH_CUDA
bool cuda_ready(benchmark::State& state) {
  if (!cuda_available()) {
    state.SkipWithError("no CUDA GPU on this machine");
    return false;
  }
  return true;
}
// Times f on the device's stream with events; one warm-up call first.
void run_cuda(benchmark::State& state, int64_t bytes, const std::function<void()>& f) {
  bench::run_timed(state, Device::cuda(0), f);
  set_bytes(state, bytes);
}
#define SX_CUDA_BENCH_BODY(bytes_per_elem, setup, expr)                      \
  if (!cuda_ready(state)) return;                                             \
  const int64_t n = state.range(0);                                           \
  const Device dev = Device::cuda(0);                                         \
  setup;                                                                      \
  run_cuda(state, (bytes_per_elem) * n, [&] { benchmark::DoNotOptimize((expr).data_ptr()); })
#else
#define SX_CUDA_BENCH_BODY(bytes_per_elem, setup, expr) \
  state.SkipWithError("built without CUDA");            \
  return
#endif

void BM_MemcpyCUDA(benchmark::State& state) {
#ifdef SX_WITH_CUDA
  if (!cuda_ready(state)) return;
  const int64_t n = state.range(0);
  Tensor a = Tensor::zeros({n}, DType::Float32, Device::cuda(0)), b = Tensor::empty({n}, DType::Float32, Device::cuda(0));
  run_cuda(state, 8 * n, [&] {
    SX_CUDA_CHECK(cudaMemcpyAsync(b.data_ptr(), a.data_ptr(), n * 4, cudaMemcpyDeviceToDevice, cuda::current_stream(0)));
  });
#else
  state.SkipWithError("built without CUDA");
#endif
}
void BM_AddCUDA(benchmark::State& state) {
  SX_CUDA_BENCH_BODY(12, Tensor a = filled(n, -1, 1, 1, dev); Tensor b = filled(n, -1, 1, 2, dev), add(a, b));
}
void BM_AddInplaceCUDA(benchmark::State& state) {
  SX_CUDA_BENCH_BODY(12, Tensor a = filled(n, -1, 1, 1, dev); Tensor b = filled(n, -1, 1, 2, dev),
                     (add_(a, b, 1e-6), a));
}
void BM_ExpCUDA(benchmark::State& state) {
  SX_CUDA_BENCH_BODY(8, Tensor a = filled(n, -1, 1, 1, dev), exp(a));
}
void BM_AddBroadcastCUDA(benchmark::State& state) {
  SX_CUDA_BENCH_BODY(8, Tensor a = filled(n, -1, 1, 1, dev).reshape({n / 1024, 1024}); Tensor b = filled(1024, -1, 1, 2, dev),
                     add(a, b));
}
void BM_AddTransposedCUDA(benchmark::State& state) {
  SX_CUDA_BENCH_BODY(12, Tensor a = filled(n, -1, 1, 1, dev).reshape({1024, n / 1024}).t();
                     Tensor b = filled(n, -1, 1, 2, dev).reshape({1024, n / 1024}).t(), add(a, b));
}
void BM_SumCUDA(benchmark::State& state) { SX_CUDA_BENCH_BODY(4, Tensor a = filled(n, -1, 1, 1, dev), sum(a)); }
void BM_SumRowsCUDA(benchmark::State& state) {
  SX_CUDA_BENCH_BODY(4, Tensor a = filled(n, -1, 1, 1, dev).reshape({n / 1024, 1024}), sum(a, {1}));
}
void BM_SumColsCUDA(benchmark::State& state) {
  SX_CUDA_BENCH_BODY(4, Tensor a = filled(n, -1, 1, 1, dev).reshape({n / 1024, 1024}), sum(a, {0}));
}
void BM_MaxDimCUDA(benchmark::State& state) {
  SX_CUDA_BENCH_BODY(4, Tensor a = filled(n, -1, 1, 1, dev).reshape({n / 1024, 1024}), max(a, 1).first);
}
void BM_SoftmaxCUDA(benchmark::State& state) {
  SX_CUDA_BENCH_BODY(8, Tensor a = filled(n / 1000 * 1000, -5, 5, 1, dev).reshape({n / 1000, 1000}), softmax(a, 1));
}

}  // namespace

#define SX_CPU_SIZES ->Arg(1 << 16)->Arg(1 << 20)->Arg(1 << 24)->UseRealTime()->Unit(benchmark::kMicrosecond)
#define SX_CUDA_SIZES ->Arg(1 << 20)->Arg(1 << 24)->Arg(1 << 26)->UseManualTime()->Unit(benchmark::kMicrosecond)
BENCHMARK(BM_MemcpyCPU) SX_CPU_SIZES;
BENCHMARK(BM_MemcpyCPUParallel) SX_CPU_SIZES;
BENCHMARK(BM_AddCPU) SX_CPU_SIZES;
BENCHMARK(BM_AddInplaceCPU) SX_CPU_SIZES;
BENCHMARK(BM_MulScalarCPU) SX_CPU_SIZES;
BENCHMARK(BM_ExpCPU) SX_CPU_SIZES;
BENCHMARK(BM_AddBroadcastCPU) SX_CPU_SIZES;
BENCHMARK(BM_AddTransposedCPU) SX_CPU_SIZES;
BENCHMARK(BM_SumCPU) SX_CPU_SIZES;
BENCHMARK(BM_SumRowsCPU) SX_CPU_SIZES;
BENCHMARK(BM_SumColsCPU) SX_CPU_SIZES;
BENCHMARK(BM_MaxDimCPU) SX_CPU_SIZES;
BENCHMARK(BM_SoftmaxCPU) SX_CPU_SIZES;
BENCHMARK(BM_MemcpyCUDA) SX_CUDA_SIZES;
BENCHMARK(BM_AddCUDA) SX_CUDA_SIZES;
BENCHMARK(BM_AddInplaceCUDA) SX_CUDA_SIZES;
BENCHMARK(BM_ExpCUDA) SX_CUDA_SIZES;
BENCHMARK(BM_AddBroadcastCUDA) SX_CUDA_SIZES;
BENCHMARK(BM_AddTransposedCUDA) SX_CUDA_SIZES;
BENCHMARK(BM_SumCUDA) SX_CUDA_SIZES;
BENCHMARK(BM_SumRowsCUDA) SX_CUDA_SIZES;
BENCHMARK(BM_SumColsCUDA) SX_CUDA_SIZES;
BENCHMARK(BM_MaxDimCUDA) SX_CUDA_SIZES;
BENCHMARK(BM_SoftmaxCUDA) SX_CUDA_SIZES;

BENCHMARK_MAIN();
