#include "train/app/cli/det_cli_common.h"


#include "models/anchor_coverage.h"
#include "models/detection_backbone.h"
#include "train/loop/checkpoint.h"
#include "train/tasks/det_train.h"

namespace sx::cli {

void add_detector_options(Args& args, const DetectorOptionDefaults& d) {
  args.option("arch", d.arch, "backbone: resnet18 | resnet34 | resnet50 | resnet101")
      .option("channels", d.channels, "input channels: 1 (grey) or 3 (grey repeated; torchvision weights)")
      .option("fpn-channels", d.fpn_channels, "FPN channels (torchvision: 256)")
      .option("trainable-layers", d.trainable_layers, "ResNet stages left trainable, 0..5 (torchvision: 3)")
      .option("norm", d.norm, "backbone norm: frozen | batchnorm")
      .option("anchor-base", d.anchor_base, "smallest anchor size in px at P3/P2 (0: torchvision's 32)")
      .option("score-thresh", d.score_thresh, "post-processing: minimum score")
      .option("nms-thresh", d.nms_thresh, "post-processing: class-wise NMS IoU")
      .option("detections", d.detections, "post-processing: detections per image");
}

models::DetectorOptions detector_options_from_args(const Args& args, const std::string& model) {
  models::DetectorOptions o;
  o.arch = args.get("arch");
  o.in_channels = args.get_int("channels");
  SX_CHECK(o.in_channels == 1 || o.in_channels == 3, "--channels must be 1 or 3, got ", o.in_channels);
  o.fpn_channels = args.get_int("fpn-channels");
  o.trainable_layers = static_cast<int>(args.get_int("trainable-layers"));
  const std::string norm = args.get("norm");
  if (norm == "frozen") o.norm = models::NormKind::FrozenBatchNorm;
  else if (norm == "batchnorm" || norm == "bn") o.norm = models::NormKind::BatchNorm;
  else SX_THROW(ValueError, "--norm must be frozen or batchnorm, got '", norm, "'");
  const double base = args.get_double("anchor-base");
  SX_CHECK(base >= 0, "--anchor-base must be >= 0, got ", base);
  if (base > 0 && train::detector_uses_anchors(model))
    o.anchor_sizes = models::detector_anchor_layout(model, base).anchors.sizes;  // per model
  o.score_thresh = args.get_double("score-thresh");
  o.nms_thresh = args.get_double("nms-thresh");
  o.detections_per_img = args.get_int("detections");
  if (o.in_channels == 1) {  // the average of ImageNet's statistics
    o.image_mean = {0.449};
    o.image_std = {0.226};
  }
  return o;
}

nn::LoadReport load_initial_detector_weights(const std::string& path, models::DetectionModel& model) {
  const nn::StateDict mine = model.state_dict();
  const int64_t in_ch = model.options().in_channels;
  auto adapt = [&](const nn::StateDict& sd) {
    // A bare ResNet (ImageNet classifier) goes under backbone.body.
    bool bare = sd.contains("conv1.weight") && !sd.contains("backbone.body.conv1.weight");
    nn::StateDict placed;
    for (const auto& [k, t] : sd) {
      if (bare) {
        if (k.rfind("fc.", 0) == 0) continue;
        placed.set("backbone.body." + k, t);
      } else {
        placed.set(k, t);
      }
    }
    nn::StateDict up = models::upgrade_torchvision_detection_keys(placed, in_ch);
    nn::StateDict out;
    for (const auto& [k, t] : up) {
      if (mine.contains(k) && mine.at(k).shape() != t.shape()) continue;  // reported as missing
      out.set(k, t);
    }
    return out;
  };
  return train::load_model_weights(path, model, false, adapt);
}

}  // namespace sx::cli
