// The detector benchmarks' one setup (bench_detectors, bench_memory): a RetinaNet or Faster R-CNN
// with torchvision's default configuration (ResNet-50-FPN, 256 FPN channels, frozen BatchNorm,
// 3 trainable stages, 3-channel input, 7 classes), a batch of random images and 4 random boxes per
// image (labels 0, 1, 4, 6), seeded, as scripts/bench_torch_detectors.py and
// scripts/memory_torch_detectors.py build the torchvision side (same shapes, not the same values).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "models/detection_model.h"
#include "tensor/ops.h"
#include "tensor/random.h"
#include "train/tasks/det_train.h"

namespace sx::bench {

struct DetectorSetup {
  std::shared_ptr<models::DetectionModel> model;
  models::ImageList images;
  std::vector<models::ImageTargets> targets;
};

inline DetectorSetup make_detector_setup(const std::string& name, int size, int64_t batch, Device dev) {
  models::DetectorOptions o;
  o.arch = "resnet50";
  o.in_channels = 3;
  o.num_classes = 7;
  o.fpn_channels = 256;
  o.trainable_layers = 3;
  DetectorSetup s;
  s.model = train::make_detector(name, o);
  s.model->to(dev);
  Generator g(1);
  s.images = models::image_list_from_batch(rand({batch, 3, size, size}, g).to(dev));
  for (int64_t i = 0; i < batch; ++i) {
    std::vector<double> b;
    for (int k = 0; k < 4; ++k) {
      double x = g.uniform() * size * 0.7, y = g.uniform() * size * 0.7;
      double w = size * (0.05 + 0.2 * g.uniform()), h = size * (0.05 + 0.2 * g.uniform());
      b.insert(b.end(), {x, y, x + w, y + h});
    }
    s.targets.push_back({Tensor::from_vector(b, {4, 4}).to(dev),
                         Tensor::from_vector({0, 1, 4, 6}, {4}, DType::Int64).to(dev)});
  }
  return s;
}

}  // namespace sx::bench
