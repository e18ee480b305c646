// The detector's geometry check: see det_geometry.h.
#include "train/tasks/det_geometry.h"

#include <cmath>
#include <algorithm>
#include <map>
#include <utility>

#include "io/transforms.h"
#include "train/eval/text.h"
#include "train/tasks/det_train.h"

namespace sx::train {

namespace {

std::string num(double v) {  // 16, 12.5
  return v == std::floor(v) ? std::to_string(static_cast<long long>(v)) : strf("%g", v);
}

}  // namespace

std::vector<ImageGeometry> dataset_geometry(const io::Dataset& ds, const std::vector<int64_t>& indices,
                                            int64_t* unknown) {
  std::vector<ImageGeometry> out;
  int64_t n_unknown = 0;
  auto add = [&](const io::Sample& s) {
    if (s.width <= 0 || s.height <= 0) {
      ++n_unknown;
      return;
    }
    out.push_back({s.width, s.height, s.boxes});
  };
  if (indices.empty()) {
    for (const io::Sample& s : ds.samples()) add(s);
  } else {
    for (int64_t i : indices) add(ds.sample(i));
  }
  if (unknown) *unknown = n_unknown;
  return out;
}

std::string CoverageSettings::str() const {
  return model + " --size " + std::to_string(size) + " --anchor-base " + num(anchor_base > 0 ? anchor_base : 32) +
         (min_size > 0 ? " --min-size " + std::to_string(min_size) : std::string());
}

std::vector<std::array<float, 4>> resized_boxes(const ImageGeometry& im, int size, std::pair<int64_t, int64_t>* padded,
                                                int min_size) {
  SX_CHECK(size > 0, "--size must be positive, got ", size);
  SX_CHECK(min_size >= 0, "--min-size must be >= 0, got ", min_size);
  // The loader's resize and padding (evaluation mode: no random scale).
  const io::TransformOptions t = detection_loader_options(size, 1, 1, false, 0, 1, 1, 0, 0, 0, min_size).transform;
  const io::ResizedGeometry g = io::resized_geometry(im.width, im.height, io::resize_scale(im.width, im.height, t), t);
  if (padded) *padded = {g.padded_height, g.padded_width};
  std::vector<std::array<float, 4>> out;
  for (const io::Box& b : im.boxes) out.push_back({b.x1 * g.scale_x, b.y1 * g.scale_y, b.x2 * g.scale_x, b.y2 * g.scale_y});
  return out;
}

models::AnchorCoverage anchor_coverage(const std::vector<ImageGeometry>& images, const CoverageSettings& s) {
  const models::AnchorLayout layout = models::detector_anchor_layout(s.model, s.anchor_base);
  // Boxes grouped by padded image size: one grid per group.
  std::map<std::pair<int64_t, int64_t>, std::vector<std::array<float, 4>>> groups;
  for (const ImageGeometry& im : images) {
    if (im.boxes.empty()) continue;
    std::pair<int64_t, int64_t> padded;
    const auto boxes = resized_boxes(im, s.size, &padded, s.min_size);
    auto& v = groups[padded];
    v.insert(v.end(), boxes.begin(), boxes.end());
  }
  std::vector<std::vector<float>> best;
  for (const auto& [size, boxes] : groups) {
    auto part = models::best_anchor_iou(layout, size, boxes);
    best.insert(best.end(), std::make_move_iterator(part.begin()), std::make_move_iterator(part.end()));
  }
  return models::summarize_coverage(best, layout.num_levels());
}

std::vector<int> default_suggestion_sizes() {
  return {128, 160, 192, 224, 256, 320, 384, 448, 512, 640, 768, 896, 1024, 1152, 1280, 1408, 1536};
}
std::vector<double> default_suggestion_bases() { return {8, 12, 16, 20, 24, 32}; }

CoverageSuggestion suggest_coverage_settings(const std::vector<ImageGeometry>& images, const std::string& model,
                                             double target, std::vector<int> sizes, std::vector<double> bases) {
  if (sizes.empty()) sizes = default_suggestion_sizes();
  if (bases.empty()) bases = default_suggestion_bases();
  // Enlarging past the largest image gains no detail: such sizes are left out (all but the smallest
  // when every size is larger).
  int longest = 0;
  for (const ImageGeometry& im : images) longest = std::max({longest, im.width, im.height});
  std::sort(sizes.begin(), sizes.end());
  sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
  while (sizes.size() > 1 && sizes.back() > longest) sizes.pop_back();
  CoverageSuggestion overall;
  overall.at50 = -1;
  for (int size : sizes) {
    CoverageSuggestion at_size;
    at_size.at50 = -1;
    for (double base : bases) {
      CoverageSettings s{model, base, size};
      const double v = anchor_coverage(images, s).at50;
      if (v > at_size.at50) at_size = {false, s, v};
      if (v > overall.at50) overall = {false, s, v};
    }
    if (at_size.at50 >= target) {
      at_size.found = true;
      return at_size;
    }
  }
  return overall;
}

std::string format_coverage(const models::AnchorCoverage& c, const CoverageSettings& s) {
  const models::AnchorLayout layout = models::detector_anchor_layout(s.model, s.anchor_base);
  std::string out = "anchor coverage, " + s.str() + " (" + std::to_string(c.boxes) + " boxes):\n";
  out += strf("  %-5s %6s  %-22s %9s %9s %10s\n", "level", "stride", "anchor sizes (px)", "IoU>=0.5", "IoU>=0.4",
                    "best here");
  for (int64_t l = 0; l < layout.num_levels(); ++l) {
    std::string sizes;
    for (double v : layout.anchors.sizes[l]) sizes += (sizes.empty() ? "" : ",") + num(v);
    const int k = layout.first_level + static_cast<int>(l);
    const auto pct = [&](const std::vector<double>& v) { return v.empty() ? 0.0 : 100.0 * v[l]; };
    out += strf("  P%-4d %6d  %-22s %8.1f%% %8.1f%% %9.1f%%\n", k, 1 << k, sizes.c_str(), pct(c.level_at50),
                      pct(c.level_at40), pct(c.best_level_share));
  }
  out += strf("  %-5s %6s  %-22s %8.1f%% %8.1f%%   median best IoU %.3f\n", "all", "", "", 100.0 * c.at50,
                    100.0 * c.at40, c.median_best_iou);
  return out;
}

std::string low_coverage_message(const models::AnchorCoverage& c, const CoverageSettings& s,
                                 const CoverageSuggestion& better, double min_share) {
  if (c.boxes == 0 || c.at50 >= min_share) return "";
  std::string m = strf("anchor coverage too low: only %.1f%% of the %lld training boxes have an anchor at "
                             "IoU >= 0.5 with ",
                             100.0 * c.at50, static_cast<long long>(c.boxes)) +
                  s.str() + strf(" (needs %.0f%%); ", 100.0 * min_share);
  // Suggestions resize the longest side: a run that resized the shortest one must turn that off.
  const std::string base = num(better.settings.anchor_base) + (s.min_size > 0 ? " --min-size 0" : "");
  if (better.found)
    m += strf("use --size %d --anchor-base %s (%.1f%%)", better.settings.size, base.c_str(), 100.0 * better.at50);
  else
    m += strf("the best found is --size %d --anchor-base %s (%.1f%%)", better.settings.size, base.c_str(),
                    100.0 * better.at50);
  return m + ", or pass --allow-low-coverage to train anyway";
}

models::AnchorCoverage check_anchor_coverage(const io::Dataset& ds, const std::vector<int64_t>& pool,
                                             const CoverageSettings& s, bool allow, std::FILE* out,
                                             double min_share) {
  int64_t unknown = 0;
  const std::vector<ImageGeometry> images = dataset_geometry(ds, pool, &unknown);
  const models::AnchorCoverage c = anchor_coverage(images, s);
  if (out) {
    std::fputs(format_coverage(c, s).c_str(), out);
    if (unknown > 0) std::fprintf(out, "  (%lld images of unknown size left out)\n", static_cast<long long>(unknown));
  }
  if (c.boxes == 0 || c.at50 >= min_share) return c;
  std::vector<int> sizes = default_suggestion_sizes();
  sizes.push_back(s.size);  // a better --anchor-base alone may do at the user's size
  const std::string msg =
      low_coverage_message(c, s, suggest_coverage_settings(images, s.model, 0.95, sizes), min_share);
  if (!allow) throw ValueError(msg);
  if (out) std::fprintf(out, "warning: %s\n", msg.c_str());
  return c;
}

}  // namespace sx::train
