// Batch normalisation on the CPU. x is viewed as [N, C, S] (S = product of the spatial dims);
// every channel is independent, so OpenMP splits the channels; within a channel the loops run
// over N contiguous runs of S values. The statistics take one pass of double sums of the values
// shifted by the channel's first value (bn_math::shifted_moments explains why that is accurate).
#include <vector>

#include "kernels/batchnorm/batchnorm.h"
#include "kernels/batchnorm/batchnorm_math.h"

namespace sx::kernels::cpu {

namespace {

using Geo = BnGeometry;
Geo geo(const Tensor& x) { return bn_geometry(x); }

// The channel sums below run over long runs of contiguous values. Written as one running double
// sum they would be a chain of dependent additions, each waiting for the previous one (about four
// cycles each): kLanes independent partial sums, added together at the end, let the additions
// overlap and the compiler put them in vector registers. The order of the additions is fixed (lane
// l takes the values l, l + kLanes, ...), so results stay deterministic.
constexpr int kLanes = 8;

// s1 += sum (v - K), s2 += sum (v - K)^2 over p[0, n)   (bn_math::accumulate_shifted per value)
template <class T>
void shifted_sums(const T* p, int64_t n, double K, double& s1, double& s2) {
  double a1[kLanes] = {}, a2[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) bn_math::accumulate_shifted(p[i + l], K, a1[l], a2[l]);
  for (; i < n; ++i) bn_math::accumulate_shifted(p[i], K, s1, s2);
  for (int l = 0; l < kLanes; ++l) {
    s1 += a1[l];
    s2 += a2[l];
  }
}

// sg += sum g, sgx += sum g * (x - center) over [0, n)
template <class T>
void grad_sums(const T* gp, const T* xp, int64_t n, T center, double& sg, double& sgx) {
  double a[kLanes] = {}, b[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int l = 0; l < kLanes; ++l) {
      a[l] += gp[i + l];
      b[l] += static_cast<double>(gp[i + l]) * (xp[i + l] - center);
    }
  for (; i < n; ++i) {
    sg += gp[i];
    sgx += static_cast<double>(gp[i]) * (xp[i] - center);
  }
  for (int l = 0; l < kLanes; ++l) {
    sg += a[l];
    sgx += b[l];
  }
}

template <class T>
void train_forward(const T* x, const T* w, const T* b, T* rm, T* rv, T* y, T* smean, T* sinv, Geo g,
                   double momentum, double eps) {
  const long long M = g.N * g.S;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < g.C; ++c) {
    // One pass of shifted sums (bn_math::shifted_moments), as the CUDA kernel does.
    const double K = x[c * g.S];
    double s1 = 0, s2 = 0;
    for (int64_t n = 0; n < g.N; ++n) shifted_sums(x + (n * g.C + c) * g.S, g.S, K, s1, s2);
    const auto st = bn_math::channel_stats(K, s1, s2, M, w ? w[c] : T(1), b ? b[c] : T(0), eps);
    for (int64_t n = 0; n < g.N; ++n) {
      const T* p = x + (n * g.C + c) * g.S;
      T* q = y + (n * g.C + c) * g.S;
      for (int64_t i = 0; i < g.S; ++i) q[i] = bn_math::affine(p[i], st.scale, st.shift);
    }
    smean[c] = st.mean;
    sinv[c] = st.invstd;
    bn_math::update_running(rm ? rm + c : nullptr, rv ? rv + c : nullptr, st, M, momentum);
  }
}

// Channel c's double sums of g and g * (x - center) (center: the saved mean for BN, 0 for the
// affine map, where x - 0 is exact).
template <class T>
void channel_grad_sums(const T* dy, const T* x, T center, Geo g, int64_t c, double& sg, double& sgx) {
  sg = 0;
  sgx = 0;
  for (int64_t n = 0; n < g.N; ++n) grad_sums(dy + (n * g.C + c) * g.S, x + (n * g.C + c) * g.S, g.S, center, sg, sgx);
}

template <class T>
void train_backward(const T* dy, const T* x, const T* w, const T* smean, const T* sinv, T* dx, T* dw, T* db,
                    Geo g) {
  const long long M = g.N * g.S;
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < g.C; ++c) {
    const T m = smean[c], inv = sinv[c];
    double sg, sgx;
    channel_grad_sums(dy, x, m, g, c, sg, sgx);
    const T sum_g = static_cast<T>(sg), sum_gxhat = static_cast<T>(sgx * inv);
    const T wc = w ? w[c] : T(1);
    for (int64_t n = 0; n < g.N; ++n) {
      const T* gp = dy + (n * g.C + c) * g.S;
      const T* xp = x + (n * g.C + c) * g.S;
      T* o = dx + (n * g.C + c) * g.S;
      for (int64_t i = 0; i < g.S; ++i)
        o[i] = bn_math::train_grad_input(gp[i], xp[i], m, inv, wc, sum_g, sum_gxhat, M);
    }
    if (dw) dw[c] = sum_gxhat;
    if (db) db[c] = sum_g;
  }
}

template <class T>
void affine_forward(const T* x, const T* scale, const T* shift, T* y, Geo g) {
#pragma omp parallel for schedule(static)
  for (int64_t nc = 0; nc < g.N * g.C; ++nc) {
    const int64_t c = nc % g.C;
    const T a = scale[c], b = shift[c];
    const T* p = x + nc * g.S;
    T* q = y + nc * g.S;
    for (int64_t i = 0; i < g.S; ++i) q[i] = bn_math::affine(p[i], a, b);
  }
}

