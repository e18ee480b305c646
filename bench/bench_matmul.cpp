// matmul throughput (FLOP/s = 2 n^3 per n x n x n product), float32:
//   BM_MatmulCPU/n       sx::matmul on the CPU (OpenBLAS sgemm underneath)
//   BM_CblasSgemm/n      cblas_sgemm called directly on the same buffers -- the ceiling that
//                        BM_MatmulCPU is held against ("within 10% of raw OpenBLAS at 1024^3")
//   BM_MatmulCPUBatched  [8, n, n] x [n, n] (broadcast B, folded into one GEMM)
//   BM_NaiveLoopCPU/n    the textbook i-k-j triple loop on one core, for contrast: what blocking
//                        for the caches, SIMD and threads in OpenBLAS buy
//   BM_MatmulCUDA/n      sx::matmul on CUDA (cuBLAS), timed with cudaEvents on the op's stream
//                        (manual time), TF32 off; BM_MatmulCUDATF32 with TF32 allowed.
// Run with --benchmark_format=json for machine-readable output.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <algorithm>
#include <vector>

#include "bench/bench_timing.h"
#include "tensor/ops.h"
#include "tensor/random.h"

#ifdef SX_WITH_CUDA
#include "tensor/cuda_context.h"
#endif

namespace {

void set_flops(benchmark::State& state, double flops_per_iter) {
  state.counters["FLOP/s"] = benchmark::Counter(flops_per_iter, benchmark::Counter::kIsIterationInvariantRate,
                                                benchmark::Counter::kIs1000);
}

void BM_MatmulCPU(benchmark::State& state) {
  const int64_t n = state.range(0);
  sx::Generator g(1);
  sx::Tensor a = sx::randn({n, n}, g), b = sx::randn({n, n}, g);
  for (auto _ : state) {
    sx::Tensor c = sx::matmul(a, b);
    benchmark::DoNotOptimize(c.data_ptr());
  }
  set_flops(state, 2.0 * n * n * n);
}
BENCHMARK(BM_MatmulCPU)->Arg(256)->Arg(512)->Arg(1024)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_CblasSgemm(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  sx::Generator g(1);
  sx::Tensor a = sx::randn({n, n}, g), b = sx::randn({n, n}, g);
  for (auto _ : state) {
    // Allocate the output like sx::matmul does, so both sides pay the same.
    sx::Tensor c = sx::Tensor::empty({n, n});
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a.data<float>(), n, b.data<float>(), n,
                0.0f, c.data<float>(), n);
    benchmark::DoNotOptimize(c.data_ptr());
  }
  set_flops(state, 2.0 * n * n * n);
}
BENCHMARK(BM_CblasSgemm)->Arg(256)->Arg(512)->Arg(1024)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_MatmulCPUBatched(benchmark::State& state) {
  const int64_t n = state.range(0);
  sx::Generator g(1);
  sx::Tensor a = sx::randn({8, n, n}, g), b = sx::randn({n, n}, g);
  for (auto _ : state) {
    sx::Tensor c = sx::matmul(a, b);
    benchmark::DoNotOptimize(c.data_ptr());
  }
  set_flops(state, 8 * 2.0 * n * n * n);
}
BENCHMARK(BM_MatmulCPUBatched)->Arg(256)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_NaiveLoopCPU(benchmark::State& state) {
  const int64_t n = state.range(0);
  sx::Generator g(1);
  sx::Tensor a = sx::randn({n, n}, g), b = sx::randn({n, n}, g);
  const float* A = a.data<float>();
  const float* B = b.data<float>();
  std::vector<float> C(n * n);
  for (auto _ : state) {
    std::fill(C.begin(), C.end(), 0.0f);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t p = 0; p < n; ++p) {
        const float aip = A[i * n + p];
        for (int64_t j = 0; j < n; ++j) C[i * n + j] += aip * B[p * n + j];
      }
    benchmark::DoNotOptimize(C.data());
  }
  set_flops(state, 2.0 * n * n * n);
}
BENCHMARK(BM_NaiveLoopCPU)->Arg(256)->Unit(benchmark::kMillisecond)->UseRealTime();

#ifdef SX_WITH_CUDA
void run_cuda(benchmark::State& state, bool tf32) {
  if (!sx::cuda_available()) {
    state.SkipWithError("no CUDA GPU on this machine");
    return;
  }
  const int64_t n = state.range(0);
  sx::Generator g(1);
  sx::Tensor a = sx::randn({n, n}, g, sx::DType::Float32, sx::Device::cuda()),
             b = sx::randn({n, n}, g, sx::DType::Float32, sx::Device::cuda());
  sx::cuda::set_allow_tf32(tf32);
  sx::bench::run_timed(state, sx::Device::cuda(), [&] { sx::Tensor c = sx::matmul(a, b); });
  sx::cuda::set_allow_tf32(false);
  set_flops(state, 2.0 * n * n * n);
}
void BM_MatmulCUDA(benchmark::State& state) { run_cuda(state, false); }
void BM_MatmulCUDATF32(benchmark::State& state) { run_cuda(state, true); }
BENCHMARK(BM_MatmulCUDA)->Arg(256)->Arg(512)->Arg(1024)->Arg(4096)->UseManualTime()->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_MatmulCUDATF32)->Arg(1024)->Arg(4096)->UseManualTime()->Unit(benchmark::kMicrosecond);
#endif

}  // namespace

BENCHMARK_MAIN();
