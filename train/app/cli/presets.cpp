// The training presets (presets.h). Each value names its source: the authors' config file and key,
// or the Detectron2 default it inherits (detectron2/config/defaults.py), so a reader can check it.
#include "train/app/cli/presets.h"

#include <cmath>
#include <sstream>

#include "tensor/errors.h"

namespace sx::cli {

namespace {

const char* kCls = "densenet121.yaml";  // spine/configs/ (densenet169/201.yaml: the same solver)
const char* kDet = "sparsercnn.yaml";   // spine/configs/
const char* kD2 = "Detectron2 default";

Preset vindr_cls() {
  Preset p;
  p.name = "vindr";
  p.command = "train-cls";
  const std::string c = kCls, d2 = kD2;
  p.values = {
      {"size", "224", c + " MODEL.CLASSIFIER.INPUT_SIZE"},
      {"channels", "3", "their loader reads PNGs with cv2.imread (3 channels)"},
      {"batch", "32", c + " SOLVER.IMS_PER_BATCH"},
      {"lr", "0.01", c + " SOLVER.BASE_LR"},
      {"optimizer", "sgd", d2 + " (SGD)"},
      {"momentum", "0.9", d2 + " SOLVER.MOMENTUM"},
      {"weight-decay", "0.0001", d2 + " SOLVER.WEIGHT_DECAY"},
      {"schedule", "multistep", c + " SOLVER.STEPS (x0.1 each, " + d2 + " SOLVER.GAMMA)"},
      {"milestones", "0.5,0.75", c + " SOLVER.STEPS (5000, 7500) of MAX_ITER 10000"},
      {"warmup", "1000", d2 + " SOLVER.WARMUP_ITERS (linear)"},
      {"clip-value", "1.0", c + " SOLVER.CLIP_GRADIENTS.ENABLED; " + d2 + " CLIP_TYPE value, CLIP_VALUE 1.0"},
      {"hflip", "0.5", "the paper's random flip (" + d2 + " RandomFlip, p 0.5)"},
      {"bootstrap", "10000", "classification/config.py CLASSIFICATION.BOOTSTRAP_SAMPLES"},
      {"seed", "1999", c + " SEED"},
  };
  p.iterations = 10000;
  p.iterations_source = c + " SOLVER.MAX_ITER";
  p.notes = {"their classifiers are DenseNet-121/169/201 (ImageNet weights), averaged: train each with --arch "
             "densenet121|densenet169|densenet201 (--weights for ImageNet initialisation) and evaluate them together "
             "with eval --cls A,B,C"};
  return p;
}

Preset vindr_det() {
  Preset p;
  p.name = "vindr";
  p.command = "train-det";
  const std::string c = kDet, d2 = kD2;
  p.values = {
      {"min-size", "800", d2 + " INPUT.MIN_SIZE_TRAIN (800,)"},
      {"size", "1333", d2 + " INPUT.MAX_SIZE_TRAIN"},
      {"scale-min", "1", d2 + " (one MIN_SIZE_TRAIN: no scale jitter)"},
      {"scale-max", "1", d2 + " (one MIN_SIZE_TRAIN: no scale jitter)"},
      {"hflip", "0.5", "dataset_mapper.py RandomFlip (" + d2 + " p 0.5, horizontal)"},
      {"augment", "autoaugment-v2", c + " SPINE.AUTO_AUGMENT v2 (SPINE.DATA_MAPPER SpineAutoAugmentMapper)"},
      {"repeat-factor", "0.1", c + " DATALOADER.REPEAT_THRESHOLD (RepeatFactorTrainingSampler)"},
      {"normal-images", "skip", c + " DATALOADER.FILTER_EMPTY_ANNOTATIONS"},
      {"batch", "4", c + " SOLVER.IMS_PER_BATCH"},
      {"optimizer", "adamw", "sparsercnn/config.py SOLVER.OPTIMIZER"},
      {"lr", "0.001", c + " SOLVER.BASE_LR"},
      {"weight-decay", "0.0001", d2 + " SOLVER.WEIGHT_DECAY"},
      {"schedule", "multistep", c + " SOLVER.STEPS (x0.1, " + d2 + " SOLVER.GAMMA)"},
      {"milestones", "0.6", c + " SOLVER.STEPS (30000,) of MAX_ITER 50000"},
      {"warmup", "1000", d2 + " SOLVER.WARMUP_ITERS (linear)"},
      {"clip-value", "1.0", c + " SOLVER.CLIP_GRADIENTS.ENABLED; " + d2 + " CLIP_TYPE value, CLIP_VALUE 1.0"},
      {"detections", "100", d2 + " TEST.DETECTIONS_PER_IMAGE"},
      {"seed", "1999", c + " SEED"},
  };
  p.iterations = 50000;
  p.iterations_source = c + " SOLVER.MAX_ITER";
  p.notes = {"their detector is Sparse R-CNN (ResNet-50-FPN, COCO weights r50_100pro_3x_model.pth); spinexr trains "
             "--model (--model sparse_rcnn is theirs; retinanet or faster_rcnn otherwise) with their solver and data "
             "settings: pass --weights for COCO (docs/sparse_rcnn.md converts theirs) or ImageNet initialisation"};
  return p;
}

}  // namespace

std::vector<std::string> preset_names() { return {"none", "vindr"}; }

Preset find_preset(const std::string& name, const std::string& command) {
  if (name == "none") {
    Preset p;
    p.name = "none";
    p.command = command;
    return p;
  }
  if (name == "vindr" && command == "train-cls") return vindr_cls();
  if (name == "vindr" && command == "train-det") return vindr_det();
  SX_THROW(ValueError, "--preset must be none or vindr, got '", name, "'");
}

Args& add_preset_option(Args& args) {
  return args.option("preset", "none",
                     "none | vindr: the VinDr-SpineXR authors' settings (printed at start; options given on the\n"
                     "      command line win; --epochs from their iteration budget and this training set)");
}

std::string apply_preset(const Preset& p, Args& args) {
  if (p.values.empty()) return "";
  std::ostringstream os;
  os << "preset " << p.name << " (" << p.command << "):\n";
  for (const PresetValue& v : p.values) {
    const bool given = args.has(v.option);
    if (!given) args.set_default(v.option, v.value);
    os << "  --" << v.option << " " << args.get(v.option) << "  ("
       << (given ? "command line; preset " + v.value : v.source) << ")\n";
  }
  return os.str();
}

int64_t epochs_for_iterations(int64_t iterations, int64_t batch, double images_per_epoch) {
  SX_CHECK(iterations > 0 && batch > 0, "epochs_for_iterations: iterations and batch must be > 0, got ", iterations,
           " and ", batch);
  SX_CHECK(images_per_epoch >= 1, "epochs_for_iterations: the training set is empty");
  const double steps_per_epoch = std::ceil(images_per_epoch / static_cast<double>(batch));
  return std::max<int64_t>(1, static_cast<int64_t>(std::ceil(static_cast<double>(iterations) / steps_per_epoch)));
}

std::string apply_preset_epochs(const Preset& p, Args& args, double images_per_epoch) {
  std::string notes;
  for (const std::string& n : p.notes) notes += "  note: " + n + "\n";
  if (p.iterations <= 0) return notes;
  const int64_t batch = args.get_int("batch");
  const int64_t e = epochs_for_iterations(p.iterations, batch, images_per_epoch);
  std::ostringstream os;
  if (args.has("epochs")) {
    os << "  --epochs " << args.get("epochs") << "  (command line; preset " << e << ")\n";
  } else {
    args.set_default("epochs", std::to_string(e));
    os << "  --epochs " << e << "  (" << p.iterations << " iterations, " << p.iterations_source << ", x batch " << batch
       << " / " << static_cast<int64_t>(std::llround(images_per_epoch)) << " training images per epoch)\n";
  }
  return os.str() + notes;
}

std::vector<std::pair<std::string, std::string>> preset_config(const Preset& p, const Args& args) {
  std::vector<std::pair<std::string, std::string>> out;
  if (p.values.empty()) return out;
  out.push_back({"preset", p.name});
  for (const PresetValue& v : p.values) out.push_back({"preset." + v.option, args.get(v.option)});
  return out;
}

}  // namespace sx::cli
