// Faster R-CNN (Ren et al. 2015) with FPN (Lin et al. 2017), torchvision's fasterrcnn_resnet50_fpn
// (v1) structure and state-dict names, so a torchvision checkpoint converted to safetensors
// (safetensors.torch.save_file(model.state_dict(), path)) loads unchanged:
//
//   backbone.body.*    ResNet-18/34/50/101 (models/resnet.h), FrozenBatchNorm by default
//   backbone.fpn.*     FPN over C2..C5 -> P2..P5 (+ "pool" = LastLevelMaxPool P6)    (models/fpn.h)
//   rpn.head.*         RPN (models/rpn.h): 3 anchors per location, sizes 32..512 on P2..P6
//   roi_heads.box_head.fc6/fc7, roi_heads.box_predictor.cls_score/bbox_pred   (models/roi_heads.h)
//
// Pipeline: images normalised with options().image_mean/std (the padding torchvision adds after
// normalising is zeroed again) -> backbone -> FPN levels -> RPN proposals -> MultiScaleRoIAlign
// over P2..P5 -> box head -> per-class boxes -> NMS. Faster R-CNN's classes have a background
// column internally; outside the model class k is label k (models/detections.h).
//
// Small-backbone variants (tests, fixtures): `returned_layers` picks the ResNet stages fed to the
// FPN (torchvision's returned_layers); with fewer stages the RoI pooling uses every stage level
// (not the "pool" level) and the anchors need one size tuple per output level.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "models/anchors.h"
#include "models/detection_backbone.h"
#include "models/detection_model.h"
#include "models/fpn.h"
#include "models/roi_heads.h"
#include "models/rpn.h"

namespace sx::models {

struct FasterRCNNConfig {
  DetectorOptions base = faster_rcnn_default_options();
  std::vector<int> returned_layers = {1, 2, 3, 4};
  RpnConfig rpn;
  RoIHeadsConfig roi;

  // DetectorOptions with Faster R-CNN's post-processing defaults (score 0.05, NMS 0.5, 100 per
  // image) and anchors ((32,), (64,), (128,), (256,), (512,)) x (0.5, 1, 2).
  static DetectorOptions faster_rcnn_default_options();
};

class FasterRCNN : public DetectionModel {
 public:
  explicit FasterRCNN(const FasterRCNNConfig& cfg);

  std::map<std::string, Tensor> losses(const ImageList& images, const std::vector<ImageTargets>& targets) override;
  std::vector<Detections> detect(const ImageList& images) override;
  std::string model_name() const override { return "faster_rcnn"; }
  const DetectorOptions& options() const override { return cfg_.base; }
  const FasterRCNNConfig& config() const { return cfg_; }

  // The stages, exposed for tests and tools: normalisation + backbone + FPN levels.
  std::vector<Tensor> features(const ImageList& images);

  std::shared_ptr<BackboneWithFPN> backbone;
  std::shared_ptr<RegionProposalNetwork> rpn;
  std::shared_ptr<RoIHeads> roi_heads;

 private:
  FasterRCNNConfig cfg_;
};

// Faster R-CNN anchors: one size per level (base_size * 2^l for l = 0 .. num_levels-1) and ratios
// (0.5, 1, 2) on every level. torchvision: base 32, 5 levels.
AnchorGenerator faster_rcnn_anchors(double base_size = 32, int64_t num_levels = 5,
                                    std::vector<double> ratios = {0.5, 1.0, 2.0});

// Builds the model from shared options (empty anchors = torchvision's; detections_per_img at the
// shared default 300, RetinaNet's, becomes Faster R-CNN's 100).
std::shared_ptr<FasterRCNN> make_faster_rcnn(const DetectorOptions& o);
std::shared_ptr<FasterRCNN> make_faster_rcnn(const FasterRCNNConfig& cfg);

}  // namespace sx::models
