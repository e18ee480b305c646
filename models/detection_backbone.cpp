// make_detection_backbone and upgrade_torchvision_detection_keys (see detection_backbone.h).
#include "models/detection_backbone.h"

#include <algorithm>
#include <string>

namespace sx::models {

std::shared_ptr<ResNet> make_detection_backbone(const DetectorOptions& o) {
  ResNetConfig cfg;
  cfg.in_channels = o.in_channels;
  cfg.num_classes = 0;
  cfg.norm = o.norm;
  cfg.trainable_layers = o.trainable_layers;
  cfg.seed = o.seed;
  return make_resnet(o.arch, cfg);
}

nn::StateDict upgrade_torchvision_detection_keys(const nn::StateDict& sd, int64_t in_channels) {
  nn::StateDict out;
  for (const auto& [name, t] : sd) {
    std::string k = name;
    for (const char* blk : {".fpn.inner_blocks.", ".fpn.layer_blocks."}) {
      auto p = k.find(blk);
      if (p == std::string::npos) continue;
      size_t q = p + std::string(blk).size();
      size_t dot = k.find('.', q);
      if (dot == std::string::npos) continue;
      std::string rest = k.substr(dot + 1);
      if (rest == "weight" || rest == "bias") k = k.substr(0, dot) + ".0." + rest;
    }
    for (const char* head : {"head.classification_head.conv.", "head.regression_head.conv."}) {
      if (k.rfind(head, 0) != 0) continue;
      size_t q = std::string(head).size();
      size_t dot = k.find('.', q);
      if (dot == std::string::npos) continue;
      std::string idx = k.substr(q, dot - q), rest = k.substr(dot + 1);
      if ((rest == "weight" || rest == "bias") && !idx.empty() &&
          std::all_of(idx.begin(), idx.end(), ::isdigit)) {
        int i = std::stoi(idx);
        if (i % 2 == 0) k = std::string(head) + std::to_string(i / 2) + ".0." + rest;
      }
    }
    out.set(k, t);
  }
  // conv1 of the body for grey input.
  const std::string c1 = "backbone.body.conv1.weight";
  if (out.contains(c1) && in_channels != out.at(c1).size(1)) {
    nn::StateDict one;
    one.set("conv1.weight", out.at(c1));
    auto adapted = adapt_resnet_state_dict(one, in_channels);
    out.set(c1, adapted.at("conv1.weight"));
  }
  return out;
}

}  // namespace sx::models
