// DenseNet: torchvision's state-dict names/shapes and parameter counts for densenet121/169/201, a
// golden forward (eval, training, an odd-sized map) and backward against torchvision (weights from
// the closed formula of tests/common/formula.h, scripts/fixtures/models_densenet.py), the shared
// block buffer against a plain torch.cat block (same values and gradients) and a float64 gradcheck
// of a small block, 1-channel folding, and the architecture names.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include "common/state_dict_fixture.h"
#include "common/formula.h"
#include "common/gradcheck.h"
#include "io/safetensors.h"
#include "models/densenet.h"
#include "tensor/ops.h"

namespace sx {
namespace {

std::string data_path(const std::string& f) { return std::string(SX_TEST_DATA_DIR) + "/models/" + f; }

void expect_close(const Tensor& got, const Tensor& ref, double rel, const std::string& what) {
  test::expect_close_scaled(got, ref, rel, what);
}

TEST(DenseNet, StateDictNamesAndShapesEqualTorchvision) {
  const test::StateDictListing listing = test::read_state_dict_listing(data_path("densenet_state_dict.txt"));
  const auto& ref = listing.entries;
  auto counts = listing.param_counts;
  ASSERT_EQ(ref.size(), 3u);
  const std::map<std::string, int> depth{{"densenet121", 121}, {"densenet169", 169}, {"densenet201", 201}};
  for (const auto& [arch, entries] : ref) {
    auto m = models::make_densenet(arch);
    EXPECT_EQ(m->num_parameters(), counts[arch]) << arch;
    EXPECT_EQ(m->num_parameters(), models::torchvision_densenet_num_parameters(depth.at(arch))) << arch;
    auto sd = m->state_dict();
    ASSERT_EQ(sd.size(), entries.size()) << arch;
    size_t i = 0;
    for (const auto& [name, t] : sd) {
      EXPECT_EQ(name, entries[i].first) << arch << " entry " << i;
      EXPECT_EQ(t.shape(), entries[i].second) << arch << " " << name;
      ++i;
    }
  }
}

TEST(DenseNet, GoldenForwardAndBackwardAgainstTorchvision) {
  models::DenseNetConfig cfg;
  cfg.num_classes = 3;
  auto m = models::make_densenet("densenet121", cfg);
  test::fill_formula(*m, "classifier.", 1024.0);
  std::map<std::string, Tensor> gold;
  for (auto& [k, v] : safetensors::load(data_path("densenet121_golden.safetensors")).tensors) gold[k] = v;
  Tensor x = test::formula({2, 3, 64, 64}, 1000);
  m->eval();
  {
    NoGradGuard ng;
    expect_close(m->forward(x), gold.at("logits_eval"), 2e-4, "logits_eval");
    expect_close(m->forward(test::formula({1, 3, 72, 80}, 1001)), gold.at("logits_eval_odd"), 2e-4, "logits_eval_odd");
  }
  m->train();
  Tensor xg = x.clone();
  xg.set_requires_grad(true);
  Tensor logits = m->forward(xg);
  expect_close(logits, gold.at("logits_train"), 2e-4, "logits_train");
  sum(mul(logits, test::formula(logits.shape(), 2000))).backward();
  // Gradients through 120 training-mode batch norms, some over 8 values per channel (2 images of
  // 2x2 in block 4), are ill-conditioned in float32: torchvision's own float32 gradients differ
  // from its float64 ones by up to 2e-3 of the largest |g| here. Hence 6e-3 (exactness of the
  // autograd itself is checked in float64 below).
  expect_close(xg.grad(), gold.at("grad.input"), 6e-3, "grad input");
  int checked = 0;
  for (const auto& [k, ref] : gold) {
    if (k.rfind("grad.", 0) != 0 || k == "grad.input") continue;
    expect_close(m->parameter(k.substr(5)).grad(), ref, 6e-3, k);
    ++checked;
  }
  EXPECT_EQ(checked, 9);
}

// The same block computed the plain way: torch.cat of everything so far before each layer.
Tensor cat_block(models::DenseBlock& b, const Tensor& x) {
  std::vector<Tensor> feats{x};
  for (auto& layer : b.layers_) feats.push_back(layer->forward(cat(feats, 1)));
  return cat(feats, 1);
}

TEST(DenseNet, SharedBufferBlockEqualsConcatBlockAndPassesGradcheck) {
  models::DenseBlock block(3, 3, 2, 2);  // 3 layers, 3 input channels, growth 2, bottleneck 4
  block.to(DType::Float64);
  {
    NoGradGuard ng;  // non-trivial affine parameters
    int64_t k = 10;
    for (auto& [name, p] : block.named_parameters()) {
      Tensor t = p;
      t.copy_(test::formula(p.shape(), k++, p.dim() == 4 ? 0.8 : 0.3, p.dim() == 4 ? 0.0 : 1.0).to(DType::Float64));
    }
  }
  block.train();
  Tensor x = test::formula({2, 3, 4, 5}, 77).to(DType::Float64);
  Tensor w = test::formula({2, 9, 4, 5}, 78).to(DType::Float64);
  auto grads_of = [&](bool shared) {
    block.zero_grad();
    Tensor xi = x.clone();
    xi.set_requires_grad(true);
    Tensor y = shared ? block.forward(xi) : cat_block(block, xi);
    sum(mul(y, w)).backward();
    std::vector<Tensor> g{y.detach(), xi.grad()};
    for (auto& p : block.parameters()) g.push_back(p.grad().clone());
    return g;
  };
  auto a = grads_of(true), b = grads_of(false);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(a[0].shape(), (Shape{2, 9, 4, 5}));
  for (size_t i = 0; i < a.size(); ++i) expect_close(a[i], b[i], 1e-12, "entry " + std::to_string(i));

  auto r = test::gradcheck([&](const std::vector<Tensor>& in) { return block.forward(in[0]); },
                           {x.clone().set_requires_grad(true)});
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(DenseNet, OneChannelFoldingAndArchNames) {
  models::DenseNetConfig c3;
  c3.num_classes = 1;
  c3.seed = 5;
  auto rgb = models::make_densenet("densenet121", c3);
  models::DenseNetConfig c1 = c3;
  c1.in_channels = 1;
  auto grey = models::make_densenet("densenet121", c1);
  auto folded = models::adapt_densenet_state_dict(rgb->state_dict(), 1, false);
  EXPECT_EQ(folded.at("features.conv0.weight").shape(), (Shape{64, 1, 7, 7}));
  auto rep = grey->load_state_dict(folded, true);
  EXPECT_TRUE(rep.ok()) << rep.str();
  rgb->eval();
  grey->eval();
  NoGradGuard ng;
  Tensor g = test::formula({1, 1, 48, 48}, 5);
  expect_close(grey->forward(g), rgb->forward(cat({g, g, g}, 1)), 1e-5, "folded logits");
  auto dropped = models::adapt_densenet_state_dict(rgb->state_dict(), 3, true);
  EXPECT_FALSE(dropped.contains("classifier.weight"));
  EXPECT_FALSE(dropped.contains("classifier.bias"));
  EXPECT_TRUE(models::is_densenet_arch("densenet169"));
  EXPECT_FALSE(models::is_densenet_arch("resnet18"));
  EXPECT_EQ(models::make_densenet("densenet201", c3)->final_channels(), 1920);
  EXPECT_THROW(models::make_densenet("densenet100"), ValueError);
}

}  // namespace
}  // namespace sx
