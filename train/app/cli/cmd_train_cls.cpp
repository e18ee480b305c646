// spinexr train-cls: stage 1, the normal/abnormal classifier (a ResNet with one logit, BCE).
//
// The training split of the dataset is divided by study into train and validation (seeded); the
// run folder receives checkpoints (last K, last, best), metrics.json, history.csv, train.log,
// loss.png and config.json. SIGINT/SIGTERM checkpoint at the next step and exit 130/143;
// --resume continues from RUN/last.safetensors exactly where it stopped.
#include <omp.h>

#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/json.h"
#include "tensor/device.h"
#include "tensor/errors.h"
#include "train/loop/checkpoint.h"
#include "train/app/cli/cli.h"
#include "train/app/cli/common_options.h"
#include "train/app/cli/presets.h"
#include "train/tasks/cls_data.h"
#include "train/tasks/cls_train.h"

namespace {

using namespace sx;
using namespace sx::train;

int run_train_cls(int argc, char** argv) {
  cli::Args args("train-cls",
                 "Train the stage-1 classifier (normal vs abnormal radiograph): a ResNet with one output trained\n"
                 "with binary cross-entropy on the training split, validated on a held-out share of its studies.\n"
                 "Ctrl-C (or SIGTERM) saves a checkpoint at the next step and exits 130 (143); --resume continues.\n"
                 "best.safetensors is the epoch with the highest validation AUROC; ties (AUROC often reaches 1.0\n"
                 "early) go to the lower validation loss. Both are recorded in metrics.json (\"best\").");
  args.required("data", "dataset root (release or flat layout, or a `spinexr prepare` cache)")
      .option("cache", "", "read images from this `spinexr prepare` cache instead of decoding the DICOMs")
      .option("arch", "resnet18",
              "resnet18 | resnet34 | resnet50 | resnet101 | densenet121 | densenet169 | densenet201 (the\n"
              "      VinDr-SpineXR authors' classifiers: an ensemble of the three DenseNets, 224 px; see eval --cls A,B,C)")
      .option("size", "224", "input size in pixels (longest side, padded square)")
      .option("channels", "1", "input channels: 1 (grey) or 3 (grey repeated, e.g. for RGB weights)")
      .option("epochs", "10", "epochs")
      .option("batch", "32", "batch size")
      .option("lr", "0.01", "peak learning rate")
      .option("optimizer", "sgd", "sgd | adamw")
      .option("momentum", "0.9", "SGD momentum")
      .flag("nesterov", "SGD with Nesterov momentum")
      .option("weight-decay", "1e-4", "weight decay (not applied to biases and norm weights)")
      .option("schedule", "cosine", "cosine | multistep | constant")
      .option("warmup", "100", "linear warmup steps")
      .option("milestones", "0.67,0.89", "multistep: steps, or fractions of all steps, where lr drops 10x")
      .option("clip", "0", "clip gradients to this global norm (0: off)")
      .option("clip-value", "0", "clip each gradient element to [-v, v], before --clip (0: off)")
      .option("pos-weight", "1", "BCE weight of abnormal samples")
      .option("sampling", "shuffle", "shuffle | balanced (normal and abnormal equally likely)")
      .option("hflip", "0.5", "horizontal flip probability")
      .option("precise-bn", "20",
              "at each epoch end, recompute BatchNorm statistics with the current weights over this many\n"
              "      training batches before validating and checkpointing (0: keep the moving averages)")
      .option("calibrate", "none",
              "none | temperature: fit a temperature on the validation logits at each validation, store it\n"
              "      in the checkpoint; eval-cls, eval and predict then report sigmoid(logit / T)")
      .option("val-fraction", "0.1", "share of the training images (whole studies) held out for validation")
      .option("val-every", "1", "validate every N epochs (and after the last)")
      .option("ckpt-every", "0", "also checkpoint every N steps (0: at epoch ends only)")
      .option("keep-last", "3", "keep this many step checkpoints (best and last are kept anyway)")
      .option("bootstrap", "1000", "bootstrap resamples for the validation AUROC confidence interval")
      .option("nan", "stop", "non-finite loss: stop (naming the step) or skip (count; stop after 20)")
      .option("max-steps", "0", "stop after this many optimizer steps in total, with a checkpoint (0: no limit)")
      .option("device", "cpu", "cpu | cuda | cuda:N")
      .option("threads", "0", "CPU threads (0: OpenMP's default)")
      .option("workers", "2", "data loading threads")
      .option("seed", "0", "seed for initialisation, split, order and augmentation")
      .required("out", "run folder")
      .option("weights", "", "initial weights (safetensors): a torchvision ResNet state dict, fc dropped")
      .flag("resume", "continue the run in --out from its last checkpoint (give the same options as before)")
      .flag("skip-bad-rows", "skip (and count) bad annotation rows instead of stopping");
  sx::cli::add_allow_missing_option(args).flag("quiet", "no progress bar");
  sx::cli::add_precision_options(args);
  sx::cli::add_cost_probe_options(args);
  sx::cli::add_dist_options(args);
  sx::cli::add_preset_option(args);
  if (!args.parse(argc, argv)) return 0;
  sx::cli::apply_precision_options(args);
  const cli::Preset preset = cli::find_preset(args.get("preset"), "train-cls");
  std::string preset_report = cli::apply_preset(preset, args);

  if (args.get_int("threads") > 0) omp_set_num_threads(static_cast<int>(args.get_int("threads")));
  ClsDataOptions d;
  d.root = args.get("cache").empty() ? args.get("data") : args.get("cache");
  d.split = "train";
  d.val_fraction = args.get_double("val-fraction");
  d.seed = static_cast<uint64_t>(args.get_int("seed"));
  d.size = static_cast<int>(args.get_int("size"));
  d.channels = static_cast<int>(args.get_int("channels"));
  d.batch = static_cast<int>(args.get_int("batch"));
  d.workers = static_cast<int>(args.get_int("workers"));
  d.sampling = args.get("sampling");
  d.hflip = args.get_double("hflip");
  d.skip_bad_rows = args.get_flag("skip-bad-rows");
  d.allow_missing = args.get_flag("allow-missing");
  d.missing_list = args.get("out") + "/missing.txt";
  SX_CHECK(d.size >= 32, "--size must be >= 32, got ", d.size);
  SX_CHECK(d.batch >= 1, "--batch must be >= 1, got ", d.batch);

  const std::string out = args.get("out");
  const std::string arch = args.get("arch");
  check_cls_arch(arch);
  const bool resume = args.get_flag("resume");
  Metadata config = {{"arch", arch},
                     {"size", std::to_string(d.size)},
                     {"channels", std::to_string(d.channels)},
                     {"task", "cls"},
                     {"data", args.get("data")},
                     {"val_fraction", args.get("val-fraction")},
                     {"seed", args.get("seed")},
                     {"batch", std::to_string(d.batch)},
                     {"epochs", args.get("epochs")},
                     {"lr", args.get("lr")}};
  if (resume) {
    std::string last = out + "/last.safetensors";
    SX_CHECK(file_exists(last), "--resume: no checkpoint at ", last);
    Metadata md = read_checkpoint_metadata(last);
    for (const char* k : {"arch", "size", "channels", "seed", "val_fraction", "batch"}) {
      auto it = md.find(std::string("config.") + k);
      SX_CHECK(it == md.end() || it->second == config[k], "--resume: the run in ", out, " used ", k, " ", it->second,
               ", this command gives ", config[k]);
    }
  }

  ClsData data = open_cls_data(d, /*split_validation=*/true);
  cli::print_missing_note(data.missing_note, out);
  preset_report += cli::apply_preset_epochs(preset, args, static_cast<double>(data.split.train.size()));
  if (!preset_report.empty()) std::printf("%s", preset_report.c_str());
  config["epochs"] = args.get("epochs");
  for (const auto& [k, v] : cli::preset_config(preset, args)) config[k] = v;
  int64_t pos_train = 0, pos_val = 0;
  for (int64_t i : data.split.train) pos_train += data.dataset->sample(i).label;
  for (int64_t i : data.split.val) pos_val += data.dataset->sample(i).label;
  std::printf("data: %s (%s layout), %zu train images (%lld abnormal), %zu validation images (%lld abnormal)\n",
              d.root.c_str(), io::layout_name(data.dataset->layout()), data.split.train.size(),
              static_cast<long long>(pos_train), data.split.val.size(), static_cast<long long>(pos_val));
  if (!data.dataset->bad_rows().empty())
    std::printf("skipped %zu bad annotation rows\n", data.dataset->bad_rows().size());

  Device device = Device::parse(args.get("device"));
  auto group = cli::start_dist(args, device);
  const bool rank0 = group->rank() == 0;
  auto model = make_cls_model(arch, d.channels, d.seed);
  if (!args.get("weights").empty() && !resume) {
    nn::LoadReport rep = load_pretrained_backbone(args.get("weights"), *model);
    std::printf("weights: %lld tensors from %s (new classifier head)\n", static_cast<long long>(rep.loaded),
                args.get("weights").c_str());
    config["weights"] = args.get("weights");
  }
  model->to(device);
  cli::apply_sync_bn(args, *group, *model, config, "train-cls");
  std::printf("model: %s, %d channel(s), %lld parameters, on %s\n", arch.c_str(), d.channels,
              static_cast<long long>(model->num_parameters()), device.str().c_str());
  std::fflush(stdout);  // before the progress bar starts writing to stderr

  io::LoaderOptions train_options = cls_loader_options(d, true);
  cli::apply_dist(*group, train_options, config, args.get_double("lr"), "train-cls");
  LoaderClsSource train(*data.dataset, data.split.train, train_options);
  LoaderClsSource val(*data.dataset, data.split.val, cls_loader_options(d, false));

  ClsTrainConfig c;
  c.epochs = args.get_int("epochs");
  c.lr = args.get_double("lr");
  c.optimizer = args.get("optimizer");
  c.momentum = args.get_double("momentum");
  c.nesterov = args.get_flag("nesterov");
  c.weight_decay = args.get_double("weight-decay");
  c.schedule = args.get("schedule");
  c.warmup_steps = args.get_int("warmup");
  c.milestones = args.get("milestones");
  c.clip_norm = args.get_double("clip");
  c.clip_value = args.get_double("clip-value");
  c.pos_weight = args.get_double("pos-weight");
  c.val_every = args.get_int("val-every");
  c.ckpt_every = args.get_int("ckpt-every");
  c.keep_last = static_cast<int>(args.get_int("keep-last"));
  c.bootstrap = args.get_int("bootstrap");
  c.nan_policy = args.get("nan");
  c.max_steps = args.get_int("max-steps");
  c.precise_bn_batches = args.get_int("precise-bn");
  SX_CHECK(c.precise_bn_batches >= 0, "--precise-bn must be >= 0, got ", c.precise_bn_batches);
  const std::string calibrate = args.get("calibrate");
  SX_CHECK(calibrate == "none" || calibrate == "temperature", "--calibrate must be none or temperature, got '",
           calibrate, "'");
  c.calibrate_temperature = calibrate == "temperature";
  c.seed = d.seed;
  c.device = device;
  c.out_dir = out;
  c.progress = !args.get_flag("quiet");
  c.config = config;
  c.group = group;
  c.zero = static_cast<int>(args.get_int("zero"));
  cli::apply_cost_probe_options(args, c);

  if (!c.dry_run) std::filesystem::create_directories(out);
  if (!resume && !c.dry_run && rank0) {
    io::Json w = io::Json::object();
    for (const auto& [k, v] : config) w[k] = v;
    w["command"] = std::vector<std::string>(argv, argv + argc);
    io::write_json_atomic(out + "/config.json", w);
  }

  ClsTrainer trainer(*model, c);
  // Precise BN reads training images in the training order and augmentation of each epoch.
  LoaderClsSource bn_batches(*data.dataset, data.split.train, cls_loader_options(d, true));
  ClsTrainResult r = trainer.fit(train, &val, resume, &bn_batches);
  if (!rank0) return r.exit_code;  // rank 0 evaluates and reports
  if (r.dry_run) {
    std::printf("dry run: stopped after the cost probe (%lld steps); nothing written\n", static_cast<long long>(r.steps));
    return 0;
  }
  if (r.interrupted) {
    std::printf("interrupted at step %lld; continue with: spinexr train-cls ... --out %s --resume\n",
                static_cast<long long>(r.steps), out.c_str());
    return r.exit_code;
  }
  if (r.nan_skipped > 0) std::printf("skipped %lld steps with a non-finite loss\n", static_cast<long long>(r.nan_skipped));
  if (r.best_auroc >= 0)
    std::printf("done: %lld steps, best validation AUROC %.4f; checkpoints %s/best.safetensors and last.safetensors\n",
                static_cast<long long>(r.steps), r.best_auroc, out.c_str());
  else
    std::printf("done: %lld steps; checkpoint %s/last.safetensors\n", static_cast<long long>(r.steps), out.c_str());
  return 0;
}

const cli::Registrar kRegister("train-cls", "train the stage-1 normal/abnormal classifier (ResNet)", run_train_cls);

}  // namespace
