// ResNet-18/34/50/101 (and 152) (He et al. 2015) with torchvision's structure and state-dict names, so a
// torchvision checkpoint saved with safetensors.torch.save_file(model.state_dict(), path) loads
// unchanged:
//   conv1, bn1, relu, maxpool, layer1..layer4 (each a Sequential of blocks "0", "1", ...), avgpool, fc
//   BasicBlock: conv1, bn1, conv2, bn2, [downsample.0 (1x1 conv), downsample.1 (norm)]
//   Bottleneck: conv1 (1x1), bn1, conv2 (3x3, carries the stride: "ResNet v1.5"), bn2,
//               conv3 (1x1, expansion 4), bn3, [downsample.0, downsample.1]
// Convs have no bias. Parameter counts equal torchvision's (resnet18: 11,689,512; resnet50:
// 25,557,032 with 1000 classes).
//
// Init like torchvision: conv weights kaiming_normal(fan_out, relu) i.e. N(0, 2 / (out * kh * kw)),
// norm weight 1 and bias 0, fc like torch.nn.Linear; zero_init_residual zeroes the last norm
// weight of each block. All draws come from an sx::Generator seeded by config.seed.
//
// Backbone mode: forward_features() returns C2..C5 (the outputs of layer1..layer4: strides 4, 8,
// 16, 32; channels 64..512 for BasicBlock, 256..2048 for Bottleneck). num_classes == 0 builds no fc.
// Freezing like torchvision's resnet_fpn_backbone: trainable_layers in 0..5 keeps the last k of
// [layer4, layer3, layer2, layer1, conv1(+bn1)] trainable and sets requires_grad = false on
// everything else.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "layers/layers.h"

namespace sx::models {

enum class NormKind { BatchNorm, FrozenBatchNorm };

struct ResNetConfig {
  int depth = 18;            // 18, 34, 50 or 101
  int64_t in_channels = 3;   // 1 for grey radiographs, 3 for RGB
  int64_t num_classes = 1000;  // 0: no fc (backbone only)
  NormKind norm = NormKind::BatchNorm;
  int trainable_layers = 5;  // 0..5
  bool zero_init_residual = false;
  uint64_t seed = 0;
};

class BasicBlock : public nn::Module {
 public:
  static constexpr int64_t expansion = 1;
  BasicBlock(int64_t inplanes, int64_t planes, int64_t stride, bool downsample, NormKind norm);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<nn::Conv2d> conv1, conv2;
  std::shared_ptr<nn::Module> bn1, bn2;
  std::shared_ptr<nn::Sequential> downsample;  // null when identity
};

class Bottleneck : public nn::Module {
 public:
  static constexpr int64_t expansion = 4;
  Bottleneck(int64_t inplanes, int64_t planes, int64_t stride, bool downsample, NormKind norm);
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<nn::Conv2d> conv1, conv2, conv3;
  std::shared_ptr<nn::Module> bn1, bn2, bn3;
  std::shared_ptr<nn::Sequential> downsample;
};

class ResNet : public nn::Module {
 public:
  explicit ResNet(const ResNetConfig& config);

  // x [N, in_channels, H, W] -> logits [N, num_classes] (throws when num_classes == 0).
  Tensor forward(const Tensor& x) override;
  // Global-average-pooled features [N, final_channels] (before fc).
  Tensor forward_pooled(const Tensor& x);
  struct Features {
    Tensor c2, c3, c4, c5;
  };
  Features forward_features(const Tensor& x);

  // Channels of C2..C5.
  std::vector<int64_t> stage_channels() const;
  int64_t final_channels() const { return stage_channels().back(); }
  const ResNetConfig& config() const { return cfg_; }
  // (Re)applies freezing; trainable_layers in 0..5, else ValueError.
  void set_trainable_layers(int trainable_layers);

  std::shared_ptr<nn::Conv2d> conv1;
  std::shared_ptr<nn::Module> bn1;
  std::shared_ptr<nn::ReLU> relu;
  std::shared_ptr<nn::MaxPool2d> maxpool;
  std::shared_ptr<nn::Sequential> layer1, layer2, layer3, layer4;
  std::shared_ptr<nn::AdaptiveAvgPool2d> avgpool;
  std::shared_ptr<nn::Linear> fc;  // null when num_classes == 0

 private:
  ResNetConfig cfg_;
};

// resnet("resnet18" | "resnet34" | "resnet50" | "resnet101" or "18"...), other fields from cfg.
std::shared_ptr<ResNet> make_resnet(const std::string& arch, ResNetConfig cfg = {});
// torchvision's parameter counts for the standard depth and num_classes = 1000 and 3 channels
// (for sanity checks): 18 -> 11689512, 34 -> 21797672, 50 -> 25557032, 101 -> 44549160.
int64_t torchvision_resnet_num_parameters(int depth);

// Adapts a state dict made for a 3-channel model to a model with `in_channels` input channels:
// for in_channels == 1, conv1.weight [64, 3, kh, kw] is summed over dim 1 -> [64, 1, kh, kw]
// (a grey image replicated into RGB gives the same conv1 output). Anything else is returned
// unchanged (and in_channels == 3 is a no-op). Also drops fc.weight/fc.bias when `drop_fc` (to
// fine-tune a new classifier head); the checkpoint loader calls this before load_state_dict.
nn::StateDict adapt_resnet_state_dict(const nn::StateDict& sd, int64_t in_channels,
                                      bool drop_fc = false, const std::string& conv1_key = "conv1.weight");

}  // namespace sx::models
