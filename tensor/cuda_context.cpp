// Streams and library handles, one set per device, created on first use (see cuda_context.h).
#ifdef SX_WITH_CUDA
#include "tensor/cuda_context.h"
#include "tensor/sync_stats.h"

#include <atomic>
#include <mutex>
#include <string>

#include "tensor/device.h"

namespace sx::cuda {

void throw_cuda_error(const char* what, const char* call, const char* detail, const char* file, int line) {
  throw CudaError(std::string(what) + " error: " + call + " failed: " + (detail ? detail : "?") + " (" +
                  file + ":" + std::to_string(line) + ")");
}

namespace {
constexpr int kMaxDevices = 64;
struct DeviceContext {
  std::once_flag once;
  cudaStream_t stream = nullptr;
  cublasHandle_t cublas = nullptr;
  std::once_flag cudnn_once;
  cudnnHandle_t cudnn = nullptr;
  std::atomic<bool> ready{false};  // stream and cuBLAS handle created
};
DeviceContext* contexts() {
  static DeviceContext* all = new DeviceContext[kMaxDevices];  // never destroyed
  return all;
}
DeviceContext& ctx(int device) {
  DeviceContext* all = contexts();
  if (device < 0 || device >= kMaxDevices || device >= cuda_device_count())
    throw ValueError("CUDA device cuda:" + std::to_string(device) + " is not available (" +
                     std::to_string(cuda_device_count()) + " device(s) found)");
  DeviceContext& c = all[device];
  std::call_once(c.once, [&] {
    set_device(device);
    SX_CUDA_CHECK(cudaStreamCreateWithFlags(&c.stream, cudaStreamNonBlocking));
    SX_CUBLAS_CHECK(cublasCreate(&c.cublas));
    SX_CUBLAS_CHECK(cublasSetStream(c.cublas, c.stream));
    c.ready = true;
  });
  return c;
}
std::atomic<bool> g_allow_tf32{false};
std::atomic<bool> g_cudnn_benchmark{false};
}  // namespace

void set_device(int device) {
  int cur = -1;
  SX_CUDA_CHECK(cudaGetDevice(&cur));
  if (cur != device) SX_CUDA_CHECK(cudaSetDevice(device));
}

cudaStream_t current_stream(int device) { return ctx(device).stream; }

cudaStream_t stream_if_created(int device) {
  if (device < 0 || device >= kMaxDevices) return nullptr;
  DeviceContext& c = contexts()[device];
  return c.ready ? c.stream : nullptr;
}

cublasHandle_t cublas_handle(int device) {
  DeviceContext& c = ctx(device);
  set_device(device);
  return c.cublas;
}

cudnnHandle_t cudnn_handle(int device) {
  DeviceContext& c = ctx(device);
  std::call_once(c.cudnn_once, [&] {
    set_device(device);
    SX_CUDNN_CHECK(cudnnCreate(&c.cudnn));
    SX_CUDNN_CHECK(cudnnSetStream(c.cudnn, c.stream));
  });
  set_device(device);
  return c.cudnn;
}

void set_allow_tf32(bool allow) { g_allow_tf32 = allow; }
bool allow_tf32() { return g_allow_tf32; }
void set_cudnn_benchmark(bool on) { g_cudnn_benchmark = on; }
bool cudnn_benchmark() { return g_cudnn_benchmark; }

void synchronize(int device) {
  sx::detail::count_stream_sync();
  set_device(device);
  SX_CUDA_CHECK(cudaStreamSynchronize(current_stream(device)));
}

}  // namespace sx::cuda
#endif  // SX_WITH_CUDA
