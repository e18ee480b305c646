// Synchronised batch norm (batchnorm.h: sync_batch_norm, convert_sync_batchnorm), PyTorch's
// SyncBatchNorm for data-parallel training: the statistics of the batch of all ranks together.
//
// Forward, per channel c, with the kernels' reductions (kernels/batchnorm: channel_affine_backward
// sums g and g * x, channel_affine_forward is y = x * a + b):
//   each rank: n_r (values per channel), s_r = sum x, m2_r = sum (x - s_r / n_r)^2 (about its own
//   mean: no cancellation); one all_gather of [s | m2 | n] (float64) and Chan's combination
//     N = sum n_r, mean = sum s_r / N, M2 = sum (m2_r + n_r (s_r / n_r - mean)^2), var = M2 / N,
//   then y = (x - mean) * invstd * weight + bias (x - mean kept for backward) and the running
//   statistics (var * N / (N - 1)).
// Backward, xc = x - mean, g = dL_r/dy on each rank:
//   local sums sg = sum g, sgx = sum g * xc; one all-reduce (sum) of [sg | sgx] gives SG, SGX;
//   dx = weight * invstd * (g - SG / N - xc * invstd^2 * SGX / N)   (the global-batch formula),
//   dweight = invstd * sgx, dbias = sg (this rank's share: the gradient buckets sum them).
// dx is then the derivative of the ranks' summed losses (each rank's loss depends on the others'
// inputs through mean and var); averaged buckets make it the mean loss's, as for any other layer.
//
// Ordering: these collectives run inside forward and backward, while the gradient buckets'
// all-reduces (launched from hooks during backward, tensor/dist/bucketer.h) are in flight on the
// training group. MPI and NCCL match collectives per communicator in issue order, and the order of
// bucket launches relative to these layers' backward need not be the same on every rank (a bucket
// waits for its last gradient, which may come from a node visited at a different point). So the
// layers use a duplicate of the group (ProcessGroup::dup, made by convert_sync_batchnorm): on it
// every rank issues the same sequence (each layer's forward gather, then the backward all-reduces in
// the graph's reverse order, which every rank walks alike), and waiting on it never waits for a
// bucket: the buckets are only waited for after backward (Bucketer::finish). No cycle, no deadlock.
#include <cmath>
#include <vector>

#include "kernels/batchnorm/batchnorm.h"
#include "layers/batchnorm.h"
#include "tensor/autograd.h"
#include "tensor/ops.h"

