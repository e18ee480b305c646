// ResNet: torchvision's state-dict names/shapes and parameter counts, output and feature shapes,
// a golden forward/backward against torchvision (weights from a closed formula that the fixture
// script uses too), 1-channel weight folding, freezing, FrozenBatchNorm, save/load round trip.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

// random_math.h first: its unqualified log/sqrt/cos must not see sx::log(Tensor) from ops.h.
#include "common/state_dict_fixture.h"
#include "tensor/random_math.h"
// (blank line keeps include sorting from moving it)

#include "common/devices.h"
#include "common/formula.h"
#include "io/safetensors.h"
#include "models/resnet.h"
#include "tensor/ops.h"

namespace sx {
namespace {

using models::ResNetConfig;

std::string data_path(const std::string& f) { return std::string(SX_TEST_DATA_DIR) + "/layers/" + f; }

using test::formula;
// Fill a ResNet's state the way scripts/fixtures/layers_resnet.py fills torchvision's.
void fill_formula(models::ResNet& m) { test::fill_formula(m, "fc.", 512.0); }

std::map<std::string, Tensor> load_golden() {
  std::map<std::string, Tensor> m;
  for (auto& [k, v] : safetensors::load(data_path("resnet18_golden.safetensors")).tensors) m[k] = v;
  return m;
}

void expect_close(const Tensor& got, const Tensor& ref, double rel, const std::string& what) {
  test::expect_close_scaled(got, ref, rel, what);
}

TEST(ResNet, StateDictNamesAndShapesEqualTorchvision) {
  const test::StateDictListing listing = test::read_state_dict_listing(data_path("resnet_state_dict.txt"));
  const auto& ref = listing.entries;
  auto counts = listing.param_counts;
  ASSERT_EQ(ref.size(), 4u);
  for (const auto& [arch, entries] : ref) {
    auto m = models::make_resnet(arch);
    // torchvision's parameter counts (resnet18 11,689,512; resnet50 25,557,032)
    EXPECT_EQ(m->num_parameters(), counts[arch]) << arch;
    EXPECT_EQ(m->num_parameters(), models::torchvision_resnet_num_parameters(m->config().depth)) << arch;
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

TEST(ResNet, OutputAndFeatureShapes) {
  ResNetConfig cfg;
  cfg.num_classes = 7;
  cfg.in_channels = 1;
  models::ResNet r18(cfg);
  Tensor x = Tensor::zeros({2, 1, 64, 96});
  r18.eval();
  NoGradGuard ng;
  EXPECT_EQ(r18.forward(x).shape(), (Shape{2, 7}));
  auto f = r18.forward_features(x);
  EXPECT_EQ(f.c2.shape(), (Shape{2, 64, 16, 24}));
  EXPECT_EQ(f.c3.shape(), (Shape{2, 128, 8, 12}));
  EXPECT_EQ(f.c4.shape(), (Shape{2, 256, 4, 6}));
  EXPECT_EQ(f.c5.shape(), (Shape{2, 512, 2, 3}));
  EXPECT_EQ(r18.stage_channels(), (std::vector<int64_t>{64, 128, 256, 512}));

  ResNetConfig c50;
  c50.depth = 50;
  c50.num_classes = 0;  // backbone only
  models::ResNet r50(c50);
  EXPECT_EQ(r50.stage_channels(), (std::vector<int64_t>{256, 512, 1024, 2048}));
  EXPECT_FALSE(r50.state_dict().contains("fc.weight"));
  r50.eval();
  auto g = r50.forward_features(Tensor::zeros({1, 3, 64, 64}));
  EXPECT_EQ(g.c2.shape(), (Shape{1, 256, 16, 16}));
  EXPECT_EQ(g.c5.shape(), (Shape{1, 2048, 2, 2}));
  EXPECT_THROW(r50.forward(Tensor::zeros({1, 3, 64, 64})), ValueError);
  EXPECT_THROW(r18.forward(Tensor::zeros({1, 3, 64, 64})), ValueError);  // wrong channel count
}

TEST(ResNet, InitLikeTorchvision) {
  ResNetConfig cfg;
  cfg.seed = 3;
  models::ResNet m(cfg);
  // conv weights ~ N(0, 2 / fan_out): check the empirical std of layer3.0.conv1 (256*3*3 fan_out)
  auto w = m.parameter("layer3.0.conv1.weight").to_vector();
  double s2 = 0;
  for (double v : w) s2 += v * v;
  const double std_emp = std::sqrt(s2 / w.size()), std_ref = std::sqrt(2.0 / (256 * 9));
  EXPECT_NEAR(std_emp, std_ref, 0.03 * std_ref);
  for (double v : m.parameter("layer3.0.bn1.weight").to_vector()) EXPECT_EQ(v, 1.0);
  for (double v : m.parameter("layer3.0.bn1.bias").to_vector()) EXPECT_EQ(v, 0.0);
  for (double v : m.parameter("fc.weight").to_vector()) EXPECT_LE(std::fabs(v), 1.0 / std::sqrt(512.0));
  // same seed, same weights; another seed, other weights
  models::ResNet same(cfg);
  EXPECT_EQ(same.parameter("conv1.weight").to_vector(), m.parameter("conv1.weight").to_vector());
  cfg.seed = 4;
  models::ResNet other(cfg);
  EXPECT_NE(other.parameter("conv1.weight").to_vector(), m.parameter("conv1.weight").to_vector());
  // zero_init_residual
  ResNetConfig z;
  z.zero_init_residual = true;
  models::ResNet mz(z);
  for (double v : mz.parameter("layer1.0.bn2.weight").to_vector()) EXPECT_EQ(v, 0.0);
}

TEST(ResNet, GoldenForwardAndBackwardAgainstTorchvision) {
  ResNetConfig cfg;
  cfg.num_classes = 10;
  models::ResNet m(cfg);
  fill_formula(m);
  auto gold = load_golden();
  Tensor x = formula({2, 3, 64, 64}, 1000);
  m.eval();
  {
    NoGradGuard ng;
    expect_close(m.forward(x), gold.at("logits_eval"), 2e-4, "logits_eval");
  }
  m.train();
  Tensor logits = m.forward(x);
  expect_close(logits, gold.at("logits_train"), 2e-4, "logits_train");
  expect_close(m.buffer("bn1.running_mean"), gold.at("bn1.running_mean"), 1e-4, "bn1.running_mean");
  expect_close(m.buffer("bn1.running_var"), gold.at("bn1.running_var"), 1e-4, "bn1.running_var");
  EXPECT_EQ(m.buffer("bn1.num_batches_tracked").item<int64_t>(), 1);
  Tensor wl = formula(logits.shape(), 2000);
  sum(mul(logits, wl)).backward();
  // Every parameter's gradient (62): in full up to 10k elements; larger conv weights through a
  // spread sample of 2048 elements, the L2 norm and 8 random projections (layers_resnet.py), so a
  // wrong value anywhere in the tensor shows. Tolerances: 2e-3 of the largest |g| per element
  // (as before), 2e-3 relative for the norm, and 2e-3 * ||g|| * 4 for a projection (a relative
  // L2 error eps moves a projection by about eps * ||g|| / sqrt(3); 4 leaves a margin of ~7 sigma).
  int64_t full = 0, sampled = 0;
  for (const auto& [name, prm] : m.named_parameters()) {
    SCOPED_TRACE(name);
    Tensor g = prm.grad();
    ASSERT_TRUE(g.defined());
    if (gold.count("gradfull." + name)) {
      expect_close(g, gold.at("gradfull." + name), 2e-3, "grad " + name);
      ++full;
      continue;
    }
    ASSERT_TRUE(gold.count("gradsample." + name)) << "no golden gradient for " << name;
    const std::vector<double> gv = g.to_vector();
    const int64_t n = static_cast<int64_t>(gv.size());
    std::vector<double> sample(2048);
    for (int64_t j = 0; j < 2048; ++j) sample[j] = gv[(j * 7919 + 13) % n];
    expect_close(Tensor::from_vector(sample, {2048}), gold.at("gradsample." + name), 2e-3, "grad sample " + name);
    double norm = 0;
    for (double x : gv) norm += x * x;
    norm = std::sqrt(norm);
    const double ref_norm = gold.at("gradnorm." + name).to_vector()[0];
    EXPECT_NEAR(norm, ref_norm, 2e-3 * ref_norm) << "grad norm " << name;
    const int64_t key = gold.at("gradprojkey." + name).to_vector_as<int64_t>()[0];
    const std::vector<double> proj = gold.at("gradproj." + name).to_vector();
    for (int64_t j = 0; j < 8; ++j) {
      double p = 0;
      for (int64_t i = 0; i < n; ++i)
        p += gv[i] * (2.0 * rng::uniform(static_cast<uint64_t>(key + j), static_cast<uint64_t>(i)) - 1.0);
      EXPECT_NEAR(p, proj[j], 2e-3 * 4 * ref_norm) << "projection " << j << " of grad " << name;
    }
    ++sampled;
  }
  EXPECT_EQ(full, 44);
  EXPECT_EQ(sampled, 18);
}

TEST(ResNet, OneChannelFoldingMatchesReplicatedGrey) {
  ResNetConfig c3;
  c3.num_classes = 5;
  c3.seed = 11;
  models::ResNet rgb(c3);
  ResNetConfig c1 = c3;
  c1.in_channels = 1;
  c1.seed = 99;
  models::ResNet grey(c1);
  // Strict load fails without folding (conv1 is mis-shaped) and works with it.
  EXPECT_THROW(grey.load_state_dict(rgb.state_dict(), true), ValueError);
  auto folded = models::adapt_resnet_state_dict(rgb.state_dict(), 1);
  EXPECT_EQ(folded.at("conv1.weight").shape(), (Shape{64, 1, 7, 7}));
  auto rep = grey.load_state_dict(folded, true);
  EXPECT_TRUE(rep.ok()) << rep.str();
  rgb.eval();
  grey.eval();
  NoGradGuard ng;
  Tensor g = formula({2, 1, 48, 48}, 5);
  Tensor g3 = cat({g, g, g}, 1);
  expect_close(grey.forward(g), rgb.forward(g3), 1e-5, "folded logits");
  // in_channels 3 and drop_fc
  auto same = models::adapt_resnet_state_dict(rgb.state_dict(), 3, /*drop_fc=*/true);
  EXPECT_EQ(same.at("conv1.weight").shape(), (Shape{64, 3, 7, 7}));
  EXPECT_FALSE(same.contains("fc.weight"));
  EXPECT_FALSE(same.contains("fc.bias"));
  auto r = grey.load_state_dict(models::adapt_resnet_state_dict(rgb.state_dict(), 1, true), false);
  EXPECT_EQ(r.missing, (std::vector<std::string>{"fc.weight", "fc.bias"}));
}

TEST(ResNet, TrainableLayersLikeTorchvision) {
  ResNetConfig cfg;
  cfg.trainable_layers = 3;  // layer4, layer3, layer2 (+ fc)
  models::ResNet m(cfg);
  for (auto& [name, t] : m.named_parameters()) {
    const bool expect = name.rfind("layer4.", 0) == 0 || name.rfind("layer3.", 0) == 0 ||
                        name.rfind("layer2.", 0) == 0 || name.rfind("fc.", 0) == 0;
    EXPECT_EQ(t.requires_grad(), expect) << name;
  }
  m.set_trainable_layers(5);
  EXPECT_EQ(m.num_parameters(true), m.num_parameters());
  m.set_trainable_layers(0);
  EXPECT_EQ(m.num_parameters(true), 512 * 1000 + 1000);
  EXPECT_THROW(m.set_trainable_layers(6), ValueError);
}

TEST(ResNet, FrozenBatchNormLoadsABatchNormCheckpoint) {
  ResNetConfig cfg;
  cfg.num_classes = 4;
  cfg.seed = 5;
  models::ResNet bn(cfg);
  fill_formula(bn);
  ResNetConfig fc = cfg;
  fc.norm = models::NormKind::FrozenBatchNorm;
  models::ResNet frozen(fc);
  // Norm weights are buffers in FrozenBatchNorm2d: fewer parameters.
  EXPECT_LT(frozen.num_parameters(), bn.num_parameters());
  auto rep = frozen.load_state_dict(bn.state_dict(), true);  // num_batches_tracked ignored
  EXPECT_TRUE(rep.ok()) << rep.str();
  bn.eval();
  frozen.train();  // frozen norms ignore the mode
  NoGradGuard ng;
  Tensor x = formula({1, 3, 40, 40}, 7);
  expect_close(frozen.forward(x), bn.forward(x), 1e-5, "frozen vs eval BN");
}

TEST(ResNet, SafetensorsRoundTrip) {
  ResNetConfig cfg;
  cfg.num_classes = 3;
  cfg.seed = 21;
  models::ResNet a(cfg);
  a.train();
  a.forward(formula({2, 3, 32, 32}, 1));  // move the running statistics away from 0/1
  std::string bytes = safetensors::serialize(a.state_dict().items(), {{"arch", "resnet18"}});
  auto c = safetensors::parse(bytes.data(), bytes.size(), "memory");
  cfg.seed = 22;
  models::ResNet b(cfg);
  auto rep = b.load_state_dict(c.tensors, true);
  EXPECT_TRUE(rep.ok()) << rep.str();
  EXPECT_EQ(rep.loaded, static_cast<int64_t>(a.state_dict().size()));
  a.eval();
  b.eval();
  NoGradGuard ng;
  Tensor x = formula({1, 3, 32, 32}, 2);
  EXPECT_EQ(a.forward(x).to_vector(), b.forward(x).to_vector());
  EXPECT_EQ(b.buffer("layer1.0.bn1.num_batches_tracked").item<int64_t>(), 1);
}

class ResNetParity : public ::testing::TestWithParam<Device> {};

// The whole model on the device against the CPU: train-mode forward (batch statistics), the
// running statistics it leaves, and the parameter gradients; then an eval-mode forward.
TEST_P(ResNetParity, TrainStepMatchesCPU) {
  Device dev = GetParam();
  SX_SKIP_IF_NO_DEVICE(dev);
  ResNetConfig cfg;
  cfg.num_classes = 10;
  models::ResNet a(cfg), b(cfg);
  fill_formula(a);
  fill_formula(b);
  b.to(dev);
  EXPECT_TRUE(b.device() == dev);
  Tensor x = formula({2, 3, 64, 64}, 1000);
  Tensor wl = formula({2, 10}, 2000);
  Tensor la = a.forward(x), lb = b.forward(x.to(dev));
  sum(mul(la, wl)).backward();
  sum(mul(lb, wl.to(dev))).backward();
  expect_close(lb.cpu(), la, 1e-3, "logits");
  expect_close(b.buffer("layer3.1.bn2.running_var").cpu(), a.buffer("layer3.1.bn2.running_var"), 1e-4, "running_var");
  for (const char* n : {"conv1.weight", "layer2.0.downsample.0.weight", "layer4.1.bn2.weight", "fc.weight"})
    expect_close(b.parameter(n).grad().cpu(), a.parameter(n).grad(), 5e-3, std::string("grad ") + n);
  a.eval();
  b.eval();
  NoGradGuard ng;
  expect_close(b.forward(x.to(dev)).cpu(), a.forward(x), 1e-3, "eval logits");
}

INSTANTIATE_TEST_SUITE_P(Devices, ResNetParity, SX_PARITY_DEVICES, test::device_name);

}  // namespace
}  // namespace sx
