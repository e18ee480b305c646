// Kernel labs: run a product kernel on one OpenMP thread, to separate what a step gains from its
// arithmetic (vector code, cache-friendly tables, prefetching) from what it gains from threads.
// Scoped: the previous thread count is restored on exit (also when the kernel throws). Not for
// concurrent use from several threads (omp_set_num_threads sets the calling thread's value).
#pragma once
#include <omp.h>

namespace sx::kernels::labs {

class OneThread {
 public:
  OneThread() : prev_(omp_get_max_threads()) { omp_set_num_threads(1); }
  ~OneThread() { omp_set_num_threads(prev_); }
  OneThread(const OneThread&) = delete;
  OneThread& operator=(const OneThread&) = delete;

 private:
  int prev_;
};

}  // namespace sx::kernels::labs
