#include "tensor/device.h"

#include <cstdlib>

#include "tensor/errors.h"
#ifdef SX_WITH_CUDA
#include <cuda_runtime.h>

#include "tensor/cuda_context.h"
#endif

namespace sx {

Device Device::parse(const std::string& s) {
  if (s == "cpu") return cpu();
  if (s == "cuda") return cuda(0);
  if (s.rfind("cuda:", 0) == 0 && s.size() > 5) {
    char* end = nullptr;
    long v = std::strtol(s.c_str() + 5, &end, 10);
    if (*end == '\0' && v >= 0 && v < 1024) return cuda(static_cast<int>(v));
  }
  SX_THROW(ValueError, "invalid device '", s, "' (expected cpu, cuda or cuda:N)");
}

std::string Device::str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }

bool cuda_built() {
#ifdef SX_WITH_CUDA
  return true;
#else
  return false;
#endif
}

int cuda_device_count() {
#ifdef SX_WITH_CUDA
  static int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      cudaGetLastError();  // clear the sticky "no device" error
      return 0;
    }
    return n;
  }();
  return count;
#else
  return 0;
#endif
}

bool cuda_available() { return cuda_device_count() > 0; }

void synchronize_device(Device device) {
#ifdef SX_WITH_CUDA
  if (device.is_cuda()) cuda::synchronize(device.index);
#else
  (void)device;  // a CPU-only build has no queued device work
#endif
}

}  // namespace sx