namespace sx::nn {
namespace {

// The combined statistics of all ranks, per channel.
struct GlobalStats {
  double count = 0;
  std::vector<double> mean, var;  // var: biased (M2 / count)
};

GlobalStats gather_stats(const Tensor& x, dist::ProcessGroup& group) {
  const kernels::BnGeometry geo = kernels::bn_geometry(x);
  const int64_t C = geo.C;
  const double n = static_cast<double>(geo.N * geo.S);
  const Tensor ones = Tensor::ones({C}, x.dtype(), x.device());
  const Tensor sum = kernels::channel_affine_backward(x, x, ones, false, false, true).grad_shift;
  const std::vector<double> s = sum.to_vector();
  std::vector<double> neg_local_mean(static_cast<size_t>(C), 0.0);
  if (n > 0)
    for (int64_t c = 0; c < C; ++c) neg_local_mean[c] = -s[c] / n;
  const Tensor centred =
      kernels::channel_affine_forward(x, ones, Tensor::from_vector(neg_local_mean, {C}, x.dtype(), x.device()));
  const std::vector<double> m2 =
      kernels::channel_affine_backward(centred, centred, ones, false, true, false).grad_scale.to_vector();

  std::vector<double> mine(static_cast<size_t>(2 * C + 1));
  for (int64_t c = 0; c < C; ++c) {
    mine[c] = s[c];
    mine[C + c] = m2[c];
  }
  mine[2 * C] = n;
  const Tensor all = group.all_gather(Tensor::from_vector(mine, {2 * C + 1}, DType::Float64, x.device()));
  const std::vector<double> a = all.to_vector();  // [W, 2C + 1]
  const int W = group.size();
  GlobalStats g;
  for (int r = 0; r < W; ++r) g.count += a[r * (2 * C + 1) + 2 * C];
  SX_CHECK(g.count > 0, "SyncBatchNorm: no values in the batch of any rank");
  g.mean.assign(static_cast<size_t>(C), 0.0);
  g.var.assign(static_cast<size_t>(C), 0.0);
  for (int64_t c = 0; c < C; ++c) {
    double total = 0;
    for (int r = 0; r < W; ++r) total += a[r * (2 * C + 1) + c];
    const double mean = total / g.count;
    double m2sum = 0;
    for (int r = 0; r < W; ++r) {
      const double* row = a.data() + r * (2 * C + 1);
      const double nr = row[2 * C];
      if (nr == 0) continue;
      const double d = row[c] / nr - mean;
      m2sum += row[C + c] + nr * d * d;
    }
    g.mean[c] = mean;
    g.var[c] = m2sum / g.count;
  }
  return g;
}

// running = (1 - momentum) * running + momentum * value, in place.
void update_running(Tensor running, const std::vector<double>& value, double momentum) {
  const Tensor v = Tensor::from_vector(value, {static_cast<int64_t>(value.size())}, running.dtype(), running.device());
  running.copy_(add(mul(running, 1.0 - momentum), mul(v, momentum)));
}

}  // namespace

Tensor sync_batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, Tensor running_mean,
                       Tensor running_var, double momentum, double eps, dist::ProcessGroup& group) {
  SX_CHECK(x.dim() >= 2, "sync_batch_norm: input must be [N, C, ...], got ", shape_str(x.shape()));
  const int64_t C = x.size(1);
  const Tensor xd = x.detach().contiguous();
  std::vector<double> invstd(static_cast<size_t>(C)), scale(static_cast<size_t>(C));
  GlobalStats st;
  std::vector<double> w(static_cast<size_t>(C), 1.0), b(static_cast<size_t>(C), 0.0);
  Tensor y, xc;
  {
    NoGradGuard ng;  // the statistics and the running update are not part of the graph
    st = gather_stats(xd, group);
    if (weight.defined()) w = weight.to_vector();
    if (bias.defined()) b = bias.to_vector();
    for (int64_t c = 0; c < C; ++c) {
      invstd[c] = 1.0 / std::sqrt(st.var[c] + eps);
      scale[c] = w[c] * invstd[c];
    }
    if (running_mean.defined() || running_var.defined()) {
      SX_CHECK(st.count > 1, "sync_batch_norm: the running variance needs more than 1 value per channel, got ",
               st.count, " over all ranks");
      std::vector<double> unbiased(st.var);
      for (double& v : unbiased) v *= st.count / (st.count - 1);
      if (running_mean.defined()) update_running(running_mean, st.mean, momentum);
      if (running_var.defined()) update_running(running_var, unbiased, momentum);
    }
    auto dev = [&](const std::vector<double>& v) { return Tensor::from_vector(v, {C}, x.dtype(), x.device()); };
    // (x - mean) first, then * scale + bias: no cancellation in x * scale + (bias - mean * scale)
    // when the mean is large against the spread; backward needs x - mean again, so it is kept.
    std::vector<double> neg_mean(st.mean);
    for (double& m : neg_mean) m = -m;
    xc = kernels::channel_affine_forward(xd, Tensor::ones({C}, x.dtype(), x.device()), dev(neg_mean));
    y = kernels::channel_affine_forward(xc, dev(scale), dev(b));
  }
  const bool nx = x.requires_grad(), nw = weight.defined() && weight.requires_grad(),
             nb = bias.defined() && bias.requires_grad();
  if (!GradMode::is_enabled() || !(nx || nw || nb)) return y;
  dist::ProcessGroup* pg = &group;
  return attach_grad(y, "sync_batch_norm", {x, weight, bias}, [=](const Tensor& g) {
    auto dev = [&](const std::vector<double>& v) { return Tensor::from_vector(v, {C}, xc.dtype(), xc.device()); };
    const Tensor ones = Tensor::ones({C}, xc.dtype(), xc.device());
    const Tensor gc = g.contiguous();
    auto sums = kernels::channel_affine_backward(gc, xc, ones, false, true, true);
    const std::vector<double> sgx = sums.grad_scale.to_vector(), sg = sums.grad_shift.to_vector();
    std::vector<double> both(static_cast<size_t>(2 * C));
    for (int64_t c = 0; c < C; ++c) {
      both[c] = sg[c];
      both[C + c] = sgx[c];
    }
    Tensor total = Tensor::from_vector(both, {2 * C}, DType::Float64, xc.device());
    pg->all_reduce(total, dist::ReduceOp::Sum);
    const std::vector<double> t = total.to_vector();
    Tensor gx, gw, gb;
    if (nx) {
      // dx = g * a + xc * k + c0 per channel
      std::vector<double> a(static_cast<size_t>(C)), k(static_cast<size_t>(C)), c0(static_cast<size_t>(C));
      for (int64_t c = 0; c < C; ++c) {
        a[c] = w[c] * invstd[c];
        k[c] = -a[c] * invstd[c] * invstd[c] * t[C + c] / st.count;
        c0[c] = -a[c] * t[c] / st.count;
      }
      gx = add(kernels::channel_affine_forward(gc, dev(a), dev(c0)),
               kernels::channel_affine_forward(xc, dev(k), Tensor::zeros({C}, xc.dtype(), xc.device())));
    }
    if (nw) {
      std::vector<double> dw(static_cast<size_t>(C));
      for (int64_t c = 0; c < C; ++c) dw[c] = invstd[c] * sgx[c];
      gw = Tensor::from_vector(dw, {C}, weight.dtype(), weight.device());
    }
    if (nb) gb = Tensor::from_vector(sg, {C}, bias.dtype(), bias.device());
    return std::vector<Tensor>{gx, gw, gb};
  });
}

int convert_sync_batchnorm(Module& model, dist::ProcessGroup& group) {
  std::vector<BatchNorm2d*> layers;
  for (const auto& [name, m] : model.named_modules())
    if (auto* bn = dynamic_cast<BatchNorm2d*>(m)) layers.push_back(bn);
  if (group.size() == 1 || layers.empty()) return static_cast<int>(layers.size());
  std::shared_ptr<dist::ProcessGroup> own = group.dup();
  for (BatchNorm2d* bn : layers) bn->set_sync_group(own);
  return static_cast<int>(layers.size());
}

}  // namespace sx::nn
