// What `spinexr stats` reports about a dataset before training: images and boxes per split and
// class, the normal/abnormal balance, boxes per abnormal image, box sizes (percentiles) in original
// pixels and after resizing to the training size, and the anchor coverage of the detector at the
// chosen settings with a suggested --size / --anchor-base (train/tasks/det_geometry.h, the same
// computation train-det's guard uses). Only geometry: image sizes and boxes, no pixels.
// The command (train/app/cli/cmd_stats.cpp) gathers the geometry (DICOM headers, a prepare cache's
// index, or an assumed size) and prints / writes what this file computes.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/json.h"
#include "train/eval/plot.h"
#include "train/tasks/det_geometry.h"

namespace sx::train {

// One split's images as stats sees them.
struct SplitGeometry {
  std::string split;                 // "train" | "test"
  std::vector<ImageGeometry> images;  // known size only
  int64_t unknown_size = 0;          // images left out: size unknown (e.g. unreadable header)
  std::string size_source;           // "DICOM headers", "prepare cache index", "assumed 1400x2800"
};

// Percentiles 5/25/50/75/95 of box widths and heights.
struct SizePercentiles {
  std::vector<double> width, height;  // 5 values each (empty without boxes)
};
extern const double kStatsPercentiles[5];  // 5, 25, 50, 75, 95

struct SplitStats {
  std::string split, size_source;
  int64_t images = 0, normal = 0, abnormal = 0, boxes = 0, unknown_size = 0;
  std::vector<int64_t> class_boxes, class_images;  // per detection class
  double boxes_per_abnormal_mean = 0;
  int64_t boxes_per_abnormal_max = 0;
  int image_width_min = 0, image_width_max = 0, image_height_min = 0, image_height_max = 0;
  SizePercentiles original, resized;  // resized: to the settings' size, as the loader does
  models::AnchorCoverage coverage;    // at the settings
};

struct DatasetStats {
  CoverageSettings settings;
  std::vector<std::string> class_names;
  std::vector<SplitStats> splits;
  double target = 0.95;
  std::string suggestion_split;  // the split the suggestion was computed on (train when present)
  CoverageSuggestion suggestion;
};

DatasetStats dataset_stats(const std::vector<SplitGeometry>& splits, const std::vector<std::string>& class_names,
                           const CoverageSettings& settings, double target = 0.95);
// Readable tables (stdout).
std::string format_dataset_stats(const DatasetStats& s);
// The same figures as JSON (shares as fractions in [0, 1], sizes in pixels).
io::Json dataset_stats_json(const DatasetStats& s);
// Histogram of box widths and heights after resizing to `size` (log2 bins, quarter-octave), with
// the smallest and largest anchor sizes of the settings marked.
plot::Canvas box_size_histogram(const std::vector<SplitGeometry>& splits, const CoverageSettings& settings);

}  // namespace sx::train
