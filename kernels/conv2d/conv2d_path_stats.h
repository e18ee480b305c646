// Which CPU convolution path ran: a test hook (issue 15.7), so that a test proves the path it is
// named after was taken instead of passing on any thread count. Counted once per kernel call
// (forward, backward input, backward weight) where the path is chosen (batch_threads in
// conv2d_cpu.cpp).
#pragma once
#include <atomic>
#include <cstdint>

namespace sx::kernels::cpu {

struct Conv2dPathCounts {
  std::atomic<int64_t> batch_parallel{0};  // images split over OpenMP threads, OpenBLAS single-threaded
  std::atomic<int64_t> blas_threaded{0};   // images one after another, OpenBLAS keeps its threads
  void reset() {
    batch_parallel = 0;
    blas_threaded = 0;
  }
};
Conv2dPathCounts& conv2d_path_counts();

}  // namespace sx::kernels::cpu
