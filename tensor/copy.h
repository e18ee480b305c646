// Internal: the strided copy/cast/fill primitives behind Tensor::copy_, to(), contiguous(), fill_.
#pragma once
#include "tensor/tensor.h"

namespace sx::detail {

// The backend functions (tensor/dispatch.h): copy.cpp defines the CPU table, copy_cuda.cu the CUDA
// one. Tensor::copy_ picks the CUDA table when either tensor is on a CUDA device.
struct CopyBackend {
  // src broadcastable to dst's shape; any dtypes (cast like static_cast, to bool as != 0).
  // CPU: both on the CPU. CUDA: on one device, across devices, host to device or device to host.
  void (*copy)(const Tensor& dst, const Tensor& src);
  void (*fill)(const Tensor& dst, double value);
  static const CopyBackend cpu, cuda;
};

}  // namespace sx::detail
