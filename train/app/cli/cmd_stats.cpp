// spinexr stats: what a dataset's annotations look like to the detector, before training (images
// and boxes per split and class, box sizes, anchor coverage and suggested --size / --anchor-base).
// Needs no pixels: image sizes come from the DICOM headers (read without decoding), from a prepare
// cache's index, or, for the annotation CSVs alone, from --assume-size (never guessed silently).
#include <cstdio>
#include <filesystem>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "io/dataset.h"
#include "io/dicom.h"
#include "io/progress.h"
#include "tensor/errors.h"
#include "train/app/cli/cli.h"
#include "train/app/dataset_stats.h"

#include <nlohmann/json.hpp>

namespace {

// "1400x2800" -> (1400, 2800): width x height in original pixels.
std::pair<int, int> parse_assumed_size(const std::string& s) {
  int w = 0, h = 0;
  char x = 0, extra = 0;
  if (std::sscanf(s.c_str(), "%d%c%d%c", &w, &x, &h, &extra) != 3 || (x != 'x' && x != 'X') || w <= 0 || h <= 0)
    throw sx::ValueError("--assume-size must be WIDTHxHEIGHT in pixels (e.g. 1400x2800), got '" + s + "'");
  return {w, h};
}

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

// The CSV alone, every image assumed to be w x h.
sx::train::SplitGeometry assumed_geometry(const std::string& csv, const std::string& split, std::pair<int, int> wh,
                                          const sx::io::ClassMap& classes) {
  sx::train::SplitGeometry g;
  g.split = split;
  g.size_source = "assumed " + std::to_string(wh.first) + "x" + std::to_string(wh.second);
  for (const auto& a : sx::io::read_annotations(csv, classes).images) g.images.push_back({wh.first, wh.second, a.boxes});
  return g;
}

// The images present, sizes from the prepare cache's index or the DICOM headers (with a progress bar).
sx::train::SplitGeometry read_geometry(const std::string& root, const std::string& split, bool quiet) {
  sx::io::DatasetOptions o;
  o.split = split;
  o.allow_missing = true;
  o.check_boxes = false;  // sizes read below (a cache's index fills them at open)
  sx::io::Dataset ds = sx::io::Dataset::open(root, o);
  sx::train::SplitGeometry g;
  g.split = split;
  const bool cache = ds.layout() == sx::io::Layout::Cache;
  g.size_source = cache ? "sizes from the prepare cache's index" : "sizes from the DICOM headers";
  g.unknown_size = static_cast<int64_t>(ds.missing().size());
  if (!ds.missing().empty() && ds.size() == 0)
    SX_THROW(IOError, root, ": none of the ", ds.missing().size(), " images listed for ", split,
             " is there (first: ", ds.missing().front().path,
             "); for the annotation CSV alone give --assume-size WIDTHxHEIGHT");
  std::unique_ptr<sx::io::ProgressBar> bar;
  if (!cache && !quiet && ds.size() >= 1000) bar = std::make_unique<sx::io::ProgressBar>(ds.size(), split + " DICOM headers");
  for (const sx::io::Sample& s : ds.samples()) {
    int w = s.width, h = s.height;
    if (!cache) {
      try {
        const sx::io::DicomInfo info = sx::io::read_dicom_info(s.path);
        w = info.columns;
        h = info.rows;
      } catch (const sx::IOError& e) {
        std::fprintf(stderr, "stats: %s (left out)\n", e.what());
        w = h = 0;
      }
      if (bar) bar->update(1);
    }
    if (w > 0 && h > 0) g.images.push_back({w, h, s.boxes});
    else ++g.unknown_size;
  }
  if (bar) bar->finish();
  return g;
}

int run_stats(int argc, char** argv) {
  sx::cli::Args args("stats",
                     "Describe a VinDr-SpineXR dataset before training: images and boxes per split and class, the\n"
                     "normal/abnormal balance, boxes per image, box sizes (original and resized to --size), and the\n"
                     "detector's anchor coverage (share of boxes whose best anchor reaches IoU 0.5 / 0.4, per FPN\n"
                     "level) with the smallest --size (and its --anchor-base) reaching --target. Reads no pixels:\n"
                     "image sizes come from the DICOM headers, a prepare cache's index, or --assume-size.");
  args.required("data", "dataset root (release or flat layout, or a `spinexr prepare` cache)")
      .option("splits", "train,test", "comma-separated splits to describe (those without a CSV are skipped)")
      .option("model", "retinanet", "retinanet | faster_rcnn: the anchor layout to measure")
      .option("size", std::to_string(sx::train::kDefaultDetectorSize), "longest image side after resizing (train-det's --size)")
      .option("min-size", "0", "shortest side after resizing, the longest capped at --size (train-det's --min-size; 0: off)")
      .option("anchor-base", std::to_string(static_cast<int>(sx::train::kDefaultAnchorBase)),
              "smallest anchor size in px (train-det's --anchor-base; 0: torchvision's 32)")
      .option("assume-size", "",
              "WIDTHxHEIGHT: use the annotation CSVs alone, every image assumed this size in pixels\n"
              "      (no image files read; e.g. 1400x2800 for the release's typical radiograph)")
      .option("target", "0.95", "coverage at IoU 0.5 the suggestion must reach")
      .option("out", "", "also write the figures as JSON to this file")
      .option("plot", "", "also draw a histogram of the resized box sizes to this PNG")
      .flag("quiet", "no progress bar (shown when reading 1,000 headers or more)");
  if (!args.parse(argc, argv)) return 0;
  sx::train::CoverageSettings settings;
  settings.model = args.get("model");
  settings.size = static_cast<int>(args.get_int("size"));
  settings.anchor_base = args.get_double("anchor-base");
  settings.min_size = static_cast<int>(args.get_int("min-size"));
  SX_CHECK(settings.min_size >= 0, "--min-size must be >= 0, got ", settings.min_size);
  SX_CHECK(settings.size > 0, "--size must be positive, got ", settings.size);
  sx::models::detector_anchor_layout(settings.model, settings.anchor_base);  // checks --model and --anchor-base
  const double target = args.get_double("target");
  SX_CHECK(target > 0 && target <= 1, "--target must be in (0, 1], got ", target);
  const std::string root = args.get("data");
  const sx::io::ClassMap classes = sx::io::ClassMap::vindr_default();

  std::vector<sx::train::SplitGeometry> splits;
  for (const std::string& split : split_list(args.get("splits"))) {
    SX_CHECK(split == "train" || split == "test", "--splits: expected train and/or test, got '", split, "'");
    const sx::io::DatasetFiles files = sx::io::locate_dataset_files(root, split);
    if (!std::filesystem::is_regular_file(files.csv)) {
      std::fprintf(stderr, "stats: no %s annotations under %s (looked for %s), skipped\n", split.c_str(), root.c_str(),
                   files.csv.c_str());
      continue;
    }
    splits.push_back(args.get("assume-size").empty()
                         ? read_geometry(root, split, args.get_flag("quiet"))
                         : assumed_geometry(files.csv, split, parse_assumed_size(args.get("assume-size")), classes));
  }
  if (splits.empty()) SX_THROW(IOError, root, ": no annotation CSV for the splits ", args.get("splits"));

  const sx::train::DatasetStats st = sx::train::dataset_stats(splits, classes.class_names(), settings, target);
  std::fputs(sx::train::format_dataset_stats(st).c_str(), stdout);
  if (!args.get("out").empty()) {
    sx::io::write_json_atomic(args.get("out"), sx::train::dataset_stats_json(st));
    std::printf("figures written to %s\n", args.get("out").c_str());
  }
  if (!args.get("plot").empty()) {
    sx::train::box_size_histogram(splits, settings).save_png(args.get("plot"));
    std::printf("box size histogram written to %s\n", args.get("plot").c_str());
  }
  return 0;
}

const sx::cli::Registrar kRegister("stats", "describe a dataset: boxes, sizes, anchor coverage, suggested --size",
                                   run_stats);

}  // namespace
