// spinexr eval: the whole pipeline on an annotated split, side by side: the stage-1 classifier's
// metrics (AUROC with a bootstrap 95% CI, sensitivity, specificity, F1 at Youden's threshold), and
// the stage-2 detection metrics (paper protocol) of the detector alone and with the decision rule.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <numeric>
#include <sstream>

#include <nlohmann/json.hpp>

#include "io/atomic_file.h"
#include "io/dataset.h"
#include "io/json.h"
#include "tensor/errors.h"
#include "train/loop/checkpoint.h"
#include "train/app/cli/cli.h"
#include "train/app/cli/common_options.h"
#include "train/eval/det_eval.h"
#include "train/eval/metrics.h"
#include "train/eval/plot.h"
#include "train/app/predict.h"
#include "train/tasks/cls_train.h"

namespace {

using namespace sx;

std::string pct(double v) {
  char b[32];
  if (std::isnan(v)) return "      -";
  std::snprintf(b, sizeof b, "%7.2f", 100.0 * v);
  return b;
}

int run_eval(int argc, char** argv) {
  cli::Args args("eval",
                 "Evaluate the two-stage pipeline on an annotated split: stage-1 classifier metrics (AUROC with a\n"
                 "bootstrap 95% CI, sensitivity, specificity, F1, calibration error), and stage-2 detection metrics\n"
                 "with the paper's protocol for the detector alone and with the decision rule, side by side, with\n"
                 "what the rule removed (boxes and false positives per image on normal images). Writes metrics.json,\n"
                 "classifier.json, roc.png, calibration.png and pr_curves{,_rule}.png (interpolated precision\n"
                 "envelopes) into --out.");
  args.required("data", "dataset root (release or flat layout)")
      .required("cls", "stage-1 classifier checkpoint (train-cls), or several separated by commas (A,B,C): their\n"
                       "      ensemble, the mean of their logits then the sigmoid (each member's AUROC is reported too)")
      .required("det", "stage-2 detector checkpoint (train-det)")
      .option("split", "test", "split to evaluate: test | train")
      .required("out", "output folder")
      .option("c", "0.28", "classifier threshold of the decision rule")
      .option("box-thresh", "0.5", "score a box needs when p_abnormal < c")
      .option("threshold", "youden",
              "classifier operating point for sensitivity/specificity: youden (chosen on this split), val (the\n"
              "      validation Youden threshold recorded in the classifier checkpoint) or a number")
      .option("bootstrap", "10000", "bootstrap resamples for the AUROC confidence interval")
      .option("seed", "0", "bootstrap seed")
      .option("limit", "-1", "only the first N images (-1: all)")
      .option("batch", "4", "batch size");
  cli::add_run_options(args, "no progress bars");
  cli::add_precision_options(args);
  if (!args.parse(argc, argv)) return 0;
  cli::apply_threads_option(args);
  cli::apply_precision_options(args);

  io::DatasetOptions dopt;
  dopt.split = args.get("split");
  dopt.skip_bad_rows = args.get_flag("skip-bad-rows");
  dopt.allow_missing = true;  // checked next, with the list written
  const std::string out = args.get("out");
  io::Dataset ds = io::Dataset::open(args.get("data"), dopt);
  cli::check_missing_images(ds, out, args);
  std::vector<int64_t> pool(ds.size());
  std::iota(pool.begin(), pool.end(), 0);
  if (args.get_int("limit") >= 0 && static_cast<int64_t>(pool.size()) > args.get_int("limit"))
    pool.resize(args.get_int("limit"));
  std::filesystem::create_directories(out);

  eval::DecisionRule rule;
  rule.classifier_threshold = args.get_double("c");
  rule.box_threshold = args.get_double("box-thresh");
  train::PipelineConfig pc;
  pc.cls_ckpt = args.get("cls");
  pc.det_ckpt = args.get("det");
  pc.batch = static_cast<int>(args.get_int("batch"));
  pc.workers = static_cast<int>(args.get_int("workers"));
  pc.device = Device::parse(args.get("device"));
  pc.progress = !args.get_flag("quiet");
  std::vector<train::ClsPredictions> members;
  auto images = train::run_pipeline(ds, pool, pc, rule, &members);
  const train::RuleEffect effect = train::rule_effect(images, rule);

  // ---- stage 1 ----
  train::ClsPredictions cp;
  for (const auto& im : images) {
    cp.ids.push_back(im.image_id);
    cp.probs.push_back(im.p_abnormal);
    cp.labels.push_back(im.label);
  }
  double thr = -1;
  const std::string tmode = args.get("threshold");
  if (tmode == "val") {
    SX_CHECK(members.size() == 1, "--threshold val needs one classifier checkpoint (an ensemble has no validation "
             "threshold); use --threshold youden or a number");
    train::Metadata md = train::read_checkpoint_metadata(pc.cls_ckpt);
    auto it = md.find("config.val_threshold");
    SX_CHECK(it != md.end(), pc.cls_ckpt, " records no validation threshold; use --threshold youden or a number");
    thr = std::stod(it->second);
  } else if (tmode != "youden") {
    thr = std::stod(tmode);
    SX_CHECK(thr >= 0 && thr <= 1, "--threshold must be youden, val or a number in [0, 1], got ", thr);
  }
  train::ClsMetrics cm = train::compute_cls_metrics(cp, args.get_int("bootstrap"),
                                                    static_cast<uint64_t>(args.get_int("seed")), thr);
  if (tmode == "val") cm.threshold_source = "validation";
  io::Json classifier = train::cls_metrics_json(cm, {{"checkpoint", pc.cls_ckpt}, {"split", dopt.split}});
  // An ensemble: each member's own metrics beside the ensemble's (same bootstrap seed).
  const std::vector<std::string> ckpts = train::parse_cls_checkpoints(pc.cls_ckpt);
  std::vector<train::ClsMetrics> member_metrics;
  if (members.size() > 1) {
    classifier["members"] = io::Json::array();
    for (size_t i = 0; i < members.size(); ++i) {
      member_metrics.push_back(train::compute_cls_metrics(members[i], args.get_int("bootstrap"),
                                                          static_cast<uint64_t>(args.get_int("seed")), thr));
      classifier["members"].push_back(train::cls_metrics_json(
          member_metrics.back(), {{"checkpoint", ckpts[i]}, {"temperature", metrics::json_number(members[i].temperature)}}));
    }
  }
  io::write_json_atomic(out + "/classifier.json", classifier);
  train::write_calibration_png(out + "/calibration.png", cm.calibration, "stage 1, " + dopt.split + " split");
  if (members.size() > 1) {
    std::vector<train::RocEntry> curves;
    for (size_t i = 0; i < members.size(); ++i)
      curves.push_back({std::filesystem::path(ckpts[i]).filename().string(), &members[i], member_metrics[i].auroc});
    curves.push_back({"ensemble", &cp, cm.auroc});
    train::write_roc_curves_png(out + "/roc.png", curves, "Stage 1 ROC, " + dopt.split + " split");
  } else {
    metrics::RocCurve roc = metrics::roc_curve(cp.probs, cp.labels);
    char label[96];
    std::snprintf(label, sizeof label, "AUC %.3f (95%% CI %.3f-%.3f)", cm.auroc, cm.ci.lo, cm.ci.hi);
    plot::render_roc(roc.fpr, roc.tpr, label, 1.0 - cm.at_threshold.specificity, cm.at_threshold.sensitivity,
                     "Stage 1 ROC, " + dopt.split + " split")
        .save_png(out + "/roc.png");
  }

  // ---- stage 2, without and with the rule ----
  eval::DetEvalConfig cfg;
  cfg.class_names = ds.classes().class_names();
  eval::DetEvalResult all = eval::evaluate_detections(train::pipeline_evals(images, false), cfg);
  eval::DetEvalResult ruled = eval::evaluate_detections(train::pipeline_evals(images, true), cfg);
  eval::write_pr_curves_png(all, out + "/pr_curves.png", "Detector alone, IoU 0.5");
  eval::write_pr_curves_png(ruled, out + "/pr_curves_rule.png", "With the decision rule, IoU 0.5");

  io::Json js = {{"split", dopt.split},
                 {"num_images", images.size()},
                 {"classifier", classifier},
                 {"decision_rule", {{"c", rule.classifier_threshold}, {"box_threshold", rule.box_threshold}}},
                 {"rule_effect", train::rule_effect_json(effect, rule)},
                 {"detection", eval::det_eval_json(all)},
                 {"detection_with_rule", eval::det_eval_json(ruled)}};
  io::write_json_atomic(out + "/metrics.json", js);

  const auto& t = cm.at_threshold;
  std::printf("\nStage 1 (classifier%s), %lld images, %lld abnormal\n",
              members.size() > 1 ? (", ensemble of " + std::to_string(members.size())).c_str() : "",
              static_cast<long long>(cm.n),
              static_cast<long long>(cm.positives));
  std::printf("  AUROC %.2f%% (95%% CI %.2f-%.2f), threshold %s (%s): sensitivity %.2f%%, specificity %.2f%%, "
              "F1 %.2f%%\n",
              100 * cm.auroc, 100 * cm.ci.lo, 100 * cm.ci.hi, metrics::format_probability(cm.threshold).c_str(),
              cm.threshold_source.c_str(), 100 * t.sensitivity, 100 * t.specificity, 100 * t.f1);
  for (size_t i = 0; i < member_metrics.size(); ++i)
    std::printf("  member %zu %s: AUROC %.2f%% (95%% CI %.2f-%.2f), ECE %.2f%%\n", i + 1, ckpts[i].c_str(),
                100 * member_metrics[i].auroc, 100 * member_metrics[i].ci.lo, 100 * member_metrics[i].ci.hi,
                100 * member_metrics[i].calibration.ece);
  std::printf("  calibration: ECE %.2f%% (15 bins); images with p_abnormal >= c = %s: %lld of %lld normal, %lld of %lld "
              "abnormal\n",
              100 * cm.calibration.ece, metrics::format_probability(rule.classifier_threshold).c_str(),
              static_cast<long long>(effect.normal_flagged), static_cast<long long>(effect.normal_images),
              static_cast<long long>(effect.abnormal_flagged), static_cast<long long>(effect.abnormal_images));
  std::printf("\nStage 2 (detection, AP %% at IoU 0.5; paper protocol)  detector | with rule (c = %.2f)\n",
              rule.classifier_threshold);
  size_t w = 12;
  for (const auto& c : all.classes) w = std::max(w, c.name.size());
  const int t50 = all.threshold_index_50;
  for (size_t k = 0; k < all.classes.size(); ++k) {
    std::printf("  %-*s %s | %s\n", static_cast<int>(w), all.classes[k].name.c_str(),
                pct(all.classes[k].ap[t50]).c_str(), pct(ruled.classes[k].ap[t50]).c_str());
  }
  std::printf("  %-*s %s | %s\n", static_cast<int>(w), "mAP@0.5", pct(all.map50).c_str(), pct(ruled.map50).c_str());
  std::printf("  %-*s %s | %s\n", static_cast<int>(w), "VOC mAP@0.5", pct(all.map_voc50).c_str(),
              pct(ruled.map_voc50).c_str());
  std::printf("\nThe rule on normal images (every box there is a false positive): %lld boxes -> %lld kept; false "
              "positives per normal image %.2f -> %.2f (abnormal images: %lld boxes -> %lld kept)\n",
              static_cast<long long>(effect.boxes_normal), static_cast<long long>(effect.boxes_normal_kept),
              effect.fp_per_normal(), effect.fp_per_normal_kept(), static_cast<long long>(effect.boxes_abnormal),
              static_cast<long long>(effect.boxes_abnormal_kept));
  std::printf("\nwrote %s/metrics.json, classifier.json, roc.png, calibration.png, pr_curves.png, pr_curves_rule.png\n",
              out.c_str());
  return 0;
}

const cli::Registrar kRegister("eval", "evaluate both stages: classifier metrics and detection mAP with/without the rule",
                               run_eval);

}  // namespace
