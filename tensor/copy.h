// Internal: the strided copy/cast/fill primitives behind Tensor::copy_, to(), contiguous(), fill_.
#pragma once
#include "tensor/tensor.h"

namespace sx::detail {

// dst and src on the CPU; src broadcastable to dst's shape; any dtypes (cast like static_cast,
// to bool as != 0).
void copy_cpu(const Tensor& dst, const Tensor& src);
void fill_cpu(const Tensor& dst, double value);
#ifdef SX_WITH_CUDA
// dst and src on the same CUDA device.
void copy_cuda(const Tensor& dst, const Tensor& src);
void fill_cuda(const Tensor& dst, double value);
#endif

}  // namespace sx::detail
