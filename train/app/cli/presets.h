// Named settings for the training commands: `--preset NAME` gives a set of option values that
// replace the command's defaults; an option given on the command line wins over the preset. The
// command prints the whole preset at start (each value with where it comes from, and the values the
// command line overrode) and records it in the run's config.
//
// `vindr` is the VinDr-SpineXR authors' training setup (their public repository
// vinbigdata-medical/vindr-spinexr, spine/configs/densenet121.yaml and sparsercnn.yaml, on top of
// Detectron2's defaults), turned into spinexr's options:
//   train-cls  224 px, batch 32, base lr 0.01, SGD momentum 0.9, weight decay 1e-4, lr x0.1 at 50%
//              and 75% of the run (STEPS 5000, 7500 of MAX_ITER 10000), 1,000 linear warm-up steps,
//              gradients clipped by value at 1.0 (CLIP_GRADIENTS with Detectron2's default type and
//              value), horizontal flip, 3-channel input (they read PNGs with cv2.imread), 10,000
//              bootstrap samples, seed 1999; 10,000 iterations turned into epochs.
//   train-det  Detectron2's default resizing (shortest side 800, longest at most 1,333, no scale
//              jitter), horizontal flip, AutoAugment policy v2, repeat-factor sampling 0.1, images without a box left out
//              of training (FILTER_EMPTY_ANNOTATIONS), batch 4, AdamW, base lr 0.001, weight decay
//              1e-4, lr x0.1 at 60% (STEPS 30000 of MAX_ITER 50000), 1,000 warm-up steps, gradients
//              clipped by value at 1.0 (their config has no _BASE_: CLIP_GRADIENTS takes Detectron2's
//              default type and value), seed 1999; 50,000 iterations turned into epochs.
// What the preset cannot give: their detector (Sparse R-CNN is not in spinexr yet; the preset trains
// --model as chosen), the choice of classifier (the preset trains --arch: their DenseNet-121/169/201
// are --arch densenet121|densenet169|densenet201, averaged with --cls A,B,C) and their ImageNet/COCO
// weights (pass --weights).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "train/app/cli/cli.h"

namespace sx::cli {

struct PresetValue {
  std::string option;  // without the leading "--"
  std::string value;
  std::string source;  // where the value comes from ("densenet121.yaml SOLVER.BASE_LR")
};

struct Preset {
  std::string name, command;
  std::vector<PresetValue> values;
  int64_t iterations = 0;  // the published iteration budget (SOLVER.MAX_ITER), turned into --epochs
  std::string iterations_source;
  std::vector<std::string> notes;  // what the preset cannot give, printed with it
};

// The presets of a command ("train-cls", "train-det"), "none" first.
std::vector<std::string> preset_names();
// ValueError naming the known presets for an unknown name.
Preset find_preset(const std::string& name, const std::string& command);

// Declares --preset (default none).
Args& add_preset_option(Args& args);
// After parse(): the preset's values become the defaults (an option given explicitly keeps its
// value). Returns the report printed at start: one line per value ("--lr 0.01  (densenet121.yaml
// SOLVER.BASE_LR)", or "--lr 0.02  (command line; preset 0.01)"). Empty for "none".
std::string apply_preset(const Preset& p, Args& args);

// The epochs that give at least `iterations` optimizer steps of `batch` images when an epoch holds
// `images_per_epoch` images: ceil(iterations / ceil(images_per_epoch / batch)), at least 1.
int64_t epochs_for_iterations(int64_t iterations, int64_t batch, double images_per_epoch);
// After the training set is known: --epochs from the iteration budget, unless --epochs was given.
// Returns the rest of the report: the --epochs line and the preset's notes ("" for none).
std::string apply_preset_epochs(const Preset& p, Args& args, double images_per_epoch);

// The preset's values as run-config entries ("preset" = name, "preset.<option>" = value).
std::vector<std::pair<std::string, std::string>> preset_config(const Preset& p, const Args& args);

}  // namespace sx::cli
