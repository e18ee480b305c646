// CPU GIoU loss over giou_loss_math.h: one loop over the pairs per direction (OpenMP for large N;
// each pair is independent, so the result does not depend on the number of threads).
#include "kernels/box_ops/giou_loss.h"
#include "kernels/box_ops/giou_loss_math.h"

namespace sx::kernels::cpu {
namespace {
constexpr int64_t kParallelMin = 16384;  // pairs below which one thread does it all

template <class T>
void forward_loop(const T* a, const T* b, T eps, T* out, int64_t n) {
#pragma omp parallel for if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) out[i] = gioumath::loss(a + 4 * i, b + 4 * i, eps);
}

template <class T>
void backward_loop(const T* g, const T* a, const T* b, T eps, T* ga, T* gb, int64_t n) {
#pragma omp parallel for if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) gioumath::grad(a + 4 * i, b + 4 * i, eps, g[i], ga + 4 * i, gb + 4 * i);
}

}  // namespace

Tensor giou_loss_forward(const Tensor& a, const Tensor& b, double eps) {
  const int64_t n = a.size(0);
  Tensor out = Tensor::empty({n}, a.dtype());
  if (n == 0) return out;
  SX_DISPATCH_FLOAT(a.dtype(), "giou_loss", [&] {
    forward_loop(a.data<scalar_t>(), b.data<scalar_t>(), static_cast<scalar_t>(eps), out.data<scalar_t>(), n);
  });
  return out;
}

std::pair<Tensor, Tensor> giou_loss_backward(const Tensor& g, const Tensor& a, const Tensor& b, double eps) {
  const int64_t n = a.size(0);
  Tensor ga = Tensor::empty({n, 4}, a.dtype()), gb = Tensor::empty({n, 4}, a.dtype());
  if (n == 0) return {ga, gb};
  SX_DISPATCH_FLOAT(a.dtype(), "giou_loss_backward", [&] {
    backward_loop(g.data<scalar_t>(), a.data<scalar_t>(), b.data<scalar_t>(), static_cast<scalar_t>(eps),
                  ga.data<scalar_t>(), gb.data<scalar_t>(), n);
  });
  return {ga, gb};
}

}  // namespace sx::kernels::cpu

namespace sx::kernels {
const GiouLossBackend GiouLossBackend::cpu = {cpu::giou_loss_forward, cpu::giou_loss_backward};
}  // namespace sx::kernels
