// Device parameterisation for tests: one test body over {CPU, CUDA}. CUDA cases skip, with the
// reason, where the binary has no CUDA backend or the machine has no GPU: they show as SKIPPED,
// never as passed.
#pragma once
#include <gtest/gtest.h>

#include <string>

#include "tensor/device.h"

namespace sx::test {

inline std::string device_name(const ::testing::TestParamInfo<Device>& info) {
  return info.param.is_cpu() ? "CPU" : "CUDA";
}

}  // namespace sx::test

#define SX_SKIP_IF_NO_DEVICE(dev)                                                      \
  do {                                                                                 \
    if ((dev).is_cuda()) {                                                             \
      if (!::sx::cuda_built()) GTEST_SKIP() << "built without CUDA";                   \
      if (!::sx::cuda_available()) GTEST_SKIP() << "no CUDA GPU on this machine";     \
    }                                                                                  \
  } while (0)

// Parity tests (CUDA vs CPU) need a GPU.
#define SX_REQUIRE_CUDA()                                                              \
  do {                                                                                 \
    if (!::sx::cuda_built()) GTEST_SKIP() << "built without CUDA";                     \
    if (!::sx::cuda_available()) GTEST_SKIP() << "no CUDA GPU on this machine";       \
  } while (0)

#define SX_DEVICES ::testing::Values(::sx::Device::cpu(), ::sx::Device::cuda(0))
// For tests that compare a device with the CPU (parity): on the CPU they would compare the CPU
// with itself and pass without checking anything, so they are instantiated for CUDA only (and
// show as SKIPPED where there is no GPU).
#define SX_PARITY_DEVICES ::testing::Values(::sx::Device::cuda(0))
