// LayerNorm and MultiheadAttention (layers/layer_norm.h, layers/attention.h) against torch.nn
// (tests/data/layers/transformer.txt, written by scripts/fixtures/layers_transformer.py): outputs,
// attention weights and every gradient in float64, masks, state-dict names, and argument errors.
// The float64 gradchecks of both are op-registry entries (test_ops: layer_norm, multihead_attention_*).
#include <gtest/gtest.h>

#include "layers/attention.h"
#include "layers/layer_norm.h"
#include "tensor/errors.h"
#include "tensor/ops.h"
#include "tests/kernels/detection_test_util.h"

namespace sx {
namespace {

using test::DetectionFixture;
using test::expect_close;

const DetectionFixture& fixture() {
  static const DetectionFixture f("transformer.txt", "layers");
  return f;
}

TEST(LayerNormGolden, MatchesTorch) {
  const DetectionFixture& f = fixture();
  nn::LayerNorm ln(8);
  EXPECT_EQ(ln.state_dict().keys(), (std::vector<std::string>{"weight", "bias"}));
  // torch's initial values: weight 1, bias 0.
  expect_close(ln.weight, Tensor::ones({8}), 0, 0, "initial weight");
  expect_close(ln.bias, Tensor::zeros({8}), 0, 0, "initial bias");
  nn::StateDict sd;
  sd.set("weight", f["ln_weight"]);
  sd.set("bias", f["ln_bias"]);
  ln.to(DType::Float64);
  ln.load_state_dict(sd);
  Tensor x = f["ln_x"].clone().set_requires_grad();
  Tensor y = ln(x);
  expect_close(y, f["ln_y"], 1e-14, 1e-12, "output");
  sum(mul(y, f["ln_w"])).backward();
  expect_close(x.grad(), f["ln_grad_x"], 1e-13, 1e-11, "d/dx");
  expect_close(ln.weight.grad(), f["ln_grad_weight"], 1e-13, 1e-11, "d/dweight");
  expect_close(ln.bias.grad(), f["ln_grad_bias"], 1e-13, 1e-11, "d/dbias");
  // float32 forward too.
  ln.to(DType::Float32);
  expect_close(ln(f["ln_x"].to(DType::Float32)), f["ln_y"].to(DType::Float32), 1e-5, 1e-5, "float32");
}

TEST(LayerNorm, NoAffineAndErrors) {
  nn::LayerNorm ln(4, 1e-5, false);
  EXPECT_TRUE(ln.state_dict().empty());
  Tensor y = ln(Tensor::from_vector({1, 2, 3, 4, -2, 0, 2, 4}, {2, 4}, DType::Float64));
  // Row (1, 2, 3, 4): mean 2.5, biased var 1.25.
  EXPECT_NEAR(y.to_vector()[0], -1.5 / std::sqrt(1.25 + 1e-5), 1e-12);
  expect_close(mean(y, {-1}), Tensor::zeros({2}, DType::Float64), 1e-12, 0, "rows have mean 0");
  EXPECT_THROW(ln(Tensor::zeros({2, 5})), ValueError);
  EXPECT_THROW(nn::LayerNorm(0), ValueError);
}

// An nn::MultiheadAttention(8, 2) in float64 with the fixture's weights.
std::shared_ptr<nn::MultiheadAttention> golden_mha() {
  const DetectionFixture& f = fixture();
  auto m = std::make_shared<nn::MultiheadAttention>(8, 2);
  m->to(DType::Float64);
  nn::StateDict sd;
  sd.set("in_proj_weight", f["mha_in_proj_weight"]);
  sd.set("in_proj_bias", f["mha_in_proj_bias"]);
  sd.set("out_proj.weight", f["mha_out_proj_weight"]);
  sd.set("out_proj.bias", f["mha_out_proj_bias"]);
  m->load_state_dict(sd);  // strict: the names are torch's
  return m;
}

TEST(MultiheadAttentionGolden, SelfAttentionMatchesTorch) {
  const DetectionFixture& f = fixture();
  auto m = golden_mha();
  EXPECT_EQ(m->state_dict().keys(),
            (std::vector<std::string>{"in_proj_weight", "in_proj_bias", "out_proj.weight", "out_proj.bias"}));
  Tensor x = f["mha_self_x"].clone().set_requires_grad();
  nn::AttentionOutput r = m->forward(x, x, x);
  expect_close(r.output, f["mha_self_out"], 1e-13, 1e-11, "output");
  expect_close(r.weights, f["mha_self_weights"], 1e-13, 1e-11, "weights");
  sum(mul(r.output, f["mha_self_w"])).backward();
  expect_close(x.grad(), f["mha_self_grad_x"], 1e-13, 1e-10, "d/dx");
  expect_close(m->in_proj_weight.grad(), f["mha_self_grad_in_proj_weight"], 1e-13, 1e-10, "d/d in_proj_weight");
  expect_close(m->in_proj_bias.grad(), f["mha_self_grad_in_proj_bias"], 1e-13, 1e-10, "d/d in_proj_bias");
  expect_close(m->out_proj->weight.grad(), f["mha_self_grad_out_proj_weight"], 1e-13, 1e-10, "d/d out_proj.weight");
  expect_close(m->out_proj->bias.grad(), f["mha_self_grad_out_proj_bias"], 1e-13, 1e-10, "d/d out_proj.bias");
  // The one-argument forward is self-attention's output.
  expect_close((*m)(f["mha_self_x"]), f["mha_self_out"], 1e-13, 1e-11, "forward(x)");
}

TEST(MultiheadAttentionGolden, CrossAttentionWithMasksMatchesTorch) {
  const DetectionFixture& f = fixture();
  auto m = golden_mha();
  Tensor q = f["mha_cross_q"].clone().set_requires_grad();
  Tensor k = f["mha_cross_k"].clone().set_requires_grad();
  Tensor v = f["mha_cross_v"].clone().set_requires_grad();
  const Tensor kpm = ne(f["mha_cross_kpm"], 0.0), am = ne(f["mha_cross_am"], 0.0);
  nn::AttentionOutput r = m->forward(q, k, v, kpm, am);
  expect_close(r.output, f["mha_cross_out"], 1e-13, 1e-11, "output");
  expect_close(r.weights, f["mha_cross_weights"], 1e-13, 1e-11, "weights (masked keys exactly 0)");
  sum(mul(r.output, f["mha_cross_w"])).backward();
  expect_close(q.grad(), f["mha_cross_grad_q"], 1e-13, 1e-10, "d/dq");
  expect_close(k.grad(), f["mha_cross_grad_k"], 1e-13, 1e-10, "d/dk");
  expect_close(v.grad(), f["mha_cross_grad_v"], 1e-13, 1e-10, "d/dv");
}

TEST(MultiheadAttention, InitShapesAndErrors) {
  Generator g(3);
  nn::MultiheadAttention m(16, 4, true, &g);
  EXPECT_EQ(shape_str(m.in_proj_weight.shape()), "[48, 16]");
  const double a = std::sqrt(6.0 / 64.0);  // xavier_uniform bound of [48, 16]
  for (double w : m.in_proj_weight.to_vector()) EXPECT_LE(std::fabs(w), a);
  expect_close(m.in_proj_bias, Tensor::zeros({48}), 0, 0, "in_proj_bias = 0");
  expect_close(m.out_proj->bias, Tensor::zeros({16}), 0, 0, "out_proj.bias = 0");
  nn::AttentionOutput r = m.forward(Tensor::zeros({5, 2, 16}), Tensor::zeros({7, 2, 16}), Tensor::zeros({7, 2, 16}));
  EXPECT_EQ(shape_str(r.output.shape()), "[5, 2, 16]");
  EXPECT_EQ(shape_str(r.weights.shape()), "[2, 5, 7]");
  EXPECT_THROW(nn::MultiheadAttention(10, 3), ValueError);
  EXPECT_THROW(m.forward(Tensor::zeros({5, 2, 8}), Tensor::zeros({5, 2, 8}), Tensor::zeros({5, 2, 8})), ValueError);
  EXPECT_THROW(m.forward(Tensor::zeros({5, 2, 16}), Tensor::zeros({7, 3, 16}), Tensor::zeros({7, 3, 16})), ValueError);
  EXPECT_THROW(m.forward(Tensor::zeros({5, 2, 16}), Tensor::zeros({7, 2, 16}), Tensor::zeros({7, 2, 16}),
                         Tensor::zeros({2, 6}, DType::Bool)),
               ValueError);
  EXPECT_THROW(m.forward(Tensor::zeros({5, 2, 16}), Tensor::zeros({7, 2, 16}), Tensor::zeros({7, 2, 16}), Tensor(),
                         Tensor::zeros({5, 7})),
               ValueError);
}

}  // namespace
}  // namespace sx
