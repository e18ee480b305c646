// spinexr demo: the whole paper pipeline on a synthetic VinDr-SpineXR, in one command.
//
// It runs the same subcommands a user would, in order, with settings small enough for a laptop CPU:
//   synth      a synthetic dataset in the release layout (DICOM + CSV)
//   train-cls  stage 1: the normal/abnormal classifier (ResNet-18, grey input)
//   train-det  stage 2: RetinaNet (ResNet-18 FPN, small anchors for small lesions)
//   eval       both stages on the test split: AUROC (bootstrap 95% CI), sensitivity, specificity, F1,
//              per-class AP and mAP@0.5 (paper protocol) with and without the decision rule
//   predict    predictions.csv, results.json and pictures of the predicted boxes on test images
// and finally prints the summary and where the pictures are.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/json.h"
#include "tensor/errors.h"
#include "train/app/cli/cli.h"
#include "train/app/cli/common_options.h"

namespace {

using Clock = std::chrono::steady_clock;

int run_command(const std::string& name, const std::vector<std::string>& args) {
  auto& reg = sx::cli::registry();
  auto it = reg.find(name);
  SX_CHECK(it != reg.end(), "demo: this build has no `", name, "` command");
  std::string line = "spinexr " + name;
  for (const auto& a : args) line += " " + a;
  std::printf("\n$ %s\n", line.c_str());
  std::fflush(stdout);
  std::vector<std::string> copy = args;
  std::vector<char*> argv;
  for (auto& a : copy) argv.push_back(a.data());
  argv.push_back(nullptr);
  int rc = it->second.run(static_cast<int>(args.size()), argv.data());
  std::fflush(stdout);
  return rc;
}

// metrics.json[section][key] of `spinexr eval`, null when absent.
sx::io::Json metric(const sx::io::Json& m, const char* section, const char* key) {
  auto s = m.find(section);
  if (s == m.end() || !s->is_object()) return nullptr;
  auto v = s->find(key);
  return v == s->end() ? sx::io::Json() : *v;
}
double number(const sx::io::Json& v) { return v.is_number() ? v.get<double>() : NAN; }

int run_demo(int argc, char** argv) {
  sx::cli::Args args("demo",
                     "The whole pipeline on a synthetic VinDr-SpineXR: generate the data, train the stage-1 classifier\n"
                     "and the stage-2 RetinaNet, evaluate both on the test split (with and without the decision rule),\n"
                     "predict, and print the summary. Everything goes into --out.");
  args.option("out", "demo-run", "output folder")
      .option("device", "cpu", "cpu | cuda | cuda:N")
      .option("style", "classic", "synthetic data: classic (fast, easy) | realistic (release-sized, subtle lesions)")
      .option("images", "640", "synthetic images in all (train + test)")
      .option("test-images", "320", "of which in the test split (320 or more: at least 20 boxes of every class)")
      .option("synth-size", "0", "synthetic image height in pixels (0: 256 for classic, 2500 nominal for realistic)")
      .option("seed", "0", "seed of the data and of training")
      .option("cls-size", "128", "classifier input size")
      .option("cls-epochs", "5", "classifier epochs")
      .option("det-size", "160", "detector input size (longest side)")
      .option("det-epochs", "11", "detector epochs")
      .option("det-batch", "4", "detector batch size")
      .option("det-lr", "0.001", "detector learning rate (AdamW)")
      .option("arch", "resnet18", "backbone of both models")
      .option("workers", "2", "data loading threads")
      .option("pictures", "12", "test images drawn with their predicted boxes")
      .flag("keep-data", "reuse OUT/data when it exists instead of generating it again");
  sx::cli::add_precision_options(args);
  if (!args.parse(argc, argv)) return 0;
  sx::cli::apply_precision_options(args);  // checks the value here, before any stage runs
  const auto t0 = Clock::now();
  const std::string out = args.get("out");
  const std::string data = out + "/data";
  const std::string dev = args.get("device");
  const std::string seed = args.get("seed");
  const std::string workers = args.get("workers");
  std::filesystem::create_directories(out);

  std::vector<std::pair<std::string, double>> times;
  // Every stage after synth runs on the device, so it gets the precision options too.
  std::vector<std::string> precision = {"--precision", args.get("precision")};
  if (args.get_flag("cudnn-benchmark")) precision.push_back("--cudnn-benchmark");
  auto stage = [&](const std::string& what, const std::string& cmd, std::vector<std::string> a) {
    if (cmd != "synth") a.insert(a.end(), precision.begin(), precision.end());
    auto ts = Clock::now();
    int rc = run_command(cmd, a);
    times.push_back({what, std::chrono::duration<double>(Clock::now() - ts).count()});
    SX_CHECK(rc == 0, "demo: `spinexr ", cmd, "` stopped with exit code ", rc);
  };

  if (!(args.get_flag("keep-data") && std::filesystem::exists(data + "/annotations/test.csv"))) {
    std::filesystem::remove_all(data);
    stage("synthetic data", "synth",
          {"--out", data, "--style", args.get("style"), "--images", args.get("images"), "--test-images",
           args.get("test-images"), "--seed", seed, "--size",
           args.get("synth-size") != "0" ? args.get("synth-size") : (args.get("style") == "classic" ? "256" : "0"),
           "--quiet"});
  }
  stage("stage 1: classifier", "train-cls",
        {"--data", data, "--arch", args.get("arch"), "--size", args.get("cls-size"), "--channels", "1", "--epochs",
         args.get("cls-epochs"), "--batch", "16", "--lr", "0.01", "--warmup", "10", "--val-fraction", "0.15",
         "--bootstrap", "200", "--device", dev, "--workers", workers, "--seed", seed, "--keep-last", "1", "--out",
         out + "/classifier"});
  // No ImageNet weights are downloaded: the detector's backbone starts from the stage-1 classifier's
  // (same ResNet, same grey input, trained on the same images), with trainable BatchNorm.
  const std::string cls_ckpt = std::filesystem::exists(out + "/classifier/best.safetensors")
                                   ? out + "/classifier/best.safetensors"
                                   : out + "/classifier/last.safetensors";
  std::vector<std::string> det_args = {
      "--data", data, "--model", "retinanet", "--arch", args.get("arch"), "--channels", "1", "--fpn-channels",
      "64", "--trainable-layers", "5", "--norm", "batchnorm", "--weights", cls_ckpt, "--anchor-base", "16",
      "--size", args.get("det-size"),
      "--epochs", args.get("det-epochs"), "--batch", args.get("det-batch"), "--optimizer", "adamw", "--lr",
      args.get("det-lr"), "--weight-decay", "0.0001",
      "--warmup", "50", "--clip", "10", "--val-fraction", "0", "--scale-min", "0.9", "--scale-max", "1.1",
      "--device", dev, "--workers", workers, "--seed", seed, "--out", out + "/detector"};
  // The realistic style's release-sized radiographs at --det-size 160 leave most lesions a few pixels
  // wide: about 20% of the boxes get an anchor at IoU 0.5 (`spinexr stats`), below train-det's 90%
  // guard. The demo keeps its small, fast setting and says so (the coverage table is printed).
  if (args.get("style") == "realistic") det_args.push_back("--allow-low-coverage");
  stage("stage 2: RetinaNet", "train-det", det_args);
  const std::string det_ckpt = out + "/detector/last.safetensors";
  stage("evaluation", "eval",
        {"--data", data, "--cls", cls_ckpt, "--det", det_ckpt, "--out", out + "/eval", "--bootstrap", "2000",
         "--device", dev, "--workers", workers, "--quiet"});
  stage("predictions", "predict",
        {"--data", data, "--cls", cls_ckpt, "--det", det_ckpt, "--out", out + "/predictions", "--limit",
         args.get("pictures"), "--device", dev, "--workers", workers, "--quiet"});

  const double total = std::chrono::duration<double>(Clock::now() - t0).count();
  const sx::io::Json metrics = sx::io::read_json_file(out + "/eval/metrics.json");
  const double auroc = number(metric(metrics, "classifier", "auroc"));
  const double map50 = number(metric(metrics, "detection", "map50"));
  const double map50_rule = number(metric(metrics, "detection_with_rule", "map50"));
  const double ece = number(metric(metrics, "classifier", "ece"));
  auto effect = [&](const char* key) { return number(metric(metrics, "rule_effect", key)); };

  std::printf("\n==================== spinexr demo: summary ====================\n");
  std::printf("time per stage:\n");
  for (const auto& [what, s] : times) std::printf("  %-22s %7.1f s\n", what.c_str(), s);
  std::printf("  %-22s %7.1f s\n", "total", total);
  std::printf("\ntest split: AUROC %.2f%%, mAP@0.5 %.2f%% (detector alone), %.2f%% (with the decision rule)\n",
              100 * auroc, 100 * map50, 100 * map50_rule);
  std::printf("decision rule (c = %.2f): normal test images flagged abnormal %.0f of %.0f; boxes on normal images "
              "%.0f -> %.0f, false positives per normal image %.2f -> %.2f; stage-1 ECE %.2f%%\n",
              effect("c"), effect("normal_flagged"), effect("normal_images"), effect("boxes_normal"),
              effect("boxes_normal_with_rule"), effect("fp_per_normal_image"), effect("fp_per_normal_image_with_rule"),
              100 * ece);
  std::printf("the demo's targets: AUROC >= 90%% %s, mAP@0.5 >= 50%% %s\n", auroc >= 0.90 ? "(met)" : "(NOT met)",
              std::max(map50, map50_rule) >= 0.50 ? "(met)" : "(NOT met)");
  std::printf("\npictures and files:\n");
  std::printf("  %s/eval/roc.png                   stage-1 ROC curve\n", out.c_str());
  std::printf("  %s/eval/calibration.png           stage-1 reliability diagram\n", out.c_str());
  std::printf("  %s/eval/pr_curves.png             precision-recall per class, detector alone\n", out.c_str());
  std::printf("  %s/eval/pr_curves_rule.png        precision-recall per class, with the decision rule\n", out.c_str());
  std::printf("  %s/predictions/*.png              predicted boxes on %s test images\n", out.c_str(),
              args.get("pictures").c_str());
  std::printf("  %s/predictions/predictions.csv    boxes in the release's CSV layout (+ score)\n", out.c_str());
  std::printf("  %s/eval/metrics.json              every number above\n", out.c_str());
  std::printf("  %s/classifier, %s/detector   checkpoints, train.log, metrics.json, loss.png\n", out.c_str(),
              out.c_str());

  sx::io::Json js = {{"seconds", total}, {"auroc", auroc}, {"map50", map50}, {"map50_with_rule", map50_rule},
                     {"ece", ece}};
  // the counts stay integers, as eval wrote them
  for (const char* key : {"normal_images", "boxes_normal", "boxes_normal_with_rule", "fp_per_normal_image",
                          "fp_per_normal_image_with_rule"})
    js[key] = metric(metrics, "rule_effect", key);
  sx::io::Json& stages = js["stages"] = sx::io::Json::object();
  for (const auto& [what, s] : times) stages[what] = s;
  sx::io::write_json_atomic(out + "/demo_summary.json", js);
  return 0;
}

const sx::cli::Registrar kRegister("demo", "the whole pipeline on synthetic data: train, evaluate, predict, summarise",
                                   run_demo);

}  // namespace
