// Optimizer updates on the CPU: a flat loop over the elements of one parameter tensor applying the
// per-element rule of optim_math.h (the arithmetic the CUDA kernels run), split across OpenMP
// threads for large tensors (every element is independent, so the split cannot change a result).
#include "kernels/optim/optim.h"
#include "kernels/optim/optim_math.h"
#include "tensor/dtype.h"

namespace sx::kernels::cpu {
namespace {
using namespace optim_math;

// The loops live outside SX_DISPATCH_FLOAT: a #pragma cannot appear inside a macro argument.
template <class T>
void sgd_loop(T* p, const T* g, T* buf, int64_t n, const SgdScalars<T>& s) {
#pragma omp parallel for if (n > (1 << 16)) schedule(static)
  for (int64_t i = 0; i < n; ++i) sgd_update<T>(p[i], g[i], buf ? buf + i : nullptr, s);
}
template <class T>
void adamw_loop(T* p, const T* g, T* m, T* v, int64_t n, const AdamWScalars<T>& s) {
#pragma omp parallel for if (n > (1 << 16)) schedule(static)
  for (int64_t i = 0; i < n; ++i) adamw_update<T>(p[i], g[i], m[i], v[i], s);
}
}  // namespace

void sgd_step(const Tensor& p, const Tensor& g, const Tensor& buf, const SgdStepArgs& a) {
  SX_DISPATCH_FLOAT(p.dtype(), "sgd", [&] {
    using T = scalar_t;
    sgd_loop<T>(p.data<T>(), g.data<T>(), a.momentum != 0.0 ? buf.data<T>() : nullptr, p.numel(),
                sgd_scalars<T>(a));
  });
}

void adamw_step(const Tensor& p, const Tensor& g, const Tensor& m, const Tensor& v, const AdamWStepArgs& a) {
  SX_DISPATCH_FLOAT(p.dtype(), "adamw", [&] {
    using T = scalar_t;
    adamw_loop<T>(p.data<T>(), g.data<T>(), m.data<T>(), v.data<T>(), p.numel(), adamw_scalars<T>(a));
  });
}

}  // namespace sx::kernels::cpu

namespace sx::kernels {
const OptimBackend OptimBackend::cpu = {cpu::sgd_step, cpu::adamw_step};
}  // namespace sx::kernels
