// The benchmarks' one timing loop.
//
// One warm-up call first (allocator cache, cuDNN/cuBLAS heuristics, lazy initialisation). On a
// CUDA device every iteration is then timed with two CUDA events on the device's stream and
// reported as manual time (register such benchmarks with ->UseManualTime()): the figure is the
// GPU's time for the work, not the host's time to launch it. On the CPU the loop is Google
// Benchmark's own wall-clock loop.
#pragma once
#include <benchmark/benchmark.h>

#include "tensor/device.h"
#ifdef SX_WITH_CUDA
#include <cuda_runtime.h>

#include "tensor/cuda_context.h"
#endif

namespace sx::bench {

template <class F>
void run_timed(benchmark::State& state, Device dev, F&& fn) {
  fn();  // warm-up
#ifdef SX_WITH_CUDA
  if (dev.is_cuda()) {
    cuda::synchronize(dev.index);
    cudaStream_t stream = cuda::current_stream(dev.index);
    cudaEvent_t start, stop;
    SX_CUDA_CHECK(cudaEventCreate(&start));
    SX_CUDA_CHECK(cudaEventCreate(&stop));
    for (auto _ : state) {
      SX_CUDA_CHECK(cudaEventRecord(start, stream));
      fn();
      SX_CUDA_CHECK(cudaEventRecord(stop, stream));
      SX_CUDA_CHECK(cudaEventSynchronize(stop));
      float ms = 0;
      SX_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
      state.SetIterationTime(ms / 1e3);
    }
    SX_CUDA_CHECK(cudaEventDestroy(start));
    SX_CUDA_CHECK(cudaEventDestroy(stop));
    return;
  }
#endif
  for (auto _ : state) fn();
}

}  // namespace sx::bench
