// spinexr eval-cls: evaluate a stage-1 classifier on a split: metrics.json (AUROC with a bootstrap
// 95% CI, Youden threshold, sensitivity, specificity, F1 ...), roc.png, and predictions.csv
// (image_id,p_abnormal,label).
#include <cstdio>
#include <sstream>

#include "io/atomic_file.h"
#include "io/json.h"
#include "tensor/device.h"
#include "tensor/errors.h"
#include "train/loop/checkpoint.h"
#include "train/app/cli/cli.h"
#include "train/app/cli/common_options.h"
#include "train/app/predict.h"
#include "train/tasks/cls_data.h"
#include "train/eval/metrics.h"
#include "train/eval/plot.h"
#include "train/tasks/cls_train.h"

namespace {

using namespace sx;
using namespace sx::train;

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string o = "\"";
  for (char c : s) o += c == '"' ? std::string("\"\"") : std::string(1, c);
  return o + "\"";
}

int run_eval_cls(int argc, char** argv) {
  cli::Args args("eval-cls",
                 "Evaluate a stage-1 classifier checkpoint on a split of the dataset: AUROC with a bootstrap 95% CI,\n"
                 "the threshold maximising Youden's J (or --threshold) and sensitivity, specificity, precision, F1\n"
                 "and accuracy there; calibration: expected calibration error (15 bins) and a reliability diagram.\n"
                 "A checkpoint trained with --calibrate temperature is applied as sigmoid(logit / T). Writes\n"
                 "metrics.json, roc.png, calibration.png and predictions.csv (image_id,p_abnormal,label).\n"
                 "Several checkpoints (--ckpt A,B,C) are evaluated as an ensemble, the mean of their logits then the\n"
                 "sigmoid (the VinDr-SpineXR authors' rule); each member's metrics go beside the ensemble's\n"
                 "(metrics.json \"members\", one ROC curve each, predictions.csv columns p_member1, ...).");
  args.required("data", "dataset root (release or flat layout, or a `spinexr prepare` cache)")
      .option("cache", "", "read images from this `spinexr prepare` cache instead of decoding the DICOMs")
      .required("ckpt", "checkpoint (a train-cls run's best.safetensors, last.safetensors or ckpt-*.safetensors),\n"
                        "      or several separated by commas (A,B,C): their ensemble")
      .option("split", "test", "split to evaluate: test | train")
      .option("out", "", "output folder (default: <checkpoint folder>/eval-<split>)")
      .option("arch", "", std::string("architecture when the checkpoint does not record it (") + kClsArchChoices + ")")
      .option("size", "", "input size when the checkpoint does not record it")
      .option("channels", "", "input channels when the checkpoint does not record it")
      .option("threshold", "youden",
              "decision threshold on p_abnormal: youden (chosen on this split), val (the Youden threshold the\n"
              "      training run chose on its validation set, stored in the checkpoint) or a number")
      .option("bootstrap", "10000", "bootstrap resamples for the AUROC confidence interval")
      .option("seed", "0", "bootstrap seed")
      .option("batch", "32", "batch size");
  cli::add_run_options(args);
  cli::add_precision_options(args);
  if (!args.parse(argc, argv)) return 0;
  cli::apply_threads_option(args);
  cli::apply_precision_options(args);

  const std::vector<std::string> ckpts = parse_cls_checkpoints(args.get("ckpt"));
  const std::string& ckpt = ckpts[0];
  Metadata md;
  auto pick = [&](const std::string& key, const std::string& path) {
    if (!args.get(key).empty()) return args.get(key);
    auto it = md.find("config." + key);
    SX_CHECK(it != md.end(), path, " does not record its ", key, "; give --", key);
    return it->second;
  };
  ClsDataOptions d;
  d.root = args.get("cache").empty() ? args.get("data") : args.get("cache");
  d.split = args.get("split");
  d.batch = static_cast<int>(args.get_int("batch"));
  d.workers = static_cast<int>(args.get_int("workers"));
  d.skip_bad_rows = args.get_flag("skip-bad-rows");
  cli::check_eval_split(d.split);

  const std::string out = cli::eval_out_dir(args, ckpt, "eval-" + d.split);
  d.allow_missing = args.get_flag("allow-missing");
  d.missing_list = out + "/missing.txt";

  Device device = Device::parse(args.get("device"));
  ClsData data = open_cls_data(d, /*split_validation=*/false);
  cli::print_missing_note(data.missing_note, out);
  std::vector<ClsPredictions> members;
  std::string arch;
  for (const std::string& path : ckpts) {
    md = read_checkpoint_metadata(path);
    const std::string a = pick("arch", path);
    d.size = std::stoi(pick("size", path));
    d.channels = std::stoi(pick("channels", path));
    auto model = make_cls_model(a, d.channels, 0);
    nn::LoadReport rep = load_model_weights(path, *model, /*strict=*/true);
    model->to(device);
    LoaderClsSource src(*data.dataset, data.split.train, cls_loader_options(d, false));
    std::printf("evaluating %s (%s, %lld tensors) on %zu %s images of %s, on %s\n", path.c_str(), a.c_str(),
                static_cast<long long>(rep.loaded), data.split.train.size(), d.split.c_str(), d.root.c_str(),
                device.str().c_str());
    std::fflush(stdout);
    const double temperature = checkpoint_temperature(path);
    if (temperature != 1.0)
      std::printf("calibration: temperature %.4g from the checkpoint (p = sigmoid(logit / T))\n", temperature);
    members.push_back(predict_cls(*model, src, device, !args.get_flag("quiet"), temperature));
    arch += (arch.empty() ? "" : "+") + a;
  }
  const ClsPredictions p = ensemble_cls_predictions(members);
  const bool ensemble = members.size() > 1;
  md = read_checkpoint_metadata(ckpt);

  double threshold = -1;
  if (args.get("threshold") == "val") {
    SX_CHECK(!ensemble, "--threshold val needs one checkpoint (an ensemble has no validation threshold); use "
             "--threshold youden or a number");
    auto it = md.find("config.val_threshold");
    SX_CHECK(it != md.end(), ckpt, " records no validation threshold (train-cls writes it after a validation)");
    threshold = std::stod(it->second);
  } else if (args.get("threshold") != "youden") {
    threshold = std::stod(args.get("threshold"));
    SX_CHECK(threshold >= 0 && threshold <= 1, "--threshold must be youden or a number in [0, 1], got ", threshold);
  }
  ClsMetrics m = compute_cls_metrics(p, args.get_int("bootstrap"), static_cast<uint64_t>(args.get_int("seed")), threshold);
  if (args.get("threshold") == "val") m.threshold_source = "validation";
  const uint64_t seed = static_cast<uint64_t>(args.get_int("seed"));
  std::vector<ClsMetrics> mm;  // the members' own metrics (an ensemble)
  io::Json js = cls_metrics_json(m, {{"checkpoint", args.get("ckpt")}, {"split", d.split}, {"data", d.root},
                                     {"arch", arch}, {"temperature", metrics::json_number(p.temperature)}});
  if (ensemble) {
    js["ensemble"] = "mean of the members' logits (each divided by its temperature), then the sigmoid";
    js["members"] = io::Json::array();
    for (size_t i = 0; i < members.size(); ++i) {
      mm.push_back(compute_cls_metrics(members[i], args.get_int("bootstrap"), seed, threshold));
      js["members"].push_back(cls_metrics_json(
          mm.back(), {{"checkpoint", ckpts[i]}, {"temperature", metrics::json_number(members[i].temperature)}}));
    }
  }
  io::write_json_atomic(out + "/metrics.json", js);
  write_calibration_png(out + "/calibration.png", m.calibration, d.split + " split (n=" + std::to_string(m.n) + ")");

  std::ostringstream csv;
  csv << "image_id,p_abnormal,label";
  for (size_t k = 0; ensemble && k < members.size(); ++k) csv << ",p_member" << k + 1;
  csv << '\n';
  csv.precision(9);
  for (size_t i = 0; i < p.probs.size(); ++i) {
    csv << csv_field(p.ids[i]) << ',' << p.probs[i] << ',' << p.labels[i];
    for (size_t k = 0; ensemble && k < members.size(); ++k) csv << ',' << members[k].probs[i];
    csv << '\n';
  }
  io::write_file_atomic(out + "/predictions.csv", csv.str());

  if (ensemble) {
    std::vector<RocEntry> curves;
    for (size_t i = 0; i < members.size(); ++i)
      curves.push_back({"member " + std::to_string(i + 1), &members[i], mm[i].auroc});
    curves.push_back({"ensemble", &p, m.auroc});
    write_roc_curves_png(out + "/roc.png", curves, "ROC, " + d.split + " split (n=" + std::to_string(m.n) + ")");
  } else {
    metrics::RocCurve roc = metrics::roc_curve(p.probs, p.labels);
    char label[128];
    std::snprintf(label, sizeof label, "%s AUC %.3f (95%% CI %.3f-%.3f)", arch.c_str(), m.auroc, m.ci.lo, m.ci.hi);
    plot::render_roc(roc.fpr, roc.tpr, label, 1.0 - m.at_threshold.specificity, m.at_threshold.sensitivity,
                     "ROC, " + d.split + " split (n=" + std::to_string(m.n) + ")")
        .save_png(out + "/roc.png");
  }
  for (size_t i = 0; i < mm.size(); ++i)
    std::printf("member %zu (%s): AUROC %.4f (95%% CI %.4f-%.4f), ECE %.4f\n", i + 1, ckpts[i].c_str(), mm[i].auroc,
                mm[i].ci.lo, mm[i].ci.hi, mm[i].calibration.ece);
  if (ensemble) std::printf("ensemble of %zu (mean logit):\n", members.size());

  double min_normal = 1, max_normal = 0;
  for (size_t i = 0; i < p.probs.size(); ++i)
    if (!p.labels[i]) {
      min_normal = std::min(min_normal, p.probs[i]);
      max_normal = std::max(max_normal, p.probs[i]);
    }
  const auto& t = m.at_threshold;
  std::printf("AUROC %.4f (95%% CI %.4f-%.4f, %lld bootstrap samples)\n", m.auroc, m.ci.lo, m.ci.hi,
              static_cast<long long>(m.ci.samples));
  std::printf("threshold %s (%s): sensitivity %.4f, specificity %.4f, precision %.4f, F1 %.4f, accuracy %.4f\n",
              metrics::format_probability(m.threshold).c_str(), m.threshold_source.c_str(), t.sensitivity, t.specificity, t.precision, t.f1, t.accuracy);
  std::printf("confusion: tp %lld, fp %lld, tn %lld, fn %lld; n %lld (%lld abnormal)\n", static_cast<long long>(t.cm.tp),
              static_cast<long long>(t.cm.fp), static_cast<long long>(t.cm.tn), static_cast<long long>(t.cm.fn),
              static_cast<long long>(m.n), static_cast<long long>(m.positives));
  std::printf("calibration: ECE %.4f (15 bins), largest bin gap %.4f; p_abnormal of normal images %s..%s\n",
              m.calibration.ece, m.calibration.max_gap, metrics::format_probability(min_normal).c_str(),
              metrics::format_probability(max_normal).c_str());
  std::printf("wrote %s/metrics.json, roc.png, calibration.png, predictions.csv\n", out.c_str());
  return 0;
}

const cli::Registrar kRegister("eval-cls", "evaluate a stage-1 classifier: AUROC (95% CI), Youden threshold, ROC", run_eval_cls);

}  // namespace
