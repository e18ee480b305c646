// ResNet (torchvision.models.resnet), built from layers/ with the same registration order as
// torchvision's __init__ so that state-dict names and order match.
#include "models/resnet.h"

#include <cmath>

#include "layers/init.h"
#include "tensor/ops.h"

namespace sx::models {

namespace {

std::shared_ptr<nn::Module> make_norm(int64_t c, NormKind k) {
  if (k == NormKind::FrozenBatchNorm) return std::make_shared<nn::FrozenBatchNorm2d>(c);
  return std::make_shared<nn::BatchNorm2d>(c);
}

// Bias-free convs whose weights the ResNet constructor draws (kaiming), so no default draw here.
std::shared_ptr<nn::Conv2d> conv(int64_t in, int64_t out, int64_t k, int64_t stride, int64_t pad) {
  nn::Conv2dOptions o;
  o.in_channels = in;
  o.out_channels = out;
  o.kernel_h = o.kernel_w = k;
  o.params = nn::Conv2dParams{stride, stride, pad, pad, 1, 1, 1};
  o.bias = false;
  o.default_init = false;
  return std::make_shared<nn::Conv2d>(o);
}
std::shared_ptr<nn::Conv2d> conv3x3(int64_t in, int64_t out, int64_t stride) { return conv(in, out, 3, stride, 1); }
std::shared_ptr<nn::Conv2d> conv1x1(int64_t in, int64_t out, int64_t stride) { return conv(in, out, 1, stride, 0); }

std::shared_ptr<nn::Sequential> make_downsample(int64_t in, int64_t out, int64_t stride, NormKind norm) {
  auto ds = std::make_shared<nn::Sequential>();
  ds->push_back(conv1x1(in, out, stride));
  ds->push_back(make_norm(out, norm));
  return ds;
}

}  // namespace

BasicBlock::BasicBlock(int64_t inplanes, int64_t planes, int64_t stride, bool downsample_, NormKind norm)
    : Module("BasicBlock") {
  conv1 = register_module("conv1", conv3x3(inplanes, planes, stride));
  bn1 = register_module("bn1", make_norm(planes, norm));
  conv2 = register_module("conv2", conv3x3(planes, planes, 1));
  bn2 = register_module("bn2", make_norm(planes, norm));
  if (downsample_) downsample = register_module("downsample", make_downsample(inplanes, planes, stride, norm));
}

Tensor BasicBlock::forward(const Tensor& x) {
  Tensor out = relu(bn1->forward(conv1->forward(x)));
  out = bn2->forward(conv2->forward(out));
  Tensor identity = downsample ? downsample->forward(x) : x;
  return relu(add(out, identity));
}

Bottleneck::Bottleneck(int64_t inplanes, int64_t planes, int64_t stride, bool downsample_, NormKind norm)
    : Module("Bottleneck") {
  conv1 = register_module("conv1", conv1x1(inplanes, planes, 1));
  bn1 = register_module("bn1", make_norm(planes, norm));
  conv2 = register_module("conv2", conv3x3(planes, planes, stride));
  bn2 = register_module("bn2", make_norm(planes, norm));
  conv3 = register_module("conv3", conv1x1(planes, planes * expansion, 1));
  bn3 = register_module("bn3", make_norm(planes * expansion, norm));
  if (downsample_)
    downsample = register_module("downsample", make_downsample(inplanes, planes * expansion, stride, norm));
}

Tensor Bottleneck::forward(const Tensor& x) {
  Tensor out = relu(bn1->forward(conv1->forward(x)));
  out = relu(bn2->forward(conv2->forward(out)));
  out = bn3->forward(conv3->forward(out));
  Tensor identity = downsample ? downsample->forward(x) : x;
  return relu(add(out, identity));
}

static bool is_bottleneck(int depth) { return depth >= 50; }

static std::vector<int64_t> blocks_for_depth(int depth) {
  switch (depth) {
    case 18: return {2, 2, 2, 2};
    case 34: return {3, 4, 6, 3};
    case 50: return {3, 4, 6, 3};
    case 101: return {3, 4, 23, 3};
    case 152: return {3, 8, 36, 3};
    default: SX_THROW(ValueError, "ResNet: depth must be 18, 34, 50, 101 or 152, got ", depth);
  }
}

ResNet::ResNet(const ResNetConfig& config) : Module("ResNet"), cfg_(config) {
  const auto blocks = blocks_for_depth(cfg_.depth);
  SX_CHECK(cfg_.in_channels >= 1, "ResNet: in_channels must be >= 1, got ", cfg_.in_channels);
  SX_CHECK(cfg_.num_classes >= 0, "ResNet: num_classes must be >= 0, got ", cfg_.num_classes);
  const bool bottle = is_bottleneck(cfg_.depth);
  const int64_t expansion = bottle ? Bottleneck::expansion : BasicBlock::expansion;

  conv1 = register_module("conv1", conv(cfg_.in_channels, 64, 7, 2, 3));
  bn1 = register_module("bn1", make_norm(64, cfg_.norm));
  relu = register_module("relu", std::make_shared<nn::ReLU>());
  maxpool = register_module("maxpool", std::make_shared<nn::MaxPool2d>(3, 2, 1));
  int64_t inplanes = 64;
  auto make_layer = [&](int64_t planes, int64_t n, int64_t stride) {
    auto seq = std::make_shared<nn::Sequential>();
    for (int64_t i = 0; i < n; ++i) {
      const int64_t s = i == 0 ? stride : 1;
      const bool ds = i == 0 && (stride != 1 || inplanes != planes * expansion);
      if (bottle)
        seq->push_back(std::make_shared<Bottleneck>(inplanes, planes, s, ds, cfg_.norm));
      else
        seq->push_back(std::make_shared<BasicBlock>(inplanes, planes, s, ds, cfg_.norm));
      inplanes = planes * expansion;
    }
    return seq;
  };
  layer1 = register_module("layer1", make_layer(64, blocks[0], 1));
  layer2 = register_module("layer2", make_layer(128, blocks[1], 2));
  layer3 = register_module("layer3", make_layer(256, blocks[2], 2));
  layer4 = register_module("layer4", make_layer(512, blocks[3], 2));
  avgpool = register_module("avgpool", std::make_shared<nn::AdaptiveAvgPool2d>(1));
  if (cfg_.num_classes > 0) fc = register_module("fc", std::make_shared<nn::Linear>(512 * expansion, cfg_.num_classes));

  // torchvision's init: conv kaiming_normal(fan_out, relu); norm weight 1, bias 0 (already so);
  // fc like torch.nn.Linear. All from one seeded generator, in registration order.
  Generator gen(cfg_.seed);
  {
    NoGradGuard ng;
    for (auto& [name, m] : named_modules()) {
      if (auto* conv = dynamic_cast<nn::Conv2d*>(m)) {
        conv->weight.copy_(nn::init::kaiming_normal_fan_out(conv->weight.shape(), gen));
      } else if (auto* lin = dynamic_cast<nn::Linear*>(m)) {
        lin->reset_parameters(gen);
      }
    }
    if (cfg_.zero_init_residual) {
      for (auto& [name, m] : named_modules()) {
        nn::Module* last = nullptr;
        if (auto* b = dynamic_cast<Bottleneck*>(m)) last = b->bn3.get();
        if (auto* b = dynamic_cast<BasicBlock*>(m)) last = b->bn2.get();
        if (!last) continue;
        if (auto* bn = dynamic_cast<nn::BatchNorm2d*>(last)) bn->weight.zero_();
        if (auto* fbn = dynamic_cast<nn::FrozenBatchNorm2d*>(last)) fbn->weight.zero_();
      }
    }
  }
  set_trainable_layers(cfg_.trainable_layers);
}

void ResNet::set_trainable_layers(int trainable_layers) {
  SX_CHECK(trainable_layers >= 0 && trainable_layers <= 5, "ResNet: trainable_layers must be in [0, 5], got ",
           trainable_layers);
  cfg_.trainable_layers = trainable_layers;
  // torchvision: layers_to_train = ["layer4", "layer3", "layer2", "layer1", "conv1"][:k], plus
  // "bn1" when k == 5; every parameter whose name starts with none of them is frozen. The fc head
  // is not a backbone stage and stays trainable.
  static const char* order[] = {"layer4", "layer3", "layer2", "layer1", "conv1"};
  std::vector<std::string> train;
  for (int i = 0; i < trainable_layers; ++i) train.push_back(order[i]);
  if (trainable_layers == 5) train.push_back("bn1");
  train.push_back("fc");
  for (auto& [name, t] : named_parameters(true)) {
    bool keep = false;
    for (const auto& prefix : train)
      if (name.compare(0, prefix.size() + 1, prefix + ".") == 0) keep = true;
    Tensor p = t;
    p.set_requires_grad(keep);
  }
}

std::vector<int64_t> ResNet::stage_channels() const {
  const int64_t e = is_bottleneck(cfg_.depth) ? Bottleneck::expansion : BasicBlock::expansion;
  return {64 * e, 128 * e, 256 * e, 512 * e};
}

ResNet::Features ResNet::forward_features(const Tensor& x) {
  SX_CHECK(x.dim() == 4 && x.size(1) == cfg_.in_channels, "ResNet: input must be [N, ", cfg_.in_channels,
           ", H, W], got ", shape_str(x.shape()));
  Tensor h = maxpool->forward(relu->forward(bn1->forward(conv1->forward(x))));
  Features f;
  f.c2 = layer1->forward(h);
  f.c3 = layer2->forward(f.c2);
  f.c4 = layer3->forward(f.c3);
  f.c5 = layer4->forward(f.c4);
  return f;
}

Tensor ResNet::forward_pooled(const Tensor& x) {
  Tensor c5 = forward_features(x).c5;
  return avgpool->forward(c5).flatten(1);
}

Tensor ResNet::forward(const Tensor& x) {
  SX_CHECK(fc != nullptr, "ResNet: built without a classifier (num_classes = 0); use forward_features()");
  return fc->forward(forward_pooled(x));
}

std::shared_ptr<ResNet> make_resnet(const std::string& arch, ResNetConfig cfg) {
  std::string a = arch;
  if (a.rfind("resnet", 0) == 0) a = a.substr(6);
  int depth = 0;
  if (a == "18") depth = 18;
  else if (a == "34") depth = 34;
  else if (a == "50") depth = 50;
  else if (a == "101") depth = 101;
  else if (a == "152") depth = 152;
  else SX_THROW(ValueError, "make_resnet: unknown architecture '", arch, "' (resnet18, resnet34, resnet50, resnet101)");
  cfg.depth = depth;
  return std::make_shared<ResNet>(cfg);
}

int64_t torchvision_resnet_num_parameters(int depth) {
  switch (depth) {
    case 18: return 11689512;
    case 34: return 21797672;
    case 50: return 25557032;
    case 101: return 44549160;
    case 152: return 60192808;
    default: SX_THROW(ValueError, "torchvision_resnet_num_parameters: unknown depth ", depth);
  }
}

nn::StateDict adapt_resnet_state_dict(const nn::StateDict& sd, int64_t in_channels, bool drop_fc,
                                      const std::string& conv1_key) {
  nn::StateDict out;
  for (const auto& [name, t] : sd) {
    if (drop_fc && (name == "fc.weight" || name == "fc.bias")) continue;
    if (name == conv1_key && in_channels == 1 && t.dim() == 4 && t.size(1) == 3) {
      // A grey image fed as RGB (the same value in all 3 channels) gives the same conv1 output as
      // the grey image through the channel-summed kernel.
      NoGradGuard ng;
      out.set(name, sum(t, {1}, true));
      continue;
    }
    out.set(name, t);
  }
  return out;
}

}  // namespace sx::models
