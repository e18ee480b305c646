// Shared by the model tests: a small grey-input detector configuration.
#pragma once
#include "models/detection_model.h"
#include "models/retinanet.h"

namespace sx::models::test {

// ResNet-18-FPN (32 channels), 1 grey channel, 3 classes, small anchors (base 8), all stages
// trainable: fast enough for tests on 64-128 px images.
inline DetectorOptions tiny_options() {
  DetectorOptions o;
  o.arch = "resnet18";
  o.in_channels = 1;
  o.num_classes = 3;
  o.fpn_channels = 32;
  o.trainable_layers = 5;
  o.anchor_sizes = retinanet_anchors(8).sizes;
  o.image_mean = {0.5};
  o.image_std = {0.25};
  o.detections_per_img = 100;
  o.seed = 3;
  return o;
}

}  // namespace sx::models::test
