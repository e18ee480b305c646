// Command-line glue shared by the detector commands (train-det, demo, and the evaluation/predict
// commands): the detector options, and loading initial weights (a detector checkpoint, a converted
// torchvision detector, or an ImageNet ResNet for the backbone).
#pragma once
#include <string>

#include "layers/module.h"
#include "models/detection_model.h"
#include "train/app/cli/cli.h"

namespace sx::cli {

struct DetectorOptionDefaults {
  std::string arch = "resnet50";
  std::string channels = "3";
  std::string fpn_channels = "256";
  std::string trainable_layers = "3";
  std::string norm = "frozen";
  std::string anchor_base = "0";
  std::string score_thresh = "0.05";
  std::string nms_thresh = "0.5";
  std::string detections = "100";
};

// Declares --arch --channels --fpn-channels --trainable-layers --norm --anchor-base --score-thresh
// --nms-thresh --detections (with the given defaults).
void add_detector_options(Args& args, const DetectorOptionDefaults& d = {});
// Reads them back. `model` decides the anchor layout --anchor-base produces: RetinaNet's three
// sizes per level (b, b 2^(1/3), b 2^(2/3)) x 2^level, or Faster R-CNN's one size per level.
models::DetectorOptions detector_options_from_args(const Args& args, const std::string& model = "retinanet");

// Loads initial weights non-strictly, with torchvision's old key names upgraded, conv1 folded for
// grey input, a bare ResNet state dict ("conv1.weight", ...) placed under backbone.body, its fc
// dropped, and tensors whose shape differs from the model's (e.g. a COCO head with 91 classes)
// left out and listed in the report.
nn::LoadReport load_initial_detector_weights(const std::string& path, models::DetectionModel& model);

}  // namespace sx::cli
