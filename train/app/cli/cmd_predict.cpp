// spinexr predict: the paper's two-stage pipeline on DICOM files. The stage-1 classifier gives each
// radiograph its abnormal probability p, the stage-2 detector its boxes, and the decision rule keeps
// every box when p >= c and only boxes scoring >= the box threshold otherwise. Writes
// predictions.csv (the release's columns plus score), results.json (COCO-style) and one PNG per
// image with class-coloured, labelled boxes.
#include <omp.h>

#include <cstdio>
#include <filesystem>
#include <numeric>

#include "io/atomic_file.h"
#include "io/dataset.h"
#include "tensor/errors.h"
#include "train/app/cli/cli.h"
#include "train/app/cli/common_options.h"
#include "train/app/predict.h"

namespace {

using namespace sx;

int run_predict(int argc, char** argv) {
  cli::Args args("predict",
                 "Run both stages on DICOM files (a dataset split with --data, or FILE... arguments) and apply the\n"
                 "decision rule: p_abnormal >= --c keeps every box, below it only boxes scoring >= --box-thresh.\n"
                 "Writes predictions.csv (study_id,series_id,image_id,rad_id,lesion_type,xmin,ymin,xmax,ymax,score;\n"
                 "boxes in original pixels; an image without boxes gets a `No finding` row scored 1 - p_abnormal),\n"
                 "results.json (COCO-style) and <image_id>.png per image into --out.");
  args.required("cls", "stage-1 classifier checkpoint (train-cls), or several separated by commas (A,B,C): their\n"
                       "      ensemble, p_abnormal = sigmoid(mean of the members' logits)")
      .required("det", "stage-2 detector checkpoint (train-det)")
      .option("data", "", "dataset root: predict every image of --split")
      .option("split", "test", "split of --data: test | train")
      .required("out", "output folder")
      .option("c", "0.28", "classifier threshold of the decision rule")
      .option("box-thresh", "0.5", "score a box needs when p_abnormal < c")
      .flag("no-rule", "keep every detected box (detector alone)")
      .flag("no-png", "do not draw the PNGs")
      .option("max-png-side", "1024", "longest side of the drawn PNGs")
      .option("draw-thresh", "0.15", "draw only boxes scoring at least this (the CSV and JSON keep every kept box)")
      .option("limit", "-1", "only the first N images (-1: all)")
      .option("batch", "4", "batch size")
      .option("device", "cpu", "cpu | cuda | cuda:N")
      .option("threads", "0", "CPU threads (0: OpenMP's default)")
      .option("workers", "2", "data loading threads")
      .flag("quiet", "no progress bars");
  sx::cli::add_allow_missing_option(args);
  args.positional("FILE",
                  "DICOM files (instead of --data): image_id is the file name, study_id and series_id the\n"
                  "      file's StudyInstanceUID and SeriesInstanceUID",
                  /*many=*/true);
  sx::cli::add_precision_options(args);
  if (!args.parse(argc, argv)) return 0;
  sx::cli::apply_precision_options(args);
  if (args.get_int("threads") > 0) omp_set_num_threads(static_cast<int>(args.get_int("threads")));
  const auto& files = args.positionals();
  SX_CHECK(args.get("data").empty() != files.empty(), "give either --data DIR or DICOM files, not ",
           files.empty() ? "neither" : "both");

  io::Dataset ds;
  const bool from_files = !files.empty();
  if (from_files) {
    ds = train::dataset_from_files(files, io::ClassMap::vindr_default());
  } else {
    io::DatasetOptions dopt;
    dopt.split = args.get("split");
    dopt.allow_missing = true;  // checked next, with the list written
    ds = io::Dataset::open(args.get("data"), dopt);
    cli::check_missing_images(ds, args.get("out"), args);
  }
  std::vector<int64_t> pool(ds.size());
  std::iota(pool.begin(), pool.end(), 0);
  if (args.get_int("limit") >= 0 && static_cast<int64_t>(pool.size()) > args.get_int("limit"))
    pool.resize(args.get_int("limit"));

  eval::DecisionRule rule;
  rule.classifier_threshold = args.get_double("c");
  rule.box_threshold = args.get_double("box-thresh");
  rule.enabled = !args.get_flag("no-rule");
  train::PipelineConfig pc;
  pc.cls_ckpt = args.get("cls");
  pc.det_ckpt = args.get("det");
  pc.batch = static_cast<int>(args.get_int("batch"));
  pc.workers = static_cast<int>(args.get_int("workers"));
  pc.device = Device::parse(args.get("device"));
  pc.progress = !args.get_flag("quiet");

  const std::string out = args.get("out");
  std::filesystem::create_directories(out);
  std::printf("predicting %zu images on %s (rule: %s)\n", pool.size(), pc.device.str().c_str(),
              rule.enabled ? ("p >= " + args.get("c") + " keeps all, else score >= " + args.get("box-thresh")).c_str()
                           : "off");
  auto images = train::run_pipeline(ds, pool, pc, rule);
  if (from_files)
    for (auto& im : images) im.label = -1;  // no annotations
  const auto& names = ds.classes().class_names();
  io::write_file_atomic(out + "/predictions.csv", train::predictions_csv(images, names));
  io::write_file_atomic(out + "/results.json", train::coco_results_json(images, names));
  int64_t boxes = 0, flagged = 0;
  for (const auto& im : images) {
    boxes += static_cast<int64_t>(im.kept.size());
    flagged += im.p_abnormal >= rule.classifier_threshold;
    if (!args.get_flag("no-png"))
      train::write_prediction_png(ds, im, names, out + "/" + train::safe_file_name(im.image_id) + ".png",
                                  static_cast<int>(args.get_int("max-png-side")), args.get_double("draw-thresh"));
  }
  std::printf("%zu images: %lld with p_abnormal >= %.2f, %lld boxes kept\n", images.size(),
              static_cast<long long>(flagged), rule.classifier_threshold, static_cast<long long>(boxes));
  std::printf("wrote %s/predictions.csv, results.json%s\n", out.c_str(),
              args.get_flag("no-png") ? "" : " and one PNG per image");
  return 0;
}

const cli::Registrar kRegister("predict", "run both stages on DICOM files and apply the decision rule", run_predict);

}  // namespace
