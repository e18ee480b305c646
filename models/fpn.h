// Feature Pyramid Network (Lin et al. 2017) with torchvision's structure and state-dict names
// (torchvision.ops.FeaturePyramidNetwork, _version 2), and the backbone+FPN wrapper of
// torchvision.models.detection.backbone_utils.BackboneWithFPN.
//
//   inner_blocks.i.0   1x1 conv  C_i -> out_channels   (the lateral connection)
//   layer_blocks.i.0   3x3 conv  out -> out            (smoothing, output P_i)
//   extra_blocks.p6/p7 LastLevelP6P7: p6 = conv3x3/s2(P5 if in == out else C5), p7 = conv3x3/s2(relu(p6))
//   or LastLevelMaxPool: "pool" = max_pool2d(P_last, kernel 1, stride 2) (Faster R-CNN's P6)
//
// Top-down pathway, from the coarsest level:
//   last = inner[-1](C[-1]);  P[-1] = layer[-1](last)
//   for i = n-2 .. 0:  last = inner[i](C[i]) + upsample_nearest(last, size of C[i]);  P[i] = layer[i](last)
// Weights: kaiming_uniform(a = 1), i.e. U(-sqrt(3 / fan_in), +sqrt(3 / fan_in)); biases 0.
// Old checkpoints named "inner_blocks.i.weight" are renamed by upgrade_torchvision_detection_keys
// (models/detection_backbone.h).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "layers/layers.h"
#include "models/resnet.h"
#include "tensor/random.h"

namespace sx::models {

enum class FpnExtra { None, P6P7, MaxPool };

class FeaturePyramidNetwork : public nn::Module {
 public:
  // extra_in_channels: in_channels of LastLevelP6P7 (torchvision: 256 for RetinaNet v1, so P5 feeds
  // P6; 2048 for v2-style C5 input). Ignored for the other kinds.
  FeaturePyramidNetwork(const std::vector<int64_t>& in_channels_list, int64_t out_channels,
                        FpnExtra extra = FpnExtra::None, int64_t extra_in_channels = -1,
                        Generator* gen = nullptr);

  // features: C levels in increasing depth (decreasing resolution). Returns P levels (same count),
  // then the extra levels (P6, P7 or "pool").
  std::vector<Tensor> forward_levels(const std::vector<Tensor>& features);

  int64_t out_channels() const { return out_channels_; }
  FpnExtra extra() const { return extra_; }
  // Number of output levels: inputs + 2 (P6P7), + 1 (MaxPool) or + 0.
  int64_t num_levels() const;
  // Re-draws all conv weights as torchvision does.
  void reset_parameters(Generator& gen);

  std::shared_ptr<nn::Sequential> inner_blocks, layer_blocks;
  std::shared_ptr<nn::Module> extra_blocks;  // null for None/MaxPool (no parameters)
  std::shared_ptr<nn::Conv2d> p6, p7;        // when P6P7

 private:
  std::vector<std::shared_ptr<nn::Conv2d>> inner_, layer_;
  int64_t out_channels_;
  int64_t num_inputs_;
  FpnExtra extra_;
  bool use_p5_ = true;
};

// BackboneWithFPN: children "body" (a ResNet without fc) and "fpn". returned_layers picks the
// ResNet stages fed to the FPN (1..4 = C2..C5; RetinaNet {2, 3, 4}, Faster R-CNN {1, 2, 3, 4}).
class BackboneWithFPN : public nn::Module {
 public:
  BackboneWithFPN(std::shared_ptr<ResNet> body, const std::vector<int>& returned_layers,
                  int64_t out_channels, FpnExtra extra, int64_t extra_in_channels = -1,
                  Generator* gen = nullptr);
  std::vector<Tensor> forward_levels(const Tensor& x);
  int64_t out_channels() const { return fpn->out_channels(); }

  std::shared_ptr<ResNet> body;
  std::shared_ptr<FeaturePyramidNetwork> fpn;

 private:
  std::vector<int> returned_layers_;
};

// kaiming_uniform_(w, a) of torch.nn.init for a conv weight [out, in, kh, kw] (fan_in mode).
void kaiming_uniform_(Tensor& w, double a, Generator& gen);
// normal_(w, 0, std) and constant_(t, v), drawn/filled in place (no autograd).
void normal_(Tensor& w, double std, Generator& gen);
void constant_(Tensor& t, double v);

}  // namespace sx::models
