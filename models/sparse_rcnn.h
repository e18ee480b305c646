// Sparse R-CNN (Sun et al. 2021, "Sparse R-CNN: End-to-End Object Detection with Learnable
// Proposals"), the detector the VinDr-SpineXR authors trained, with the authors' module structure
// and state-dict names (PeizeSun/SparseR-CNN projects/SparseRCNN/sparsercnn/detector.py, head.py),
// so their COCO checkpoint converted to safetensors loads (docs/sparse_rcnn.md):
//
//   backbone.body.*              ResNet (torchvision names; the authors' Detectron2 backbone keys are
//   backbone.fpn.*               renamed by the conversion) and FPN over C2..C5 -> P2..P5
//   init_proposal_features.weight  [N, D]  learned proposal features (nn.Embedding, N(0, 1))
//   init_proposal_boxes.weight     [N, 4]  learned proposal boxes, (cx, cy, w, h) as fractions of
//                                          the image, initialised to the whole image (0.5, 0.5, 1, 1)
//   head.head_series.{0..5}.*      six RCNNHead stages (models/sparse_rcnn_head.h)
//
// Forward: images normalised (padding zeroed again) -> backbone -> P2..P5; the proposal boxes in
// pixels of each image ((cx, cy, w, h) -> (x1, y1, x2, y2) scaled by the image's own w, h, not the
// padded size); each stage refines every proposal's box and feature; no anchors, no RPN, no NMS.
//
// Training (losses): the set criterion of models/sparse_rcnn_loss.h on every stage (deep
// supervision): Hungarian matching on the focal + L1 + GIoU cost, then the weighted losses
// loss_ce, loss_bbox, loss_giou (last stage) and loss_*_k (stages k = 0..4); the trainer sums them.
//
// Inference (detect): the last stage's sigmoid scores over all (proposal, class) pairs, the best
// detections_per_img (100) of them (a proposal can appear with several classes), no NMS (the
// one-to-one matching taught the proposals not to duplicate each other), boxes clipped to the
// image and empty ones dropped (Detectron2's detector_postprocess), then those above score_thresh
// (`--score-thresh 0` keeps all of them, as the authors' evaluation does).
//
// num_proposals and num_heads are DetectorOptions fields (checkpoint metadata det.num_proposals,
// det.num_heads); the head's sizes (SparseRcnnHeadConfig) default to the authors' and hidden_dim
// is the FPN's channels.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "models/detection_backbone.h"
#include "models/detection_model.h"
#include "models/fpn.h"
#include "models/sparse_rcnn_head.h"
#include "models/sparse_rcnn_loss.h"

namespace sx::models {

struct SparseRcnnConfig {
  DetectorOptions base;  // backbone, classes, normalisation, num_proposals, num_heads, post-processing
  SparseRcnnHeadConfig head;  // hidden_dim is set to base.fpn_channels
  SparseRcnnLossConfig loss;  // matching cost and loss weights (the authors' 2 / 5 / 2, focal 0.25 / 2)
};

// A learned table (nn.Embedding's state: "weight" [rows, cols]); the model reads the whole table.
class LearnedTable : public nn::Module {
 public:
  LearnedTable(int64_t rows, int64_t cols) : nn::Module("Embedding") {
    weight = register_parameter("weight", Tensor::zeros({rows, cols}));
  }
  Tensor weight;
};

class SparseRCNN : public DetectionModel {
 public:
  explicit SparseRCNN(const SparseRcnnConfig& cfg);

  std::map<std::string, Tensor> losses(const ImageList& images, const std::vector<ImageTargets>& targets) override;
  std::vector<Detections> detect(const ImageList& images) override;
  std::string model_name() const override { return "sparse_rcnn"; }
  const DetectorOptions& options() const override { return cfg_.base; }
  const SparseRcnnConfig& config() const { return cfg_; }

  // The stages, exposed for tests and tools.
  std::vector<Tensor> features(const ImageList& images);  // P2..P5
  Tensor initial_boxes(const ImageList& images);          // [B, N, 4] (x1, y1, x2, y2) pixels
  std::vector<SparseRcnnStage> forward_stages(const ImageList& images);
  // Inference post-processing of the last stage (see the top of this file).
  std::vector<Detections> postprocess(const SparseRcnnStage& last, const ImageList& images);

  std::shared_ptr<BackboneWithFPN> backbone;
  std::shared_ptr<LearnedTable> init_proposal_features, init_proposal_boxes;
  std::shared_ptr<DynamicHead> head;

 private:
  SparseRcnnConfig cfg_;
};

// Builds the model from shared options (detections_per_img at the shared default 300, RetinaNet's,
// becomes Sparse R-CNN's 100).
std::shared_ptr<SparseRCNN> make_sparse_rcnn(const DetectorOptions& o);
std::shared_ptr<SparseRCNN> make_sparse_rcnn(const SparseRcnnConfig& cfg);

}  // namespace sx::models
