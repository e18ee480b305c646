// Element conversion used by copies and casts, on both CPU and CUDA.
#pragma once
#include "tensor/host_device.h"

namespace sx {

template <class To, class From>
HOST_DEVICE To cast_value(From v) {
  return static_cast<To>(v);
}
template <>
HOST_DEVICE bool cast_value<bool, float>(float v) { return v != 0.0f; }
template <>
HOST_DEVICE bool cast_value<bool, double>(double v) { return v != 0.0; }

}  // namespace sx
