// The interface the detectors (RetinaNet, Faster R-CNN, Sparse R-CNN) implement, which the trainer,
// evaluation and `predict` talk to. Its inputs and outputs (ImageList, ImageTargets, Detections) and the shared
// options come with it. Coordinate and pixel conventions: models/detections.h, models/image_list.h.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "layers/module.h"
#include "models/detections.h"
#include "models/detector_options.h"
#include "models/image_list.h"
#include "tensor/tensor.h"

namespace sx::models {

// Factories (what train/tasks/det_train.cpp calls for --model NAME):
//   models/retinanet.h    std::shared_ptr<RetinaNet>  make_retinanet(const DetectorOptions&)
//   models/faster_rcnn.h  std::shared_ptr<FasterRCNN> make_faster_rcnn(const DetectorOptions&)
//   models/sparse_rcnn.h  std::shared_ptr<SparseRCNN> make_sparse_rcnn(const DetectorOptions&)
// train/tasks/det_train.h make_detector(name, options) dispatches on the name, and
// train/app/predict.h load_detector_checkpoint(checkpoint, device) rebuilds a model from a checkpoint's metadata alone
// ("det.model" = model_name(), plus detector_options_to_metadata()).
//
// The interface the trainer (train/tasks/det_train.h), evaluation and `predict` use. A model is an
// nn::Module (parameters, state_dict with torchvision's names, train/eval, to(device)).
class DetectionModel : public nn::Module {
 public:
  explicit DetectionModel(std::string type_name) : nn::Module(std::move(type_name)) {}

  // Training losses for a batch (grad mode on, model in train mode). targets.size() == images.batch().
  // Keys are torchvision's: RetinaNet {"classification", "bbox_regression"}; Faster R-CNN
  // {"loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg"}; Sparse R-CNN
  // Detectron2's {"loss_ce", "loss_bbox", "loss_giou"} plus "_k" per earlier stage k. The trainer
  // minimises their sum. Each value is a scalar tensor on the model's device.
  virtual std::map<std::string, Tensor> losses(const ImageList& images,
                                               const std::vector<ImageTargets>& targets) = 0;
  // Inference (call under NoGradGuard with the model in eval mode): one Detections per image, in
  // the image's own coordinates (image_sizes), on the model's device.
  virtual std::vector<Detections> detect(const ImageList& images) = 0;

  // "retinanet" | "faster_rcnn" | "sparse_rcnn"
  virtual std::string model_name() const = 0;
  virtual const DetectorOptions& options() const = 0;
  int64_t num_classes() const { return options().num_classes; }

  // Optional per-stage timing for the benchmark (seconds of the last call, keyed "backbone",
  // "heads", "loss", "postprocess"; empty when the model does not record them).
  const std::map<std::string, double>& stage_seconds() const { return stage_seconds_; }
  void set_record_stage_times(bool on) { record_stage_times_ = on; }

 protected:
  bool record_stage_times_ = false;
  std::map<std::string, double> stage_seconds_;
};

}  // namespace sx::models
