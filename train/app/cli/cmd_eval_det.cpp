// spinexr eval-det: evaluate a stage-2 detector checkpoint with the paper's protocol: per-class COCO
// AP at IoU 0.20, 0.25, ..., 0.50 (101-point interpolation, maxDets 100, `No finding` images kept so
// their boxes count as false positives), mAP over classes with ground truth, and VOC AP@0.5.
// Writes metrics.json, pr_curves.png and detections.csv into --out.
#include <cstdio>
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
#include "train/tasks/det_train.h"
#include "train/app/predict.h"

namespace {

using namespace sx;

int run_eval_det(int argc, char** argv) {
  cli::Args args("eval-det",
                 "Evaluate a lesion detector checkpoint on a split with the paper's protocol: per-class AP at IoU\n"
                 "0.20..0.50 (COCO 101-point, maxDets 100, normal images kept: their boxes are false positives),\n"
                 "mAP@0.5 over classes with ground truth, and VOC AP@0.5. Writes metrics.json, pr_curves.png and\n"
                 "detections.csv (image_id,lesion_type,xmin,ymin,xmax,ymax,score) into --out.");
  args.required("data", "dataset root (release or flat layout)")
      .option("cache", "", "a `spinexr prepare` cache to read instead of the DICOM files")
      .required("ckpt", "detector checkpoint (a train-det run's best.safetensors or last.safetensors)")
      .option("split", "test", "split to evaluate: test | train")
      .option("out", "", "output folder (default: <checkpoint folder>/eval-det-<split>)")
      .option("size", "0", "input size (longest side); 0: the one recorded in the checkpoint")
      .option("batch", "4", "batch size")
      .option("limit", "-1", "evaluate only the first N images (-1: all)");
  cli::add_run_options(args);
  cli::add_precision_options(args);
  if (!args.parse(argc, argv)) return 0;
  cli::apply_threads_option(args);
  cli::apply_precision_options(args);
  const std::string ckpt = args.get("ckpt");
  SX_CHECK(train::file_exists(ckpt), "no checkpoint at ", ckpt);
  const std::string split = args.get("split");
  cli::check_eval_split(split);

  io::DatasetOptions dopt;
  dopt.split = split;
  dopt.skip_bad_rows = args.get_flag("skip-bad-rows");
  dopt.allow_missing = true;  // checked next, with the list written
  const std::string out = cli::eval_out_dir(args, ckpt, "eval-det-" + split);
  io::Dataset ds = io::Dataset::open(args.get("cache").empty() ? args.get("data") : args.get("cache"), dopt);
  cli::check_missing_images(ds, out, args);

  int size = static_cast<int>(args.get_int("size"));
  int min_size = 0;  // an explicit --size resizes the longest side; the checkpoint's may resize the shortest
  if (size <= 0) {
    size = train::checkpoint_input_size(ckpt);
    min_size = train::checkpoint_min_size(ckpt);
  }

  Device device = Device::parse(args.get("device"));
  auto model = train::load_detector_checkpoint(ckpt, device);
  train::DetData data;
  data.dataset = &ds;
  data.pool.resize(ds.size());
  std::iota(data.pool.begin(), data.pool.end(), 0);
  data.loader = train::detection_loader_options(size, static_cast<int>(model->options().in_channels),
                                                static_cast<int>(args.get_int("batch")), false, 0, 1, 1, 0, 0,
                                                static_cast<int>(args.get_int("workers")), min_size);
  const std::string at = min_size > 0 ? "shortest side " + std::to_string(min_size) + " px, longest at most " + std::to_string(size)
                                     : std::to_string(size) + " px";
  std::printf("evaluating %s (%s) on %lld %s images of %s at %s, on %s\n", ckpt.c_str(), model->model_name().c_str(),
              static_cast<long long>(ds.size()), split.c_str(), ds.root().c_str(), at.c_str(), device.str().c_str());
  auto preds = train::predict_detections(*model, data, device, !args.get_flag("quiet"), args.get_int("limit"));

  eval::DetEvalConfig cfg;
  cfg.class_names = ds.classes().class_names();
  eval::DetEvalResult r = eval::evaluate_detections(train::to_image_evals(preds), cfg);
  const io::Json js = {{"checkpoint", ckpt},
                       {"split", split},
                       {"model", model->model_name()},
                       {"size", size},
                       {"min_size", min_size},
                       {"detection", eval::det_eval_json(r)}};
  io::write_json_atomic(out + "/metrics.json", js);
  eval::write_pr_curves_png(r, out + "/pr_curves.png", "Precision-recall at IoU 0.5, " + split + " split");

  std::ostringstream csv;
  csv << "image_id,lesion_type,xmin,ymin,xmax,ymax,score\n";
  char buf[160];
  for (const auto& p : preds)
    for (const auto& d : p.dets) {
      std::snprintf(buf, sizeof buf, ",%.2f,%.2f,%.2f,%.2f,%.6f\n", d.x1, d.y1, d.x2, d.y2, d.score);
      csv << io::csv_escape(p.image_id) << "," << io::csv_escape(cfg.class_names[d.label]) << buf;
    }
  io::write_file_atomic(out + "/detections.csv", csv.str());

  std::printf("%s", eval::det_eval_table(r).c_str());
  std::printf("mAP@0.5 %.4f (VOC %.4f) over %lld images (%lld normal), %lld boxes, %lld detections\n", r.map50,
              r.map_voc50, static_cast<long long>(r.num_images), static_cast<long long>(r.num_normal_images),
              static_cast<long long>(r.num_gt), static_cast<long long>(r.num_dets));
  std::printf("wrote %s/metrics.json, pr_curves.png, detections.csv\n", out.c_str());
  return 0;
}

const cli::Registrar kRegister("eval-det", "evaluate a lesion detector: per-class AP at IoU 0.20..0.50, mAP@0.5, PR curves",
                               run_eval_det);

}  // namespace
