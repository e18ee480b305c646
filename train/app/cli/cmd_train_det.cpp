// spinexr train-det: train a lesion detector (RetinaNet, Faster R-CNN or Sparse R-CNN) on a VinDr-SpineXR
// dataset.
#include <cstdio>
#include <string>
#include <utility>

#include "io/dataset.h"
#include "models/detection_model.h"
#include "train/app/cli/cli.h"
#include "train/app/cli/common_options.h"
#include "train/app/cli/det_cli_common.h"
#include "train/app/cli/presets.h"
#include "train/tasks/det_geometry.h"
#include "train/tasks/det_train.h"

namespace {

// Sparse R-CNN without a preset: the authors' optimisation (AdamW, lr 2.5e-5, gradients clipped to a
// global norm of 1.0 over the full model) instead of train-det's SGD defaults, for what the command
// line does not give; printed.
void apply_sparse_rcnn_defaults(sx::cli::Args& args) {
  std::string applied;
  for (const auto& [opt, value] : {std::pair<const char*, const char*>{"optimizer", "adamw"}, {"lr", "2.5e-5"}, {"clip", "1"}}) {
    if (args.has(opt)) continue;
    args.set_default(opt, value);
    applied += std::string(" --") + opt + " " + value;
  }
  if (!applied.empty())
    std::fprintf(stderr, "train-det: sparse_rcnn uses the authors' optimisation:%s (give the option to change it)\n",
                 applied.c_str());
}

int run_train_det(int argc, char** argv) {
  sx::cli::Args args("train-det",
                     "Train a lesion detector (7 classes) on a VinDr-SpineXR dataset. Writes checkpoints, metrics.json,\n"
                     "history.csv, train.log and loss.png into --out; validation mAP (paper protocol) each epoch on a\n"
                     "held-out part of the training split (by study).");
  args.required("data", "dataset root (release or flat layout)")
      .option("cache", "", "a `spinexr prepare` cache to read instead of the DICOM files")
      .option("model", "retinanet", "retinanet | faster_rcnn | sparse_rcnn")
      .option("num-proposals", "100", "sparse_rcnn: learned proposals (boxes and features) per image")
      .option("size", std::to_string(sx::train::kDefaultDetectorSize),
              "longest image side after resizing (with --min-size: the cap on the longest side)")
      .option("min-size", "0", "resize the shortest side to this instead, the longest capped at --size (0: off)")
      .option("epochs", "12", "epochs")
      .option("batch", "4", "images per batch")
      .option("lr", "0.01", "base learning rate (sparse_rcnn without a preset: 2.5e-5 unless given)")
      .option("optimizer", "sgd", "sgd | adamw (sparse_rcnn without a preset: adamw unless given)")
      .option("weight-decay", "0.0001", "weight decay (not on norm weights and biases)")
      .option("schedule", "cosine", "cosine | multistep | constant")
      .option("milestones", "0.67,0.89", "multistep: steps, or fractions of all steps, where lr drops 10x")
      .option("warmup", "100", "linear warm-up steps")
      .option("clip", "0", "clip gradients to this global norm (0: off; sparse_rcnn without a preset: 1 unless given)")
      .option("clip-value", "0", "clip each gradient element to [-v, v], before --clip (0: off)")
      .option("device", "cpu", "cpu | cuda | cuda:N")
      .required("out", "run folder")
      .option("weights", "", "initial weights (.safetensors): a detector or a ResNet (ImageNet) checkpoint")
      .flag("resume", "continue from OUT/last.safetensors")
      .option("repeat-factor", "0", "repeat-factor sampling threshold t (0: off; the paper uses 0.1)")
      .option("normal-images", "keep", "keep | skip: train on the images without a box too, or leave them out\n"
              "      (validation keeps them: boxes on normal images are false positives)")
      .option("augment", "flip-scale", "none | flip-scale | autoaugment-v2: training augmentation (flip-scale: --hflip\n"
              "      and --scale-min/max; autoaugment-v2: AutoAugment policy v2 after the resize, plus --hflip)")
      .option("hflip", "0.5", "horizontal flip probability")
      .option("scale-min", "0.8", "scale jitter: smallest factor on --size")
      .option("scale-max", "1.2", "scale jitter: largest factor on --size")
      .option("val-fraction", "0.1", "fraction of the training split (whole studies) held out for validation")
      .option("val-every", "1", "validate every N epochs")
      .option("workers", "2", "data loading threads")
      .option("seed", "0", "random seed (data order, augmentation, weight init)")
      .option("max-steps", "0", "stop after this many steps (0: run all epochs)")
      .option("precise-bn", "20",
              "with --norm batchnorm: at each epoch end recompute BatchNorm statistics with the current\n"
              "      weights over this many training batches before validating and checkpointing (0: off)")
      .option("ckpt-every", "0", "also checkpoint every N steps")
      .option("nan", "stop", "on a non-finite loss: stop | skip")
      .flag("allow-low-coverage", "train even when under 90% of the boxes have an anchor at IoU >= 0.5");
  sx::cli::add_allow_missing_option(args);
  sx::cli::DetectorOptionDefaults det_defaults;
  det_defaults.anchor_base = std::to_string(static_cast<int>(sx::train::kDefaultAnchorBase));
  sx::cli::add_detector_options(args, det_defaults);
  sx::cli::add_precision_options(args);
  sx::cli::add_cost_probe_options(args);
  sx::cli::add_dist_options(args);
  sx::cli::add_preset_option(args);
  if (!args.parse(argc, argv)) return 0;
  sx::cli::apply_precision_options(args);
  const sx::cli::Preset preset = sx::cli::find_preset(args.get("preset"), "train-det");
  const bool anchors = sx::train::detector_uses_anchors(args.get("model"));
  if (!anchors && preset.values.empty()) apply_sparse_rcnn_defaults(args);
  std::string preset_report = sx::cli::apply_preset(preset, args);
  const std::string normal_images = args.get("normal-images");
  SX_CHECK(normal_images == "keep" || normal_images == "skip", "--normal-images must be keep or skip, got '",
           normal_images, "'");

  const std::string root = args.get("cache").empty() ? args.get("data") : args.get("cache");
  sx::io::DatasetOptions dopt;
  dopt.split = "train";
  dopt.allow_missing = true;  // checked next, with the list written
  sx::io::Dataset ds = sx::io::Dataset::open(root, dopt);
  sx::cli::check_missing_images(ds, args.get("out"), args);
  const uint64_t seed = static_cast<uint64_t>(args.get_int("seed"));
  auto split = sx::io::split_by_study(ds, args.get_double("val-fraction"), seed);
  if (normal_images == "skip") {
    std::vector<int64_t> with_boxes;
    for (int64_t i : split.train)
      if (!ds.sample(i).boxes.empty()) with_boxes.push_back(i);
    std::fprintf(stderr, "train-det: %zu training images without a box left out (--normal-images skip)\n",
                 split.train.size() - with_boxes.size());
    split.train = std::move(with_boxes);
  }
  SX_CHECK(!split.train.empty(), "no training image left (", ds.size(), " images in ", root, ")");
  // An epoch's images: with repeat-factor sampling, rare-class images count their repeat factor.
  double epoch_images = static_cast<double>(split.train.size());
  if (args.get_double("repeat-factor") > 0) {
    epoch_images = 0;
    for (double f : sx::io::repeat_factors(ds, split.train, args.get_double("repeat-factor"))) epoch_images += f;
  }
  preset_report += sx::cli::apply_preset_epochs(preset, args, epoch_images);
  if (!preset_report.empty()) std::fprintf(stderr, "%s", preset_report.c_str());
  // The anchors must reach the training boxes (train/tasks/det_geometry.h): printed, and a stop below 90%.
  if (anchors)
    sx::train::check_anchor_coverage(ds, split.train,
                                     {args.get("model"), args.get_double("anchor-base"), static_cast<int>(args.get_int("size")),
                                      static_cast<int>(args.get_int("min-size"))},
                                     args.get_flag("allow-low-coverage"));
  else
    std::fprintf(stderr, "train-det: %s has no anchors (learned proposals): no anchor-coverage check\n",
                 args.get("model").c_str());

  sx::models::DetectorOptions o = sx::cli::detector_options_from_args(args, args.get("model"));
  o.num_proposals = args.get_int("num-proposals");
  SX_CHECK(o.num_proposals >= 1, "--num-proposals must be >= 1, got ", o.num_proposals);
  o.num_classes = ds.classes().num_classes();
  o.seed = seed;
  auto model = sx::train::make_detector(args.get("model"), o);
  if (!args.get("weights").empty() && !args.get_flag("resume")) {
    auto report = sx::cli::load_initial_detector_weights(args.get("weights"), *model);
    std::fprintf(stderr, "initial weights %s (what they lack keeps its initialisation): %s\n",
                 args.get("weights").c_str(), report.str().c_str());
  }

  const int size = static_cast<int>(args.get_int("size"));
  const int min_size = static_cast<int>(args.get_int("min-size"));
  SX_CHECK(min_size >= 0, "--min-size must be >= 0, got ", min_size);
  const int batch = static_cast<int>(args.get_int("batch"));
  const int workers = static_cast<int>(args.get_int("workers"));
  sx::train::DetData train{&ds, split.train,
                           sx::train::detection_loader_options(size, static_cast<int>(o.in_channels), batch, true,
                                                               args.get_double("hflip"), args.get_double("scale-min"),
                                                               args.get_double("scale-max"),
                                                               args.get_double("repeat-factor"), seed, workers,
                                                               min_size)};
  sx::train::set_detection_augment(train.loader, args.get("augment"), args.get_double("hflip"),
                                   args.get_double("scale-min"), args.get_double("scale-max"));
  sx::train::DetData val{&ds, split.val,
                         sx::train::detection_loader_options(size, static_cast<int>(o.in_channels), batch, false, 0,
                                                             1, 1, 0, seed, workers, min_size)};

  sx::train::DetTrainConfig cfg;
  cfg.device = sx::Device::parse(args.get("device"));
  cfg.group = sx::cli::start_dist(args, cfg.device);
  cfg.zero = static_cast<int>(args.get_int("zero"));
  cfg.epochs = args.get_int("epochs");
  cfg.lr = args.get_double("lr");
  cfg.optimizer = args.get("optimizer");
  cfg.weight_decay = args.get_double("weight-decay");
  cfg.schedule = args.get("schedule");
  cfg.milestones = args.get("milestones");
  cfg.warmup_steps = args.get_int("warmup");
  cfg.clip_norm = args.get_double("clip");
  cfg.clip_value = args.get_double("clip-value");
  cfg.val_every = args.get_int("val-every");
  cfg.ckpt_every = args.get_int("ckpt-every");
  cfg.max_steps = args.get_int("max-steps");
  cfg.precise_bn_batches = args.get_int("precise-bn");
  SX_CHECK(cfg.precise_bn_batches >= 0, "--precise-bn must be >= 0, got ", cfg.precise_bn_batches);
  cfg.nan_policy = args.get("nan");
  cfg.seed = seed;
  cfg.out_dir = args.get("out");
  cfg.class_names = ds.classes().class_names();
  cfg.config = {{"size", std::to_string(size)}, {"data", args.get("data")}, {"channels", std::to_string(o.in_channels)}};  // stored as config.*
  if (min_size > 0) cfg.config["min_size"] = std::to_string(min_size);
  cfg.config["augment"] = args.get("augment");
  for (const auto& [k, v] : sx::cli::preset_config(preset, args)) cfg.config[k] = v;
  sx::cli::apply_cost_probe_options(args, cfg);
  cfg.probe_max_scale = train.loader.transform.scale_max;
  sx::cli::apply_sync_bn(args, *cfg.group, *model, cfg.config, "train-det");
  sx::cli::apply_dist(*cfg.group, train.loader, cfg.config, cfg.lr, "train-det");
  const bool rank0 = cfg.group->rank() == 0;
  if (rank0)
    std::fprintf(stderr, "train-det: %s/%s, %zu training and %zu validation images, %s, device %s\n",
               args.get("model").c_str(), o.arch.c_str(), split.train.size(), split.val.size(),
               (min_size > 0 ? "shortest side " + std::to_string(min_size) + " px, longest at most " + std::to_string(size)
                             : std::to_string(size) + " px").c_str(),
               cfg.device.str().c_str());
  sx::train::DetTrainer trainer(*model, cfg);
  auto res = trainer.fit(train, split.val.empty() ? nullptr : &val, args.get_flag("resume"));
  if (!rank0) return res.exit_code;  // rank 0 reports
  if (res.dry_run) {
    std::printf("dry run: stopped after the cost probe (%lld steps); nothing written\n", static_cast<long long>(res.steps));
    return 0;
  }
  std::printf("%s: %lld steps in %.1f s%s; checkpoints in %s\n", res.interrupted ? "interrupted" : "done",
              static_cast<long long>(res.steps), res.seconds,
              res.best_map50 >= 0 ? (", best val mAP@0.5 " + std::to_string(res.best_map50)).c_str() : "",
              cfg.out_dir.c_str());
  return res.exit_code;
}

const sx::cli::Registrar kRegister("train-det", "train a lesion detector (RetinaNet, Faster R-CNN or Sparse R-CNN)",
                                   run_train_det);

}  // namespace
