// DenseNet-121/169/201 (Huang et al. 2017) with torchvision's structure and state-dict names, so a
// torchvision checkpoint saved with safetensors.torch.save_file(model.state_dict(), path) loads
// unchanged. This is the classifier the VinDr-SpineXR authors released (an ensemble of the three).
//
//   features.conv0 (7x7/2, 64), features.norm0, relu0, pool0 (maxpool 3x3/2)
//   features.denseblockB.denselayerL: norm1, relu1, conv1 (1x1, 4k), norm2, relu2, conv2 (3x3, k)
//   features.transitionB: norm, relu, conv (1x1, halves the channels), pool (avg 2x2/2)
//   features.norm5, then ReLU, global average pool, classifier (Linear)
// growth k = 32; blocks (6, 12, 24, 16) / (6, 12, 32, 32) / (6, 12, 48, 32); convs have no bias.
// Parameter counts equal torchvision's (1000 classes, 3 channels): densenet121 7,978,856;
// densenet169 14,149,480; densenet201 20,013,928.
//
// Memory. Layer l of a block reads the concatenation of the block input and the k-channel outputs
// of layers 1..l-1. Concatenating afresh for every layer (torch.cat in torchvision) stores
// O(L^2) channels per block. Here each block allocates its full output [N, c0 + L*k, H, W] once;
// every layer's new features are copied into their slice, and layer l reads the channel prefix as a
// view (dense_prefix below: no copy; its backward hands each producer its slice of the gradient).
// The layer's first BN + ReLU is one autograd node (dense_norm_relu) that keeps only its ReLU
// output, so the normalised (pre-ReLU) copy of the prefix is not kept either. What stays quadratic
// is that ReLU output, which the 1x1 conv needs for its weight gradient (torchvision's
// memory_efficient mode removes it too by recomputing the BN-ReLU-conv, which this does not).
//
// Init like torchvision: conv kaiming_normal (fan_in, relu: N(0, 2 / (in * kh * kw))), norm weight 1,
// bias 0, classifier bias 0 (weight like torch.nn.Linear); draws from an sx::Generator(config.seed).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "layers/layers.h"

namespace sx::models {

struct DenseNetConfig {
  std::vector<int64_t> block_config = {6, 12, 24, 16};  // densenet121
  int64_t growth_rate = 32;
  int64_t num_init_features = 64;
  int64_t bn_size = 4;         // the 1x1 bottleneck has bn_size * growth_rate channels
  int64_t in_channels = 3;
  int64_t num_classes = 1000;  // >= 1
  uint64_t seed = 0;
};

// The channel prefix [0, channels) of `buffer` [N, C, H, W] as a view that shares its memory, with
// a gradient edge to each of `parts`: the tensors whose values were copied, in order, into the
// buffer's first channels (their channel counts sum to `channels`). Backward gives part i the slice
// of the gradient at its channels, as cat would. The view carries its own write-version, so later
// writes into the buffer's higher channels (disjoint from it) do not invalidate saved activations;
// writing into the prefix itself afterwards is a bug this cannot detect.
Tensor dense_prefix(const Tensor& buffer, int64_t channels, const std::vector<Tensor>& parts);

// relu(bn(x)). In training mode with gradients: one node that keeps x (a view of the block
// buffer), its output and nothing else; its backward recomputes the batch statistics from x (one
// pass) and applies the ReLU mask and BatchNorm's backward. Otherwise relu(bn.forward(x)).
Tensor dense_norm_relu(nn::BatchNorm2d& bn, const Tensor& x);

class DenseLayer : public nn::Module {
 public:
  DenseLayer(int64_t in_features, int64_t growth_rate, int64_t bn_size);
  // x: the concatenated features so far [N, in_features, H, W] -> the new features [N, k, H, W].
  Tensor forward(const Tensor& x) override;
  std::shared_ptr<nn::BatchNorm2d> norm1, norm2;
  std::shared_ptr<nn::Conv2d> conv1, conv2;
};

class DenseBlock : public nn::Module {
 public:
  DenseBlock(int64_t layers, int64_t in_features, int64_t growth_rate, int64_t bn_size);
  Tensor forward(const Tensor& x) override;  // [N, in, H, W] -> [N, in + layers * k, H, W]
  int64_t out_features() const { return in_ + static_cast<int64_t>(layers_.size()) * k_; }
  std::vector<std::shared_ptr<DenseLayer>> layers_;

 private:
  int64_t in_, k_;
};

class Transition : public nn::Module {
 public:
  Transition(int64_t in_features, int64_t out_features);
  Tensor forward(const Tensor& x) override;  // BN, ReLU, 1x1 conv, 2x2/2 average pool (floor)
  std::shared_ptr<nn::BatchNorm2d> norm;
  std::shared_ptr<nn::Conv2d> conv;
};

class DenseNet : public nn::Module {
 public:
  explicit DenseNet(const DenseNetConfig& config);
  // x [N, in_channels, H, W] -> logits [N, num_classes].
  Tensor forward(const Tensor& x) override;
  // After norm5 and ReLU, globally average-pooled: [N, final_channels()].
  Tensor forward_pooled(const Tensor& x);
  int64_t final_channels() const { return final_channels_; }
  const DenseNetConfig& config() const { return cfg_; }

  std::shared_ptr<nn::Module> features;  // holds conv0 ... norm5 under torchvision's names
  std::shared_ptr<nn::Linear> classifier;

 private:
  DenseNetConfig cfg_;
  int64_t final_channels_ = 0;
  std::shared_ptr<nn::Conv2d> conv0_;
  std::shared_ptr<nn::BatchNorm2d> norm0_, norm5_;
  std::shared_ptr<nn::MaxPool2d> pool0_;
  std::vector<std::shared_ptr<DenseBlock>> blocks_;
  std::vector<std::shared_ptr<Transition>> transitions_;
};

// True for "densenet121" | "densenet169" | "densenet201".
bool is_densenet_arch(const std::string& arch);
// densenet("densenet121" | "densenet169" | "densenet201"), other fields from cfg (block_config is
// set by the name). Throws ValueError naming the choices otherwise.
std::shared_ptr<DenseNet> make_densenet(const std::string& arch, DenseNetConfig cfg = {});
// torchvision's parameter count for 1000 classes and 3 channels: 121, 169, 201.
int64_t torchvision_densenet_num_parameters(int depth);

// For a state dict made for a 3-channel model: features.conv0.weight summed over its input channels
// when in_channels == 1 (as adapt_resnet_state_dict does for conv1), classifier.* dropped when
// drop_classifier.
nn::StateDict adapt_densenet_state_dict(const nn::StateDict& sd, int64_t in_channels, bool drop_classifier);

}  // namespace sx::models
