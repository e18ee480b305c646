// Synchronised BatchNorm in one process (layers/batchnorm.h: sync_batch_norm, convert_sync_batchnorm).
// The 2-rank equivalence with one process holding the whole batch is tests/dist/test_dist_syncbn.cpp;
// here: the sync node's gradients against finite differences (world 1, float64), its agreement with
// batch_norm, and --sync-bn with one rank leaving a network bit for bit as it was.
#include <gtest/gtest.h>

#include <memory>

#include "common/gradcheck.h"
#include "layers/batchnorm.h"
#include "layers/conv.h"
#include "layers/linear.h"
#include "tensor/dist/process_group.h"
#include "tensor/ops.h"
#include "tensor/random.h"

namespace sx {
namespace {

Tensor random_tensor(const Shape& s, uint64_t seed, DType dt, double scale = 1.0, double shift = 0) {
  Generator g(seed);
  Tensor t = Tensor::empty(s, DType::Float64);
  double* p = t.data<double>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = (g.uniform() * 2 - 1) * scale + shift;
  return dt == DType::Float64 ? t : t.to(dt);
}

double max_abs_diff(const Tensor& a, const Tensor& b) { return max(abs(sub(a, b))).item(); }

TEST(SyncBatchNorm, GradcheckWithOneRank) {
  auto one = dist::single_process_group();
  Tensor x = random_tensor({3, 2, 3, 4}, 5, DType::Float64, 1.0, 0.3).set_requires_grad();
  Tensor w = random_tensor({2}, 6, DType::Float64, 0.5, 1.0).set_requires_grad();
  Tensor b = random_tensor({2}, 7, DType::Float64).set_requires_grad();
  SX_EXPECT_GRADCHECK(
      [&](const std::vector<Tensor>& in) {
        return nn::sync_batch_norm(in[0], in[1], in[2], Tensor(), Tensor(), 0.1, 1e-5, *one);
      },
      {x, w, b});
}

TEST(SyncBatchNorm, OneRankAgreesWithBatchNorm) {
  auto one = dist::single_process_group();
  for (DType dt : {DType::Float64, DType::Float32}) {
    // An offset of 1e3: the statistics must not cancel (sums about each rank's own mean).
    Tensor x0 = random_tensor({4, 3, 5, 6}, 1, dt, 2.0, 1e3);
    Tensor w0 = random_tensor({3}, 2, dt, 0.5, 1.0), b0 = random_tensor({3}, 3, dt);
    Tensor g = random_tensor({4, 3, 5, 6}, 4, dt);
    std::vector<Tensor> ys, grads, stats;
    for (bool sync : {false, true}) {
      Tensor x = x0.clone().set_requires_grad(), w = w0.clone().set_requires_grad(), b = b0.clone().set_requires_grad();
      Tensor rm = Tensor::zeros({3}, dt), rv = Tensor::ones({3}, dt);
      Tensor y = sync ? nn::sync_batch_norm(x, w, b, rm, rv, 0.1, 1e-5, *one)
                      : nn::batch_norm(x, w, b, rm, rv, true, 0.1, 1e-5);
      y.backward(g);
      ys.push_back(y.detach());
      for (const Tensor& t : {x.grad(), w.grad(), b.grad()}) grads.push_back(t);
      stats.push_back(rm);
      stats.push_back(rv);
    }
    const double tol = dt == DType::Float64 ? 1e-10 : 2e-4;
    EXPECT_LE(max_abs_diff(ys[0], ys[1]), tol) << dtype_name(dt);
    for (size_t i = 0; i < 3; ++i)
      EXPECT_LE(max_abs_diff(grads[i], grads[3 + i]), tol * (1 + max(abs(grads[i])).item())) << "grad " << i;
    EXPECT_LE(max_abs_diff(stats[0], stats[2]), tol * 1e3) << "running_mean";
    EXPECT_LE(max_abs_diff(stats[1], stats[3]), tol) << "running_var";
  }
}

// conv -> BatchNorm2d -> linear on the flattened map.
class TinyNet : public nn::Module {
 public:
  explicit TinyNet(uint64_t seed) {
    Generator g(seed);
    conv = register_module("conv", std::make_shared<nn::Conv2d>(2, 3, 3, 1, 1, 1, 1, true, &g));
    bn = register_module("bn", std::make_shared<nn::BatchNorm2d>(3));
    fc = register_module("fc", std::make_shared<nn::Linear>(3 * 4 * 4, 2, true, &g));
  }
  Tensor forward(const Tensor& x) override {
    Tensor h = relu(bn->forward(conv->forward(x)));
    return fc->forward(h.reshape({x.size(0), -1}));
  }
  std::shared_ptr<nn::Conv2d> conv;
  std::shared_ptr<nn::BatchNorm2d> bn;
  std::shared_ptr<nn::Linear> fc;
};

TEST(SyncBatchNorm, ConvertWithOneRankLeavesTheNetworkBitForBit) {
  auto one = dist::single_process_group();
  TinyNet plain(3), synced(3);
  EXPECT_EQ(nn::convert_sync_batchnorm(synced, *one), 1);
  EXPECT_EQ(synced.bn->sync_group(), nullptr) << "one rank: nothing to synchronise";
  Tensor x0 = random_tensor({4, 2, 4, 4}, 9, DType::Float32);
  for (int step = 0; step < 2; ++step) {
    std::vector<std::vector<double>> seen[2];
    int k = 0;
    for (TinyNet* net : {&plain, &synced}) {
      Tensor x = x0.clone().set_requires_grad();
      Tensor out = net->forward(x);
      sum(mul(out, out)).backward();
      seen[k].push_back(out.to_vector());
      seen[k].push_back(x.grad().to_vector());
      for (const Tensor& p : net->parameters()) seen[k].push_back(p.grad().to_vector());
      for (const auto& [name, b] : net->named_buffers()) seen[k].push_back(b.to(DType::Float64).to_vector());
      for (Tensor& p : net->parameters()) p.zero_grad();
      ++k;
    }
    ASSERT_EQ(seen[0].size(), seen[1].size());
    for (size_t i = 0; i < seen[0].size(); ++i) EXPECT_EQ(seen[0][i], seen[1][i]) << "tensor " << i << " step " << step;
  }
}

TEST(SyncBatchNorm, ConvertCountsTheBatchNormLayers) {
  auto one = dist::single_process_group();
  Generator g(1);
  nn::Linear no_bn(3, 2, true, &g);
  EXPECT_EQ(nn::convert_sync_batchnorm(no_bn, *one), 0);
  nn::FrozenBatchNorm2d frozen(4);
  EXPECT_EQ(nn::convert_sync_batchnorm(frozen, *one), 0) << "frozen statistics: nothing to synchronise";
}

}  // namespace
}  // namespace sx
