// The detectors' ResNet backbone from the options, and the upgrade of old torchvision detection
// checkpoints' keys to the current names.
#pragma once
#include <cstdint>
#include <memory>

#include "layers/module.h"
#include "models/detector_options.h"
#include "models/resnet.h"

namespace sx::models {

// The standard ResNet backbone for a detector from the options (no fc, norm and frozen stages
// applied).
std::shared_ptr<ResNet> make_detection_backbone(const DetectorOptions& o);

// Renames old-format torchvision keys to the current ones (in place on a copy):
//   "*.fpn.inner_blocks.N.weight" -> "*.fpn.inner_blocks.N.0.weight" (also layer_blocks, bias)
//   "head.*_head.conv.{2i}.weight" -> "head.*_head.conv.{i}.0.weight" (RetinaNet v1 checkpoints)
// and adapts backbone.body.conv1.weight to in_channels (models/resnet.h adapt_resnet_state_dict).
nn::StateDict upgrade_torchvision_detection_keys(const nn::StateDict& sd, int64_t in_channels);

}  // namespace sx::models
