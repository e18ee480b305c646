// Devices: the CPU and CUDA:N. Copies between devices are always explicit (Tensor::to).
#pragma once
#include <cstdint>
#include <string>

namespace sx {

enum class DeviceType : uint8_t { CPU, CUDA };

struct Device {
  DeviceType type = DeviceType::CPU;
  int index = 0;

  static Device cpu() { return {DeviceType::CPU, 0}; }
  static Device cuda(int i = 0) { return {DeviceType::CUDA, i}; }
  // "cpu", "cuda", "cuda:1"; throws ValueError otherwise.
  static Device parse(const std::string& s);

  bool is_cpu() const { return type == DeviceType::CPU; }
  bool is_cuda() const { return type == DeviceType::CUDA; }
  std::string str() const;
  bool operator==(const Device& o) const { return type == o.type && (is_cpu() || index == o.index); }
  bool operator!=(const Device& o) const { return !(*this == o); }
};

// True when this binary was built with the CUDA backend.
bool cuda_built();
// True when built with CUDA and at least one GPU is usable (never throws).
bool cuda_available();
int cuda_device_count();
// Waits until the work queued on `device` (its CUDA stream) has finished; nothing on the CPU.
void synchronize_device(Device device);

}  // namespace sx
