// Feature Pyramid Network and the ResNet+FPN backbone: see fpn.h.
#include "models/fpn.h"

#include <cmath>

#include "tensor/autograd.h"
#include "tensor/ops.h"

namespace sx::models {

void kaiming_uniform_(Tensor& w, double a, Generator& gen) {
  SX_CHECK(w.dim() >= 2, "kaiming_uniform_: weight must have >= 2 dims, got ", shape_str(w.shape()));
  int64_t fan_in = w.numel() / w.size(0);
  double gain = std::sqrt(2.0 / (1.0 + a * a));
  double bound = gain * std::sqrt(3.0 / static_cast<double>(fan_in));
  NoGradGuard ng;
  Tensor u = rand(w.shape(), gen, w.dtype(), w.device());  // [0, 1)
  w.copy_(sub(mul(u, 2.0 * bound), bound));
}

void normal_(Tensor& w, double std, Generator& gen) {
  NoGradGuard ng;
  w.copy_(mul(randn(w.shape(), gen, w.dtype(), w.device()), std));
}

void constant_(Tensor& t, double v) {
  NoGradGuard ng;
  t.fill_(v);
}

namespace {
std::shared_ptr<nn::Sequential> wrap(std::shared_ptr<nn::Module> m) {
  auto s = std::make_shared<nn::Sequential>();
  s->push_back(std::move(m));
  return s;
}
}  // namespace

FeaturePyramidNetwork::FeaturePyramidNetwork(const std::vector<int64_t>& in_channels_list,
                                             int64_t out_channels, FpnExtra extra,
                                             int64_t extra_in_channels, Generator* gen)
    : nn::Module("FeaturePyramidNetwork"),
      out_channels_(out_channels),
      num_inputs_(static_cast<int64_t>(in_channels_list.size())),
      extra_(extra) {
  SX_CHECK(!in_channels_list.empty(), "FeaturePyramidNetwork: in_channels_list is empty");
  SX_CHECK(out_channels > 0, "FeaturePyramidNetwork: out_channels must be > 0, got ", out_channels);
  inner_blocks = register_module("inner_blocks", std::make_shared<nn::Sequential>());
  layer_blocks = register_module("layer_blocks", std::make_shared<nn::Sequential>());
  for (int64_t c : in_channels_list) {
    SX_CHECK(c > 0, "FeaturePyramidNetwork: in_channels must be > 0, got ", c);
    auto inner = std::make_shared<nn::Conv2d>(c, out_channels, 1, 1, 0);
    auto layer = std::make_shared<nn::Conv2d>(out_channels, out_channels, 3, 1, 1);
    inner_blocks->push_back(wrap(inner));
    layer_blocks->push_back(wrap(layer));
    inner_.push_back(inner);
    layer_.push_back(layer);
  }
  if (extra == FpnExtra::P6P7) {
    if (extra_in_channels < 0) extra_in_channels = out_channels;
    auto eb = std::make_shared<nn::Module>("LastLevelP6P7");
    p6 = eb->register_module("p6", std::make_shared<nn::Conv2d>(extra_in_channels, out_channels, 3, 2, 1));
    p7 = eb->register_module("p7", std::make_shared<nn::Conv2d>(out_channels, out_channels, 3, 2, 1));
    use_p5_ = extra_in_channels == out_channels;
    if (!use_p5_)
      SX_CHECK(extra_in_channels == in_channels_list.back(), "FeaturePyramidNetwork: P6P7 in_channels ",
               extra_in_channels, " must equal out_channels (", out_channels, ") or the last input's (",
               in_channels_list.back(), ")");
    extra_blocks = register_module("extra_blocks", eb);
  }
  Generator local(0);
  reset_parameters(gen ? *gen : local);
}

void FeaturePyramidNetwork::reset_parameters(Generator& gen) {
  auto init = [&](const std::shared_ptr<nn::Conv2d>& c) {
    kaiming_uniform_(c->weight, 1.0, gen);
    if (c->bias.defined()) constant_(c->bias, 0.0);
  };
  for (auto& c : inner_) init(c);
  for (auto& c : layer_) init(c);
  if (p6) init(p6);
  if (p7) init(p7);
}

int64_t FeaturePyramidNetwork::num_levels() const {
  return num_inputs_ + (extra_ == FpnExtra::P6P7 ? 2 : extra_ == FpnExtra::MaxPool ? 1 : 0);
}

std::vector<Tensor> FeaturePyramidNetwork::forward_levels(const std::vector<Tensor>& x) {
  SX_CHECK(static_cast<int64_t>(x.size()) == num_inputs_, "FeaturePyramidNetwork: expected ", num_inputs_,
           " feature maps, got ", x.size());
  const int64_t n = num_inputs_;
  std::vector<Tensor> results(n);
  Tensor last_inner = inner_[n - 1]->forward(x[n - 1]);
  results[n - 1] = layer_[n - 1]->forward(last_inner);
  for (int64_t i = n - 2; i >= 0; --i) {
    Tensor lateral = inner_[i]->forward(x[i]);
    Tensor top_down = nn::upsample_nearest(last_inner, lateral.size(2), lateral.size(3));
    last_inner = add(lateral, top_down);
    results[i] = layer_[i]->forward(last_inner);
  }
  if (extra_ == FpnExtra::P6P7) {
    Tensor in = use_p5_ ? results.back() : x.back();
    Tensor r6 = p6->forward(in);
    Tensor r7 = p7->forward(relu(r6));
    results.push_back(r6);
    results.push_back(r7);
  } else if (extra_ == FpnExtra::MaxPool) {
    nn::MaxPool2dParams mp;
    mp.kernel_h = mp.kernel_w = 1;
    mp.stride_h = mp.stride_w = 2;
    results.push_back(nn::max_pool2d(results.back(), mp));
  }
  return results;
}

BackboneWithFPN::BackboneWithFPN(std::shared_ptr<ResNet> body_in, const std::vector<int>& returned_layers,
                                 int64_t out_channels, FpnExtra extra, int64_t extra_in_channels,
                                 Generator* gen)
    : nn::Module("BackboneWithFPN"), returned_layers_(returned_layers) {
  SX_CHECK(body_in != nullptr, "BackboneWithFPN: body is null");
  SX_CHECK(!returned_layers.empty(), "BackboneWithFPN: returned_layers is empty");
  auto ch = body_in->stage_channels();
  std::vector<int64_t> in_list;
  for (int l : returned_layers) {
    SX_CHECK(l >= 1 && l <= 4, "BackboneWithFPN: returned layer must be in 1..4, got ", l);
    in_list.push_back(ch[l - 1]);
  }
  body = register_module("body", body_in);
  fpn = register_module("fpn", std::make_shared<FeaturePyramidNetwork>(in_list, out_channels, extra,
                                                                        extra_in_channels, gen));
}

std::vector<Tensor> BackboneWithFPN::forward_levels(const Tensor& x) {
  auto f = body->forward_features(x);
  const Tensor* all[4] = {&f.c2, &f.c3, &f.c4, &f.c5};
  std::vector<Tensor> sel;
  for (int l : returned_layers_) sel.push_back(*all[l - 1]);
  return fpn->forward_levels(sel);
}

}  // namespace sx::models
