// The detector's geometry check on a dataset: anchor coverage at the training settings, the
// search for better settings, and the guard `spinexr train-det` applies before training
// (`spinexr stats` prints the same tables). The IoU computation is models/anchor_coverage.h; this
// file only brings the dataset's boxes to the training resolution the way the loader does
// (detection_loader_options: longest side --size, padded square to a multiple of 32, or shortest
// side --min-size with the longest capped at --size; the random
// scale jitter of training is left out: coverage is measured at the nominal size).
#pragma once
#include <cstdint>
#include <array>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "io/dataset.h"
#include "models/anchor_coverage.h"

namespace sx::train {

// train-det's defaults, chosen so that the release's geometry gets >= 95% of its boxes an anchor at
// IoU 0.5 with either detector (tests/train/test_det_geometry.cpp, on the release-geometry fixture):
// torchvision's 512 px and base 32 reach about 30% there.
constexpr int kDefaultDetectorSize = 1024;
constexpr double kDefaultAnchorBase = 16;

// One image as coverage sees it: its original size and its boxes in original pixels.
struct ImageGeometry {
  int width = 0, height = 0;
  std::vector<io::Box> boxes;
};
// The images of `indices` (all when empty) whose size is known (> 0: read from the DICOM headers
// or the prepare cache's index when the dataset was opened); `unknown` counts the others.
std::vector<ImageGeometry> dataset_geometry(const io::Dataset& ds, const std::vector<int64_t>& indices = {},
                                            int64_t* unknown = nullptr);

// The boxes of an image as the loader gives them at longest side `size` (or shortest side min_size,
// the longest capped at `size`; evaluation mode: no random scale), x1 y1 x2 y2; `padded` receives
// the padded image size (h, w).
std::vector<std::array<float, 4>> resized_boxes(const ImageGeometry& im, int size,
                                                std::pair<int64_t, int64_t>* padded = nullptr, int min_size = 0);

// The settings coverage depends on.
struct CoverageSettings {
  std::string model = "retinanet";  // retinanet | faster_rcnn
  double anchor_base = 0;           // --anchor-base (0: torchvision's 32)
  int size = 1024;                  // --size: longest side after resizing (its cap with min_size)
  int min_size = 0;                 // --min-size: shortest side after resizing (0: off)
  std::string str() const;          // "retinanet --size 1024 --anchor-base 16" (+ " --min-size N")
};

// Coverage of every box of `images` at the settings.
models::AnchorCoverage anchor_coverage(const std::vector<ImageGeometry>& images, const CoverageSettings& s);

// The smallest --size of `sizes` at which some --anchor-base of `bases` reaches `target` at IoU 0.5
// (the base with the highest coverage at that size); when none does, the best pair overall
// (found = false). Sizes above the longest image side are not tried (enlarging adds no detail).
struct CoverageSuggestion {
  bool found = false;
  CoverageSettings settings;
  double at50 = 0;
};
std::vector<int> default_suggestion_sizes();     // 128, 160, 192, 224, 256, 320, ..., 512, 640, ..., 1536
std::vector<double> default_suggestion_bases();  // 8, 12, 16, 20, 24, 32
CoverageSuggestion suggest_coverage_settings(const std::vector<ImageGeometry>& images, const std::string& model,
                                             double target = 0.95, std::vector<int> sizes = {},
                                             std::vector<double> bases = {});

// A table: per level its stride, anchor sizes, the share of boxes reaching IoU 0.5 / 0.4 there and
// the share whose best anchor is there; then all levels together and the median best IoU.
std::string format_coverage(const models::AnchorCoverage& c, const CoverageSettings& s);

// The guard's one-line message when coverage at IoU 0.5 is below `min_share`: the coverage, the
// settings, and the suggestion (target 0.95) to use instead; "" when coverage is enough.
std::string low_coverage_message(const models::AnchorCoverage& c, const CoverageSettings& s,
                                 const CoverageSuggestion& better, double min_share = 0.9);

// train-det's guard: prints format_coverage of the pool's boxes to `out`, and below `min_share` at
// IoU 0.5 throws ValueError(low_coverage_message), or with `allow` prints it as a warning. Returns
// the coverage. A pool without boxes passes (nothing to cover).
models::AnchorCoverage check_anchor_coverage(const io::Dataset& ds, const std::vector<int64_t>& pool,
                                             const CoverageSettings& s, bool allow, std::FILE* out = stderr,
                                             double min_share = 0.9);

}  // namespace sx::train
