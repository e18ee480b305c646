// Per-element and per-channel math of batch normalisation, shared by the CPU loops and the CUDA
// kernels (see batchnorm.h for the formulas).
#pragma once
#include <cmath>

#include "tensor/host_device.h"

namespace sx::kernels::bn_math {

// Mean and biased variance of M values from one pass of shifted sums, d = x - K:
//   s1 = sum d, s2 = sum d^2,  mean = K + s1/M,  var = s2/M - (s1/M)^2  (clamped at 0).
// Shifting by a value of the data itself (K = the channel's first element) keeps s1/M small, so
// the subtraction does not cancel catastrophically the way E[x^2] - E[x]^2 can; with double sums
// of float data the result matches the two-pass formula to float precision.
HOST_DEVICE void shifted_moments(double K, double s1, double s2, long long M, double& mean, double& var) {
  const double m1 = s1 / static_cast<double>(M);
  mean = K + m1;
  var = s2 / static_cast<double>(M) - m1 * m1;
  if (var < 0) var = 0;
}

template <class T>
HOST_DEVICE T invstd(T var, double eps) {
  return static_cast<T>(1.0 / sqrt(static_cast<double>(var) + eps));
}
// How the CUDA per-channel reductions split one channel's M = N*S values (N images, S = H*W
// contiguous values per image plane) over several thread blocks, so that a wide layer (64 channels
// of 8 x 640^2) fills the GPU instead of running 64 blocks. Piece p of a channel covers images
// [n0, n1) and, in each of them, positions [k0, k1):
//   - planes of at least `chunk` values are cut into ceil(S / chunk) pieces each;
//   - smaller planes are grouped, floor(chunk / S) whole planes per piece.
// Each block writes its piece's sums; a second pass adds the pieces of a channel in piece order,
// so the result does not depend on scheduling (deterministic, unlike atomics).
struct BnPiece {
  long long n0, n1, k0, k1;
};
HOST_DEVICE long long bn_num_pieces(long long N, long long S, long long chunk) {
  if (N <= 0 || S <= 0) return 1;
  if (S >= chunk) return N * ((S + chunk - 1) / chunk);
  const long long g = chunk / S;  // >= 1
  return (N + g - 1) / g;
}
HOST_DEVICE BnPiece bn_piece(long long p, long long N, long long S, long long chunk) {
  if (S >= chunk) {
    const long long per = (S + chunk - 1) / chunk;
    const long long n = p / per, q = p - n * per;
    const long long k1 = (q + 1) * chunk < S ? (q + 1) * chunk : S;
    return BnPiece{n, n + 1, q * chunk, k1};
  }
  const long long g = chunk / S;
  const long long n0 = p * g, n1 = n0 + g < N ? n0 + g : N;
  return BnPiece{n0, n1, 0, S};
}

// One value's contribution to the shifted sums of shifted_moments: d = v - K.
template <class T>
HOST_DEVICE void accumulate_shifted(T v, double K, double& s1, double& s2) {
  const double d = static_cast<double>(v) - K;
  s1 += d;
  s2 += d * d;
}
// Exponential moving average with the unbiased batch variance (torch's rule); M values per channel.
template <class T>
HOST_DEVICE T running_update(T running, T batch_value, double momentum) {
  return static_cast<T>((1.0 - momentum) * static_cast<double>(running) + momentum * static_cast<double>(batch_value));
}
template <class T>
HOST_DEVICE T unbiased(T biased_var, long long M) {
  return M > 1 ? static_cast<T>(static_cast<double>(biased_var) * M / (M - 1)) : biased_var;
}
// y = (x - mean) * invstd * w + b, folded into one multiply-add: y = x * scale + shift.
template <class T>
HOST_DEVICE T train_scale(T invstd_c, T w) { return invstd_c * w; }
template <class T>
HOST_DEVICE T train_shift(T mean, T invstd_c, T w, T b) { return b - mean * invstd_c * w; }
template <class T>
HOST_DEVICE T affine(T x, T scale, T shift) { return x * scale + shift; }

// Per-channel statistics of a training-mode forward from the channel's shifted sums (M values):
// saved mean and invstd, the folded scale/shift of the normalisation, and the biased variance.
template <class T>
struct ChannelStats {
  T mean, var, invstd, scale, shift;
};
template <class T>
HOST_DEVICE ChannelStats<T> channel_stats(double K, double s1, double s2, long long M, T w, T b, double eps) {
  double mean, var;
  shifted_moments(K, s1, s2, M, mean, var);
  ChannelStats<T> r;
  r.mean = static_cast<T>(mean);
  r.var = static_cast<T>(var);
  r.invstd = invstd(r.var, eps);
  r.scale = train_scale(r.invstd, w);
  r.shift = train_shift(r.mean, r.invstd, w, b);
  return r;
}
// Running statistics update of one channel (either pointer may be null: not tracked).
template <class T>
HOST_DEVICE void update_running(T* rm, T* rv, const ChannelStats<T>& st, long long M, double momentum) {
  if (rm) *rm = running_update(*rm, st.mean, momentum);
  if (rv) *rv = running_update(*rv, unbiased(st.var, M), momentum);
}
// dx of training-mode BN for one element: g = dL/dy, xhat = (x - mean) * invstd,
// sum_g = sum over the channel of g, sum_gxhat = sum of g * xhat.
template <class T>
HOST_DEVICE T train_grad_input(T g, T x, T mean, T invstd_c, T w, T sum_g, T sum_gxhat, long long M) {
  T xhat = (x - mean) * invstd_c;
  T k = w * invstd_c / static_cast<T>(M);
  return k * (static_cast<T>(M) * g - sum_g - xhat * sum_gxhat);
}

}  // namespace sx::kernels::bn_math
