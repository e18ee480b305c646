// CUDA anchor grid: one thread per anchor over anchors_math.h. The few base anchors travel as a
// kernel argument (no host->device copy).
#include "kernels/anchors/anchors.h"
#include "kernels/anchors/anchors_math.h"
#include "tensor/cuda_context.h"

namespace sx::kernels::cuda {
namespace {

constexpr int kMaxBase = 64;
struct BaseAnchors {
  float v[4 * kMaxBase];
};

__global__ void grid_kernel(BaseAnchors base, int64_t A, int64_t n, int64_t grid_w, int64_t sh,
                            int64_t sw, float* out) {
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
       i += (int64_t)gridDim.x * blockDim.x)
    anchormath::anchor(i, base.v, A, grid_w, sh, sw, out + 4 * i);
}

}  // namespace

Tensor grid_anchors(const Tensor& base, int64_t grid_h, int64_t grid_w, int64_t stride_h, int64_t stride_w,
                    Device device) {
  const int64_t A = base.size(0), n = grid_h * grid_w * A;
  SX_CHECK(A <= kMaxBase, "grid_anchors: at most ", kMaxBase, " anchors per location on CUDA, got ", A);
  Tensor out = Tensor::empty({n, 4}, DType::Float32, device);
  if (n == 0) return out;
  BaseAnchors b{};
  const float* bp = base.data<float>();
  for (int64_t i = 0; i < 4 * A; ++i) b.v[i] = bp[i];
  sx::cuda::set_device(device.index);
  grid_kernel<<<sx::cuda::blocks_for(n), 256, 0, sx::cuda::current_stream(device.index)>>>(
      b, A, n, grid_w, stride_h, stride_w, out.data<float>());
  SX_CUDA_CHECK_LAUNCH();
  return out;
}

}  // namespace sx::kernels::cuda

namespace sx::kernels {
const AnchorsBackend AnchorsBackend::cuda = {cuda::grid_anchors};
}  // namespace sx::kernels