template <class T>
void affine_backward(const T* dy, const T* x, const T* scale, T* dx, T* dscale, T* dshift, Geo g) {
  if (dx) {
#pragma omp parallel for schedule(static)
    for (int64_t nc = 0; nc < g.N * g.C; ++nc) {
      const T a = scale[nc % g.C];
      const T* gp = dy + nc * g.S;
      T* o = dx + nc * g.S;
      for (int64_t i = 0; i < g.S; ++i) o[i] = gp[i] * a;
    }
  }
  if (dscale || dshift) {
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < g.C; ++c) {
      double sg, sgx;
      channel_grad_sums(dy, x, T(0), g, c, sg, sgx);
      if (dscale) dscale[c] = static_cast<T>(sgx);
      if (dshift) dshift[c] = static_cast<T>(sg);
    }
  }
}

template <class T>
const T* ptr_or_null(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

}  // namespace

BatchNormTrainResult batch_norm_train_forward(const Tensor& x_, const Tensor& weight, const Tensor& bias,
                                              Tensor running_mean, Tensor running_var, double momentum,
                                              double eps) {
  Tensor x = x_.contiguous();
  Geo g = geo(x);
  Tensor w = weight.defined() ? weight.contiguous() : weight;
  Tensor b = bias.defined() ? bias.contiguous() : bias;
  // Running statistics are updated in place: work on contiguous copies and copy back if needed.
  Tensor rm = running_mean.defined() ? running_mean.contiguous() : running_mean;
  Tensor rv = running_var.defined() ? running_var.contiguous() : running_var;
  BatchNormTrainResult r;
  r.y = Tensor::empty(x.shape(), x.dtype(), x.device());
  r.save_mean = Tensor::empty({g.C}, x.dtype(), x.device());
  r.save_invstd = Tensor::empty({g.C}, x.dtype(), x.device());
  SX_DISPATCH_FLOAT(x.dtype(), "batch_norm", [&] {
    train_forward<scalar_t>(x.data<scalar_t>(), ptr_or_null<scalar_t>(w), ptr_or_null<scalar_t>(b),
                            rm.defined() ? rm.data<scalar_t>() : nullptr, rv.defined() ? rv.data<scalar_t>() : nullptr,
                            r.y.data<scalar_t>(), r.save_mean.data<scalar_t>(), r.save_invstd.data<scalar_t>(), g,
                            momentum, eps);
  });
  if (rm.defined() && !rm.same_storage(running_mean)) running_mean.copy_(rm);
  if (rv.defined() && !rv.same_storage(running_var)) running_var.copy_(rv);
  return r;
}

BatchNormBackwardResult batch_norm_train_backward(const Tensor& grad_out, const Tensor& x_, const Tensor& weight,
                                                  const Tensor& save_mean, const Tensor& save_invstd) {
  Tensor x = x_.contiguous(), dy = grad_out.contiguous();
  Tensor sm = save_mean.contiguous(), si = save_invstd.contiguous();
  Tensor w = weight.defined() ? weight.contiguous() : weight;
  Geo g = geo(x);
  BatchNormBackwardResult r;
  r.grad_input = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (w.defined()) {
    r.grad_weight = Tensor::empty({g.C}, x.dtype(), x.device());
    r.grad_bias = Tensor::empty({g.C}, x.dtype(), x.device());
  }
  SX_DISPATCH_FLOAT(x.dtype(), "batch_norm_backward", [&] {
    train_backward<scalar_t>(dy.data<scalar_t>(), x.data<scalar_t>(), ptr_or_null<scalar_t>(w),
                             sm.data<scalar_t>(), si.data<scalar_t>(), r.grad_input.data<scalar_t>(),
                             w.defined() ? r.grad_weight.data<scalar_t>() : nullptr,
                             w.defined() ? r.grad_bias.data<scalar_t>() : nullptr, g);
  });
  return r;
}

Tensor channel_affine_forward(const Tensor& x_, const Tensor& scale, const Tensor& shift) {
  Tensor x = x_.contiguous(), a = scale.contiguous(), b = shift.contiguous();
  Tensor y = Tensor::empty(x.shape(), x.dtype(), x.device());
  SX_DISPATCH_FLOAT(x.dtype(), "channel_affine", [&] {
    affine_forward<scalar_t>(x.data<scalar_t>(), a.data<scalar_t>(), b.data<scalar_t>(), y.data<scalar_t>(), geo(x));
  });
  return y;
}

ChannelAffineBackwardResult channel_affine_backward(const Tensor& grad_out, const Tensor& x_, const Tensor& scale,
                                                    bool need_input, bool need_scale, bool need_shift) {
  Tensor x = x_.contiguous(), dy = grad_out.contiguous(), a = scale.contiguous();
  Geo g = geo(x);
  ChannelAffineBackwardResult r;
  if (need_input) r.grad_input = Tensor::empty(x.shape(), x.dtype(), x.device());
  if (need_scale) r.grad_scale = Tensor::empty({g.C}, x.dtype(), x.device());
  if (need_shift) r.grad_shift = Tensor::empty({g.C}, x.dtype(), x.device());
  SX_DISPATCH_FLOAT(x.dtype(), "channel_affine_backward", [&] {
    affine_backward<scalar_t>(dy.data<scalar_t>(), x.data<scalar_t>(), a.data<scalar_t>(),
                              need_input ? r.grad_input.data<scalar_t>() : nullptr,
                              need_scale ? r.grad_scale.data<scalar_t>() : nullptr,
                              need_shift ? r.grad_shift.data<scalar_t>() : nullptr, g);
  });
  return r;
}

}  // namespace sx::kernels::cpu

namespace sx::kernels {
const BatchNormBackend BatchNormBackend::cpu = {
    cpu::batch_norm_train_forward,
    cpu::batch_norm_train_backward,
    cpu::channel_affine_forward,
    cpu::channel_affine_backward};
}  // namespace sx::kernels
