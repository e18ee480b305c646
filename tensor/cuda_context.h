// CUDA plumbing shared by every layer: checked calls, the current stream, library handles.
//
// One stream per device (created once, non-blocking); every kernel, cuBLAS and cuDNN call on that
// device is issued on it, so work on a device is ordered without host synchronisation. The cuBLAS
// and cuDNN handles are created once per device and bound to that stream.
//
// Include this header only from .cu files or from .cpp files compiled when SX_WITH_CUDA is set.
#pragma once
#ifdef SX_WITH_CUDA
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cstdint>

#include "tensor/errors.h"

namespace sx::cuda {

[[noreturn]] void throw_cuda_error(const char* what, const char* call, const char* detail,
                                   const char* file, int line);

cudaStream_t current_stream(int device);
// The device's stream if something has used the device already, else nullptr (creates nothing).
cudaStream_t stream_if_created(int device);
cublasHandle_t cublas_handle(int device);
cudnnHandle_t cudnn_handle(int device);
// Make `device` the current CUDA device of the calling thread (cheap when already current).
void set_device(int device);
// TF32 for float32 matmuls/convolutions: off unless asked for.
void set_allow_tf32(bool allow);
bool allow_tf32();
// cuDNN convolution algorithms: false (the default) takes cuDNN's heuristic choice per shape, as
// PyTorch does without cudnn.benchmark; true times the candidates once per new shape
// (cudnnFind*AlgorithmEx: seconds per shape, worth it only when shapes repeat).
void set_cudnn_benchmark(bool on);
bool cudnn_benchmark();
// Blocks until all work on the device's stream is done (explicit; nothing calls it behind
// the user's back).
void synchronize(int device);

// Grid size for n elements with `threads` per block, capped for grid-stride loops.
inline unsigned int blocks_for(int64_t n, int threads = 256) {
  int64_t b = (n + threads - 1) / threads;
  if (b < 1) b = 1;
  if (b > 65535LL * 32) b = 65535LL * 32;
  return static_cast<unsigned int>(b);
}

}  // namespace sx::cuda

// Checked calls: stringify the call, add file:line, throw sx::CudaError.
#define SX_CUDA_CHECK(call)                                                                   \
  do {                                                                                        \
    cudaError_t sx_err_ = (call);                                                             \
    if (sx_err_ != cudaSuccess)                                                               \
      ::sx::cuda::throw_cuda_error("CUDA", #call, cudaGetErrorString(sx_err_), __FILE__,      \
                                   __LINE__);                                                 \
  } while (0)
#define SX_CUBLAS_CHECK(call)                                                                 \
  do {                                                                                        \
    cublasStatus_t sx_st_ = (call);                                                           \
    if (sx_st_ != CUBLAS_STATUS_SUCCESS)                                                      \
      ::sx::cuda::throw_cuda_error("cuBLAS", #call, cublasGetStatusString(sx_st_), __FILE__,  \
                                   __LINE__);                                                 \
  } while (0)
#define SX_CUDNN_CHECK(call)                                                                  \
  do {                                                                                        \
    cudnnStatus_t sx_st_ = (call);                                                            \
    if (sx_st_ != CUDNN_STATUS_SUCCESS)                                                       \
      ::sx::cuda::throw_cuda_error("cuDNN", #call, cudnnGetErrorString(sx_st_), __FILE__,     \
                                   __LINE__);                                                 \
  } while (0)
// After every kernel launch: catches bad launch configurations at the launch site.
#define SX_CUDA_CHECK_LAUNCH() SX_CUDA_CHECK(cudaGetLastError())

#endif  // SX_WITH_CUDA
