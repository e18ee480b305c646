// How conv2d (CUDA) picks a cuDNN algorithm, written without cuDNN types so the CPU tests check it
// (conv2d_cuda.cpp uses these with cudnnConvolution*AlgoPerf_t).
#pragma once
#include <cstddef>
#include <cstdint>
#include <initializer_list>

namespace sx::kernels::conv_algo {

// Index of the first of cuDNN's ranked candidates that works (`usable`) and whose workspace fits
// `cap` bytes; -1 when none does. This is the default choice (cuDNN's heuristics, as PyTorch
// without cudnn.benchmark): no timing, no synchronisation.
template <class Perf, class Usable>
int first_fitting(const Perf* cands, int n, size_t cap, Usable usable) {
  for (int i = 0; i < n; ++i)
    if (usable(cands[i]) && cands[i].memory <= cap) return i;
  return -1;
}

// The largest power of two, up to 256, dividing every address: part of the algorithm cache's key,
// since some algorithms need aligned buffers (a choice made for one alignment may not run on another).
inline int common_alignment(std::initializer_list<const void*> ptrs) {
  uintptr_t bits = 256;
  for (const void* q : ptrs) bits |= reinterpret_cast<uintptr_t>(q);
  return static_cast<int>(bits & (~bits + 1));
}

}  // namespace sx::kernels::conv_algo
