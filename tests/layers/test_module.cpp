// Module base: registration order and dotted names, state_dict/load_state_dict (strict and
// non-strict reports), in-place dtype moves keeping handles valid, train/eval, freezing.
#include <gtest/gtest.h>

#include "layers/layers.h"
#include "tensor/ops.h"

namespace sx {
namespace {

struct Block : nn::Module {
  explicit Block(int64_t in) : nn::Module("Block") {
    conv = register_module("conv", std::make_shared<nn::Conv2d>(in, 4, 3, 1, 1, 1, 1, false));
    bn = register_module("bn", std::make_shared<nn::BatchNorm2d>(4));
  }
  Tensor forward(const Tensor& x) override { return relu(bn->forward(conv->forward(x))); }
  std::shared_ptr<nn::Conv2d> conv;
  std::shared_ptr<nn::BatchNorm2d> bn;
};

struct Net : nn::Module {
  Net() : nn::Module("Net") {
    scale = register_parameter("scale", Tensor::ones({1}));
    body = register_module("body", std::make_shared<nn::Sequential>());
    body->push_back(std::make_shared<Block>(2));
    body->push_back(std::make_shared<Block>(4));
    head = register_module("head", std::make_shared<nn::Linear>(4, 3));
  }
  Tensor scale;
  std::shared_ptr<nn::Sequential> body;
  std::shared_ptr<nn::Linear> head;
};

TEST(Module, DottedNamesInRegistrationOrder) {
  Net net;
  std::vector<std::string> names;
  for (auto& kv : net.named_parameters()) names.push_back(kv.first);
  std::vector<std::string> expect = {"scale", "body.0.conv.weight", "body.0.bn.weight", "body.0.bn.bias",
                                     "body.1.conv.weight", "body.1.bn.weight", "body.1.bn.bias", "head.weight",
                                     "head.bias"};
  EXPECT_EQ(names, expect);
  auto keys = net.state_dict().keys();
  std::vector<std::string> sd = {"scale",
                                 "body.0.conv.weight",
                                 "body.0.bn.weight",
                                 "body.0.bn.bias",
                                 "body.0.bn.running_mean",
                                 "body.0.bn.running_var",
                                 "body.0.bn.num_batches_tracked",
                                 "body.1.conv.weight",
                                 "body.1.bn.weight",
                                 "body.1.bn.bias",
                                 "body.1.bn.running_mean",
                                 "body.1.bn.running_var",
                                 "body.1.bn.num_batches_tracked",
                                 "head.weight",
                                 "head.bias"};
  EXPECT_EQ(keys, sd);
  EXPECT_EQ(net.num_parameters(), 1 + (4 * 2 * 9 + 8) + (4 * 4 * 9 + 8) + 15);
  EXPECT_EQ(net.parameter("body.1.conv.weight").shape(), (Shape{4, 4, 3, 3}));
  EXPECT_EQ(net.buffer("body.0.bn.running_var").shape(), (Shape{4}));
  EXPECT_THROW(net.parameter("body.2.conv.weight"), ValueError);
  EXPECT_EQ(net.child("body.1")->type_name(), "Block");
  auto mods = net.named_modules();
  EXPECT_EQ(mods[0].first, "");
  EXPECT_EQ(mods[1].first, "body");
  EXPECT_EQ(mods[2].first, "body.0");
  EXPECT_EQ(mods[3].first, "body.0.conv");
  EXPECT_NE(net.str().find("(conv): Conv2d(2, 4"), std::string::npos) << net.str();
}

TEST(Module, DuplicateAndBadNamesThrow) {
  nn::Module m;
  m.register_parameter("w", Tensor::zeros({1}));
  EXPECT_THROW(m.register_parameter("w", Tensor::zeros({1})), ValueError);
  EXPECT_THROW(m.register_buffer("a.b", Tensor::zeros({1})), ValueError);
  EXPECT_THROW(m.forward(Tensor::zeros({1})), ValueError);
}

TEST(Module, LoadStateDictRoundTripAndReports) {
  Net a, b;
  {
    NoGradGuard ng;
    a.head->weight.fill_(0.25);
    a.body->named_children()[0].second->buffer("bn.running_mean").fill_(3.0);
  }
  auto rep = b.load_state_dict(a.state_dict(), true);
  EXPECT_TRUE(rep.ok());
  EXPECT_EQ(rep.loaded, 15);
  EXPECT_EQ(b.head->weight.to_vector(), a.head->weight.to_vector());
  EXPECT_EQ(b.buffer("body.0.bn.running_mean").to_vector()[0], 3.0);
  // Handles held elsewhere see the loaded values (in-place copy).
  Tensor held = b.head->weight;
  EXPECT_EQ(held.to_vector()[0], 0.25);

  // Missing, unexpected and mis-shaped keys.
  nn::StateDict sd = a.state_dict();
  sd.erase("head.bias");
  sd.set("head.extra", Tensor::zeros({2}));
  sd.set("body.1.conv.weight", Tensor::zeros({4, 3, 3, 3}));
  try {
    b.load_state_dict(sd, true);
    FAIL() << "strict load should throw";
  } catch (const ValueError& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("head.bias"), std::string::npos) << msg;
    EXPECT_NE(msg.find("head.extra"), std::string::npos) << msg;
    EXPECT_NE(msg.find("body.1.conv.weight: expected [4, 4, 3, 3], got [4, 3, 3, 3]"), std::string::npos) << msg;
  }
  auto r2 = b.load_state_dict(sd, false);
  EXPECT_EQ(r2.missing, std::vector<std::string>{"head.bias"});
  EXPECT_EQ(r2.unexpected, std::vector<std::string>{"head.extra"});
  ASSERT_EQ(r2.mismatched.size(), 1u);
  EXPECT_EQ(r2.loaded, 13);
}

TEST(Module, LoadReportGroupsLongListsByModulePrefix) {
  nn::LoadReport r;
  r.loaded = 120;
  r.missing = {"head.bias"};
  EXPECT_EQ(r.str(), "loaded 120 tensors\n  missing keys (1):\n    head.bias");
  r.missing.clear();
  for (int i = 0; i < 4; ++i) r.missing.push_back("backbone.fpn.inner." + std::to_string(i) + ".weight");
  for (int i = 0; i < 3; ++i) r.missing.push_back("head.cls.conv." + std::to_string(i));
  r.missing.push_back("backbone.fpn.p6.weight");  // a prefix seen before, after another one
  r.missing.push_back("scale");                    // a top-level name is its own group
  EXPECT_EQ(r.str(), "loaded 120 tensors\n  missing keys (9):\n    backbone.fpn.* 5, head.cls.* 3, scale 1");
  // Short lists (at most max_listed) stay name by name.
  EXPECT_NE(r.str(9).find("\n    backbone.fpn.p6.weight"), std::string::npos);
}

TEST(Module, ToDtypeInPlaceKeepsHandles) {
  Net net;
  Tensor w = net.head->weight;
  net.to(DType::Float64);
  EXPECT_EQ(w.dtype(), DType::Float64);
  EXPECT_EQ(net.head->weight.dtype(), DType::Float64);
  EXPECT_TRUE(w.requires_grad());
  // integer buffers keep their dtype
  EXPECT_EQ(net.buffer("body.0.bn.num_batches_tracked").dtype(), DType::Int64);
  Tensor y = net.body->forward(Tensor::ones({2, 2, 5, 5}, DType::Float64));
  EXPECT_EQ(y.dtype(), DType::Float64);
  EXPECT_TRUE(net.device() == Device::cpu());
}

TEST(Module, TrainEvalAndFreezing) {
  Net net;
  net.eval();
  EXPECT_FALSE(net.child("body.0.bn")->is_training());
  net.train();
  EXPECT_TRUE(net.child("body.1.bn")->is_training());
  net.body->requires_grad_(false);
  EXPECT_EQ(net.trainable_parameters().size(), 3u);  // scale, head.weight, head.bias
  EXPECT_EQ(net.num_parameters(true), 1 + 15);
}

TEST(Module, GradientsReachParametersThroughLayers) {
  Net net;
  Tensor x = Tensor::ones({2, 2, 4, 4});
  Tensor y = net.body->forward(x);
  Tensor p = mean(y, {2, 3});
  Tensor loss = sum(net.head->forward(p));
  loss.backward();
  for (auto& [name, t] : net.named_parameters()) {
    if (name == "scale") continue;
    EXPECT_TRUE(t.grad().defined()) << name;
  }
  net.zero_grad();
  EXPECT_FALSE(net.head->weight.grad().defined());
}

}  // namespace
}  // namespace sx
