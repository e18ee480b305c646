// The options the detectors (RetinaNet, Faster R-CNN, Sparse R-CNN) share, and their string round trip for
// checkpoint metadata. Model-specific settings live in each model's config, which starts from these.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "models/resnet.h"

namespace sx::models {

// Options shared by the detectors. Model-specific settings live in each model's config, which
// starts from these.
struct DetectorOptions {
  std::string arch = "resnet50";  // resnet18 | resnet34 | resnet50 | resnet101
  int64_t in_channels = 3;        // 1 for grey radiographs, 3 for RGB (torchvision weights)
  int64_t num_classes = 7;
  models::NormKind norm = models::NormKind::FrozenBatchNorm;  // torchvision's detection default
  int trainable_layers = 3;       // ResNet stages left trainable (0..5), torchvision's default 3
  int64_t fpn_channels = 256;     // FPN out_channels (256 in torchvision)
  // Anchors: one tuple of sizes per FPN level, one tuple of aspect ratios (h/w) per level.
  // Empty = the model's torchvision default.
  std::vector<std::vector<double>> anchor_sizes;
  std::vector<std::vector<double>> aspect_ratios;
  // Normalisation applied inside the model (per channel; a single value broadcasts).
  std::vector<double> image_mean = {0.485, 0.456, 0.406};
  std::vector<double> image_std = {0.229, 0.224, 0.225};
  // Post-processing (torchvision's names; defaults are each model's, set by the model config).
  double score_thresh = 0.05;
  double nms_thresh = 0.5;
  int64_t detections_per_img = 300;
  uint64_t seed = 0;  // weight init
  // Sparse R-CNN only (models/sparse_rcnn.h): learned proposals and iterative heads.
  int64_t num_proposals = 100;
  int64_t num_heads = 6;
};

// String round trip of the options, for checkpoint metadata (so `predict` can rebuild a model
// from a checkpoint alone). Keys: "det.arch", "det.in_channels", ... Unknown keys are ignored;
// missing keys keep the defaults.
std::map<std::string, std::string> detector_options_to_metadata(const DetectorOptions& o);
DetectorOptions detector_options_from_metadata(const std::map<std::string, std::string>& m,
                                               DetectorOptions defaults = {});

}  // namespace sx::models
